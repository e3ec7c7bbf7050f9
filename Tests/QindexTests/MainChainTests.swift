import Foundation
import IPLD
import Multiformats
import Qindex
import Signing
import Storage
import Testing
import TestSupport

/// Updates of one pointer from many writers at once, without compare-and-swap: most drafts are
/// made on a head that moved before their commit and must be made again on the new head.
@Suite struct StaleDraftTests {
    @Test func concurrentUpdatesOfOnePointerAllLandInOrder() async throws {
        let r = try Replica(keepLatest: 1_000_000)
        let targets = try (0..<24).map { try r.target("t\($0)") }
        let index = r.index
        let heads = try await withThrowingTaskGroup(of: Head.self) { group in
            for t in targets { group.addTask { try await index.put(Qindex.Update(type: "docs", key: "busy", target: t)) } }
            return try await group.reduce(into: [Head]()) { $0.append($1) }
        }
        // Every update acknowledged with its own version, 1…24, and the chain holds each one.
        #expect(heads.map(\.version).sorted() == Array(1...24))
        let history = try r.index.history(type: "docs", key: "busy", limit: 100).records
        #expect(history.map(\.record.version) == Array((1...24).reversed()))
        for (newer, older) in zip(history, history.dropFirst()) {
            #expect(newer.record.prev == older.cid, "version \(newer.record.version) does not link the record before it")
            #expect(throws: Never.self) { try newer.record.verifySignature() }
        }
        #expect(Set(history.compactMap(\.record.cid)) == Set(targets))
        for h in heads { #expect(try r.index.record(type: "docs", key: "busy", version: h.version).cid == h.record) }
        // The events follow the commits: versions 1…24 in sequence order.
        let events = try r.events.read(after: 0, limit: 100).events
        #expect(events.map { $0.data["version"] } == (1...24).map { IPLDNode.int($0) })
        #expect(try r.countsClean() == [])
    }
}

/// After a merge the version and time indexes hold exactly the main chain: a record of the
/// losing line is found by neither a version nor a time.
@Suite struct MainChainIndexTests {
    @Test func aMergeLeavesNoLosingRecordInTheIndexes() async throws {
        let a = try Replica(), b = try Replica()
        let start = try await a.put("doc", "k", try a.target("start"))
        try b.receive(try a.historySet("doc", "k"), from: a)
        _ = try await b.index.merge(roots: [start.record])
        var losing: [IndexRecord] = []
        for i in 0..<2 {
            a.clock.advance(by: .milliseconds(10))
            let h = try await a.put("doc", "k", try a.target("a\(i)"))
            losing.append(try a.index.record(h.record))
        }
        for i in 0..<4 {
            b.clock.advance(by: .milliseconds(7))
            try await b.put("doc", "k", try b.target("b\(i)"))
        }
        let bHead = try #require(try b.index.head(type: "doc", key: "k"))
        try a.receive(try b.historySet("doc", "k"), from: b)
        #expect(try await a.index.merge(roots: [bHead.record]).first?.action == .merged)
        let chain = try a.index.history(type: "doc", key: "k", limit: 100).records
        let onChain = Set(chain.map(\.cid))
        #expect(chain.first?.record.isMerge == true && chain.count == 6, "merge record, b's four, the start")
        for r in chain { #expect(try a.index.record(type: "doc", key: "k", version: r.record.version).cid == r.cid) }
        // At the very times the losing records were made, the main chain's record then is found.
        for r in losing {
            let found = try a.index.record(type: "doc", key: "k", at: r.createdAtMilliseconds)
            #expect(onChain.contains(found.cid), "version \(found.record.version) at \(r.createdAt) is not on the main chain")
        }
        #expect(try a.countsClean() == [])
    }
}

/// Nodes whose clocks disagree still merge: a record made on top of a head from a node whose clock
/// is ahead is dated no earlier than that head, so it is accepted back there.
@Suite struct ClockSkewTests {
    @Test func aNodeBehindInTimeStillMerges() async throws {
        let ahead = try Replica(), behind = try Replica()
        ahead.clock.advance(by: .seconds(3600))
        let h1 = try await ahead.put("doc", "k", try ahead.target("from the future"))
        try behind.receive(try ahead.historySet("doc", "k"), from: ahead)
        _ = try await behind.index.merge(roots: [h1.record])
        let h2 = try await behind.put("doc", "k", try behind.target("from the past"))
        #expect(try behind.index.record(h2.record).createdAtMilliseconds >= (try ahead.index.record(h1.record)).createdAtMilliseconds)
        try ahead.receive(try behind.historySet("doc", "k"), from: behind)
        #expect(try await ahead.index.merge(roots: [h2.record]).first?.action == .fastForward)
        #expect(try ahead.index.head(type: "doc", key: "k")?.record == h2.record)
    }
}
