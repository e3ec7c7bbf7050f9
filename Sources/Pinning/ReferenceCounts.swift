import Foundation
import Multiformats
import Storage
import Synchronization

/// A block's reference count (`R ‖ multihash` → `varint(count) ‖ varint(notBefore)`).
///
/// `count` is the number of references to the multihash: one per pin on it, plus one per
/// stored links record that links to it (each child counted once per record). `notBefore`
/// (milliseconds since 1970) is the earliest time garbage collection may delete the block
/// once its count is 0: puts and unpins move it forward by their grace period.
///
/// Invariants (checked by `CountVerifier`, repaired by `--repair`):
/// 1. Every stored block has a count record; a record's count equals the references
///    recomputed from the pins and the links records.
/// 2. A `G ‖ u64(notBefore) ‖ multihash` candidate key exists iff the record's count is 0.
/// 3. Every change to a count is in the same LevelDB batch as the put, pin, unpin or
///    deletion that causes it (`CountTransaction`).
public struct CountRecord: Sendable, Equatable {
    /// References to the block.
    public var count: UInt64
    /// Earliest collection time (ms since 1970) once unreferenced.
    public var notBefore: UInt64

    /// A record.
    public init(count: UInt64, notBefore: UInt64) {
        self.count = count
        self.notBefore = notBefore
    }

    static func key(_ mh: Multihash) -> [UInt8] { KeySpace.referenceCounts.key(mh.bytes) }

    func encode() -> [UInt8] {
        var out: [UInt8] = []
        Varint.append(count, to: &out)
        Varint.append(notBefore, to: &out)
        return out
    }

    init(decoding bytes: [UInt8]) throws {
        let (c, n) = try Varint.decode(bytes, at: 0)
        let (t, m) = try Varint.decode(bytes, at: n)
        guard n + m == bytes.count else { throw PinningError.corrupted("malformed reference count record") }
        count = c
        notBefore = t
    }

    static func candidateKey(_ time: UInt64, _ mh: Multihash?) -> [UInt8] {
        var k = KeySpace.gcCandidates.prefix
        withUnsafeBytes(of: time.bigEndian) { k.append(contentsOf: $0) }
        if let mh { k.append(contentsOf: mh.bytes) }
        return k
    }

    static func parseCandidateKey(_ key: [UInt8]) throws -> (UInt64, Multihash) {
        guard key.count > 9 else { throw PinningError.corrupted("malformed GC candidate key") }
        var t: UInt64 = 0
        for b in key[1..<9] { t = t << 8 | UInt64(b) }
        return (t, try Multihash(bytes: Array(key[9...])))
    }
}


/// The count changes of one logical operation, staged into its write batch. Reads go to the
/// database (and to what this transaction already changed); nothing is visible to others until
/// the batch is written. Made only by `CountedBlockStore.transaction`, under its writer lock.
public final class CountTransaction {
    /// The batch every change of the operation goes into.
    public let batch = WriteBatch()
    /// The operation's time (ms since 1970).
    public let now: UInt64
    let db: LevelDB
    private var changed: [Multihash: (original: CountRecord?, current: CountRecord?)] = [:]
    /// Counts that would have gone below zero (a broken invariant; reported, clamped at 0).
    public private(set) var underflows: [Multihash] = []
    /// The earliest time of a GC candidate this transaction adds (the collector starts its scans
    /// no later than that).
    private(set) var lowestNewCandidate: UInt64?

    /// Notes a candidate key put into the batch directly (not through the counts, e.g. by repair).
    func noteCandidate(_ t: UInt64) { lowestNewCandidate = min(lowestNewCandidate ?? .max, t) }

    init(db: LevelDB, now: UInt64) {
        self.db = db
        self.now = now
    }

    /// The record as this transaction sees it.
    public func record(_ mh: Multihash) throws -> CountRecord? {
        if let c = changed[mh] { return c.current }
        let r = try db.get(CountRecord.key(mh)).map { try CountRecord(decoding: $0) }
        changed[mh] = (r, r)
        return r
    }

    private func set(_ mh: Multihash, _ r: CountRecord?) throws {
        _ = try record(mh)
        changed[mh]!.current = r
        mutations += 1
    }

    private var mutations = 0
    /// Changes so far (batch entries, count changes, audit entries): equal marks mean nothing was
    /// staged between.
    public var mark: (Int, Int) { (batch.count, mutations + auditItems.count) }
    /// The audit entries recorded (`audit(_:)`), staged by the store's audit sink at commit.
    public internal(set) var auditItems: [AuditItem] = []
    /// Whether a checkpoint of the audit log was asked for.
    var auditCheckpoint = false

    /// Protects the block from collection until `until` at least (a put, an unpin's grace).
    public func protect(_ mh: Multihash, until: UInt64) throws {
        var r = try record(mh) ?? CountRecord(count: 0, notBefore: 0)
        r.notBefore = max(r.notBefore, until)
        try set(mh, r)
    }

    /// Ends the block's put protection (a failed import's blocks): it goes as soon as nothing
    /// references it — now, or when the block that does goes (a cancelled file's leaves follow
    /// its root) — leases in force aside. A block the same bytes of which another client put a
    /// moment before, to pin it within its grace, loses that grace too: the price of emptying a
    /// disk a failed add filled.
    public func unprotect(_ mh: Multihash) throws {
        guard var r = try record(mh), r.notBefore > now else { return }
        r.notBefore = now
        try set(mh, r)
    }

    /// Adds `delta` references to the block.
    public func adjust(_ mh: Multihash, by delta: Int) throws {
        guard mh.code != .identity, delta != 0 else { return }
        var r = try record(mh) ?? CountRecord(count: 0, notBefore: 0)
        if delta < 0 && r.count < UInt64(-delta) {
            underflows.append(mh)
            r.count = 0
        } else {
            r.count = delta < 0 ? r.count - UInt64(-delta) : r.count + UInt64(delta)
        }
        // Unreferenced from now on: a collection candidate dated now, so a lease in force (a
        // backup reading what it recorded) keeps it.
        if delta < 0, r.count == 0 { r.notBefore = max(r.notBefore, now) }
        try set(mh, r)
    }

    /// Drops the block's record (its block was deleted with no references left).
    public func remove(_ mh: Multihash) throws { try set(mh, nil) }

    /// Writes the changed records and their candidate keys into the batch.
    func commit() {
        for (mh, c) in changed where c.original != c.current {
            let oldKey = c.original.flatMap { $0.count == 0 ? CountRecord.candidateKey($0.notBefore, mh) : nil }
            let newKey = c.current.flatMap { $0.count == 0 ? CountRecord.candidateKey($0.notBefore, mh) : nil }
            if let r = c.current { batch.put(CountRecord.key(mh), r.encode()) } else { batch.delete(CountRecord.key(mh)) }
            if oldKey != newKey {
                if let oldKey { batch.delete(oldKey) }
                if let newKey {
                    batch.put(newKey, [])
                    noteCandidate(c.current!.notBefore)
                }
            }
        }
        changed.removeAll()
    }
}
