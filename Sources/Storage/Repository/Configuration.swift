import Foundation

/// A repository's configuration: one value, loaded from `config.json`, then
/// overridden by environment variables (and by CLI flags, which the CLI applies).
/// Docs/configuration.md lists every field and variable.
public struct Configuration: Codable, Sendable, Equatable {
    /// The repository layout version the file was written for.
    public var version = Repository.currentVersion
    /// The node's identity (public part; the key is in `keystore/`).
    public var identity = Identity()
    /// LevelDB tuning.
    public var datastore = Datastore()
    /// Block store settings.
    public var blockstore = LevelDBBlockStore.Options()
    /// Listener addresses for the daemon.
    public var addresses = Addresses()
    /// Pins and pinning policies.
    public var pinning = Pinning()
    /// Garbage collection.
    public var gc = GC()
    /// Limits and timeouts of the daemon's HTTP listeners (read by HTTPServer's `ServerLimits`).
    public var http = HTTP()

    /// Defaults.
    public init() {}

    /// Reads a configuration file; sections and fields it lacks keep their defaults, so files
    /// written by earlier releases still open.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? version
        identity = try c.decodeIfPresent(Identity.self, forKey: .identity) ?? identity
        datastore = try c.decodeIfPresent(Datastore.self, forKey: .datastore) ?? datastore
        blockstore = try c.decodeIfPresent(LevelDBBlockStore.Options.self, forKey: .blockstore) ?? blockstore
        addresses = try c.decodeIfPresent(Addresses.self, forKey: .addresses) ?? addresses
        pinning = try c.decodeIfPresent(Pinning.self, forKey: .pinning) ?? pinning
        gc = try c.decodeIfPresent(GC.self, forKey: .gc) ?? gc
        http = try c.decodeIfPresent(HTTP.self, forKey: .http) ?? http
    }

    /// The daemon's HTTP limits and timeouts (durations as `30s`, `2m`; Docs/http.md).
    public struct HTTP: Codable, Sendable, Equatable {
        /// A request's headers must be complete within this, counted from the connection's
        /// start or the end of the previous response (an idle keep-alive connection closes then).
        public var headerTimeout = "30s"
        /// A request body that sends nothing for this long has its connection closed.
        public var bodyIdleTimeout = "30s"
        /// A response the client reads nothing of for this long has its connection closed.
        public var sendTimeout = "60s"
        /// A whole small body (block/put, dag/put, PUT /ipfs, /pins) must arrive within this (408).
        public var requestTimeout = "60s"
        /// Uploads (add, dag/import) imported at once.
        public var uploadSlots = 32
        /// Uploads one client address may have in progress or waiting (more: 429).
        public var uploadsPerClient = 16
        /// Streamed downloads (files, CARs, TARs, cat, get) produced at once, on each listener.
        public var downloadSlots = 32
        /// Streamed downloads one client address may have in progress or waiting (more: 429).
        public var downloadsPerClient = 16
        /// How long an upload or a download waits for a free slot before 503.
        public var slotWait = "10s"
        /// Ranges served from one `Range` header (more: the whole body, 200).
        public var maximumRanges = 100
        /// Defaults.
        public init() {}

        enum CodingKeys: String, CodingKey {
            case headerTimeout, bodyIdleTimeout, sendTimeout, requestTimeout, uploadSlots, uploadsPerClient, downloadSlots, downloadsPerClient
            case slotWait, maximumRanges
        }

        /// Decodes the section; missing keys keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            headerTimeout = try c.decodeIfPresent(String.self, forKey: .headerTimeout) ?? headerTimeout
            bodyIdleTimeout = try c.decodeIfPresent(String.self, forKey: .bodyIdleTimeout) ?? bodyIdleTimeout
            sendTimeout = try c.decodeIfPresent(String.self, forKey: .sendTimeout) ?? sendTimeout
            requestTimeout = try c.decodeIfPresent(String.self, forKey: .requestTimeout) ?? requestTimeout
            uploadSlots = try c.decodeIfPresent(Int.self, forKey: .uploadSlots) ?? uploadSlots
            uploadsPerClient = try c.decodeIfPresent(Int.self, forKey: .uploadsPerClient) ?? uploadsPerClient
            downloadSlots = try c.decodeIfPresent(Int.self, forKey: .downloadSlots) ?? downloadSlots
            downloadsPerClient = try c.decodeIfPresent(Int.self, forKey: .downloadsPerClient) ?? downloadsPerClient
            slotWait = try c.decodeIfPresent(String.self, forKey: .slotWait) ?? slotWait
            maximumRanges = try c.decodeIfPresent(Int.self, forKey: .maximumRanges) ?? maximumRanges
        }
    }

    /// Pinning settings.
    public struct Pinning: Codable, Sendable, Equatable {
        /// A folder of policy files to use instead of the built-in ones (the project's `Pinning/`).
        public var policies: String?
        /// How long a queued pin (Pinning Service API) waits for its blocks before it fails.
        public var queuedTimeout = "24h"
        /// Defaults.
        public init() {}
    }

    /// Garbage-collection settings.
    public struct GC: Codable, Sendable, Equatable {
        /// How often the background collector runs (`0s`: never; `qstore repo gc` still works).
        public var interval = "1h"
        /// Blocks deleted per transaction.
        public var batchSize = 256
        /// A sealed pack file is compacted (its live blocks copied on, the file removed) after a
        /// collection when at least this share of it is dead (0 < share ≤ 1; 1: only wholly dead packs).
        public var packCompactionThreshold = 0.5
        /// Defaults.
        public init() {}

        enum CodingKeys: String, CodingKey { case interval, batchSize, packCompactionThreshold }

        /// Decodes the section; missing keys keep their defaults.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            interval = try c.decodeIfPresent(String.self, forKey: .interval) ?? interval
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
            packCompactionThreshold = try c.decodeIfPresent(Double.self, forKey: .packCompactionThreshold) ?? packCompactionThreshold
        }
    }

    /// The node's public identity.
    public struct Identity: Codable, Sendable, Equatable {
        /// The libp2p peer ID of the node's Ed25519 key.
        public var peerID = ""
        /// Defaults.
        public init() {}
    }

    /// LevelDB settings (see `LevelDB.Options`).
    public struct Datastore: Codable, Sendable, Equatable {
        /// Memtable size.
        public var writeBufferSize = 64 << 20
        /// Block cache size.
        public var blockCacheSize = 64 << 20
        /// Bloom filter bits per key.
        public var bloomBitsPerKey = 10
        /// Snappy compression.
        public var compression = true
        /// Defaults.
        public init() {}

        var levelDBOptions: LevelDB.Options {
            var o = LevelDB.Options()
            o.writeBufferSize = writeBufferSize
            o.blockCacheSize = blockCacheSize
            o.bloomBitsPerKey = bloomBitsPerKey
            o.compression = compression
            return o
        }
    }

    /// Where the daemon listens.
    public struct Addresses: Codable, Sendable, Equatable {
        /// The admin API (loopback by default).
        public var api = "127.0.0.1:5001"
        /// The read-only gateway.
        public var gateway = "127.0.0.1:8080"
        /// Defaults.
        public init() {}
    }

    /// Applies `QSTORE_*` environment overrides.
    public mutating func applyEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws {
        func int(_ name: String) throws -> Int? {
            guard let v = env[name] else { return nil }
            guard let i = Int(v), i >= 0 else { throw RepositoryError.invalidConfiguration("\(name)=\(v) is not a non-negative integer") }
            return i
        }
        if let v = try int("QSTORE_MAX_BLOCK_SIZE") { blockstore.blocks.maximumBlockSize = v }
        if let v = try int("QSTORE_INLINE_LIMIT") { blockstore.inlineLimit = v }
        if let v = env["QSTORE_VERIFY_ON_READ"] { blockstore.blocks.verifyOnRead = ["1", "true", "yes"].contains(v.lowercased()) }
        if let v = env["QSTORE_DURABILITY"] {
            guard let d = LevelDBBlockStore.Durability(rawValue: v) else {
                throw RepositoryError.invalidConfiguration("QSTORE_DURABILITY=\(v): expected sync or buffered")
            }
            blockstore.durability = d
        }
        if let v = env["QSTORE_POLICIES"] { pinning.policies = v.isEmpty ? nil : v }
        if let v = env["QSTORE_GC_INTERVAL"] { gc.interval = v }
        if let v = env["QSTORE_API_ADDRESS"] { addresses.api = v }
        if let v = env["QSTORE_GATEWAY_ADDRESS"] { addresses.gateway = v }
    }

    /// The JSON written to `config.json` (pretty, keys sorted).
    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try e.encode(self)
    }
}
