/// The cluster's records as one node knows them: read once at one revision, then kept by a watch
/// of the cluster's prefix (`Cluster` answers `status`, `peers` and its own rounds from it). A
/// node joining a cluster with 100k pins reads the state; it never replays history.
struct ClusterState: Sendable {
    var members: [String: Member] = [:]
    var pins: [String: ClusterPin] = [:]
    var allocations: [String: Allocation] = [:]
    /// node → cid → the attempt it was assigned.
    var assignments: [String: [String: Int]] = [:]
    /// cid → node → status.
    var statuses: [String: [String: PinStatus]] = [:]
    var down: [String: UInt64] = [:]
    var draining: Set<String> = []
    var allocator: String?

    init() {}

    /// The state of `pairs` read under `keys.root`.
    init(_ pairs: [KeyValue], keys: ClusterKeys) {
        for p in pairs { apply(p.key, p.value, keys: keys) }
    }

    /// One key's change: `value` nil when it was deleted. Keys it does not know (Qindex heads)
    /// are left alone.
    mutating func apply(_ key: String, _ value: [UInt8]?, keys: ClusterKeys) {
        guard key.hasPrefix(keys.root) else { return }
        let rest = key.utf8.dropFirst(keys.root.utf8.count)
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else {
            if key == keys.allocator { allocator = value.map { String(decoding: $0, as: UTF8.self) } }
            return
        }
        let kind = String(Substring(rest[..<slash]))
        let name = String(Substring(rest[rest.index(after: slash)...]))
        func split() -> (String, String)? {
            guard let i = name.firstIndex(of: "/") else { return nil }
            return (String(name[..<i]), String(name[name.index(after: i)...]))
        }
        switch kind {
        case "members": members[name] = value.flatMap { ClusterJSON.decode(Member.self, $0) }
        case "pins": pins[name] = value.flatMap { ClusterJSON.decode(ClusterPin.self, $0) }
        case "alloc": allocations[name] = value.flatMap { ClusterJSON.decode(Allocation.self, $0) }
        case "assign":
            guard let (node, cid) = split() else { return }
            assignments[node, default: [:]][cid] = value.map { Int(String(decoding: $0, as: UTF8.self)) ?? 0 }
            if assignments[node]?.isEmpty == true { assignments[node] = nil }
        case "status":
            guard let (cid, node) = split() else { return }
            statuses[cid, default: [:]][node] = value.flatMap { ClusterJSON.decode(PinStatus.self, $0) }
            if statuses[cid]?.isEmpty == true { statuses[cid] = nil }
        case "down": down[name] = value.flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }
        case "drain": if value != nil { draining.insert(name) } else { draining.remove(name) }
        default: break
        }
    }

    /// What `cluster status` shows of `pin`: a node's status counts for the pin's current
    /// attempt only (a `recover` makes failed copies queued again).
    func view(of p: ClusterPin) -> ClusterPinState {
        let nodes = allocations[p.cid]?.nodes ?? []
        var status: [String: String] = [:]
        var errors: [String: String] = [:]
        for n in nodes {
            let st = statuses[p.cid]?[n]
            status[n] = (st?.attempt == (p.attempt ?? 0) ? st?.state : nil)?.rawValue ?? PinStatus.State.queued.rawValue
            if let e = st?.error, st?.state != .pinned { errors[n] = e }
        }
        return ClusterPinState(cid: p.cid, name: p.name, rmin: p.rmin, rmax: p.rmax, allocations: nodes, status: status, errors: errors.isEmpty ? nil : errors)
    }
}
