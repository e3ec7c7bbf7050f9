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

    /// Defaults.
    public init() {}

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
