import IPLD
import Multiformats

/// A block: bytes and the CID they hash to. A `Block` is verified when made,
/// so stores can take it without hashing again.
public struct Block: Sendable, Hashable {
    /// The block's CID.
    public let cid: CID
    /// The block's bytes.
    public let data: [UInt8]

    /// A block whose bytes must hash to `cid`; throws `BlockStoreError.hashMismatch` otherwise.
    public init(cid: CID, data: [UInt8]) throws {
        let ok: Bool
        do { ok = try cid.multihash.verify(data) } catch { throw BlockStoreError.unsupportedHash(cid) }
        guard ok else { throw BlockStoreError.hashMismatch(cid) }
        self.cid = cid
        self.data = data
    }

    /// The block of `data` with `codec`, hashed with `hash` (truncated to `hashLength` bytes when
    /// given), under a CIDv1 or, when `cidVersion` is 0, a CIDv0 (dag-pb and 32-byte sha2-256 only).
    public init(data: [UInt8], codec: Multicodec = .raw, hash: Multicodec = .sha2_256, hashLength: Int? = nil, cidVersion: Int = 1) throws {
        // As boxo's verifcid: a digest cut below 20 bytes no longer identifies its content.
        if let n = hashLength, hash != .identity, n < Block.minimumDigestLength {
            throw BlockStoreError.invalidBlock(reason: "a digest of \(n) bytes is too short to identify a block (at least \(Block.minimumDigestLength))")
        }
        let mh: Multihash
        do { mh = try Multihash.compute(data, function: hash, length: hashLength) } catch {
            throw BlockStoreError.invalidBlock(reason: "\(error)")
        }
        if cidVersion == 0 {
            guard codec == .dagPB else { throw BlockStoreError.invalidBlock(reason: "a CIDv0 is always dag-pb, not \(codec.name)") }
            do { self.cid = try CID(v0: mh) } catch { throw BlockStoreError.invalidBlock(reason: "\(error)") }
        } else {
            self.cid = CID(codec: codec, multihash: mh)
        }
        self.data = data
    }

    /// The shortest truncated digest a block may be put under (boxo's verifcid).
    public static let minimumDigestLength = 20
    /// The longest identity CID digest (the data "inside" the CID) the node resolves: an identity
    /// CID is a block anyone can make up without storing anything, so its size is bounded, as in
    /// Kubo (128 bytes).
    public static let maximumIdentityLength = 128

    /// The bytes of an identity CID's block, refusing one over `maximumIdentityLength`.
    public static func identityData(_ cid: CID) throws -> [UInt8] {
        guard cid.multihash.digestLength <= maximumIdentityLength else {
            throw BlockStoreError.invalidBlock(reason: "identity CID of \(cid.multihash.digestLength) bytes; at most \(maximumIdentityLength) are resolved")
        }
        return Array(cid.multihash.digest)
    }

    /// A block read back from a store that already checked it (or was told not to).
    init(trusted cid: CID, data: [UInt8]) {
        self.cid = cid
        self.data = data
    }

    /// A block whose CID the caller computed from these very bytes a moment ago (an
    /// importer hashing as it builds): no second hash. Anything else uses `init(cid:data:)`.
    public init(hashedCID cid: CID, data: [UInt8]) {
        self.init(trusted: cid, data: data)
    }
}

/// What went wrong in a block store.
public enum BlockStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A block above the store's maximum block size.
    case blockTooLarge(size: Int, limit: Int)
    /// The bytes do not hash to the CID.
    case hashMismatch(CID)
    /// The CID's hash function is not one Qstore computes, so the block cannot be verified.
    case unsupportedHash(CID)
    /// The block cannot be stored as its codec says (its links cannot be read).
    case invalidBlock(reason: String)
    /// Stored data failed verification or could not be read back.
    case corrupted(CID, reason: String)
    /// The store is closed.
    case closed
    /// The file system has no room for the data (or only the repository's reserve).
    case noSpace(String)
    /// The disk or file system failed a read, a write or a sync (EIO and the like): never the
    /// client's doing.
    case io(String)

    public var description: String {
        switch self {
        case .blockTooLarge(let s, let l): "block of \(s) bytes exceeds the maximum block size of \(l) bytes"
        case .hashMismatch(let c): "data does not match the hash of \(c)"
        case .unsupportedHash(let c): "cannot verify \(c): unsupported hash function \(c.multihash.code.name)"
        case .invalidBlock(let r): "invalid block: \(r)"
        case .corrupted(let c, let r): "stored block \(c) is corrupt: \(r)"
        case .closed: "the block store is closed"
        case .noSpace(let m): m
        case .io(let m): m
        }
    }
}

/// Where blocks are kept. Every implementation is safe to call from many
/// threads and tasks at once, and every mutating call is atomic: it happens
/// whole or not at all.
///
/// Blocks are keyed by multihash: the same bytes are stored once whatever the
/// codec of the CID they were put under. Each (multihash, codec) pair a block
/// was put under is remembered with the links extracted from the bytes for
/// that codec, once, at put (garbage collection and pinning walk those).
/// Identity CIDs carry their data and are never stored.
public protocol BlockStore: Sendable {
    /// Whether the block is present.
    func has(_ cid: CID) throws -> Bool
    /// The block's bytes, or nil when absent.
    func get(_ cid: CID) throws -> [UInt8]?
    /// The block's size, or nil when absent (no data read).
    func size(_ cid: CID) throws -> Int?
    /// Stores a block.
    func put(_ block: Block) throws
    /// Stores blocks in one atomic write.
    func putMany(_ blocks: [Block]) throws
    /// Removes the block (by multihash: under every codec); returns whether it was there.
    @discardableResult func delete(_ cid: CID) throws -> Bool
    /// The links recorded for the block under its CID's codec, or nil when the block was never put under that codec.
    func links(of cid: CID) throws -> [CID]?
    /// Visits every stored (multihash, codec) as a CIDv1, in key order, until `body` returns false.
    func forEach(_ body: (CID) throws -> Bool) throws
}

/// Settings every block store honours.
public struct BlockStoreOptions: Sendable, Codable, Equatable {
    /// Largest block accepted (Kubo and the IPFS network use 2 MiB, or less, as the limit).
    public var maximumBlockSize = 2 << 20
    /// Re-hash every block read and fail on a mismatch.
    public var verifyOnRead = false
    /// Defaults.
    public init() {}
}

extension BlockStore {
    /// Puts the block of `data` and returns its CID.
    @discardableResult
    public func put(data: [UInt8], codec: Multicodec = .raw, hash: Multicodec = .sha2_256) throws -> CID {
        let b = try Block(data: data, codec: codec, hash: hash)
        try put(b)
        return b.cid
    }
}

/// The links of `block` for its codec; a block a known codec cannot parse is refused.
func extractLinks(_ block: Block) throws -> [CID] {
    do {
        return try Codecs.links(in: block.data, codec: block.cid.codec)
    } catch {
        throw BlockStoreError.invalidBlock(reason: "not valid \(block.cid.codec.name): \(error)")
    }
}

/// One link of a stored links record: `detached` links are still in the block's bytes but no
/// longer hold their child (a layer let the child go, e.g. Qindex history past `keepLatest`):
/// reference counts, garbage collection and DAG walks skip them.
public struct LinkEntry: Sendable, Equatable {
    public var cid: CID
    public var detached: Bool
    public init(_ cid: CID, detached: Bool = false) { (self.cid, self.detached) = (cid, detached) }
}

/// Links as stored: each CID's bytes behind a varint length; a detached link is preceded by a
/// zero byte (no CID is empty, so the zero cannot be a length).
public enum LinkList {
    /// The stored form of `links` (all live).
    public static func encode(_ links: [CID]) -> [UInt8] { encode(entries: links.map { LinkEntry($0) }) }

    /// The stored form of `entries`.
    public static func encode(entries: [LinkEntry]) -> [UInt8] {
        var out: [UInt8] = []
        for e in entries {
            if e.detached { out.append(0) }
            Varint.append(UInt64(e.cid.bytes.count), to: &out)
            out.append(contentsOf: e.cid.bytes)
        }
        return out
    }

    /// Every link of a stored links record, detached or not: the links the block holds.
    public static func decode(_ bytes: [UInt8]) throws -> [CID] { try entries(bytes).map(\.cid) }

    /// The links that hold their children (detached ones left out).
    public static func live(_ bytes: [UInt8]) throws -> [CID] { try entries(bytes).filter { !$0.detached }.map(\.cid) }

    /// The entries of a stored links record.
    public static func entries(_ bytes: [UInt8]) throws -> [LinkEntry] {
        var out: [LinkEntry] = []
        var pos = 0
        while pos < bytes.count {
            var detached = false
            if bytes[pos] == 0 {
                detached = true
                pos += 1
            }
            let (n, len) = try Varint.decode(bytes, at: pos)
            pos += len
            guard n > 0, n <= UInt64(bytes.count - pos) else { throw BlockStoreError.invalidBlock(reason: "truncated link list") }
            out.append(LinkEntry(try CID(bytes: Array(bytes[pos..<pos + Int(n)])), detached: detached))
            pos += Int(n)
        }
        return out
    }
}

extension BlockStoreError: KindedError {
    public var kind: ErrorKind {
        switch self {
        case .blockTooLarge: .tooLarge
        case .hashMismatch, .unsupportedHash, .invalidBlock: .invalidInput
        case .corrupted, .io: .internal
        case .closed: .unavailable
        case .noSpace: .storageFull
        }
    }

    public var code: String? {
        if case .noSpace = self { return "STORAGE_FULL" }
        return nil
    }
}
