import Foundation
import Locking
import Multiformats
import Signing
import Storage
import Synchronization

/// The IPNS records this node holds: its own (published with a key of its keystore) and foreign
/// ones imported after they verified. One record per name, in key space `Q 07 ‖ name multihash`
/// → the record's protobuf bytes, written through the Qindex group commit (durable when it returns).
///
/// Invariants: a stored record verified for its name when it was stored; a name's record is only
/// replaced by one with a higher sequence, or the same sequence and a later validity (boxo's order),
/// so a replayed old record never wins.
public final class IPNSNames: Sendable {
    let index: Qindex
    /// Publishes read the current record and write the next one: one at a time.
    private let publishing = Mutex(())

    public init(index: Qindex) { self.index = index }

    static func key(_ name: Multihash) -> [UInt8] { Keys.space(7) + name.bytes }

    /// The stored record of `name` (not re-verified: nil when none).
    public func record(_ name: Multihash) throws -> IPNSRecord? {
        try index.db.get(Self.key(name)).map { try IPNSRecord.parse($0) }
    }

    /// The record of `name` verified now: what may be resolved.
    public func verifiedRecord(_ name: Multihash) throws -> IPNSRecord {
        guard let r = try record(name) else { throw QindexError.notFound("no IPNS record for \(IPNSName.string(name)) in this node") }
        try r.verify(name: name, now: now)
        return r
    }

    var now: RFC3339Time { RFC3339Time(milliseconds: index.store.clock.now) }

    /// Signs and stores a record of `value` for the name of `key`: the sequence one past the
    /// stored record's (or `sequence` when given, which must then not go back), valid for
    /// `lifetime` ns, cached for `ttl` ns.
    public func publish(value: String, key: SigningKey, lifetime: UInt64, ttl: UInt64, sequence: UInt64? = nil) throws -> (name: Multihash, record: IPNSRecord) {
        let name = Libp2pKey.name(key.publicKey).multihash
        try IPNSPaths.check(value)
        guard lifetime >= 1_000_000_000 else { throw QindexError.invalid("lifetime: at least 1s (a record expired on arrival never resolves)") }
        return try publishing.locked { _ in
            let old = try record(name)
            let seq: UInt64
            if let sequence {
                if let old, sequence < old.sequence {
                    throw QindexError.conflict("\(IPNSName.string(name)) is at sequence \(old.sequence), past \(sequence)")
                }
                seq = sequence
            } else {
                seq = old.map { $0.sequence + 1 } ?? 0
            }
            let r = try IPNSRecord.create(value: value, sequence: seq, validUntil: now.adding(nanoseconds: lifetime), ttl: ttl, key: key)
            // The same sequence again (a pointer's version republished) only extends the held
            // record: the same value, valid for longer. A new value needs a new sequence.
            if let old, old.sequence == r.sequence, old.value != r.value {
                throw QindexError.conflict("\(IPNSName.string(name)) holds sequence \(old.sequence) with another value (\(old.value)): publish under a key of its own")
            }
            if let old, !Self.isNewer(r, than: old) {
                throw QindexError.conflict("\(IPNSName.string(name)) holds sequence \(old.sequence) valid until \(old.validity), later than this record's \(r.validity)")
            }
            try store(r, name: name, type: "q.ipns.publish.v1")
            return (name, r)
        }
    }

    /// Stores a record made elsewhere for `name` once it verifies; false when the node already
    /// holds a newer one (nothing changes).
    @discardableResult
    public func importRecord(_ bytes: [UInt8], name: Multihash) throws -> Bool {
        let r = try IPNSRecord.parse(bytes)
        try r.verify(name: name, now: now)
        try IPNSPaths.check(r.value)
        return try publishing.locked { _ in
            let old = try record(name)
            if let old, !Self.isNewer(r, than: old) { return false }
            try store(r, name: name, type: "q.ipns.import.v1")
            return true
        }
    }

    /// boxo's order: higher sequence, then later validity.
    static func isNewer(_ a: IPNSRecord, than b: IPNSRecord) -> Bool {
        if a.sequence != b.sequence { return a.sequence > b.sequence }
        guard let x = a.validUntil, let y = b.validUntil else { return false }
        return x > y
    }

    private func store(_ r: IPNSRecord, name: Multihash, type: String) throws {
        let key = Self.key(name)
        try index.commits.run { txn, _ in
            txn.batch.put(key, r.bytes)
            txn.audit(type, ref: IPNSName.string(name), details: [("value", .string(r.value)), ("sequence", .int(r.sequence))])
        }
    }

    /// Every name held, with its stored record.
    public func all() throws -> [(name: Multihash, record: IPNSRecord)] {
        var out: [(Multihash, IPNSRecord)] = []
        let prefix = Keys.space(7)
        let it = index.db.makeIterator()
        it.seek(prefix)
        while it.isValid, case let k = it.key, k.starts(with: prefix) {
            if let mh = try? Multihash(bytes: Array(k.dropFirst(prefix.count))), let r = try? IPNSRecord.parse(it.value) {
                out.append((mh, r))
            }
            it.next()
        }
        return out
    }
}

/// The values an IPNS record may name: `/ipfs/<cid>[/path]` or `/ipns/<name>[/path]`.
public enum IPNSPaths {
    public static func check(_ value: String) throws {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0].isEmpty, !parts[2].isEmpty else {
            throw QindexError.invalid("an IPNS value is /ipfs/<cid>[/path] or /ipns/<name>[/path], not \"\(value)\"")
        }
        switch parts[1] {
        case "ipfs": do { _ = try CID(parts[2]) } catch { throw QindexError.invalid("\(value): \(error)") }
        case "ipns": _ = try IPNSName.multihash(String(parts[2]))
        default: throw QindexError.invalid("an IPNS value is /ipfs/<cid>[/path] or /ipns/<name>[/path], not \"\(value)\"")
        }
    }
}
