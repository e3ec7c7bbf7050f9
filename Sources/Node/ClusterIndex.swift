import Foundation
import Multiformats
import Qindex
import Replication
import Storage

/// Qindex in a cluster: a pointer's head moves by an etcd compare-and-swap, records travel as
/// blocks between the nodes' gateways, and histories written apart merge by Qindex's rule.
///
/// A put: (1) the node brings its copy of the pointer up to the cluster's head (fetching the
/// records it lacks from the members, merging — a fast-forward unless it wrote offline); (2) it
/// checks the caller's expectedVersion/expectedHead against that head; (3) it drafts the next
/// record (signed, not committed) and stores its block; (4) an etcd transaction moves the
/// cluster's head to it if nobody moved it meanwhile — else a caller's compare-and-swap is a
/// `VERSION_CONFLICT`, and a plain put starts again from (1); (5) the node commits the record.
/// So every version has exactly one record across the cluster: one linear history.
///
/// With etcd unreachable the put is made here alone (offline), and the pointer is remembered:
/// once etcd answers, the node merges the cluster's head into it and publishes the merge.
extension Node {
    func putPointer(_ update: Qindex.Update, in cluster: Cluster) async throws -> Head {
        for _ in 0..<16 {
            let remote: Cluster.IndexHead?
            do {
                remote = try await syncPointer(type: update.type, key: update.key, in: cluster)
            } catch let e as ClusterError {
                guard case .unavailable = e else { throw e }
                let head = try await index.put(update)
                clusterSlot.wroteOffline(update.type, update.key)
                logger.notice("cluster: \(update.type)/\(update.key) written offline (\(e)); merged when etcd is back")
                return head
            }
            let local = try index.head(type: update.type, key: update.key)
            if let e = update.expectedVersion, e != (local?.version ?? 0) {
                throw QindexError.versionConflict(expected: "version \(e)", current: local)
            }
            if let e = update.expectedHead, e != local?.record {
                throw QindexError.versionConflict(expected: "head \(e)", current: local)
            }
            if let t = update.target, !update.allowMissing, t.multihash.code != .identity, try !blocks.has(t) { throw QindexError.targetMissing(t) }
            let record = try index.draftRecord(update)
            guard record.prev == local?.record, record.version == (local?.version ?? 0) + 1 else {
                throw QindexError.versionConflict(expected: "version \(record.version - 1) (the signed record's prev)", current: local)
            }
            let block = record.block
            // Stored (under a lease) before the cluster names it, so peers can fetch it.
            let lease = blocks.lease()
            defer { lease.release() }
            try putBlocks([block])
            guard try await cluster.swapIndexHead(type: update.type, key: update.key, from: remote?.modRevision ?? 0, to: block.cid.string,
                                                  version: record.version) else {
                if update.expectedVersion != nil || update.expectedHead != nil || update.signed != nil {
                    throw QindexError.versionConflict(expected: "version \(local?.version ?? 0) (another node moved it first)", current: local)
                }
                continue
            }
            var u = update
            u.signed = record
            u.tags = record.tags
            u.expectedHead = local?.record
            return try await index.put(u)
        }
        throw ClusterError.unavailable("\(update.type)/\(update.key): moved by others 16 times in a row; try again")
    }

    /// Brings this node's copy of a pointer up to the cluster's head (fetching the records it
    /// lacks, merging); publishes a head written here offline (merged with the cluster's). Returns
    /// the cluster's head as it is now. Reads call it too: what they see is what the cluster
    /// agreed on (best effort: with etcd away they see this node's copy).
    @discardableResult
    public func syncPointer(type: String, key: String, in cluster: Cluster) async throws -> Cluster.IndexHead? {
        for _ in 0..<16 {
            guard let remote = try await cluster.indexHead(type: type, key: key), let head = try? CID(remote.head) else {
                // The cluster does not know it: publish this node's, if any.
                guard let local = try index.head(type: type, key: key) else { return nil }
                if try await cluster.swapIndexHead(type: type, key: key, from: 0, to: local.record.string, version: local.version) {
                    clusterSlot.mergedOffline(type, key)
                }
                continue
            }
            let local = try index.head(type: type, key: key)
            if local?.record == head {
                clusterSlot.mergedOffline(type, key)
                return remote
            }
            // The records this node lacks, newest first, down to what it holds.
            var stack = [head]
            var seen = Set<CID>()
            while let c = stack.popLast() {
                guard seen.insert(c).inserted else { continue }
                if try !blocks.has(c) { try await cluster.fetchBlock(c) }
                let r = try index.record(c)
                if let p = r.prev, try !blocks.has(p) { stack.append(p) }
                for m in r.merged where try !blocks.has(m) { stack.append(m) }
            }
            let outcome = try await withLease { try await index.merge(roots: [head]) }
            guard let merged = outcome.first?.head, merged.record != head else {
                clusterSlot.mergedOffline(type, key)
                return remote
            }
            // Written here offline: the merge descends from the cluster's head; publish it.
            if try await cluster.swapIndexHead(type: type, key: key, from: remote.modRevision ?? 0, to: merged.record.string, version: merged.version) {
                clusterSlot.mergedOffline(type, key)
                logger.notice("cluster: \(type)/\(key) merged with what was written offline (version \(merged.version))")
            }
        }
        throw ClusterError.unavailable("\(type)/\(key): moved by others 16 times in a row; try again")
    }

    /// Publishes the pointers written offline once etcd answers (the daemon runs it every few seconds).
    public func mergeOfflinePointers() async {
        guard let c = cluster else { return }
        for (type, key) in clusterSlot.offline {
            do { try await syncPointer(type: type, key: key, in: c) } catch {}
        }
    }
}
