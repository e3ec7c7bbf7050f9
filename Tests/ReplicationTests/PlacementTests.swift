import Replication
import Testing

/// The allocator's decisions, without a cluster: how many copies and where (zones first, then
/// free space), stability when nodes join, the grace period before a lost node's pins move, the
/// repin rate, draining, and removed pins.
@Suite struct PlacementTests {
    static func member(_ id: String, zone: String? = nil, free: UInt64 = 100) -> Member {
        Member(id: id, api: "http://\(id):5001", gateway: "http://\(id):8080", freeBytes: free, tags: zone.map { ["zone": $0] } ?? [:], version: "t", startedAt: 0)
    }

    static func pin(_ cid: String, _ rmin: Int, _ rmax: Int, at: UInt64 = 0) -> ClusterPin {
        ClusterPin(cid: cid, name: nil, rmin: rmin, rmax: rmax, policy: nil, addedAt: at)
    }

    static func input(_ members: [Member], _ pins: [ClusterPin], _ allocations: [String: [String]] = [:], pinned: Bool = true,
                      down: [String: UInt64] = [:], draining: Set<String> = [], now: UInt64 = 1_000_000, grace: UInt64 = 300_000, k: Int = 8) -> Placement.Input {
        var statuses: [String: [String: PinStatus]] = [:]
        if pinned {
            for (cid, nodes) in allocations {
                for n in nodes { statuses[cid, default: [:]][n] = PinStatus(state: .pinned, updatedAt: 0, since: 0, attempt: 0) }
            }
        }
        return Placement.Input(members: members, pins: pins, allocations: allocations.mapValues { Allocation(nodes: $0, updatedAt: 0) }, statuses: statuses,
                               down: down, draining: draining, now: now, repairGrace: grace, maxPendingPerNode: k)
    }

    @Test func copiesGoToDistinctZonesThenToFreeSpace() {
        let members = [Self.member("a", zone: "z1", free: 900), Self.member("b", zone: "z1", free: 800), Self.member("c", zone: "z2", free: 10),
                       Self.member("d", zone: "z3", free: 50)]
        let plan = Placement.plan(Self.input(members, [Self.pin("p", 2, 3)]))
        // One per zone: a (z1, most free), d (z3, more free than c), c (z2).
        #expect(plan.assign["p"] == ["a", "d", "c"])
        let two = Placement.plan(Self.input(members, [Self.pin("q", 2, 2)]))
        #expect(two.assign["q"] == ["a", "d"])
        // Fewer nodes than rmin: all of them.
        #expect(Placement.plan(Self.input(Array(members.prefix(1)), [Self.pin("r", 2, 3)])).assign["r"] == ["a"])
    }

    @Test func joiningMovesNothingAndLeavingWaitsForTheGrace() {
        let members = ["a", "b", "c"].map { Self.member($0) }
        let held = ["p": ["a", "b"]]
        // A fourth node joins: nothing moves.
        #expect(Placement.plan(Self.input(members + [Self.member("d", free: 10_000)], [Self.pin("p", 2, 2)], held)).isEmpty)
        // b goes: within the grace, nothing moves; after it, c takes its place.
        let without = members.filter { $0.id != "b" }
        #expect(Placement.plan(Self.input(without, [Self.pin("p", 2, 2)], held, down: ["b": 900_000], now: 1_000_000)).isEmpty)
        let after = Placement.plan(Self.input(without, [Self.pin("p", 2, 2)], held, down: ["b": 600_000], now: 1_000_000))
        #expect(after.assign["p"] == ["a", "c"])
    }

    @Test func aLostNodesPinsMoveAtTheRepinRate() {
        let members = ["a", "c"].map { Self.member($0) }
        let pins = (0..<20).map { Self.pin("p\($0)", 2, 2, at: UInt64($0)) }
        let held = Dictionary(uniqueKeysWithValues: pins.map { ($0.cid, ["a", "b"]) })
        let plan = Placement.plan(Self.input(members, pins, held, down: ["b": 0], k: 3))
        // Only 3 pins go to c this round; the others wait (b dropped from none of them yet).
        #expect(plan.assign.count == 3 && plan.assign.values.allSatisfy { $0 == ["a", "c"] })
        #expect(plan.assign.keys.sorted() == ["p0", "p1", "p2"])
    }

    @Test func rmaxLoweredDropsTheCopiesNotPinnedFirst() {
        let members = ["a", "b", "c"].map { Self.member($0) }
        var input = Self.input(members, [Self.pin("p", 1, 2)], ["p": ["a", "b", "c"]])
        input.statuses["p"]?["a"] = PinStatus(state: .pinning, updatedAt: 0, since: 0, attempt: 0)
        #expect(Placement.plan(input).assign["p"] == ["b", "c"])
    }

    @Test func drainingKeepsTheCopyUntilOthersHoldIt() {
        let members = ["a", "b", "c"].map { Self.member($0) }
        // a drains: c is added, a stays while c has not pinned it.
        let first = Placement.plan(Self.input(members, [Self.pin("p", 2, 2)], ["p": ["a", "b"]], draining: ["a"]))
        #expect(first.assign["p"] == ["b", "c", "a"])
        // Once b and c hold it pinned, a goes.
        let second = Placement.plan(Self.input(members, [Self.pin("p", 2, 2)], ["p": ["b", "c", "a"]], draining: ["a"]))
        #expect(second.assign["p"] == ["b", "c"])
    }

    @Test func removedPinsLoseTheirAllocations() {
        let plan = Placement.plan(Self.input([Self.member("a")], [], ["gone": ["a"]]))
        #expect(plan.remove == ["gone"] && plan.assign.isEmpty)
    }

    @Test func equalNodesTakeTurnsAndFailedCopiesHoldNoSlot() {
        let members = ["a", "b"].map { Self.member($0, free: 1_000) }
        let pins = (0..<4).map { Self.pin("p\($0)", 1, 1, at: UInt64($0)) }
        let plan = Placement.plan(Self.input(members, pins))
        #expect((0..<4).map { plan.assign["p\($0)"] ?? [] } == [["a"], ["b"], ["a"], ["b"]])
        // a has K = 1 pin pending: it takes no more; once that copy failed, it does.
        var busy = Self.input(members, pins + [Self.pin("q", 1, 1, at: 9)], ["p0": ["a"], "p1": ["b"], "p2": ["a"], "p3": ["b"]], k: 1)
        busy.statuses["p0"]?["a"] = PinStatus(state: .pinning, updatedAt: 0, since: 0, attempt: 0)
        busy.statuses["p1"]?["b"] = PinStatus(state: .pinning, updatedAt: 0, since: 0, attempt: 0)
        #expect(Placement.plan(busy).assign["q"] == nil)
        busy.statuses["p0"]?["a"] = PinStatus(state: .failed, updatedAt: 0, since: 0, attempt: 0)
        #expect(Placement.plan(busy).assign["q"] == ["a"])
    }
}
