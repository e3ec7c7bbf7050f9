import Foundation
import Multiformats
import Pinning
import Storage

extension Node {
    /// A repository made before reference counting gets its counts (Pinning's migration), logged.
    func initializeCounts() throws {
        if let done = try pins.computeCountsIfAbsent() {
            logger.notice("reference counts computed for an existing repository", metadata: [
                "repaired": "\(done.repaired)", "roots pinned": "\(done.rootsPinned)",
            ])
        }
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
        // The audit log's events after its latest checkpoint are held by the put grace period
        // only: a checkpoint first moves its pin over them.
        _ = try? auditCheckpoint(fresh: true)
        try maintainPins()
        // Idempotency-Key records past their time go too (each new record also takes a few).
        try access.collectExpiredIdempotency()
        var result = try collector.collect(removed: removed)
        (result.packsCompacted, result.packBytesReclaimed) = try blocks.compactPacks(threshold: packCompactionThreshold)
        // A run someone asked for is logged; the daemon's own, when it removed something.
        if result.blocks > 0 || result.packsCompacted > 0 || AuditContext.current != nil {
            try auditAlone(AuditEntry("q.gc.run.v1", ref: "gc", details: [
                ("blocks", .int(result.blocks)), ("bytes", .int(result.bytes)),
                ("packsCompacted", .int(result.packsCompacted)), ("packBytesReclaimed", .int(result.packBytesReclaimed)),
            ]))
        }
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
