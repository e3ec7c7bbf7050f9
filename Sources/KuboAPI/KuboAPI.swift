import Foundation

// The wire types of Kubo's RPC API (`/api/v0`) as Qstore serves it: the daemon encodes them, the
// CLI's remote backend decodes them, so the two cannot drift. Field names are Kubo's (its
// `core/commands` output types); fields marked "Qstore" are additions Kubo's clients ignore.
// Streamed commands answer newline-delimited JSON: one value per line.

/// `{"/": "<cid>"}`, IPLD's link form in Kubo's replies.
public struct CIDLink: Codable, Sendable, Equatable {
    public var cid: String
    public init(_ cid: String) { self.cid = cid }
    enum CodingKeys: String, CodingKey { case cid = "/" }
}

/// An error reply (any status ≥ 400, or a streamed reply's last line after a failure).
public struct ErrorReply: Codable, Sendable, Equatable, Error {
    public var message: String
    public var code: Int
    public var type: String
    public init(message: String, code: Int = 0, type: String = "error") { self.message = message; self.code = code; self.type = type }
    enum CodingKeys: String, CodingKey { case message = "Message", code = "Code", type = "Type" }
}

/// `version`.
public struct VersionInfo: Codable, Sendable, Equatable {
    public var version, commit, repo, system, golang, program: String
    public init(version: String, commit: String, repo: String, system: String, golang: String, program: String) {
        (self.version, self.commit, self.repo, self.system, self.golang, self.program) = (version, commit, repo, system, golang, program)
    }
    enum CodingKeys: String, CodingKey { case version = "Version", commit = "Commit", repo = "Repo", system = "System", golang = "Golang", program = "Program" }
}

/// `id`.
public struct IDInfo: Codable, Sendable, Equatable {
    public var id, publicKey, agentVersion: String
    public var addresses, protocols: [String]
    public init(id: String, publicKey: String, agentVersion: String, addresses: [String] = [], protocols: [String] = []) {
        (self.id, self.publicKey, self.agentVersion, self.addresses, self.protocols) = (id, publicKey, agentVersion, addresses, protocols)
    }
    enum CodingKeys: String, CodingKey { case id = "ID", publicKey = "PublicKey", addresses = "Addresses", agentVersion = "AgentVersion", protocols = "Protocols" }
}

/// `block/put` (a line per block) and `block/stat`.
public struct BlockStat: Codable, Sendable, Equatable {
    public var key: String
    public var size: Int
    public init(key: String, size: Int) { self.key = key; self.size = size }
    enum CodingKeys: String, CodingKey { case key = "Key", size = "Size" }
}

/// `block/rm`: a line per block ("" error: removed).
public struct BlockRemoval: Codable, Sendable, Equatable {
    public var hash: String
    public var error: String
    public init(hash: String, error: String = "") { self.hash = hash; self.error = error }
    enum CodingKeys: String, CodingKey { case hash = "Hash", error = "Error" }
}

/// `dag/put`: a line per node.
public struct DAGPutResult: Codable, Sendable, Equatable {
    public var cid: CIDLink
    public init(cid: String) { self.cid = CIDLink(cid) }
    enum CodingKeys: String, CodingKey { case cid = "Cid" }
}

/// `dag/import`: a line per root (when pinning roots), then the statistics (with `stats`).
public struct DAGImportEvent: Codable, Sendable, Equatable {
    public struct Root: Codable, Sendable, Equatable {
        public var cid: CIDLink
        public var pinErrorMsg: String
        public init(cid: String, pinErrorMsg: String) { self.cid = CIDLink(cid); self.pinErrorMsg = pinErrorMsg }
        enum CodingKeys: String, CodingKey { case cid = "Cid", pinErrorMsg = "PinErrorMsg" }
    }
    public struct Stats: Codable, Sendable, Equatable {
        public var blockCount: Int
        public var blockBytesCount: UInt64
        public init(blockCount: Int, blockBytesCount: UInt64) { self.blockCount = blockCount; self.blockBytesCount = blockBytesCount }
        enum CodingKeys: String, CodingKey { case blockCount = "BlockCount", blockBytesCount = "BlockBytesCount" }
    }
    public var root: Root?
    public var stats: Stats?
    public init(root: Root? = nil, stats: Stats? = nil) { self.root = root; self.stats = stats }
    enum CodingKeys: String, CodingKey { case root = "Root", stats = "Stats" }
}

/// `add`: progress lines (`Name`, `Bytes`), then a line per entry added (`Name`, `Hash`, `Size`).
public struct AddedLine: Codable, Sendable, Equatable {
    public var name: String
    public var hash: String?
    /// The entry's cumulative DAG size, as a decimal string (Kubo's type).
    public var size: String?
    public var bytes: UInt64?
    public init(name: String, hash: String? = nil, size: String? = nil, bytes: UInt64? = nil) {
        (self.name, self.hash, self.size, self.bytes) = (name, hash, size, bytes)
    }
    enum CodingKeys: String, CodingKey { case name = "Name", hash = "Hash", size = "Size", bytes = "Bytes" }
}

/// `ls`.
public struct LsResult: Codable, Sendable, Equatable {
    public struct Link: Codable, Sendable, Equatable {
        public var name, hash: String
        public var size: UInt64
        /// 1 directory, 2 file, 4 symlink (0 unknown), as Kubo's unixfs_pb types.
        public var type: Int
        public var target: String
        public init(name: String, hash: String, size: UInt64, type: Int, target: String) {
            (self.name, self.hash, self.size, self.type, self.target) = (name, hash, size, type, target)
        }
        enum CodingKeys: String, CodingKey { case name = "Name", hash = "Hash", size = "Size", type = "Type", target = "Target" }
    }
    public struct Object: Codable, Sendable, Equatable {
        public var hash: String
        public var links: [Link]
        public init(hash: String, links: [Link]) { self.hash = hash; self.links = links }
        enum CodingKeys: String, CodingKey { case hash = "Hash", links = "Links" }
    }
    public var objects: [Object]
    public init(objects: [Object]) { self.objects = objects }
    enum CodingKeys: String, CodingKey { case objects = "Objects" }
}

/// `pin/add` (with `progress`: `Progress` lines first), `pin/rm`, `pin/update`.
public struct PinsResult: Codable, Sendable, Equatable {
    public var pins: [String]?
    public var progress: Int?
    public init(pins: [String]? = nil, progress: Int? = nil) { self.pins = pins; self.progress = progress }
    enum CodingKeys: String, CodingKey { case pins = "Pins", progress = "Progress" }
}

/// `pin/ls?stream=true`: a line per pin.
public struct PinLsEntry: Codable, Sendable, Equatable {
    public var cid, type: String
    public var name: String?
    public init(cid: String, type: String, name: String? = nil) { self.cid = cid; self.type = type; self.name = name }
    enum CodingKeys: String, CodingKey { case cid = "Cid", type = "Type", name = "Name" }
}

/// `pin/ls` without streaming.
public struct PinLsResult: Codable, Sendable, Equatable {
    public struct Key: Codable, Sendable, Equatable {
        public var type: String
        public var name: String?
        public init(type: String, name: String? = nil) { self.type = type; self.name = name }
        enum CodingKeys: String, CodingKey { case type = "Type", name = "Name" }
    }
    public var keys: [String: Key]
    public init(keys: [String: Key]) { self.keys = keys }
    enum CodingKeys: String, CodingKey { case keys = "Keys" }
}

/// `pin/verify`: a line per pin checked.
public struct PinVerifyResult: Codable, Sendable, Equatable {
    public struct BadNode: Codable, Sendable, Equatable {
        public var cid, err: String
        public init(cid: String, err: String) { self.cid = cid; self.err = err }
        enum CodingKeys: String, CodingKey { case cid = "Cid", err = "Err" }
    }
    public var cid: String
    public var ok: Bool
    public var badNodes: [BadNode]?
    public init(cid: String, ok: Bool, badNodes: [BadNode]? = nil) { self.cid = cid; self.ok = ok; self.badNodes = badNodes }
    enum CodingKeys: String, CodingKey { case cid = "Cid", ok = "Ok", badNodes = "BadNodes" }
}

/// `pin/policies` (Qstore): the pinning policies in force, as their files write them.
public struct PolicyListing: Codable, Sendable, Equatable {
    public struct Policy: Codable, Sendable, Equatable {
        public struct Condition: Codable, Sendable, Equatable {
            public var keepLatest: Int
            public init(keepLatest: Int) { self.keepLatest = keepLatest }
        }
        public var resourceType, pinningStrategy, accessPattern, gracePeriod, retention: String
        public var replicationFactor: Int
        public var description, ttl: String?
        public var condition: Condition?
        public init(resourceType: String, pinningStrategy: String, replicationFactor: Int, accessPattern: String,
                    gracePeriod: String, retention: String, description: String?, ttl: String?, condition: Condition?) {
            (self.resourceType, self.pinningStrategy, self.replicationFactor, self.accessPattern) = (resourceType, pinningStrategy, replicationFactor, accessPattern)
            (self.gracePeriod, self.retention, self.description, self.ttl, self.condition) = (gracePeriod, retention, description, ttl, condition)
        }
    }
    public var source: String
    public var policies: [Policy]
    public init(source: String, policies: [Policy]) { self.source = source; self.policies = policies }
    enum CodingKeys: String, CodingKey { case source = "Source", policies = "Policies" }
}

/// `repo/stat` (Kubo's fields, then Qstore's breakdown).
public struct RepoStat: Codable, Sendable, Equatable {
    public var repoSize, storageMax: UInt64
    public var numObjects: Int
    public var repoPath, version: String
    /// Qstore: bytes of block data, blocks kept inline in LevelDB, blocks in pack files, pack file bytes.
    public var blockBytes: UInt64?
    public var inlineBlocks, packedBlocks: Int?
    public var packBytes: UInt64?
    public init(repoSize: UInt64, storageMax: UInt64, numObjects: Int, repoPath: String, version: String,
                blockBytes: UInt64?, inlineBlocks: Int?, packedBlocks: Int?, packBytes: UInt64?) {
        (self.repoSize, self.storageMax, self.numObjects, self.repoPath, self.version) = (repoSize, storageMax, numObjects, repoPath, version)
        (self.blockBytes, self.inlineBlocks, self.packedBlocks, self.packBytes) = (blockBytes, inlineBlocks, packedBlocks, packBytes)
    }
    enum CodingKeys: String, CodingKey {
        case repoSize = "RepoSize", storageMax = "StorageMax", numObjects = "NumObjects", repoPath = "RepoPath", version = "Version"
        case blockBytes = "BlockBytes", inlineBlocks = "InlineBlocks", packedBlocks = "PackedBlocks", packBytes = "PackBytes"
    }
}

/// `repo/verify`: a line per problem (`Problem` true), then the verdict with the blocks checked
/// (`Progress`) and, Qstore, their bytes. The status is 500 when the repository is not clean.
public struct RepoVerifyLine: Codable, Sendable, Equatable {
    public var msg: String
    public var progress: Int
    public var bytes: UInt64?
    public var problem: Bool?
    public init(msg: String, progress: Int, bytes: UInt64? = nil, problem: Bool? = nil) {
        (self.msg, self.progress, self.bytes, self.problem) = (msg, progress, bytes, problem)
    }
    enum CodingKeys: String, CodingKey { case msg = "Msg", progress = "Progress", bytes = "Bytes", problem = "Problem" }
}

/// `repo/gc`: a line per block removed (or an error).
public struct RepoGCLine: Codable, Sendable, Equatable {
    public var key: CIDLink?
    public var error: String?
    public init(key: String? = nil, error: String? = nil) { self.key = key.map(CIDLink.init); self.error = error }
    enum CodingKeys: String, CodingKey { case key = "Key", error = "Error" }
}

/// Encoding and decoding of the reply bodies.
public enum KuboJSON {
    /// One value as a line of JSON (newline-terminated), keys sorted so equal values give equal
    /// bytes (a map such as `pin/ls`'s `Keys` has no order of its own).
    public static func line<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = [UInt8]((try? encoder.encode(value)) ?? Data("{}".utf8))
        bytes.append(0x0a)
        return bytes
    }

    /// The one value of a reply (its first line).
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let first = data.split(separator: 0x0a, omittingEmptySubsequences: true).first ?? data[...]
        return try JSONDecoder().decode(T.self, from: Data(first))
    }

    /// Each line of a streamed reply as `T`; a last line that is an `ErrorReply` (an error after
    /// the 200) is thrown.
    public static func lines<T: Decodable>(_ type: T.Type, from data: Data) throws -> [T] {
        let lines = data.split(separator: 0x0a, omittingEmptySubsequences: true)
        if let last = lines.last, let e = try? JSONDecoder().decode(ErrorReply.self, from: Data(last)), e.type == "error" { throw e }
        return try lines.map { try JSONDecoder().decode(T.self, from: Data($0)) }
    }
}

/// `name/publish`.
public struct NamePublished: Codable, Sendable, Equatable {
    public var name, value: String
    public init(name: String, value: String) { self.name = name; self.value = value }
    enum CodingKeys: String, CodingKey { case name = "Name", value = "Value" }
}

/// `name/resolve`.
public struct NameResolved: Codable, Sendable, Equatable {
    public var path: String
    public init(path: String) { self.path = path }
    enum CodingKeys: String, CodingKey { case path = "Path" }
}

/// One key of `key/gen`, `key/list`, `key/rm`.
public struct KeyEntry: Codable, Sendable, Equatable {
    public var name, id: String
    public init(name: String, id: String) { self.name = name; self.id = id }
    enum CodingKeys: String, CodingKey { case name = "Name", id = "Id" }
}

/// `key/list` and `key/rm`.
public struct KeyList: Codable, Sendable, Equatable {
    public var keys: [KeyEntry]
    public init(keys: [KeyEntry]) { self.keys = keys }
    enum CodingKeys: String, CodingKey { case keys = "Keys" }
}

/// `key/rename`.
public struct KeyRenamed: Codable, Sendable, Equatable {
    public var was, now, id: String
    public var overwrite: Bool
    public init(was: String, now: String, id: String, overwrite: Bool) { (self.was, self.now, self.id, self.overwrite) = (was, now, id, overwrite) }
    enum CodingKeys: String, CodingKey { case was = "Was", now = "Now", id = "Id", overwrite = "Overwrite" }
}

/// Go's duration strings as Kubo's flags take them (`--lifetime 48h`, `--ttl 1m30s`): a sequence
/// of decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
public enum GoDuration {
    /// Nanoseconds; nil when `text` is not a non-negative Go duration.
    public static func nanoseconds(_ text: String) -> UInt64? {
        if text == "0" { return 0 }
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, let v = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            guard let scale = units.first(where: { $0.0 == unit })?.1 else { return nil }
            rest = rest.dropFirst(unit.count)
            total += v * scale
        }
        guard total < 9.2e18 else { return nil }
        return UInt64(total)
    }

    /// Nanoseconds of the value of flag `name`, or an error saying what is expected.
    public static func parse(_ text: String, flag name: String) throws -> UInt64 {
        guard let ns = nanoseconds(text) else { throw BadDuration(message: "\(name): \"\(text)\" is not a duration (e.g. 48h, 30m, 90s)") }
        return ns
    }

    /// A flag's value that is not a duration.
    public struct BadDuration: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }
}

/// `routing/get` and `routing/put`: Kubo's routing query event (`Type` 5, a value; `Extra` the
/// record, base64, for a get).
public struct RoutingEvent: Codable, Sendable, Equatable {
    public var extra: String
    public var id: String
    public var type: Int
    public init(extra: String, id: String, type: Int = 5) { (self.extra, self.id, self.type) = (extra, id, type) }
    enum CodingKeys: String, CodingKey { case extra = "Extra", id = "ID", type = "Type", responses = "Responses" }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        extra = try c.decodeIfPresent(String.self, forKey: .extra) ?? ""
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        type = try c.decodeIfPresent(Int.self, forKey: .type) ?? 0
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(extra, forKey: .extra)
        try c.encode(id, forKey: .id)
        try c.encodeNil(forKey: .responses)
        try c.encode(type, forKey: .type)
    }
}
