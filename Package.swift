// swift-tools-version:6.1
import PackageDescription

// Qstore: a content-addressed storage daemon. Targets follow the module map in
// DESIGN.md; arrows point downwards only (qstore → CAR → IPLD → Multiformats).
let package = Package(
    name: "Qstore",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qstore", targets: ["qstore"]),
        .library(name: "Multiformats", targets: ["Multiformats"]),
        .library(name: "IPLD", targets: ["IPLD"]),
        .library(name: "CAR", targets: ["CAR"]),
        .library(name: "Storage", targets: ["Storage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // OpenSSL's libcrypto (Debian: libssl-dev) for the SHA family on the CPU's SHA extensions.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "Multiformats", dependencies: ["COpenSSL"]),
        .target(name: "IPLD", dependencies: ["Multiformats"]),
        .target(name: "CAR", dependencies: ["IPLD", "Multiformats"]),
        // LevelDB's C API (Debian: libleveldb-dev, with snappy).
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev", "libsnappy-dev"])]),
        .target(
            name: "Storage",
            dependencies: [
                "CLevelDB", "CAR", "IPLD", "Multiformats",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "qstore",
            dependencies: [
                "Multiformats", "IPLD", "CAR", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fixture location and seeded fuzzing helpers shared by the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "MultiformatsTests", dependencies: ["Multiformats", "TestSupport"]),
        .testTarget(name: "IPLDTests", dependencies: ["IPLD", "Multiformats", "TestSupport"]),
        .testTarget(name: "CARTests", dependencies: ["CAR", "IPLD", "Multiformats", "TestSupport"]),
        // "qstore" is a dependency so the crash test has the binary to run as a child process.
        .testTarget(name: "StorageTests", dependencies: ["Storage", "CAR", "IPLD", "Multiformats", "TestSupport", "qstore"]),
    ],
    swiftLanguageModes: [.v6]
)
