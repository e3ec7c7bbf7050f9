import Foundation
import IPLD
import Multiformats
import Signing
import Storage

/// One update of a pointer `(type, key)`: a dag-cbor block linking to the target (`cid`) and to
/// the record before it (`prev`), so a pointer's history is a hash-linked chain any IPLD tool can
/// walk and `dag export` can carry.
///
/// Three kinds share the shape:
/// - an update: `cid` the target, signed (`sig`) by the node key or by the client;
/// - a tombstone (the pointer deleted): `cid` null, signed; history stays;
/// - a merge (two histories that diverged joined): `merged` lists the other branches' heads,
///   `prev` is the winner; unsigned, because every field is derived from the records it joins
///   (`IndexRecord.merge`), so every replica makes the same bytes and anyone can check it.
public struct IndexRecord: Sendable, Equatable {
    /// What a record's signature covers comes after this string.
    public static let domain = "qindex-record:"

    public var type: String
    public var key: String
    /// The target; nil for a tombstone.
    public var cid: CID?
    /// 1 for a pointer's first record, then the record before it + 1.
    public var version: Int64
    public var prev: CID?
    /// A merge record's other branches (heads), in CID byte order; empty otherwise.
    public var merged: [CID]
    public var tags: [String]
    /// RFC 3339, UTC, milliseconds (`2026-12-02T18:48:07.123Z`).
    public var createdAt: String
    public var author: IdentityRef
    /// The signature of `domain ‖ signingPayload`; nil only in a merge record.
    public var sig: LockSig?

    public init(type: String, key: String, cid: CID?, version: Int64, prev: CID?, merged: [CID] = [], tags: [String],
                createdAt: String, author: IdentityRef, sig: LockSig? = nil) {
        self.type = type
        self.key = key
        self.cid = cid
        self.version = version
        self.prev = prev
        self.merged = merged
        self.tags = tags
        self.createdAt = createdAt
        self.author = author
        self.sig = sig
    }

    /// Whether it joins diverged histories.
    public var isMerge: Bool { !merged.isEmpty }
    /// Whether it deletes the pointer.
    public var isTombstone: Bool { cid == nil }

    // MARK: encoding

    private func fields(signed: Bool) -> [(String, IPLDNode)] {
        var f: [(String, IPLDNode)] = [
            ("type", .string(type)), ("key", .string(key)), ("cid", cid.map(IPLDNode.link) ?? .null),
            ("version", .int(version)), ("prev", prev.map(IPLDNode.link) ?? .null), ("tags", .list(tags.map(IPLDNode.string))),
            ("createdAt", .string(createdAt)), ("author", author.node),
        ]
        if !merged.isEmpty { f.append(("merged", .list(merged.map(IPLDNode.link)))) }
        if let sig { f.append(("sig", signed ? sig.node : sig.unsignedNode)) }
        return f
    }

    /// The bytes `sig` signs (behind `domain`): the record's dag-cbor without the signature bytes
    /// (`sig.sig`), so the signer's key, time and nonce are covered too: none can be changed to
    /// make another valid record (another CID) of the same signing.
    public var signingPayload: [UInt8] {
        try! DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: fields(signed: false))))
    }

    /// The record's dag-cbor bytes.
    public var encoded: [UInt8] { try! DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: fields(signed: true)))) }

    /// The record as a block (dag-cbor, sha2-256, CIDv1).
    public var block: Block { try! Block(data: encoded, codec: .dagCBOR) }

    /// Signs the record with `key` at `ts` (Unix ms).
    public mutating func sign(with key: SigningKey, ts: Int64) {
        sig = LockSig(unsignedBy: key, ts: ts)
        sig!.sig = key.sign(Signatures.message(domain: Self.domain, signingPayload))
    }

    /// Reads a record from its dag-cbor bytes (strict: canonical encoding, known fields only, every
    /// field of its kind), checking its names and shape (`IndexNames`) but not its signature.
    public init(decoding bytes: [UInt8]) throws {
        let node: IPLDNode
        do { node = try DAGCBOR().decode(bytes) } catch { throw QindexError.invalid("not a Qindex record: \(error)") }
        do {
            let m = try IPLDFields(node, field: "", allowed: ["type", "key", "cid", "version", "prev", "merged", "tags", "createdAt", "author", "sig"])
            type = try m.string("type")
            key = try m.string("key")
            cid = try m.optionalLink("cid")
            version = try m.integer("version")
            prev = try m.optionalLink("prev")
            merged = m.has("merged") ? try m.links("merged") : []
            tags = try m.strings("tags")
            createdAt = try m.string("createdAt")
            author = try IdentityRef(m.map["author"], field: "author")
            sig = m.has("sig") ? try LockSig(m.map["sig"], field: "sig") : nil
        } catch let e as SigningError { throw QindexError.invalid("not a Qindex record: \(e)") }
        try IndexNames.check(type: type, key: key)
        try IndexNames.check(tags: tags)
        // At most 2^53 - 1 (what JSON carries exactly), so a merge's version never overflows.
        guard version >= 1, version <= Self.maximumVersion else { throw QindexError.invalid("version: 1 to \(Self.maximumVersion)") }
        guard (prev == nil) == (version == 1) else { throw QindexError.invalid("prev: null exactly when version is 1") }
        guard Timestamps.parse(createdAt) != nil else { throw QindexError.invalid("createdAt: not an RFC 3339 UTC time") }
        guard encoded == bytes else { throw QindexError.invalid("not a Qindex record: not in canonical form") }
        if isMerge {
            guard sig == nil else { throw QindexError.invalid("a merge record is not signed") }
            // `prev` is the winner of the heads it joins, `merged` the others: two heads at least.
            guard let prev, !merged.contains(prev) else { throw QindexError.invalid("a merge record joins its prev and the merged heads (two at least)") }
            guard merged == merged.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }), Set(merged).count == merged.count else {
                throw QindexError.invalid("merged: distinct links in CID byte order")
            }
        } else if sig == nil {
            throw QindexError.invalid("sig: required (only merge records are unsigned)")
        }
    }

    /// Refuses a signed record whose signature does not verify (`SIGNATURE_INVALID`).
    public func verifySignature() throws {
        guard let sig else { throw SigningError.invalid("the record is not signed") }
        try sig.verify(signingPayload, domain: Self.domain)
    }

    /// The milliseconds of `createdAt`.
    public var createdAtMilliseconds: UInt64 { Timestamps.parse(createdAt) ?? 0 }

    // MARK: merging

    /// The record that joins `tips` (two or more heads of one pointer, none an ancestor of
    /// another): its `prev` is the winner — the highest version, ties to the larger record CID
    /// bytes — and `merged` the others; target, tags and author are the winner's, the time the
    /// latest, and the version the winner's plus one per other head (so a head that grows by a
    /// late branch still gets a higher version than the merge before it). A function of the set alone, so every replica
    /// that holds the same heads makes the same block.
    /// The highest version a record may have.
    public static let maximumVersion: Int64 = (1 << 53) - 1

    public static func merge(_ tips: [(cid: CID, record: IndexRecord)]) -> IndexRecord {
        precondition(tips.count >= 2, "a merge joins two heads or more")
        let winner = tips.max { a, b in
            a.record.version != b.record.version ? a.record.version < b.record.version : a.cid.bytes.lexicographicallyPrecedes(b.cid.bytes)
        }!
        let others = tips.filter { $0.cid != winner.cid }.map(\.cid).sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        let latest = tips.map { $0.record.createdAtMilliseconds }.max()!
        let w = winner.record
        return IndexRecord(type: w.type, key: w.key, cid: w.cid, version: w.version + Int64(tips.count) - 1, prev: winner.cid,
                           merged: others, tags: w.tags, createdAt: Timestamps.format(latest), author: w.author, sig: nil)
    }
}

/// The names Qindex accepts.
public enum IndexNames {
    /// A type: `[a-z0-9][a-z0-9._-]{0,63}`.
    public static func isValidType(_ t: String) -> Bool {
        let u = Array(t.utf8)
        guard (1...64).contains(u.count) else { return false }
        func ok(_ c: UInt8, first: Bool) -> Bool {
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || (!first && (c == 0x2e || c == 0x5f || c == 0x2d))
        }
        return u.enumerated().allSatisfy { ok($0.element, first: $0.offset == 0) }
    }

    /// Text of 1–`limit` bytes of UTF-8 without control characters.
    static func isPlainText(_ s: String, limit: Int) -> Bool {
        (1...limit).contains(s.utf8.count) && !s.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// Refuses a type or key Qindex does not accept.
    public static func check(type: String, key: String) throws {
        guard isValidType(type) else { throw QindexError.invalid("type \"\(type)\": 1–64 of a-z 0-9 . _ -, starting with a letter or digit") }
        guard isPlainText(key, limit: 512) else { throw QindexError.invalid("key: 1–512 bytes of UTF-8 without control characters") }
    }

    /// Refuses tags Qindex does not accept: at most 64, each 1–128 bytes without control characters.
    public static func check(tags: [String]) throws {
        guard tags.count <= 64 else { throw QindexError.invalid("tags: at most 64") }
        for t in tags where !isPlainText(t, limit: 128) { throw QindexError.invalid("tags: each 1–128 bytes of UTF-8 without control characters") }
        guard Set(tags).count == tags.count else { throw QindexError.invalid("tags: each at most once") }
    }
}

/// RFC 3339 UTC times with milliseconds, written and read without a date formatter (they are on
/// every update's path).
public enum Timestamps {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` of `ms` since 1970.
    public static func format(_ ms: UInt64) -> String {
        let (y, m, d) = RFC3339Time.civil(Int64(ms / 86_400_000))
        let rest = Int(ms % 86_400_000)
        func pad(_ v: some BinaryInteger, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rest / 3_600_000, 2)):\(pad(rest / 60_000 % 60, 2)):\(pad(rest / 1000 % 60, 2)).\(pad(rest % 1000, 3))Z"
    }

    /// A point in time as a caller writes it: RFC 3339, or Unix milliseconds.
    public static func instant(_ text: String, field: String) throws -> UInt64 {
        if let ms = parse(text) ?? UInt64(text) { return ms }
        throw QindexError.invalid("\(field): an RFC 3339 time or Unix milliseconds")
    }

    /// The ms since 1970 of an RFC 3339 time (`RFC3339Time`'s reading; fractions past the
    /// millisecond dropped); nil for anything else or a time before 1970.
    public static func parse(_ text: String) -> UInt64? {
        guard let t = RFC3339Time(rfc3339: text), t.seconds >= 0 else { return nil }
        return UInt64(t.seconds) * 1000 + UInt64(t.nanoseconds / 1_000_000)
    }
}

/// Failures of Qindex operations.
public enum QindexError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No pointer of this type and key (or it was deleted, or no such version).
    case notFound(String)
    /// The expected version or head is not the current one.
    case versionConflict(expected: String, current: Head?)
    /// A record, name or parameter Qindex does not accept.
    case invalid(String)
    /// The target is not in the repository (and `allow-missing` was not given).
    case targetMissing(CID)
    /// The change contradicts the state (an IPNS sequence going back).
    case conflict(String)

    public var description: String {
        switch self {
        case .notFound(let m): m
        case .versionConflict(let expected, let current):
            "version conflict: expected \(expected), the head is " + (current.map { "version \($0.version) (\($0.record))" } ?? "absent")
        case .invalid(let m): m
        case .targetMissing(let c): "target \(c) is not in the repository (pass allow-missing to point at it anyway and queue its pin)"
        case .conflict(let m): m
        }
    }
}

extension QindexError: KindedError {
    public var kind: ErrorKind {
        switch self {
        case .notFound: .notFound
        case .versionConflict: .conflict
        case .invalid: .invalidInput
        case .targetMissing, .conflict: .conflict
        }
    }

    public var code: String? {
        switch self {
        case .notFound: "QINDEX_NOT_FOUND"
        case .versionConflict: "VERSION_CONFLICT"
        case .invalid, .conflict: nil
        case .targetMissing: "TARGET_MISSING"
        }
    }
}
