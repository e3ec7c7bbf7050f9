import Foundation
import Locking
import Multiformats
import Storage
import Synchronization

/// The block store with reference counting: every put and delete goes through here, and
/// changes the counts in the same LevelDB batch as the blocks (`ReferenceCounts.swift`).
///
/// Writers (puts, pins, unpins, garbage collection, pack compaction) are serialised by the block
/// store's own writer lock (`LevelDBBlockStore.exclusively`), held for one batch at a time: a
/// count is read, changed and written without another writer in between, and so are block
/// records. Reads (`get`, `has`, `links`) never take it.
public final class CountedBlockStore: BlockStore, Sendable {
    // Checked Sendable: every stored property is a `let` of a Sendable type (the mutable state is
    // in `Mutex`es and an `Atomic`); `base.exclusively` guards every read-modify-write of the
    // count key space.
    /// The store underneath (its reads are this store's reads).
    public let base: LevelDBBlockStore
    /// How long a block put without a pin is safe from collection (ms).
    public let putGracePeriod: UInt64
    /// Where every time of the counts, pins and leases comes from.
    public let clock: any WallClock
    private let leases = Mutex<(next: UInt64, starts: [UInt64: UInt64])>((0, [:]))
    /// Where the collector's candidate scans may start: no candidate is earlier than `floor`.
    /// Deleted candidates leave tombstones that a scan from the start of the index would step over
    /// again every time (its cost would follow all past garbage); starting at the floor keeps it
    /// proportional to the garbage left. `low` is the earliest candidate added since a scan began.
    private let candidates = Mutex<(floor: UInt64, low: UInt64)>((0, .max))
    /// One collection at a time (the scan floor assumes it).
    let collecting = NSLock()
    private let deletions = Atomic<UInt64>(0)
    /// Where transactions' audit entries go (set once by the node; none: they are dropped).
    private let auditSink = Mutex<(any AuditSink)?>(nil)

    /// Sends every later transaction's audit entries to `sink`.
    public func setAuditSink(_ sink: (any AuditSink)?) { auditSink.locked { $0 = sink } }

    /// Where audit entries go now (nil: nowhere).
    var currentAuditSink: (any AuditSink)? { auditSink.locked { $0 } }

    /// Counting over `base`; blocks put are safe from collection for `putGracePeriod` ms of `clock`.
    public init(base: LevelDBBlockStore, putGracePeriod: UInt64, clock: any WallClock = SystemClock()) {
        self.base = base
        self.putGracePeriod = putGracePeriod
        self.clock = clock
    }

    /// The database.
    public var db: LevelDB { base.db }

    /// Runs `body` as one logical operation: under the writer lock, its count changes and
    /// whatever it adds to the transaction's batch are written as one batch (synced per the
    /// store's durability) when it returns; nothing is written when it throws, but for the count
    /// of the pack bytes its blocks were appended as, now dead space (`recordDropped`).
    public func transaction<R>(_ body: (CountTransaction) throws -> R) throws -> R {
        try base.exclusively {
            let txn = CountTransaction(db: base.db, now: clock.now)
            do {
                let result = try body(txn)
                // The audit entries the operation recorded join its batch (and so its fsync).
                let sink = auditSink.locked { $0 }
                var staged: (any Sendable)?
                if let sink, !txn.auditItems.isEmpty || txn.auditCheckpoint {
                    staged = try sink.stage(txn.auditItems, checkpoint: txn.auditCheckpoint, in: txn, store: self)
                }
                txn.commit()
                do {
                    if txn.batch.count > 0 { try base.db.write(txn.batch, sync: base.options.durability == .sync) }
                } catch {
                    if let sink, let staged { sink.settle(staged, written: false) }
                    throw error
                }
                if let sink, let staged { sink.settle(staged, written: true) }
                // After the write, so a scan that begins later sees the candidate and one under way
                // learns of it.
                if let t = txn.lowestNewCandidate { candidates.locked { $0.floor = min($0.floor, t); $0.low = min($0.low, t) } }
                return result
            } catch {
                // Pack bytes its blocks were appended as are dead space now, counted as such.
                base.recordDropped(txn.batch)
                throw error
            }
        }
    }

    /// Compacts every sealed pack file with at least `threshold` of it dead, one pack at a time:
    /// its live blocks are copied to the current pack outside the lock, then repointed in one
    /// transaction (so a block deleted or re-put meanwhile is never resurrected), then the file
    /// goes. Returns the packs compacted and the bytes given back.
    public func compactPacks(threshold: Double) throws -> (packs: Int, reclaimed: UInt64) {
        base.releaseRemovedPacks()
        var packs = 0
        var reclaimed: UInt64 = 0
        for usage in try base.packUsage() where !usage.current && usage.size > 0 && Double(usage.dead) >= threshold * Double(usage.size) {
            guard let compaction = try base.copyLiveEntries(of: usage.pack) else { continue }
            do {
                try transaction { txn in try base.stageRetirement(compaction, into: txn.batch) }
            } catch is LevelDBBlockStore.PackChangedDuringCompaction {
                continue  // its copies counted dead with the dropped batch; tried again next time
            }
            try base.removeRetiredPacks()
            packs += 1
            reclaimed += compaction.packBytes - min(compaction.packBytes, compaction.copiedBytes)
        }
        return (packs, reclaimed)
    }

    // MARK: BlockStore

    public func has(_ cid: CID) throws -> Bool { try base.has(cid) }
    public func get(_ cid: CID) throws -> [UInt8]? { try base.get(cid) }
    public func size(_ cid: CID) throws -> Int? { try base.size(cid) }
    public func links(of cid: CID) throws -> [CID]? { try base.links(of: cid) }
    public func forEach(_ body: (CID) throws -> Bool) throws { try base.forEach(body) }
    public func put(_ block: Block) throws { try putMany([block]) }

    /// Stores the blocks; each new links record adds one reference to each distinct child, and
    /// every block put is protected for the put grace period.
    public func putMany(_ blocks: [Block]) throws {
        try transaction { txn in try stage(blocks, in: txn) }
    }

    /// `putMany` inside a caller's transaction (`guarded`: see `LevelDBBlockStore.stage`).
    public func stage(_ blocks: [Block], in txn: CountTransaction, guarded: Bool = true) throws {
        let until = txn.now + putGracePeriod
        for s in try base.stage(blocks, into: txn.batch, guarded: guarded) {
            try txn.protect(s.cid.multihash, until: until)
            guard s.isNew else { continue }
            var seen = Set<Multihash>()
            for l in s.links where seen.insert(l.multihash).inserted { try txn.adjust(l.multihash, by: 1) }
        }
    }

    /// Detaches `parent`'s links to `child` in `txn`: they stay in the block's bytes and its links
    /// record but no longer hold the child, whose count drops by the reference they made (and which
    /// may become garbage, taking what only it holds along when collected). `entries` are the
    /// parent's links as recorded when the caller knows them (a block staged in this very
    /// transaction); else they are read. False when nothing changed (no such live link).
    @discardableResult
    public func stageDetach(parent: CID, child: CID, entries known: [LinkEntry]? = nil, in txn: CountTransaction) throws -> Bool {
        guard var entries = try known ?? base.linkEntries(of: parent) else { return false }
        let before = Set(entries.filter { !$0.detached }.map(\.cid.multihash))
        var changed = false
        for i in entries.indices where entries[i].cid == child && !entries[i].detached {
            entries[i].detached = true
            changed = true
        }
        guard changed else { return false }
        base.stageLinkEntries(parent, entries, into: txn.batch)
        let after = Set(entries.filter { !$0.detached }.map(\.cid.multihash))
        for mh in before.subtracting(after) { try txn.adjust(mh, by: -1) }
        return true
    }

    /// Deletes the block (every codec) and drops one reference from each of its children; its own
    /// count is kept while references to it remain. False when absent.
    @discardableResult
    public func delete(_ cid: CID) throws -> Bool {
        if cid.multihash.code == .identity { return false }
        return try transaction { txn in try stageDelete(cid.multihash, in: txn) != nil }
    }

    /// `delete` inside a caller's transaction; returns the freed size, nil when absent.
    public func stageDelete(_ mh: Multihash, in txn: CountTransaction, iterator: LevelDB.Iterator? = nil) throws -> Int? {
        guard let (links, size) = try base.stageDelete(mh, into: txn.batch, iterator: iterator) else { return nil }
        for l in links { try txn.adjust(l.multihash, by: -1) }
        if let r = try txn.record(mh), r.count == 0 { try txn.remove(mh) }
        deletions.add(1, ordering: .sequentiallyConsistent)
        return size
    }

    /// Blocks deleted since the store opened: a walk that saw no change here saw a stable DAG.
    public var deletionCount: UInt64 { deletions.load(ordering: .sequentiallyConsistent) }

    // MARK: the collector's scan floor

    /// A candidate scan begins: where it may start.
    func beginCandidateScan() -> UInt64 {
        candidates.locked { c in
            c.low = .max
            return c.floor
        }
    }

    /// A candidate scan ended having left nothing before `resume` (it deleted or dropped every
    /// candidate it passed); candidates added meanwhile keep the floor at or below their time.
    func endCandidateScan(resume: UInt64) {
        candidates.locked { c in c.floor = min(resume, c.low) }
    }

    // MARK: leases

    /// A lease: while held, no block put after it began is collected.
    public final class Lease: Sendable {
        let id: UInt64
        let store: CountedBlockStore
        init(id: UInt64, store: CountedBlockStore) {
            self.id = id
            self.store = store
        }
        /// Ends the lease (also done when the last reference goes).
        public func release() { store.leases.locked { _ = $0.starts.removeValue(forKey: id) } }
        deinit { release() }
    }

    /// Takes a lease for an import in flight; it ends when the lease is released.
    public func lease() -> Lease {
        let now = clock.now
        let id = leases.locked { s -> UInt64 in
            s.next += 1
            s.starts[s.next] = now
            return s.next
        }
        return Lease(id: id, store: self)
    }

    /// When the oldest lease in force began (ms), if any.
    public var oldestLease: UInt64? { leases.locked { $0.starts.values.min() } }

    // MARK: reading counts

    /// The block's reference count record, if any.
    public func countRecord(_ mh: Multihash) throws -> CountRecord? {
        try base.db.get(CountRecord.key(mh)).map { try CountRecord(decoding: $0) }
    }
}
