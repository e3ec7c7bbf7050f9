import CAR
import Foundation
import Multiformats
import Pinning
import Replication
import Storage

/// The cluster this node is in, once the daemon joined one (`qstore daemon --cluster`).
final class ClusterSlot: @unchecked Sendable {
    // Safe: every field is touched under `lock`.
    private let lock = NSLock()
    private var cluster: Cluster?
    private var offlinePointers: Set<[String]> = []
    var current: Cluster? {
        get { lock.withLock { cluster } }
        set { lock.withLock { cluster = newValue } }
    }

    /// Pointers written while etcd was away, to merge and publish once it is back.
    func wroteOffline(_ type: String, _ key: String) { _ = lock.withLock { offlinePointers.insert([type, key]) } }
    func mergedOffline(_ type: String, _ key: String) { _ = lock.withLock { offlinePointers.remove([type, key]) } }
    var offline: [(String, String)] { lock.withLock { offlinePointers.map { ($0[0], $0[1]) } } }
}

extension Node {
    /// The cluster the daemon joined, when it did.
    public var cluster: Cluster? { clusterSlot.current }

    /// Called by the daemon once it made the cluster (the node does not know etcd).
    public func attach(cluster: Cluster?) { clusterSlot.current = cluster }

    /// The cluster, or `disabled` saying how to start one.
    public func joinedCluster() throws -> Cluster {
        guard let c = cluster else {
            throw ClusterError.disabled("this node runs without a cluster: start the daemon with --cluster etcd=http://HOST:2379 (Docs/cluster.md)")
        }
        return c
    }

    /// Pins `cid` on the cluster. A named pinning policy must exist here; its
    /// `replicationFactor` is the number of copies when neither `rmin` nor `rmax` is given.
    public func clusterPinAdd(_ cid: CID, name: String?, rmin: Int?, rmax: Int?, policy: String?) async throws -> ClusterPin {
        let cluster = try joinedCluster()
        var (lo, hi) = (rmin, rmax)
        if let policy {
            let p = try pins.policies.policy(policy)
            if lo == nil && hi == nil { (lo, hi) = (p.replicationFactor, p.replicationFactor) }
        }
        return try await cluster.pinAdd(cid, name: name, rmin: lo, rmax: hi, policy: policy)
    }

    /// What the cluster does to this node's repository.
    public var clusterStore: any LocalStore { NodeClusterStore(node: self) }

    /// The bytes free on the repository's file system.
    public var freeBytes: UInt64 {
        let attributes = try? FileManager.default.attributesOfFileSystem(forPath: repository.path)
        return (attributes?[.systemFreeSize] as? NSNumber)?.uint64Value ?? 0
    }
}

/// The node's side of replication: which blocks of a DAG are missing here, storing what a peer
/// sends (each block checked against its CID), and the pins that are the cluster's copies —
/// marked with `meta.cluster = <cluster name>` so the node's own pins of the same CID are never
/// touched.
struct NodeClusterStore: LocalStore {
    let node: Node

    func missing(_ root: CID, limit: Int) throws -> [CID] {
        var out: [CID] = []
        var seen = Set<CID>()
        var stack = [root]
        while let c = stack.popLast(), out.count < limit {
            guard c.multihash.code != .identity, seen.insert(c).inserted else { continue }
            guard let links = try node.blocks.links(of: c) else {
                out.append(c)
                continue
            }
            stack += links
        }
        return out
    }

    func importBlocks(_ source: inout any ByteSource) throws -> (blocks: Int, bytes: UInt64) {
        do {
            return try Self.importing(source, into: node)
        } catch let e as CARError {
            if case .hashMismatch(let cid, _) = e { throw ClusterError.badPeer("block \(cid) does not hash to its CID") }
            if case .unverifiable = e { throw ClusterError.badPeer("\(e)") }
            throw ClusterError.unavailable("\(e)")
        }
    }

    static func importing<S: ByteSource>(_ source: S, into node: Node) throws -> (blocks: Int, bytes: UInt64) {
        var reader = try CARReader(source)
        var stored = (blocks: 0, bytes: UInt64(0))
        do {
            _ = try DAGTransfer.import(from: &reader, into: node.blocks) { n, b in stored = (n, b) }
        } catch let e as CARError {
            if case .truncated = e, stored.blocks > 0 { return stored }  // cut: the rest is asked for again
            throw e
        }
        return stored
    }

    func pinForCluster(_ cid: CID, name: String?, policy: String?, cluster: String) throws {
        if try node.pins.pins(of: cid.multihash).contains(where: { $0.meta["cluster"] == cluster && $0.cid == cid }) { return }
        var r = Pinner.Request(cid: cid)
        r.name = name
        r.resourceType = policy
        r.meta = ["cluster": cluster]
        // A pin of its own (not merged into one the node already has), so releasing it touches
        // nothing else.
        try node.pins.add(r)
    }

    func unpinForCluster(_ cid: CID, cluster: String) throws {
        for p in try node.pins.pins(of: cid.multihash) where p.meta["cluster"] == cluster && p.cid == cid { _ = try node.pins.remove(id: p.id) }
    }

    func clusterPins(cluster: String) throws -> [CID] {
        var out: [CID] = []
        try node.pins.forEachPin { p in
            if p.meta["cluster"] == cluster { out.append(p.cid) }
            return true
        }
        return out
    }

    func freeBytes() -> UInt64 { node.freeBytes }

    func leaseImports() -> @Sendable () -> Void {
        let lease = node.blocks.lease()
        return { lease.release() }
    }
}
