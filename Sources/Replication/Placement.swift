import Foundation

/// Where each cluster pin goes: pure, so it is tested without a cluster. The allocator runs it on
/// what it reads from the coordinator and writes the allocations that changed.
///
/// Rules:
/// - **Stable**: a pin's nodes change only when one leaves (after the grace period), is drained,
///   or the pin's `rmin`/`rmax` change — a node joining moves nothing.
/// - **How many**: `rmax` copies when that many nodes can take it, at least `rmin` when possible;
///   fewer when fewer nodes are up (the pin shows so in `cluster status`).
/// - **Where**: nodes in a zone the pin's copies are not in yet first, then the most free space
///   per pin held (this round's included: big disks take more, equal ones take turns), then the
///   node id (so every allocator decides alike).
/// - **Rate**: a node gets a new pin only while fewer than `maxPendingPerNode` of its pins are
///   not pinned yet (failed ones aside), so a lost node's pins move a few at a time, never as a
///   storm.
/// - **Leaving**: a node gone past the grace period is replaced on its pins as other nodes can
///   take them (its copies are released when it comes back); while none can, it stays. A
///   draining node stays on a pin until enough others hold it pinned, then is dropped.
public enum Placement {
    public struct Input: Sendable {
        /// The members up now (their leases alive).
        public var members: [Member]
        public var pins: [ClusterPin]
        public var allocations: [String: Allocation]
        /// cid → node → status.
        public var statuses: [String: [String: PinStatus]]
        /// node → when the allocator saw it go (ms).
        public var down: [String: UInt64]
        /// Nodes asked to drain.
        public var draining: Set<String>
        public var now: UInt64
        public var repairGrace: UInt64
        public var maxPendingPerNode: Int

        public init(members: [Member], pins: [ClusterPin], allocations: [String: Allocation], statuses: [String: [String: PinStatus]],
                    down: [String: UInt64], draining: Set<String>, now: UInt64, repairGrace: UInt64, maxPendingPerNode: Int) {
            (self.members, self.pins, self.allocations, self.statuses) = (members, pins, allocations, statuses)
            (self.down, self.draining, self.now, self.repairGrace, self.maxPendingPerNode) = (down, draining, now, repairGrace, maxPendingPerNode)
        }
    }

    /// The allocations to write (cid → nodes) and the ones to remove (pins no longer there).
    public struct Plan: Sendable, Equatable {
        public var assign: [String: [String]] = [:]
        public var remove: [String] = []
        public var isEmpty: Bool { assign.isEmpty && remove.isEmpty }
    }

    public static func plan(_ input: Input) -> Plan {
        var plan = Plan()
        let live = Dictionary(input.members.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let eligible = input.members.filter { !input.draining.contains($0.id) && $0.draining != true }
        // What each node has not pinned yet, and how many pins it holds.
        var pending: [String: Int] = [:]
        var held: [String: Int] = [:]
        for (cid, a) in input.allocations {
            for n in a.nodes { held[n, default: 0] += 1 }
            // Failed copies wait for `cluster recover`: they hold no transfer slot.
            for n in a.nodes where ![.pinned, .failed].contains(input.statuses[cid]?[n]?.state) { pending[n, default: 0] += 1 }
        }
        let pinned = Set(input.pins.map(\.cid))
        for cid in input.allocations.keys where !pinned.contains(cid) { plan.remove.append(cid) }
        plan.remove.sort()

        for pin in input.pins.sorted(by: { ($0.addedAt, $0.cid) < ($1.addedAt, $1.cid) }) {
            let current = input.allocations[pin.cid]?.nodes ?? []
            let status = input.statuses[pin.cid] ?? [:]
            var keep: [String] = []
            var leaving: [String] = []  // draining: kept until others hold it
            var lost: [String] = []  // gone past the grace: replaced when a node can take the copy
            for n in current {
                if live[n] != nil {
                    if input.draining.contains(n) || live[n]?.draining == true { leaving.append(n) } else { keep.append(n) }
                } else if let since = input.down[n], input.now >= since, input.now - since >= input.repairGrace {
                    lost.append(n)
                } else {
                    keep.append(n)  // gone, within the grace (or not seen going yet): wait
                }
            }
            let target = min(pin.rmax, eligible.count)
            // Surplus (rmax lowered): drop those that have not pinned it first, then by id.
            if keep.count > pin.rmax {
                let order = keep.sorted { a, b in
                    let (pa, pb) = (status[a]?.state == .pinned, status[b]?.state == .pinned)
                    return pa != pb ? pa : a < b
                }
                keep = Array(order.prefix(pin.rmax))
            }
            var chosen = keep
            let kept = keep.count
            if chosen.count < target {
                var zones = Set(chosen.compactMap { live[$0]?.zone })
                let candidates = eligible.filter { !current.contains($0.id) && !chosen.contains($0.id) }
                var pool = candidates
                while chosen.count < target, !pool.isEmpty {
                    let open = pool.filter { pending[$0.id, default: 0] < input.maxPendingPerNode }
                    guard !open.isEmpty else { break }
                    let best = open.min { a, b in
                        let (za, zb) = (a.zone.map { !zones.contains($0) } ?? true, b.zone.map { !zones.contains($0) } ?? true)
                        if za != zb { return za }
                        // Free space per pin held (this round's included): big disks take more,
                        // and equal ones take turns.
                        let (ra, rb) = (a.freeBytes / UInt64(1 + held[a.id, default: 0]), b.freeBytes / UInt64(1 + held[b.id, default: 0]))
                        if ra != rb { return ra > rb }
                        return a.id < b.id
                    }!
                    chosen.append(best.id)
                    pool.removeAll { $0.id == best.id }
                    pending[best.id, default: 0] += 1
                    held[best.id, default: 0] += 1
                    if let z = best.zone { zones.insert(z) }
                }
            }
            // A lost node stays on the pin while nobody can take its copy (back, it still holds it).
            let replaced = chosen.count - kept
            chosen += lost.dropFirst(replaced).prefix(max(0, pin.rmax - chosen.count))
            // A draining node stays until the others hold the pin pinned (as many as it can have).
            let pinnedElsewhere = chosen.filter { status[$0]?.state == .pinned && live[$0] != nil }.count
            if pinnedElsewhere < max(1, min(target, pin.rmin)) { chosen += leaving }
            if chosen != current { plan.assign[pin.cid] = chosen }
        }
        return plan
    }
}
