import Foundation
import Synchronization
import IPLD
import Multiformats
import Signing

/// How much of a DAG a pin protects (Kubo's pin types).
public enum PinType: String, Sendable, Codable, CaseIterable {
    /// The root and every block below it; pinning needs the whole DAG present.
    case recursive
    /// The root block only (its stored children stay while it is stored: a stored block keeps
    /// its links counted).
    case direct
}

/// Where a pin is in its life (the Pinning Service API's statuses).
public enum PinStatus: String, Sendable, Codable, CaseIterable {
    /// Waiting for blocks that are not present yet.
    case queued
    /// Being checked.
    case pinning
    /// In force: the DAG is complete and protected.
    case pinned
    /// Gave up (blocks never arrived); protects nothing.
    case failed
}

/// A pin's identity: 8 bytes of creation time (ms, big-endian), 4 bytes of a per-process
/// sequence, 4 random bytes, so key order is creation order (within a millisecond too).
/// Written as 32 lowercase hex digits (the Pinning Service API's `requestid`).
public struct PinID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The 16 bytes.
    public let bytes: [UInt8]
    private static let sequence = Atomic<UInt32>(0)

    /// A new ID for a pin created at `created` (ms).
    public init(created: UInt64) {
        var b: [UInt8] = []
        withUnsafeBytes(of: created.bigEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: PinID.sequence.add(1, ordering: .relaxed).newValue.bigEndian) { b.append(contentsOf: $0) }
        var rng = SystemRandomNumberGenerator()
        withUnsafeBytes(of: rng.next() as UInt32) { b.append(contentsOf: $0) }
        bytes = b
    }

    /// The ID of these 16 bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses the 32-hex-digit form.
    public init?(_ text: String) {
        guard text.utf8.count == 32, let b = try? Base16.decode(text.lowercased()), b.count == 16 else { return nil }
        bytes = b
    }

    public var description: String { Base16.encode(bytes) }
    public static func < (a: PinID, b: PinID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// A pin: a DAG root protected from garbage collection, with what the node knows about why.
public struct Pin: Sendable, Equatable {
    /// The pin's identity.
    public var id: PinID
    /// The root, as given.
    public var cid: CID
    /// Recursive or direct.
    public var type: PinType
    /// Where the pin is in its life.
    public var status: PinStatus
    /// An optional name (not unique).
    public var name: String?
    /// The resource type, which selects the pinning policy.
    public var resourceType: String
    /// Creation time (ms since 1970).
    public var created: UInt64
    /// When the pin ends by itself (ms since 1970), if ever.
    public var expires: UInt64?
    /// How many nodes should hold the DAG.
    public var replicationFactor: Int
    /// Multiaddrs the client said hold the data (Pinning Service API).
    public var origins: [String]
    /// Free-form metadata (Pinning Service API).
    public var meta: [String: String]
    /// Why the pin failed, or what it waits for.
    public var info: [String: String]
    /// Who made it (a sQuid id, or `token:ID`), for quotas; nil: the node or the admin.
    public var owner: String?
    /// The bytes of its DAG present when it was made (measured for owned pins).
    public var size: UInt64?

    /// A pin.
    public init(id: PinID, cid: CID, type: PinType, status: PinStatus = .pinned, name: String? = nil, resourceType: String,
                created: UInt64, expires: UInt64? = nil, replicationFactor: Int = 1, origins: [String] = [],
                meta: [String: String] = [:], info: [String: String] = [:], owner: String? = nil, size: UInt64? = nil) {
        self.id = id
        self.cid = cid
        self.type = type
        self.status = status
        self.name = name
        self.resourceType = resourceType
        self.created = created
        self.expires = expires
        self.replicationFactor = replicationFactor
        self.origins = origins
        self.meta = meta
        self.info = info
        self.owner = owner
        self.size = size
    }

    /// Whether the pin holds a reference on its root (queued pins hold one so arriving blocks stay).
    public var holdsReference: Bool { status != .failed }

    // The record is DAG-CBOR: inspectable and strict.
    func encode() -> [UInt8] {
        var pairs: [(String, IPLDNode)] = [
            ("cid", .link(cid)), ("type", .string(type.rawValue)), ("status", .string(status.rawValue)),
            ("resourceType", .string(resourceType)), ("created", .int(created)), ("replicationFactor", .int(replicationFactor)),
        ]
        if let name { pairs.append(("name", .string(name))) }
        if let expires { pairs.append(("expires", .int(expires))) }
        if !origins.isEmpty { pairs.append(("origins", .list(origins.map { .string($0) }))) }
        func strings(_ d: [String: String]) -> IPLDNode { .map(IPLDMap(uniqueKeysWithValues: d.map { ($0.key, .string($0.value)) })) }
        if !meta.isEmpty { pairs.append(("meta", strings(meta))) }
        if !info.isEmpty { pairs.append(("info", strings(info))) }
        if let owner { pairs.append(("owner", .string(owner))) }
        if let size { pairs.append(("size", .int(size))) }
        // Every field is built here from typed values, so encoding cannot fail.
        return try! DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: pairs)))
    }

    init(id: PinID, decoding bytes: [UInt8]) throws {
        guard case .map(let m) = try DAGCBOR().decode(bytes),
              case .link(let cid)? = m["cid"],
              case .string(let t)? = m["type"], let type = PinType(rawValue: t),
              case .string(let s)? = m["status"], let status = PinStatus(rawValue: s),
              case .string(let resourceType)? = m["resourceType"],
              case .integer(let created)? = m["created"], let createdValue = created.int64,
              case .integer(let rf)? = m["replicationFactor"], let replication = rf.int
        else { throw PinningError.corrupted("malformed pin record \(id)") }
        func strings(_ node: IPLDNode?) -> [String: String] {
            guard case .map(let mm)? = node else { return [:] }
            var out: [String: String] = [:]
            for e in mm { if case .string(let v) = e.value { out[e.key] = v } }
            return out
        }
        var name: String?
        if case .string(let n)? = m["name"] { name = n }
        var expires: UInt64?
        if case .integer(let e)? = m["expires"], let v = e.int64 { expires = UInt64(max(0, v)) }
        var origins: [String] = []
        if case .list(let l)? = m["origins"] { origins = l.compactMap { if case .string(let s) = $0 { s } else { nil } } }
        var owner: String?
        if case .string(let o)? = m["owner"] { owner = o }
        var size: UInt64?
        if case .integer(let z)? = m["size"], let v = z.int64 { size = UInt64(max(0, v)) }
        self.init(id: id, cid: cid, type: type, status: status, name: name, resourceType: resourceType,
                  created: UInt64(max(0, createdValue)), expires: expires, replicationFactor: replication,
                  origins: origins, meta: strings(m["meta"]), info: strings(m["info"]), owner: owner, size: size)
    }
}

/// What went wrong in the pinning layer.
public enum PinningError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A recursive pin's DAG is missing a block (the missing block, the root).
    case incompleteDAG(missing: CID, root: CID)
    /// The block to pin is not in the repository.
    case notFound(CID)
    /// The CID is not pinned (in the way asked).
    case notPinned(CID)
    /// No pin has this request ID.
    case noSuchPin(String)
    /// A direct unpin of a recursively pinned CID.
    case pinnedRecursively(CID)
    /// A direct pin asked for on a CID that is pinned recursively already (Kubo refuses it).
    case alreadyPinnedRecursively(CID)
    /// The block is pinned (and so cannot be deleted); how.
    case pinned(CID, how: String)
    /// A pin asked for a resource type no policy describes.
    case unknownResourceType(String, known: [String])
    /// The pin's policy forbids removing it before this time (ms).
    case retained(CID, until: UInt64, resourceType: String)
    /// A request that cannot be carried out as asked.
    case invalid(String)
    /// A policy file is invalid (file, field, problem).
    case invalidPolicy(file: String, field: String, problem: String)
    /// Stored pinning data cannot be read.
    case corrupted(String)
    /// The CID's pins belong to other owners than the caller (who may remove only its own).
    case notOwner(CID)
    /// The pin would take its owner over its storage quota (bytes).
    case quotaExceeded(owner: String, needed: UInt64, available: UInt64, quota: UInt64)

    public var description: String {
        switch self {
        case .incompleteDAG(let m, let r): "cannot pin \(r) recursively: block \(m) of its DAG is not in the repository"
        case .notFound(let c): "block \(c) not found"
        case .notPinned(let c): "\(c) is not pinned"
        case .noSuchPin(let id): "no pin with request id \(id)"
        case .pinnedRecursively(let c): "\(c) is pinned recursively"
        case .alreadyPinnedRecursively(let c): "pin: \(c) already pinned recursively"
        case .pinned(let c, let how): "\(c) is pinned (\(how))"
        case .unknownResourceType(let t, let known): "unknown resource type \"\(t)\" (policies: \(known.joined(separator: ", ")))"
        case .retained(let c, let until, let t):
            "\(c) cannot be unpinned before \(RFC3339Time(milliseconds: until).rfc3339): the \(t) policy retains it"
        case .invalid(let m): m
        case .invalidPolicy(let f, let field, let p): "invalid pinning policy \(f): field \"\(field)\": \(p)"
        case .corrupted(let m): m
        case .notOwner(let c): "\(c) is pinned, but not by this caller (a caller removes and updates only its own pins)"
        case .quotaExceeded(let o, let needed, let available, let quota):
            "\(o) would go over its storage quota of \(quota) bytes: the pin holds \(needed) bytes, \(available) are left"
        }
    }
}

extension PinningError: KindedError {
    public var kind: ErrorKind {
        switch self {
        case .incompleteDAG, .notFound, .notPinned, .noSuchPin: .notFound
        case .pinnedRecursively, .alreadyPinnedRecursively, .pinned, .retained: .conflict
        case .unknownResourceType, .invalid, .invalidPolicy: .invalidInput
        case .corrupted: .internal
        case .quotaExceeded: .storageFull
        case .notOwner: .forbidden
        }
    }

    public var code: String? {
        switch self {
        case .quotaExceeded: "QDRIVE_STORAGE_FULL"
        case .notOwner: "QONSENT_DENIED"
        default: nil
        }
    }
}
