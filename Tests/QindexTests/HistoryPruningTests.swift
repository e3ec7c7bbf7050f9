import Foundation
import Multiformats
@testable import Pinning
import Qindex
import Signing
import Storage
import Testing
import TestSupport

/// The `index-records` policy's `keepLatest`: a pointer's history keeps its newest records; the
/// older ones, and the targets only they referenced, become garbage and are collected, while the
/// repository stays clean (counts, links records, pins) and the kept history stays whole.
@Suite struct HistoryPruningTests {
    @Test func historyPastKeepLatestIsLetGoAndCollected() async throws {
        let r = try Replica()
        let k = try #require(r.index.keepLatest, "the default index-records policy keeps a number of records")
        let total = k * 3
        var targets: [CID] = []
        var records: [CID] = []
        for i in 0..<total {
            r.clock.advance(by: .milliseconds(5))
            let t = try r.target("version \(i)")
            targets.append(t)
            records.append(try await r.put("docs", "pruned", t).record)
        }
        // An unpruned neighbour keeps its few versions.
        try await r.put("docs", "young", try r.target("young"))

        // History and lookups see the newest k versions only.
        let history = try r.index.history(type: "docs", key: "pruned", limit: 1000).records
        #expect(history.map(\.record.version) == Array((total - k + 1...total).reversed()).map(Int64.init))
        #expect(throws: QindexError.self) { try r.index.record(type: "docs", key: "pruned", version: Int64(total - k)) }
        #expect(try r.index.record(type: "docs", key: "pruned", version: Int64(total - k + 1)).cid == records[total - k])
        #expect(throws: QindexError.self) { try r.index.record(type: "docs", key: "pruned", at: 1) }
        // The repository is clean with the detached link: counts, links records, pin indexes.
        #expect(try r.countsClean() == [])
        #expect(try r.repository.verify().isClean)

        // After the grace period the let-go records and their targets are collected; the kept ones stay.
        r.clock.advance(by: .seconds(3 * 86_400))
        _ = try GarbageCollector(store: r.store).collect()
        for i in 0..<total {
            let kept = i >= total - k
            #expect(try r.store.has(records[i]) == kept, "record of version \(i + 1)")
            #expect(try r.store.has(targets[i]) == kept, "target of version \(i + 1)")
        }
        #expect(try r.countsClean() == [])
        #expect(try r.repository.verify().isClean)
        // The head's DAG is complete: walks stop at the detached link.
        let head = try #require(try r.index.head(type: "docs", key: "pruned"))
        #expect(try r.pins.check(head.record, type: .recursive).missing == nil)
        // Updates go on, and the kept window moves with them.
        try await r.put("docs", "pruned", try r.target("after"))
        #expect(try r.index.history(type: "docs", key: "pruned", limit: 1000).records.count == k)
        #expect(try r.countsClean() == [])
        #expect(try r.index.head(type: "docs", key: "young")?.version == 1)
    }
}
