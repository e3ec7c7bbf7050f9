import CAR
import Foundation
import Multiformats
import Pinning
import Storage

/// A cluster node's settings (config section `cluster`, `qstore daemon --cluster`).
public struct ClusterConfiguration: Sendable {
    /// The cluster's name: its keys live under `/qstore/<name>/`.
    public var name = "default"
    public var nodeId: String
    /// This node's API and gateway as the others reach them (`http://host:port`).
    public var api: String
    public var gateway: String
    public var tags: [String: String] = [:]
    public var version = ""
    /// Seconds the membership lease lasts without a keep-alive (kept alive every third of it).
    public var leaseTTL = 10
    /// How long a node may be gone before its pins move (ms).
    public var repairGrace: UInt64 = 300_000
    /// At most this many pins a node has not pinned yet (new or moved): the repin rate.
    public var maxPendingPerNode = 8
    /// A pin this node cannot get becomes `failed` after this long (ms).
    public var pinTimeout: UInt64 = 600_000
    /// How often the allocator and the workers look again (ms) when nothing wakes them.
    public var interval: UInt64 = 1_000
    /// Gateways (any IPFS gateway) asked for blocks when no member has them.
    public var gateways: [String] = []
    /// `rmin`/`rmax` when a pin names none.
    public var replication = (min: 2, max: 3)

    public init(nodeId: String, api: String, gateway: String) { (self.nodeId, self.api, self.gateway) = (nodeId, api, gateway) }
}

/// One pin's state across the cluster (`cluster status`).
public struct ClusterPinState: Codable, Sendable, Equatable {
    public var cid: String
    public var name: String?
    public var rmin: Int
    public var rmax: Int
    /// The nodes allocated to hold it.
    public var allocations: [String]
    /// node → queued | pinning | pinned | failed.
    public var status: [String: String]
    /// node → why it failed (or why it waits).
    public var errors: [String: String]?

    public init(cid: String, name: String?, rmin: Int, rmax: Int, allocations: [String], status: [String: String], errors: [String: String]?) {
        (self.cid, self.name, self.rmin, self.rmax, self.allocations, self.status, self.errors) = (cid, name, rmin, rmax, allocations, status, errors)
    }
}

/// A member as `cluster peers` shows it.
public struct ClusterPeer: Codable, Sendable, Equatable {
    public var id: String
    public var api: String
    public var gateway: String
    public var freeBytes: UInt64
    public var tags: [String: String]
    public var version: String
    /// up | draining | down
    public var state: String
    /// ms: since it started (up) or since it was seen gone (down).
    public var since: UInt64
    public var allocator: Bool
}

/// A Qstore node in a cluster: it keeps its membership alive, takes the allocator's seat when it
/// is free (one at a time, by an etcd transaction under its lease), pulls and pins what is
/// allocated to it, releases what is not, and answers the cluster commands. Everything shared
/// lives in the coordinator; what a node knows of it is read again, never replayed.
public actor Cluster {
    public nonisolated let config: ClusterConfiguration
    public nonisolated let keys: ClusterKeys
    let coordinator: any Coordinator
    let transport: any PeerTransport
    let local: any LocalStore
    let clock: @Sendable () -> UInt64
    let log: @Sendable (String) -> Void

    private var lease: Int64?
    private var loops: [Task<Void, Never>] = []
    /// Why the coordinator could not be reached the last time, nil when it could.
    private var trouble: String?
    public private(set) var isAllocator = false
    /// cid → the attempt this node pinned; the attempt that failed for good (until `recover`).
    private var done: [String: Int] = [:]
    private var failedFor: [String: Int] = [:]
    private var working: Set<String> = []
    private var retryAt: [String: UInt64] = [:]
    private var workers: [String: Task<Void, Never>] = [:]
    /// The cluster's records, kept by a watch (`follow`); `seen` is the last revision applied,
    /// `wrote` the last this node wrote at (its own reads wait for it).
    private var known = ClusterState()
    private var watching = false
    private var seen: Int64 = 0
    private var wrote: Int64 = 0
    /// The revision of the last state read from etcd directly (the fallback): the watched copy
    /// is used again only once it is past it, so what a node shows never goes back in time.
    private var readAt: Int64 = 0
    /// The watch loop, restarted when the watch is in place but brings nothing it should; only
    /// the loop of the current generation changes the copy.
    private var follower: Task<Void, Never>?
    private var generation = 0
    private var loaded = false

    public init(config: ClusterConfiguration, coordinator: any Coordinator, transport: any PeerTransport, local: any LocalStore,
                clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.config = config
        keys = ClusterKeys(cluster: config.name)
        self.coordinator = coordinator
        self.transport = transport
        self.local = local
        self.clock = clock
        self.log = log
    }

    // MARK: running

    /// Starts the membership, allocator and worker loops.
    public func start() {
        guard loops.isEmpty else { return }
        loops = [
            Task { await self.loop(.membership, every: UInt64(max(1, config.leaseTTL)) * 1000 / 3) { try await self.keepMembership() } },
            Task { await self.loop(.allocation, every: config.interval) { try await self.allocate() } },
            Task { await self.loop(.work, every: config.interval) { try await self.work() } },
        ]
        let g = generation
        follower = Task { await self.follow(g) }
    }

    /// Stops the loops and gives up the membership (the others see this node go at once).
    public func stop() async {
        for t in loops { t.cancel() }
        for t in workers.values { t.cancel() }
        follower?.cancel()
        generation += 1
        await follower?.value
        follower = nil
        watching = false
        // Their transfers are closed by the cancellation; the repository is closed after this.
        for t in loops { await t.value }
        for t in Array(workers.values) { await t.value }
        loops = []
        workers = [:]
        if let lease { try? await coordinator.revoke(lease) }
        lease = nil
        isAllocator = false
    }

    /// The loops, woken early (`wake`) when the watch or a finished pull brings them work.
    enum Round: Hashable { case membership, allocation, work }
    private var woken: Set<Round> = []
    private var sleeping: [Round: CheckedContinuation<Void, Never>] = [:]

    /// Starts `round` now if it sleeps, else as soon as it would sleep.
    private func wake(_ round: Round) {
        if let c = sleeping.removeValue(forKey: round) { c.resume() } else { woken.insert(round) }
    }

    /// Sleeps `ms`, or until woken or cancelled; at least 20 ms, so a flurry of changes makes
    /// one round, not one each.
    private func pause(_ round: Round, _ ms: UInt64) async {
        try? await Task.sleep(nanoseconds: 20_000_000)
        if woken.remove(round) != nil || Task.isCancelled { return }
        let timer = Task { [weak self] in
            try? await Task.sleep(nanoseconds: ms * 1_000_000)
            await self?.wake(round)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { sleeping[round] = $0 }
        } onCancel: {
            Task { await self.wake(round) }
        }
        timer.cancel()
        woken.remove(round)
    }

    private func loop(_ round: Round, every ms: UInt64, _ body: @escaping () async throws -> Void) async {
        while !Task.isCancelled {
            do {
                try await body()
                trouble = nil
            } catch is CancellationError {
                return
            } catch let e as ClusterError {
                // Only the coordinator's absence makes the cluster's calls answer 503.
                if case .unavailable = e {
                    if trouble == nil { log("cluster: \(e)") }
                    trouble = "\(e)"
                } else {
                    log("cluster: \(e)")
                }
            } catch {
                log("cluster: \(error)")
            }
            await pause(round, ms)
        }
    }

    /// Reads the cluster's state once, then applies its changes as the watch brings them. A
    /// broken watch starts again from the last revision applied; one compacted away (or an etcd
    /// restored to an older revision) reads the state again. Only the newest follower changes
    /// anything (`generation`): a restarted watch never interleaves with the one it replaced.
    private func follow(_ generation: Int) async {
        func current() -> Bool { generation == self.generation && !Task.isCancelled }
        while current() {
            do {
                if !loaded {
                    let (state, revision) = try await readState()
                    guard current() else { return }
                    (known, seen, loaded) = (state, revision, true)
                }
                for try await batch in coordinator.watch(prefix: keys.root, after: seen) {
                    guard current() else { return }
                    watching = true
                    let mine = keys.assigned(config.nodeId)
                    for e in batch {
                        known.apply(e.pair.key, e.kind == .delete ? nil : e.pair.value, keys: keys)
                        seen = max(seen, e.pair.modRevision)
                        // A pin, a status or a member changed: the allocator looks again; an
                        // assignment of this node's: it starts pulling.
                        if e.pair.key.hasPrefix(mine) { wake(.work) } else if isAllocator && !e.pair.key.hasPrefix(keys.root + "assign/") { wake(.allocation) }
                    }
                }
                guard current() else { return }
                watching = false
            } catch {
                guard current() else { return }
                watching = false
                if case ClusterError.compacted = error { loaded = false }
            }
            try? await Task.sleep(nanoseconds: config.interval * 1_000_000)
        }
    }

    /// The cluster's state, with this node's own writes in it: the watched copy once it has
    /// caught up with them and with the last direct read (it waits up to a second), else read
    /// from the coordinator. A watch in place that did not catch up in that second is stalled (a
    /// member cut off from its leader, a half-dead connection): it is started again.
    private func view() async throws -> ClusterState {
        let deadline = ContinuousClock.now + .seconds(1)
        var waited = false
        while watching {
            if seen >= max(wrote, readAt) { return known }
            guard ContinuousClock.now < deadline else { break }
            waited = true
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        if waited && watching && seen < wrote {
            log("cluster: the watch brought nothing for a second (at \(seen), wrote \(wrote)): watching again")
            restartWatch()
        }
        let (state, revision) = try await readState()
        readAt = max(readAt, revision)
        return state
    }

    private func restartWatch() {
        follower?.cancel()
        watching = false
        generation += 1
        let g = generation
        follower = Task { await self.follow(g) }
    }

    /// A transaction whose changes this node's later reads will see.
    @discardableResult
    private func txn(_ compares: [Comparison], _ success: [TxnOp], else failure: [TxnOp] = []) async throws -> TxnResult {
        let r = try await coordinator.transaction(compares, success: success, failure: failure)
        wrote = max(wrote, r.revision)
        return r
    }

    private func txn(_ ops: [TxnOp]) async throws { try await txn([], ops) }

    /// Puts `value` at `key` if `compare` holds. The request may have been applied although its
    /// answer was lost (a reply timed out and the adapter asked another etcd member): a failed
    /// comparison with the key now holding exactly `value` is that earlier success.
    private func put(_ key: String, _ value: [UInt8], if compare: Comparison) async throws -> Bool {
        if try await txn([compare], [.put(key, value)]).succeeded { return true }
        guard let kv = try await coordinator.get(key), kv.value == value else { return false }
        wrote = max(wrote, kv.modRevision)
        return true
    }

    /// Throws `unavailable` with the last reason when the coordinator could not be reached.
    private func reachable() throws {
        if let trouble { throw ClusterError.unavailable("the cluster's coordinator is unreachable: \(trouble)") }
    }

    // MARK: membership

    private func keepMembership() async throws {
        if let lease, try await coordinator.keepAlive(lease) > 0 {
            try await register(lease)  // free space changes
            return
        }
        // No lease, or it expired while the coordinator was away: a new one.
        let l = try await coordinator.grantLease(ttl: config.leaseTTL)
        lease = l
        isAllocator = false
        try await register(l)
        log("cluster: \(config.nodeId) joined \(config.name)")
    }

    private var startedAt: UInt64 = 0

    private func register(_ lease: Int64) async throws {
        if startedAt == 0 { startedAt = clock() }
        let local = self.local
        let free = (try? await offload { local.freeBytes() }) ?? 0
        var m = Member(id: config.nodeId, api: config.api, gateway: config.gateway, freeBytes: free, tags: config.tags, version: config.version, startedAt: startedAt)
        m.draining = try await coordinator.get(keys.root + "drain/" + config.nodeId) != nil ? true : nil
        try await txn([.put(keys.member(config.nodeId), try ClusterJSON.encode(m), lease: lease)])
    }

    // MARK: allocation

    private func allocate() async throws {
        guard let lease else { return }
        // The seat: taken when free, kept while this node's lease lives.
        let me = Array(config.nodeId.utf8)
        let seat = try await txn([.version(keys.allocator, equals: 0)], [.put(keys.allocator, me, lease: lease)], else: [.get(keys.allocator)])
        let was = isAllocator
        isAllocator = seat.succeeded || seat.read.first?.first?.value == me
        if isAllocator && !was { log("cluster: \(config.nodeId) allocates") }
        guard isAllocator else { return }
        let state = try await view()
        let now = clock()
        let live = Set(state.members.keys)
        var ops: [TxnOp] = []
        // Members seen going, and coming back.
        var down = state.down
        let holders = Set(state.allocations.values.flatMap(\.nodes))
        for n in holders where !live.contains(n) && down[n] == nil {
            down[n] = now
            ops.append(.put(keys.down(n), Array(String(now).utf8)))
        }
        for n in down.keys where live.contains(n) {
            down[n] = nil
            ops.append(.delete(keys.down(n)))
        }
        let plan = Placement.plan(Placement.Input(members: state.members.values.sorted { $0.id < $1.id }, pins: state.pins.values.sorted { $0.cid < $1.cid },
                                                  allocations: state.allocations, statuses: state.statuses,
                                                  down: down, draining: state.draining, now: now, repairGrace: config.repairGrace,
                                                  maxPendingPerNode: config.maxPendingPerNode))
        let pins = state.pins
        // Each pin's allocation and its nodes' assignments change in one transaction, under the
        // allocator's seat; the assignments are then checked against the allocations (a round
        // cut short, a `recover` racing a move), so they never drift for good.
        func commit(_ ops: [TxnOp]) async throws -> Bool {
            guard !ops.isEmpty else { return true }
            let ok = try await txn([.value(keys.allocator, equals: me)], ops).succeeded
            if !ok { isAllocator = false }
            return ok
        }
        guard try await commit(ops) else { return }
        var allocations = state.allocations
        for (cid, nodes) in plan.assign.sorted(by: { $0.key < $1.key }) {
            let before = Set(state.allocations[cid]?.nodes ?? [])
            var change: [TxnOp] = [.put(keys.allocation(cid), try ClusterJSON.encode(Allocation(nodes: nodes, updatedAt: now)))]
            let attempt = Array(String(pins[cid]?.attempt ?? 0).utf8)
            for n in nodes where !before.contains(n) { change.append(.put(keys.assignment(n, cid), attempt)) }
            for n in before where !nodes.contains(n) { change.append(.delete(keys.assignment(n, cid))) }
            guard try await commit(change) else { return }
            allocations[cid] = Allocation(nodes: nodes, updatedAt: now)
        }
        for cid in plan.remove {
            var change: [TxnOp] = [.delete(keys.allocation(cid))]
            for n in state.allocations[cid]?.nodes ?? [] { change.append(.delete(keys.assignment(n, cid))) }
            guard try await commit(change) else { return }
            allocations[cid] = nil
        }
        var repair: [TxnOp] = []
        // What this round changed is in `allocations`, not yet in `state`: those pins were
        // assigned by their own transactions.
        let changed = Set(plan.assign.keys).union(plan.remove)
        var wanted: [String: [String: Int]] = [:]
        for (cid, a) in allocations where !changed.contains(cid) {
            for n in a.nodes { wanted[n, default: [:]][cid] = pins[cid]?.attempt ?? 0 }
        }
        for (node, held) in state.assignments {
            for (cid, attempt) in held where !changed.contains(cid) {
                let want = wanted[node]?.removeValue(forKey: cid)
                if want == nil { repair.append(.delete(keys.assignment(node, cid))) } else if want != attempt { repair.append(.put(keys.assignment(node, cid), Array(String(want!).utf8))) }
            }
        }
        for (node, rest) in wanted {
            for (cid, attempt) in rest { repair.append(.put(keys.assignment(node, cid), Array(String(attempt).utf8))) }
        }
        for chunk in stride(from: 0, to: repair.count, by: 100).map({ Array(repair[$0..<min($0 + 100, repair.count)]) }) {
            guard try await commit(chunk) else { return }
        }
        if !plan.isEmpty || !repair.isEmpty { log("cluster: allocated \(plan.assign.count) pin(s), released \(plan.remove.count), repaired \(repair.count) assignment(s)") }
    }

    /// The whole state at one revision, read from the coordinator, and that revision.
    private func readState() async throws -> (ClusterState, Int64) {
        let (pairs, revision) = try await coordinator.list(prefix: keys.root)
        let keys = self.keys
        // Decoding 100k pins' records is work: off the actor, which the rounds and calls need.
        let state = await Task.detached { ClusterState(pairs, keys: keys) }.value
        return (state, revision)
    }

    // MARK: work

    /// Pulls and pins what is allocated here, releases what is not.
    private func work() async throws {
        guard lease != nil else { return }
        let me = config.nodeId
        let assigned = try await view().assignments[me] ?? [:]
        // Released: pinned here for the cluster, allocated here no more. One that cannot be
        // released (a retention policy) is logged and left; the others go on.
        let local = self.local, name = config.name
        let held = Set(try await offload { try local.clusterPins(cluster: name) }.map(\.description))
        for cid in held where assigned[cid] == nil && !working.contains(cid) {
            do {
                guard let c = try? CID(cid) else { continue }
                try await offload { try local.unpinForCluster(c, cluster: name) }
                try await txn([.delete(keys.status(cid, me))])
                done[cid] = nil
                log("cluster: released \(cid)")
            } catch let e as ClusterError {
                throw e
            } catch {
                log("cluster: cannot release \(cid): \(error)")
            }
        }
        // Not assigned any more: this node's status goes (a copy it never got included).
        for cid in Set(done.keys).union(retryAt.keys).union(failedFor.keys) where assigned[cid] == nil && !working.contains(cid) {
            try await txn([.delete(keys.status(cid, me))])
            done[cid] = nil
            retryAt[cid] = nil
            failedFor[cid] = nil
        }
        // Pinned here once, its pin gone since (a `pin rm` here): pinned again.
        for (cid, attempt) in assigned where done[cid] == attempt && !held.contains(cid) { done[cid] = nil }
        let now = clock()
        for (cid, attempt) in assigned.sorted(by: { $0.key < $1.key }) {
            guard working.count < config.maxPendingPerNode else { break }
            if done[cid] == attempt || failedFor[cid] == attempt || working.contains(cid) { continue }
            if let at = retryAt[cid], at > now { continue }
            working.insert(cid)
            workers[cid] = Task { await self.pull(cid, attempt: attempt) }
        }
    }

    private func pull(_ text: String, attempt: Int) async {
        defer {
            working.remove(text)
            workers[text] = nil
            // A slot is free: the next pin starts now, not at the next round.
            wake(.work)
        }
        let me = config.nodeId
        let key = keys.status(text, me)
        do {
            guard let cid = try? CID(text) else { throw ClusterError.invalid("\(text) is not a CID") }
            let previous = try await coordinator.get(key).flatMap { ClusterJSON.decode(PinStatus.self, $0.value) }
            let since = previous?.attempt == attempt && [.queued, .pinning].contains(previous?.state) ? previous!.since : clock()
            try await put(key, PinStatus(state: .pinning, updatedAt: clock(), since: since, attempt: attempt))
            let pin = try await coordinator.get(keys.pin(text)).flatMap { ClusterJSON.decode(ClusterPin.self, $0.value) }
            let release = local.leaseImports()
            defer { release() }
            do {
                let sources = try await self.sources(for: text)
                _ = try await Transfer.fetch(cid, from: sources, transport: transport, local: local, log: log)
                let (local, name) = (self.local, config.name)
                try await offload { try local.pinForCluster(cid, name: pin?.name, policy: pin?.policy, cluster: name) }
                try await put(key, PinStatus(state: .pinned, updatedAt: clock(), since: since, attempt: attempt))
                done[text] = attempt
                retryAt[text] = nil
            } catch let e where !(e is CancellationError) {
                let now = clock()
                // Clocks step back (NTP, a resumed VM): never a negative wait.
                let waited = now >= since ? now - since : 0
                if waited >= config.pinTimeout {
                    try await put(key, PinStatus(state: .failed, error: "\(e)", updatedAt: now, since: since, attempt: attempt))
                    failedFor[text] = attempt
                } else {
                    try await put(key, PinStatus(state: .queued, error: "\(e)", updatedAt: now, since: since, attempt: attempt))
                    // Backing off: 1 s, then half the time waited so far, at most a minute.
                    retryAt[text] = now + min(60_000, max(1_000, waited / 2))
                }
            }
        } catch {
            if !(error is CancellationError) { log("cluster: \(text): \(error)") }
        }
    }

    private func put(_ key: String, _ status: PinStatus) async throws {
        try await txn([.put(key, try ClusterJSON.encode(status))])
    }

    /// Where to ask for `cid`: the members that hold it pinned (this node's zone first), then
    /// the other members (the node it was added on may hold it unpinned: a gateway serves what
    /// it has, and says 404 quickly when it has nothing), then the configured gateways.
    private func sources(for cid: String) async throws -> [String] {
        let state = try await view()
        let holders = Set((state.statuses[cid] ?? [:]).filter { $0.value.state == .pinned }.keys)
        let members = state.members.values.filter { $0.id != config.nodeId }
        let zone = config.tags["zone"]
        let ordered = members.sorted { a, b in
            let (ha, hb) = (holders.contains(a.id), holders.contains(b.id))
            if ha != hb { return ha }
            let (za, zb) = (a.zone == zone && zone != nil, b.zone == zone && zone != nil)
            return za != zb ? za : a.id < b.id
        }
        return ordered.map(\.gateway) + config.gateways
    }

    // MARK: commands

    public func pinAdd(_ cid: CID, name: String?, rmin: Int?, rmax: Int?, policy: String?) async throws -> ClusterPin {
        try reachable()
        let lo = rmin ?? (rmax.map { min($0, config.replication.min) } ?? config.replication.min)
        let hi = rmax ?? max(lo, config.replication.max)
        guard lo >= 1, hi >= lo, hi <= 64 else { throw ClusterError.invalid("--rmin \(lo) --rmax \(hi): 1 ≤ rmin ≤ rmax ≤ 64") }
        let key = keys.pin(cid.description)
        let existingKV = try await coordinator.get(key)
        let existing = existingKV.flatMap { ClusterJSON.decode(ClusterPin.self, $0.value) }
        var pin = ClusterPin(cid: cid.description, name: name ?? existing?.name, rmin: lo, rmax: hi, policy: policy ?? existing?.policy,
                             addedAt: existing?.addedAt ?? clock())
        pin.attempt = existing?.attempt
        // Unchanged since read (a `recover` meanwhile keeps its attempt).
        guard try await put(key, try ClusterJSON.encode(pin), if: existingKV.map { .modRevision(key, equals: $0.modRevision) } ?? .version(key, equals: 0)) else { throw ClusterError.unavailable("\(cid) changed meanwhile: try again") }
        return pin
    }

    /// Unpins everywhere: each node releases its copy, and its GC does the rest.
    public func pinRemove(_ cid: CID) async throws {
        try reachable()
        let key = keys.pin(cid.description)
        if try await txn([.version(key, equals: 0)], [], else: [.delete(key)]).succeeded { throw ClusterError.notFound("\(cid) is not a cluster pin") }
    }

    /// Every pin's state from the watched copy (laid out off the actor, which the rounds need);
    /// one pin's read from the coordinator.
    public nonisolated func status(_ cid: CID? = nil) async throws -> [ClusterPinState] {
        if let cid { return [try await status(of: cid)] }
        let state = try await current()
        return state.pins.values.sorted { $0.cid < $1.cid }.map(state.view(of:))
    }

    private func current() async throws -> ClusterState {
        try reachable()
        return try await view()
    }

    private func status(of cid: CID) async throws -> ClusterPinState {
        try reachable()
        let c = cid.description
        guard let pin = try await coordinator.get(keys.pin(c)) else { throw ClusterError.notFound("\(cid) is not a cluster pin") }
        let allocation = try await coordinator.get(keys.allocation(c))
        let state = ClusterState([pin] + (allocation.map { [$0] } ?? []) + (try await coordinator.list(prefix: keys.statuses(c)).pairs), keys: keys)
        guard let p = state.pins[c] else { throw ClusterError.notFound("\(cid) is not a cluster pin") }
        return state.view(of: p)
    }

    /// Failed copies try again: a new attempt of the pin, which the allocator writes into each
    /// node's assignment (so a recover never races a move).
    public func recover(_ cid: CID) async throws -> ClusterPinState {
        try reachable()
        let key = keys.pin(cid.description)
        guard let kv = try await coordinator.get(key), var pin = ClusterJSON.decode(ClusterPin.self, kv.value) else {
            throw ClusterError.notFound("\(cid) is not a cluster pin")
        }
        pin.attempt = (pin.attempt ?? 0) + 1
        guard try await put(key, try ClusterJSON.encode(pin), if: .modRevision(key, equals: kv.modRevision)) else { throw ClusterError.unavailable("\(cid) changed meanwhile: try again") }
        return try await status(of: cid)
    }

    /// Moves `node`'s pins away (it keeps what it has until others hold it); `cancel` undoes it.
    public func drain(_ node: String, cancel: Bool = false) async throws {
        try reachable()
        let key = keys.root + "drain/" + node
        if !cancel {
            // Read from etcd itself: a node that joined a moment ago may not be in the watched copy.
            let member = try await coordinator.get(keys.member(node))
            let down = member == nil ? try await coordinator.get(keys.down(node)) : nil
            guard member != nil || down != nil else { throw ClusterError.notFound("\(node) is not a member of \(config.name)") }
        }
        try await txn([cancel ? .delete(key) : .put(key, Array(String(clock()).utf8))])
    }

    public func peers() async throws -> [ClusterPeer] {
        try reachable()
        let state = try await view()
        var out = state.members.values.map { m in
            ClusterPeer(id: m.id, api: m.api, gateway: m.gateway, freeBytes: m.freeBytes, tags: m.tags, version: m.version,
                        state: state.draining.contains(m.id) ? "draining" : "up", since: m.startedAt, allocator: m.id == state.allocator)
        }
        for (id, since) in state.down where state.members[id] == nil {
            out.append(ClusterPeer(id: id, api: "", gateway: "", freeBytes: 0, tags: [:], version: "", state: "down", since: since, allocator: false))
        }
        return out.sorted { $0.id < $1.id }
    }

    // MARK: Qindex heads

    /// A pointer's head as the cluster agreed on it: the record's CID, its version, and the
    /// revision of its last change (what a compare-and-swap compares).
    public struct IndexHead: Codable, Sendable, Equatable {
        public var head: String
        public var version: Int64
        public var node: String
        public var modRevision: Int64?
    }

    public func indexHead(type: String, key: String) async throws -> IndexHead? {
        guard let kv = try await coordinator.get(keys.indexHead(type, key)), var h = ClusterJSON.decode(IndexHead.self, kv.value) else { return nil }
        h.modRevision = kv.modRevision
        return h
    }

    /// Moves the head to `head` if nobody moved it since `modRevision` (0: it must not exist).
    public func swapIndexHead(type: String, key: String, from modRevision: Int64, to head: String, version: Int64) async throws -> Bool {
        let k = keys.indexHead(type, key)
        let value = try ClusterJSON.encode(IndexHead(head: head, version: version, node: config.nodeId, modRevision: nil))
        return try await put(k, value, if: .modRevision(k, equals: modRevision))
    }

    /// Fetches block `cid` from the members' gateways into the repository.
    public func fetchBlock(_ cid: CID) async throws {
        let members = try await view().members.values.filter { $0.id != config.nodeId }
        var failures: [String] = []
        for m in members.sorted(by: { $0.id < $1.id }) {
            do {
                let stream = try await transport.open(m.gateway + "/ipfs/\(cid)?format=car&dag-scope=block")
                let local = self.local
                let got = try await offload { () throws -> Int in
                    defer { stream.close() }
                    var s: any ByteSource = stream
                    return try local.importBlocks(&s).blocks
                }
                if got > 0 { return }
            } catch {
                failures.append("\(m.id): \(error)")
            }
        }
        throw ClusterError.notFound("\(cid): no member sent it (\(failures.suffix(3).joined(separator: "; ")))")
    }

    /// Whether the coordinator answered last time, and why not.
    public var health: (reachable: Bool, reason: String?, member: Bool) { (trouble == nil, trouble, lease != nil) }
}

/// The `cluster` section of config.json (Docs/cluster.md); `qstore daemon --cluster` names etcd.
public struct ClusterSettings: ConfigurationSection {
    public static let key = "cluster"
    /// etcd client URLs (`http://127.0.0.1:2379`); empty: no cluster.
    public var etcd: [String] = []
    public var name = "default"
    /// This node's id in the cluster (default: its peer ID).
    public var nodeId: String?
    /// The host the other nodes reach this one at (default: the API's listen host).
    public var advertiseHost: String?
    /// `zone=eu-1`, … (placement spreads copies over zones).
    public var tags: [String: String] = [:]
    public var repairGrace = "5m"
    public var pinTimeout = "10m"
    public var maxPendingPerNode = 8
    public var leaseTTL = "10s"
    /// Gateways asked for blocks no member has (any IPFS gateway).
    public var gateways: [String] = []
    public var replicationMin = 2
    public var replicationMax = 3

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        etcd = try c.decodeIfPresent([String].self, forKey: .etcd) ?? etcd
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? name
        nodeId = try c.decodeIfPresent(String.self, forKey: .nodeId)
        advertiseHost = try c.decodeIfPresent(String.self, forKey: .advertiseHost)
        tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? tags
        repairGrace = try c.decodeIfPresent(String.self, forKey: .repairGrace) ?? repairGrace
        pinTimeout = try c.decodeIfPresent(String.self, forKey: .pinTimeout) ?? pinTimeout
        maxPendingPerNode = try c.decodeIfPresent(Int.self, forKey: .maxPendingPerNode) ?? maxPendingPerNode
        leaseTTL = try c.decodeIfPresent(String.self, forKey: .leaseTTL) ?? leaseTTL
        gateways = try c.decodeIfPresent([String].self, forKey: .gateways) ?? gateways
        replicationMin = try c.decodeIfPresent(Int.self, forKey: .replicationMin) ?? replicationMin
        replicationMax = try c.decodeIfPresent(Int.self, forKey: .replicationMax) ?? replicationMax
    }

    /// `QSTORE_CLUSTER_ETCD` (URLs, comma-separated), `QSTORE_CLUSTER_REPAIR_GRACE`,
    /// `QSTORE_CLUSTER_PIN_TIMEOUT`, `QSTORE_CLUSTER_LEASE_TTL`, `QSTORE_CLUSTER_ZONE`,
    /// `QSTORE_CLUSTER_NAME`, `QSTORE_CLUSTER_NODE_ID`, `QSTORE_CLUSTER_MAX_PENDING`.
    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_CLUSTER_ETCD"] { etcd = v.split(separator: ",").map(String.init) }
        if let v = env["QSTORE_CLUSTER_MAX_PENDING"] {
            guard let n = Int(v) else { throw ClusterError.invalid("QSTORE_CLUSTER_MAX_PENDING: a number") }
            maxPendingPerNode = n
        }
        if let v = env["QSTORE_CLUSTER_REPAIR_GRACE"] { repairGrace = v }
        if let v = env["QSTORE_CLUSTER_PIN_TIMEOUT"] { pinTimeout = v }
        if let v = env["QSTORE_CLUSTER_LEASE_TTL"] { leaseTTL = v }
        if let v = env["QSTORE_CLUSTER_ZONE"] { tags["zone"] = v }
        if let v = env["QSTORE_CLUSTER_NAME"] { name = v }
        if let v = env["QSTORE_CLUSTER_NODE_ID"] { nodeId = v }
    }

    /// The node's cluster settings, checked.
    public func configuration(nodeId defaultId: String, api: String, gateway: String, version: String) throws -> ClusterConfiguration {
        func ms(_ text: String, _ field: String) throws -> UInt64 {
            guard let v = parseDuration(text) else { throw ClusterError.invalid("cluster.\(field): a duration such as 30s, 5m (\(text))") }
            return v
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw ClusterError.invalid("cluster.name: letters, digits, - and _ (\(name))")
        }
        let id = nodeId ?? defaultId
        guard !id.isEmpty, !id.contains("/") else { throw ClusterError.invalid("cluster.nodeId: no slash (\(id))") }
        guard maxPendingPerNode >= 1, replicationMin >= 1, replicationMax >= replicationMin else {
            throw ClusterError.invalid("cluster: maxPendingPerNode ≥ 1 and 1 ≤ replicationMin ≤ replicationMax")
        }
        var c = ClusterConfiguration(nodeId: id, api: api, gateway: gateway)
        c.name = name
        c.tags = tags
        c.version = version
        c.repairGrace = try ms(repairGrace, "repairGrace")
        c.pinTimeout = try ms(pinTimeout, "pinTimeout")
        c.leaseTTL = max(2, Int(try ms(leaseTTL, "leaseTTL") / 1000))
        c.maxPendingPerNode = maxPendingPerNode
        c.gateways = gateways.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        c.replication = (replicationMin, replicationMax)
        return c
    }
}
