// swift-tools-version:6.1
import PackageDescription

// Qstore: a content-addressed storage daemon. Targets follow the module map in
// DESIGN.md; arrows point downwards only (qstore → CAR → IPLD → Multiformats).
let package = Package(
    name: "Qstore",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "qstore", targets: ["qstore"]),
        .library(name: "Multiformats", targets: ["Multiformats"]),
        .library(name: "IPLD", targets: ["IPLD"]),
        .library(name: "CAR", targets: ["CAR"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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
        .executableTarget(
            name: "qstore",
            dependencies: [
                "Multiformats", "IPLD", "CAR",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fixture location and seeded fuzzing helpers shared by the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "MultiformatsTests", dependencies: ["Multiformats", "TestSupport"]),
        .testTarget(name: "IPLDTests", dependencies: ["IPLD", "Multiformats", "TestSupport"]),
        .testTarget(name: "CARTests", dependencies: ["CAR", "IPLD", "Multiformats", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
