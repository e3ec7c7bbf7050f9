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
        .library(name: "Pinning", targets: ["Pinning"]),
        .library(name: "UnixFS", targets: ["UnixFS"]),
        .library(name: "Signing", targets: ["Signing"]),
        .library(name: "Access", targets: ["Access"]),
        .library(name: "Qindex", targets: ["Qindex"]),
        .library(name: "Audit", targets: ["Audit"]),
        .library(name: "Registry", targets: ["Registry"]),
        .library(name: "Backup", targets: ["Backup"]),
        .library(name: "Qdrive", targets: ["Qdrive"]),
        .library(name: "QpiC", targets: ["QpiC"]),
        .library(name: "Node", targets: ["Node"]),
        .library(name: "KuboAPI", targets: ["KuboAPI"]),
        .library(name: "QAPI", targets: ["QAPI"]),
        .library(name: "HTTPServer", targets: ["HTTPServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Default traits off: no swift-configuration integration is needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // OpenSSL's libcrypto (Debian: libssl-dev) for the SHA family on the CPU's SHA extensions.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "Multiformats", dependencies: ["COpenSSL"]),
        // `Mutex.locked`: `withLock` with its critical section told to ThreadSanitizer.
        .target(name: "CLocking"),
        .target(name: "Locking", dependencies: ["CLocking"]),
        // libvips (Debian: libvips-dev), loaded on first use (dlopen): the executable does not link
        // it, so a daemon that serves no media maps none of its ~90 libraries. Its headers need
        // GLib's, whose configuration header sits in the multiarch library folder.
        .target(name: "CVips", cSettings: [.unsafeFlags([
            "-I/usr/include/glib-2.0", "-I/usr/lib/x86_64-linux-gnu/glib-2.0/include", "-I/usr/lib/aarch64-linux-gnu/glib-2.0/include",
        ])]),
        .target(name: "IPLD", dependencies: ["Multiformats"]),
        .target(name: "CAR", dependencies: ["IPLD", "Multiformats"]),
        // LevelDB's C API (Debian: libleveldb-dev, with snappy).
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev", "libsnappy-dev"])]),
        .target(
            name: "Storage",
            dependencies: [
                "CLevelDB", "CAR", "IPLD", "Locking", "Multiformats",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Ed25519 signatures of objects behind a domain string; LockSig, IdentityRef, libp2p key names.
        .target(
            name: "Signing",
            dependencies: ["Storage", "IPLD", "Multiformats", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Pins, pinning policies, reference counts, garbage collection.
        .target(name: "Pinning", dependencies: ["Signing", "Storage", "IPLD", "Multiformats"]),
        // UnixFS v1 files: chunkers, the balanced layout, reading byte ranges.
        .target(name: "UnixFS", dependencies: ["Storage", "CAR", "IPLD", "Multiformats"]),
        // Identities, grants and scopes, signed requests, rate limits, idempotency records. No HTTP.
        .target(
            name: "Access",
            dependencies: ["Pinning", "Signing", "Storage", "Multiformats", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The Qerberos audit log: RFC 9162 Merkle tree, proofs, C2SP signed checkpoints.
        .target(name: "Audit", dependencies: ["Pinning", "Signing", "Storage", "CAR", "IPLD", "Multiformats", .product(name: "Crypto", package: "swift-crypto")]),
        // The module registry: versions and npm ranges, signed module metadata, dependency resolution, search.
        .target(name: "Registry", dependencies: ["Signing", "IPLD", "Multiformats"]),
        // Qdrive: drive files and directories (dag-cbor), STREAM segment encryption, HPKE key wraps. No storage.
        .target(name: "Qdrive", dependencies: ["Signing", "IPLD", "Multiformats", .product(name: "Crypto", package: "swift-crypto")]),
        // QpiC: media types by content, metadata (EXIF, GPS), privacy profiles, variants through libvips. No storage.
        .target(name: "QpiC", dependencies: ["Qdrive", "CVips", "Storage", "IPLD", "Multiformats"]),
        // Backup sets: CARv2 parts and signed manifests; writing, reading, verifying, pruning.
        .target(name: "Backup", dependencies: ["Qindex", "Pinning", "Signing", "Storage", "CAR", "IPLD", "Multiformats"]),
        // Signed mutable pointers with verifiable history.
        .target(name: "Qindex", dependencies: ["Pinning", "Signing", "Storage", "IPLD", "Multiformats"]),
        // Replication: cluster membership, placement, the allocator, pulling and pinning allocated
        // DAGs. Talks to a Coordinator (etcd's model) and a PeerTransport; no network of its own.
        .target(name: "Replication", dependencies: ["Pinning", "Storage", "CAR", "Multiformats"]),
        // The etcd adapter (its v3 JSON gateway) and HTTP block transfer, through AsyncHTTPClient.
        // Linked by the daemon only.
        .target(
            name: "EtcdCoordinator",
            dependencies: [
                "Replication", "CAR",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Wires one repository's services together; the only room that knows all of them.
        .target(
            name: "Node",
            dependencies: [
                "Access", "Audit", "Backup", "Qdrive", "QpiC", "Qindex", "Registry", "Replication", "Signing", "UnixFS", "Pinning", "Storage", "CAR", "IPLD", "Multiformats",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The Kubo RPC API's request and reply types, shared by the daemon and the CLI.
        .target(name: "KuboAPI"),
        // The Q API's (/q/v1) request and reply types, shared by the daemon and the CLI.
        .target(name: "QAPI", dependencies: ["Access", "Audit", "Backup", "Qdrive", "QpiC", "Qindex", "Registry", "Signing", "IPLD", "Multiformats"]),
        // One fuzz target per untrusted input (Docs/fuzzing.md): a library the fuzz binary and the
        // regression tests share, and the binary (libFuzzer with -D FUZZING, else a replayer).
        .target(name: "FuzzTargets", dependencies: ["Access", "Audit", "CAR", "HTTPMessages", "IPLD", "Multiformats", "Qindex", "Registry", "Signing", "Storage", "UnixFS"]),
        .executableTarget(name: "qstore-fuzz", dependencies: ["FuzzTargets"]),
        // HTTP message grammar without a server: multipart bodies, Range, Accept, If-None-Match.
        .target(name: "HTTPMessages", dependencies: ["CAR", "Multiformats"]),
        // Hummingbird routes: the gateway, /api/v0 RPC, /health, /metrics. No storage work of its own.
        .target(
            name: "HTTPServer",
            dependencies: [
                "Node", "KuboAPI", "QAPI", "HTTPMessages", "Access", "Audit", "Backup", "Qdrive", "QpiC", "Qindex", "Registry", "Replication", "Signing", "Pinning", "UnixFS", "Storage", "CAR", "IPLD", "Multiformats",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),
        .executableTarget(
            name: "qstore",
            dependencies: [
                "Multiformats", "IPLD", "CAR", "Storage", "Pinning", "UnixFS", "Signing", "Access", "Audit", "Backup", "Qdrive", "QpiC", "Qindex", "Registry", "Replication",
                "EtcdCoordinator", "Node", "KuboAPI", "QAPI", "HTTPServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Fixture location and seeded fuzzing helpers shared by the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "MultiformatsTests", dependencies: ["Multiformats", "TestSupport"]),
        .testTarget(name: "IPLDTests", dependencies: ["IPLD", "Multiformats", "TestSupport"]),
        .testTarget(name: "CARTests", dependencies: ["CAR", "IPLD", "Multiformats", "TestSupport"]),
        .testTarget(name: "ReplicationTests", dependencies: ["Replication", "TestSupport"]),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets", "TestSupport"]),
        .testTarget(name: "QdriveTests", dependencies: ["Qdrive", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "QpiCTests", dependencies: ["QpiC", "Qdrive", "TestSupport"]),
        // "qstore" is a dependency so the crash test has the binary to run as a child process.
        .testTarget(name: "StorageTests", dependencies: ["Storage", "CAR", "IPLD", "Multiformats", "TestSupport", "qstore"]),
        .testTarget(name: "PinningTests", dependencies: ["Pinning", "Storage", "IPLD", "Multiformats", "TestSupport", "qstore"]),
        .testTarget(name: "UnixFSTests", dependencies: ["UnixFS", "Storage", "CAR", "IPLD", "Multiformats", "TestSupport"], exclude: ["Vectors"]),
        .testTarget(name: "AccessTests", dependencies: ["Access", "Pinning", "Signing", "Storage", "Multiformats", "TestSupport", .product(name: "Crypto", package: "swift-crypto")], exclude: ["Vectors"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "Signing", "IPLD", "Multiformats", "TestSupport"]),
        .testTarget(name: "AuditTests", dependencies: ["Audit", "Signing", "IPLD", "Multiformats", "TestSupport"]),
        .testTarget(name: "QindexTests", dependencies: ["Qindex", "Signing", "Pinning", "Storage", "IPLD", "Multiformats", "TestSupport", "qstore"]),
        .testTarget(name: "NodeTests", dependencies: ["Node", "Audit", "Backup", "Qdrive", "Qindex", "Registry", "Replication", "Signing", "Pinning", "UnixFS", "Storage", "CAR", "IPLD", "Multiformats", "TestSupport", "qstore"]),
        .testTarget(name: "HTTPServerTests", dependencies: [
            "HTTPServer", "HTTPMessages", "Node", "Access", "Audit", "Backup", "Qdrive", "QpiC", "Qindex", "Registry", "Replication", "EtcdCoordinator", "Signing", "QAPI", "Pinning", "Storage", "CAR", "IPLD", "Multiformats", "TestSupport", "qstore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
