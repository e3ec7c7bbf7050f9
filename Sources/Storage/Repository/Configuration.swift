import Foundation
import IPLD

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
    /// The sections of the layers above Storage, as read (each layer decodes its own: `section`).
    private var sections: [String: JSONValue] = [:]
    /// The environment overrides apply to (`applyEnvironment`); each section applies its own.
    private var environment: [String: String] = [:]

    /// Defaults.
    public init() {}

    /// Reads a configuration file; sections and fields it lacks keep their defaults, so files
    /// written by earlier releases still open. Sections of the layers above are kept as read.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: SectionKey.self)
        version = try c.decodeIfPresent(Int.self, forKey: SectionKey("version")) ?? version
        identity = try c.decodeIfPresent(Identity.self, forKey: SectionKey("identity")) ?? identity
        datastore = try c.decodeIfPresent(Datastore.self, forKey: SectionKey("datastore")) ?? datastore
        blockstore = try c.decodeIfPresent(LevelDBBlockStore.Options.self, forKey: SectionKey("blockstore")) ?? blockstore
        for key in c.allKeys where !Self.ownKeys.contains(key.stringValue) {
            sections[key.stringValue] = try c.decode(JSONValue.self, forKey: key)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: SectionKey.self)
        try c.encode(version, forKey: SectionKey("version"))
        try c.encode(identity, forKey: SectionKey("identity"))
        try c.encode(datastore, forKey: SectionKey("datastore"))
        try c.encode(blockstore, forKey: SectionKey("blockstore"))
        for (key, value) in sections { try c.encode(value, forKey: SectionKey(key)) }
    }

    private static let ownKeys: Set<String> = ["version", "identity", "datastore", "blockstore"]

    struct SectionKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// The section `S` owns: as the file has it (fields it lacks keep their defaults), then its
    /// environment overrides. A section that does not decode is named in the error.
    public func section<S: ConfigurationSection>(_ type: S.Type) throws -> S {
        var s = S()
        if let raw = sections[S.key] {
            do { s = try JSONDecoder().decode(S.self, from: try JSONEncoder().encode(raw)) } catch {
                throw RepositoryError.invalidConfiguration("section \"\(S.key)\" of config.json: \(error)")
            }
        }
        try s.applyEnvironment(environment)
        return s
    }

    /// Replaces the section `S` owns (what `encoded()` then writes).
    public mutating func setSection<S: ConfigurationSection>(_ value: S) throws {
        sections[S.key] = try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(value))
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
        public var writeBufferSize = 32 << 20
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

    /// Applies `QSTORE_*` environment overrides to Storage's sections, and keeps `env` for the
    /// sections of the layers above (`section` applies theirs).
    public mutating func applyEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws {
        environment = env
        func int(_ name: String) throws -> Int? {
            guard let v = env[name] else { return nil }
            guard let i = Int(v), i >= 0 else { throw RepositoryError.invalidConfiguration("\(name)=\(v) is not a non-negative integer") }
            return i
        }
        if let v = try int("QSTORE_MAX_BLOCK_SIZE") { blockstore.blocks.maximumBlockSize = v }
        if let v = try int("QSTORE_INLINE_LIMIT") { blockstore.inlineLimit = v }
        if let v = try int("QSTORE_RESERVE_BYTES") { blockstore.reserveBytes = UInt64(v) }
        if let v = try int("QSTORE_HOT_BLOCK_CACHE") { blockstore.hotBlockCacheBytes = v }
        if let v = env["QSTORE_VERIFY_ON_READ"] { blockstore.blocks.verifyOnRead = ["1", "true", "yes"].contains(v.lowercased()) }
        if let v = env["QSTORE_DURABILITY"] {
            guard let d = LevelDBBlockStore.Durability(rawValue: v) else {
                throw RepositoryError.invalidConfiguration("QSTORE_DURABILITY=\(v): expected sync or buffered")
            }
            blockstore.durability = d
        }
    }

    /// The JSON written to `config.json` (pretty, keys sorted).
    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try e.encode(self)
    }
}

/// A section of `config.json` owned by a layer above Storage (pinning, gc, http, addresses, and
/// the Q layers'): the layer declares it, decodes it (`Configuration.section`) and validates it;
/// Storage only keeps it. Fields a file lacks keep their defaults.
public protocol ConfigurationSection: Codable, Sendable, Equatable {
    /// The section's key in `config.json`.
    static var key: String { get }
    /// The defaults.
    init()
    /// Applies the section's `QSTORE_*` environment overrides.
    mutating func applyEnvironment(_ env: [String: String]) throws
}

extension ConfigurationSection {
    public mutating func applyEnvironment(_ env: [String: String]) throws {}
}

