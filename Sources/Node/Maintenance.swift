import Foundation
import Multiformats
import Pinning
import Storage

extension Node {
    private static let countsMarker = KeySpace.meta.key(Array("reference-counts".utf8))

    /// A repository made before reference counting has blocks and no counts: compute them, and
    /// pin every block nothing references directly, so upgrading never makes data collectable.
    func initializeCounts() throws {
        guard try repository.db.get(Self.countsMarker) == nil else { return }
        var hasBlocks = false
        try repository.db.makeIterator().forEach(prefix: KeySpace.blockData.prefix) { _, _ in
            hasBlocks = true
            return false
        }
        if hasBlocks {
            let report = try CountVerifier(pinner: pins).repair()
            var roots: [CID] = []
            try repository.db.makeIterator().forEach(prefix: KeySpace.gcCandidates.prefix) { k, _ in
                if let mh = try? Multihash(bytes: Array(k.dropFirst(9))) { roots.append(CID(codec: .raw, multihash: mh)) }
                return true
            }
            for r in roots {
                // Pin under the codec the block was stored with, so its links stay counted.
                var cid = r
                try repository.db.makeIterator().forEach(prefix: KeySpace.blockLinks.key(r.multihash.bytes)) { k, _ in
                    cid = CID(codec: try LevelDBBlockStore.parseLinksKey(k).1, multihash: r.multihash)
                    return false
                }
                var request = Pinner.Request(cid: cid, type: .direct, name: "pre-pinning root")
                request.meta = ["migrated": "true"]
                try pins.pin(request)
            }
            logger.notice("reference counts computed for an existing repository", metadata: [
                "repaired": "\(report.repaired)", "roots pinned": "\(roots.count)",
            ])
        }
        let batch = WriteBatch()
        batch.put(Self.countsMarker, [1])
        try repository.db.write(batch, sync: true)
    }

    /// Runs `body` under a lease: no block it puts is collected before it returns.
    public func withLease<R>(_ body: () throws -> R) rethrows -> R {
        let lease = blocks.lease()
        defer { lease.release() }
        return try body()
    }

    /// `withLease` for async work (a put and then its pin, awaited in turn).
    public func withLease<R>(_ body: () async throws -> R) async rethrows -> R {
        let lease = blocks.lease()
        defer { lease.release() }
        return try await body()
    }

    /// Ends expired pins, then collects garbage; `removed` is told each deleted block.
    @discardableResult
    public func collectGarbage(removed: (CID, Int) throws -> Bool = { _, _ in true }) throws -> GarbageCollector.Result {
        try pins.maintain()
        var result = try collector.collect(removed: removed)
        (result.packsCompacted, result.packBytesReclaimed) = try blocks.compactPacks(threshold: packCompactionThreshold)
        return result
    }

    /// What `repo verify` found: the blocks, then the counts and pin indexes.
    public struct RepositoryCheck: Sendable {
        /// Blocks and their records.
        public var blocks: VerifyReport
        /// Counts, candidates and pin indexes.
        public var counts: CountVerifier.Report
        /// Whether both are clean (after repair, when repairing).
        public var isClean: Bool { blocks.isClean && (counts.problems.isEmpty || counts.repaired == counts.problems.count) }
        /// Every problem found.
        public var problems: [String] { blocks.problems + counts.problems }
    }

    /// Re-hashes every block and recomputes every count; with `repair`, rewrites the counts and
    /// indexes that differ (block problems are reported, never "repaired" by deleting data).
    public func verifyRepository(repair: Bool = false, progress: (Int, UInt64) -> Void = { _, _ in }) throws -> RepositoryCheck {
        let blocksReport = try repository.verify(progress: progress)
        let verifier = CountVerifier(pinner: pins)
        return RepositoryCheck(blocks: blocksReport, counts: repair ? try verifier.repair() : try verifier.check())
    }
}
