// swift-tools-version:6.1
import PackageDescription

// Qstore's benchmarks: a package of their own (ordo-one/benchmark), depending on
// the main package by path, so the main build and CI stay lean.
// Run: cd Benchmarks && swift package benchmark   (see Docs/benchmarks.md)
let package = Package(
    name: "QstoreBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Qstore", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // Only to compare its SHA-256 with OpenSSL's; the main package does not depend on it.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        .executableTarget(
            name: "FormatBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Multiformats", package: "Qstore"),
                .product(name: "IPLD", package: "Qstore"),
                .product(name: "CAR", package: "Qstore"),
            ],
            path: "Benchmarks/FormatBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "StorageBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Storage", package: "Qstore"),
                .product(name: "Multiformats", package: "Qstore"),
            ],
            path: "Benchmarks/StorageBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Large sustained stores (1 GiB, 10 GiB): a plain executable, one run per size.
        .executableTarget(
            name: "StoreThroughput",
            dependencies: [
                .product(name: "Storage", package: "Qstore"),
                .product(name: "Multiformats", package: "Qstore"),
            ],
            path: "Tools/StoreThroughput"
        ),
        // Pre-signed requests for the authentication benchmark (HTTP/auth.sh).
        .executableTarget(
            name: "SignRequests",
            dependencies: [
                .product(name: "Access", package: "Qstore"),
                .product(name: "Multiformats", package: "Qstore"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tools/SignRequests"
        ),
        // Pinning figures (GC cost against live size, pin ls, pin add, counting overhead).
        .executableTarget(
            name: "PinningFigures",
            dependencies: [
                .product(name: "Node", package: "Qstore"),
                .product(name: "Pinning", package: "Qstore"),
                .product(name: "UnixFS", package: "Qstore"),
                .product(name: "CAR", package: "Qstore"),
                .product(name: "IPLD", package: "Qstore"),
                .product(name: "Storage", package: "Qstore"),
                .product(name: "Multiformats", package: "Qstore"),
            ],
            path: "Tools/PinningFigures"
        ),
        // Registry figures (dependency resolution, range matching).
        .executableTarget(
            name: "RegistryFigures",
            dependencies: [
                .product(name: "Registry", package: "Qstore"),
                .product(name: "Node", package: "Qstore"),
                .product(name: "Storage", package: "Qstore"),
            ],
            path: "Tools/RegistryFigures"
        ),
        // Audit log figures (appends/s, proofs at size, verify speed).
        .executableTarget(
            name: "AuditFigures",
            dependencies: [
                .product(name: "Audit", package: "Qstore"),
                .product(name: "Pinning", package: "Qstore"),
                .product(name: "Signing", package: "Qstore"),
                .product(name: "Storage", package: "Qstore"),
                .product(name: "Multiformats", package: "Qstore"),
            ],
            path: "Tools/AuditFigures"
        ),
        // Qindex figures (updates/s with group commit, head reads, history and list pages, IPNS).
        .executableTarget(
            name: "QindexFigures",
            dependencies: [
                .product(name: "Node", package: "Qstore"),
                .product(name: "Qindex", package: "Qstore"),
                .product(name: "Storage", package: "Qstore"),
                .product(name: "Multiformats", package: "Qstore"),
            ],
            path: "Tools/QindexFigures"
        ),
    ]
)
