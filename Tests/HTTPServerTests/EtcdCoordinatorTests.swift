import EtcdCoordinator
import Foundation
import Replication
import Testing

/// The etcd adapter against a real etcd: a listing read in pages is every key of the prefix, in
/// order, nothing outside it; a transaction reports the revision it wrote at, 0 when it changed
/// nothing; a watch says it is in place, then brings puts and deletes at their revisions; a watch
/// asked for a revision the store no longer has (an etcd restored empty) ends with `compacted`.
@Suite(.serialized) struct EtcdCoordinatorTests {
    @Test func pagesTransactionsAndWatches() async throws {
        guard EtcdProcess.binary != nil else {
            Issue.record("etcd (Debian etcd-server) is not installed: make test installs it")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-etcd-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let etcd = try EtcdProcess(directory: dir)
        defer { etcd.stop() }
        let c = try EtcdCoordinator(endpoints: [etcd.url], page: 3)

        // Keys around the prefix's edges: "/p/" itself, a key just past it ("/p0"), one before.
        let keys = (0..<11).map { String(format: "/p/k%02d", $0) } + ["/p/", "/p/\u{7f}", "/p/z/deep"]
        for k in keys { #expect(try await c.transaction([], success: [.put(k, Array(k.utf8))], failure: []).revision > 0) }
        _ = try await c.transaction([], success: [.put("/p0", [1]), .put("/o/", [2])], failure: [])
        let (pairs, revision) = try await c.list(prefix: "/p/")
        #expect(pairs.map(\.key) == keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        #expect(pairs.allSatisfy { $0.value == Array($0.key.utf8) })
        #expect(revision >= pairs.map(\.modRevision).max()!)

        // Nothing changed: revision 0; a compare that fails with a read: 0 too.
        #expect(try await c.transaction([], success: [.delete("/p/absent")], failure: []).revision == 0)
        let failed = try await c.transaction([.version("/p/k00", equals: 0)], success: [.put("/p/k00", [9])], failure: [.get("/p/k00")])
        #expect(!failed.succeeded && failed.revision == 0 && failed.read.first?.first?.value == Array("/p/k00".utf8))

        // A watch: in place first (an empty batch), then the changes at their revisions.
        var events: [WatchEvent] = []
        var batches = 0
        let stream = c.watch(prefix: "/p/", after: revision)
        var iterator = stream.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first == [])
        let put = try await c.transaction([], success: [.put("/p/new", [7]), .put("/elsewhere", [1])], failure: [])
        let deleted = try await c.transaction([], success: [.delete("/p/k01")], failure: [])
        while events.count < 2, batches < 10, let batch = try await iterator.next() {
            events += batch
            batches += 1
        }
        #expect(events.map(\.kind) == [.put, .delete])
        #expect(events.map(\.pair.key) == ["/p/new", "/p/k01"])
        #expect(events.map(\.pair.modRevision) == [put.revision, deleted.revision])

        // etcd restored empty (its revision back at the start): a watch from where this node was
        // says so, so the state is read again instead of waiting for revisions that never come.
        etcd.stop()
        try FileManager.default.removeItem(atPath: dir + "/etcd")
        try etcd.start()
        await #expect(throws: ClusterError.self) {
            for try await _ in c.watch(prefix: "/p/", after: deleted.revision) {}
        }
        do {
            for try await _ in c.watch(prefix: "/p/", after: deleted.revision) {}
        } catch let e as ClusterError {
            guard case .compacted = e else {
                Issue.record("expected compacted, got \(e)")
                return
            }
        }
    }
}
