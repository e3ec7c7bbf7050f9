import Multiformats
import Storage

/// Reference-counting garbage collection: deletes blocks whose count is 0 and whose grace
/// period has passed, in small batches, each one transaction; each deletion drops a reference
/// from the block's children, which may make them garbage in turn (collected in the same run).
///
/// Cost follows the garbage: candidates are read from the `G` index in time order, never from a
/// walk of the pins or of every block. Reads never wait for it; writers wait at most one batch.
/// Candidates put after the oldest lease in force began are left alone (imports in flight).
public struct GarbageCollector: Sendable {
    /// The counted store.
    public let store: CountedBlockStore
    /// Candidates per transaction.
    public var batchSize: Int

    /// A collector over `store`.
    public init(store: CountedBlockStore, batchSize: Int = 256) {
        self.store = store
        self.batchSize = max(1, batchSize)
    }

    /// What a run did.
    public struct Result: Sendable, Equatable {
        /// Blocks deleted.
        public var blocks = 0
        /// Bytes of block data deleted.
        public var bytes: UInt64 = 0
        /// Pack files compacted after the collection.
        public var packsCompacted = 0
        /// Pack-file bytes given back to the file system by that.
        public var packBytesReclaimed: UInt64 = 0
        /// Nothing done yet.
        public init() {}
    }

    /// Collects every eligible candidate as of `now` (ms); `removed` is told each deleted block
    /// (as a raw CIDv1, like Kubo's GC output) and may return false to stop after its batch.
    /// `limit` bounds the blocks deleted in this run.
    @discardableResult
    public func collect(now: UInt64? = nil, limit: Int = .max, removed: (CID, Int) throws -> Bool = { _, _ in true }) throws -> Result {
        let now = now ?? store.clock.now
        store.collecting.lock()
        defer { store.collecting.unlock() }
        var result = Result()
        var stop = false
        while !stop && result.blocks < limit {
            // Eligible: unreferenced since `now` or before, and put before every lease in force began.
            let leaseStart = store.oldestLease ?? .max
            let from = store.beginCandidateScan()
            var batch: [(UInt64, Multihash)] = []
            var stoppedAt: UInt64?
            var lastTaken = from
            try store.db.makeIterator(fillCache: false).forEach(prefix: KeySpace.gcCandidates.prefix, from: CountRecord.candidateKey(from, nil)) { k, _ in
                let (t, mh) = try CountRecord.parseCandidateKey(k)
                guard t <= now && t < leaseStart else {
                    stoppedAt = t
                    return false
                }
                batch.append((t, mh))
                lastTaken = t
                return batch.count < min(batchSize, limit - result.blocks)
            }
            var left = stoppedAt ?? lastTaken
            if batch.isEmpty {
                store.endCandidateScan(resume: left)
                break
            }
            let deleted: [(CID, Int)] = try store.transaction { txn in
                var out: [(CID, Int)] = []
                let links = store.db.makeIterator(fillCache: false)
                // Leases again, under the lock: one may have begun (and put) since the scan.
                let leaseStart = store.oldestLease ?? .max
                for (t, mh) in batch {
                    guard t < leaseStart else {
                        left = min(left, t)
                        continue
                    }
                    // Re-read under the lock: a put or pin may have come in since the scan.
                    guard let r = try txn.record(mh), r.count == 0, r.notBefore == t else {
                        // The key moved (or, against invariant 2, outlived its record): drop this copy.
                        txn.batch.delete(CountRecord.candidateKey(t, mh))
                        continue
                    }
                    if let size = try store.stageDelete(mh, in: txn, iterator: links) {
                        out.append((CID(codec: .raw, multihash: mh), size))
                    }
                    try txn.remove(mh)
                }
                return out
            }
            store.endCandidateScan(resume: left)
            for (cid, size) in deleted {
                result.blocks += 1
                result.bytes += UInt64(size)
                if try !removed(cid, size) { stop = true }
            }
        }
        return result
    }

    /// Candidates (count 0) in the index, eligible or not.
    public func candidateCount() throws -> Int {
        var n = 0
        try store.db.makeIterator(fillCache: false).forEach(prefix: KeySpace.gcCandidates.prefix) { _, _ in
            n += 1
            return true
        }
        return n
    }
}
