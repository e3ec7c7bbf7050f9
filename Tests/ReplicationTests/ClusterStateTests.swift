import Foundation
@testable import Replication
import Testing

/// The watched copy of the cluster's records: each key's put and delete lands on the right
/// record, keys it does not know (Qindex heads, other clusters) change nothing, and `status`
/// counts a node's state for the pin's current attempt only.
@Suite struct ClusterStateTests {
    let keys = ClusterKeys(cluster: "c1")

    func json<T: Encodable>(_ v: T) -> [UInt8] { try! ClusterJSON.encode(v) }

    @Test func putsAndDeletesLandOnTheirRecords() {
        var s = ClusterState()
        let member = Member(id: "n1", api: "http://a", gateway: "http://g", freeBytes: 5, tags: ["zone": "z"], version: "v", startedAt: 1)
        let pin = ClusterPin(cid: "bafyA", name: "x", rmin: 1, rmax: 2, policy: nil, addedAt: 3)
        let status = PinStatus(state: .pinned, updatedAt: 4, since: 2, attempt: 0)
        s.apply(keys.member("n1"), json(member), keys: keys)
        s.apply(keys.pin("bafyA"), json(pin), keys: keys)
        s.apply(keys.allocation("bafyA"), json(Allocation(nodes: ["n1", "n2"], updatedAt: 3)), keys: keys)
        s.apply(keys.assignment("n1", "bafyA"), Array("2".utf8), keys: keys)
        s.apply(keys.status("bafyA", "n1"), json(status), keys: keys)
        s.apply(keys.down("n3"), Array("77".utf8), keys: keys)
        s.apply(keys.root + "drain/n2", Array("5".utf8), keys: keys)
        s.apply(keys.allocator, Array("n1".utf8), keys: keys)
        // Not the cluster's records: ignored.
        s.apply(keys.indexHead("docs", "a/b"), Array("{}".utf8), keys: keys)
        s.apply(ClusterKeys(cluster: "c2").pin("bafyB"), json(pin), keys: keys)
        s.apply(keys.root + "status/only-a-cid", json(status), keys: keys)

        #expect(s.members == ["n1": member])
        #expect(s.pins == ["bafyA": pin])
        #expect(s.allocations["bafyA"]?.nodes == ["n1", "n2"])
        #expect(s.assignments == ["n1": ["bafyA": 2]])
        #expect(s.statuses == ["bafyA": ["n1": status]])
        #expect(s.down == ["n3": 77])
        #expect(s.draining == ["n2"])
        #expect(s.allocator == "n1")

        for k in [keys.member("n1"), keys.pin("bafyA"), keys.allocation("bafyA"), keys.assignment("n1", "bafyA"), keys.status("bafyA", "n1"),
                  keys.down("n3"), keys.root + "drain/n2", keys.allocator] {
            s.apply(k, nil, keys: keys)
        }
        #expect(s.members.isEmpty && s.pins.isEmpty && s.allocations.isEmpty && s.assignments.isEmpty && s.statuses.isEmpty)
        #expect(s.down.isEmpty && s.draining.isEmpty && s.allocator == nil)
    }

    @Test func statusCountsTheCurrentAttemptOnly() {
        var s = ClusterState()
        var pin = ClusterPin(cid: "bafyA", name: nil, rmin: 2, rmax: 2, policy: nil, addedAt: 0)
        pin.attempt = 1
        s.apply(keys.pin("bafyA"), json(pin), keys: keys)
        s.apply(keys.allocation("bafyA"), json(Allocation(nodes: ["n1", "n2", "n3"], updatedAt: 0)), keys: keys)
        // n1 failed the attempt before `recover`; n2 pinned this one; n3 has said nothing yet.
        s.apply(keys.status("bafyA", "n1"), json(PinStatus(state: .failed, error: "no source", updatedAt: 1, since: 0, attempt: 0)), keys: keys)
        s.apply(keys.status("bafyA", "n2"), json(PinStatus(state: .pinned, updatedAt: 1, since: 0, attempt: 1)), keys: keys)
        let v = s.view(of: s.pins["bafyA"]!)
        #expect(v.status == ["n1": "queued", "n2": "pinned", "n3": "queued"])
        #expect(v.errors == ["n1": "no source"])
        #expect(v.allocations == ["n1", "n2", "n3"])
    }
}
