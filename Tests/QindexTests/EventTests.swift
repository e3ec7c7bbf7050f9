import Foundation
import IPLD
import Multiformats
import Qindex
import Signing
import Storage
import Testing
import TestSupport

/// The event stream: every head move is one event, durable with it, in commit order; a refused
/// change has none; sequences go on after a reopen and never repeat; old events leave at the
/// retention bound.
@Suite struct EventTests {
    static func field(_ e: EventLog.Event, _ k: String) -> IPLDNode? { e.data[k] }

    @Test func headMovesAreEventsInOrder() async throws {
        let r = try Replica()
        let a = try r.target("a"), b = try r.target("b")
        let h1 = try await r.put("docs", "x", a)
        let h2 = try await r.put("docs", "x", b, expected: 1)
        // A refused compare-and-swap publishes nothing.
        await #expect(throws: QindexError.self) { try await r.put("docs", "x", a, expected: 1) }
        var del = Qindex.Update(type: "docs", key: "x", target: nil)
        del.expectedVersion = 2
        let h3 = try await r.index.put(del)
        let page = try r.events.read(after: 0, limit: 100)
        #expect(page.events.map(\.topic) == ["q.qindex.record.created.v1", "q.qindex.record.created.v1", "q.qindex.record.deleted.v1"])
        #expect(page.events.map(\.sequence) == [1, 2, 3] && page.through == 3)
        for (e, h) in zip(page.events, [h1, h2, h3]) {
            #expect(Self.field(e, "record") == .string(h.record.string))
            #expect(Self.field(e, "version") == .int(h.version))
            #expect(Self.field(e, "cid") == (h.target.map { .string($0.string) } ?? .null))
            #expect(Self.field(e, "type") == .string("docs") && Self.field(e, "key") == .string("x"))
            #expect(e.timestamp == r.clock.now)
        }
        // A filter skips, and says how far it looked.
        let deleted = try r.events.read(after: 0, limit: 100) { $0.topic.hasSuffix("deleted.v1") }
        #expect(deleted.events.map(\.sequence) == [3] && deleted.through == 3)
        #expect(try r.events.read(after: 3, limit: 100).events.isEmpty)
    }

    @Test func sequencesGoOnAfterAReopenAndOldEventsLeave() async throws {
        let r = try Replica()
        let a = try r.target("a")
        for i in 0..<5 { try await r.put("docs", "k\(i)", a) }
        try r.reopen(retention: 3)
        #expect(r.events.lastSequence == 5)
        try await r.put("docs", "k5", a)
        try await r.put("docs", "k6", a)
        let page = try r.events.read(after: 0, limit: 100)
        #expect(page.events.map(\.sequence) == [5, 6, 7], "the newest 3 kept, numbering continued")
        #expect(page.events.last.flatMap { Self.field($0, "key") } == .string("k6"))
    }

    /// Followers are woken by commits; a follower's stream ends when its continuation does.
    @Test func followersAreWoken() async throws {
        let r = try Replica()
        let a = try r.target("a")
        let (signals, poke) = try r.events.follow()
        var it = signals.makeAsyncIterator()
        try await r.put("docs", "woken", a)
        #expect(await it.next() != nil)
        poke.finish()
        #expect(await it.next() == nil)
    }
}
