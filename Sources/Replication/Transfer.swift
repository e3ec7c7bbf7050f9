import CAR
import Foundation
import Multiformats

/// What the cluster needs of the node's own repository (the node implements it: `Node` is above
/// this room).
public protocol LocalStore: Sendable {
    /// Blocks of `root`'s DAG that are not here (walking the ones that are), at most `limit`.
    func missing(_ root: CID, limit: Int) throws -> [CID]
    /// Stores the blocks of the CAR `source` reads, each checked against its CID (a block that
    /// does not hash to it: `ClusterError.badPeer`); what was stored before a failure stays.
    func importBlocks(_ source: inout any ByteSource) throws -> (blocks: Int, bytes: UInt64)
    /// Pins `cid` (recursively) as this cluster's copy; unpins it. Pins the node has for other
    /// reasons are not touched.
    func pinForCluster(_ cid: CID, name: String?, policy: String?, cluster: String) throws
    func unpinForCluster(_ cid: CID, cluster: String) throws
    /// The CIDs pinned as this cluster's copies.
    func clusterPins(cluster: String) throws -> [CID]
    /// Bytes free where the repository is.
    func freeBytes() -> UInt64
    /// Keeps blocks stored from now on out of garbage collection until the returned function is
    /// called (a pull, then its pin: GC running in between must not take the blocks pulled).
    func leaseImports() -> @Sendable () -> Void
}

/// A body being received, read as a blocking `ByteSource` (on a thread that may block).
public protocol PeerStream: ByteSource, AnyObject, Sendable {
    /// Stops receiving (what is not read yet is dropped).
    func close()
}

/// How blocks move between nodes: HTTP GETs of trustless-gateway CARs.
public protocol PeerTransport: Sendable {
    /// GETs `url`; its body once the status is 200 (anything else: `ClusterError.notFound`; no
    /// answer: `unavailable`). A block not hashing to its CID is found by `LocalStore.importBlocks`
    /// (`badPeer`).
    func open(_ url: String) async throws -> any PeerStream
}

/// Runs blocking work (the repository's, a stream's reads) on a thread of its own, so the few
/// cooperative threads stay free.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Pulling one DAG from the peers that have it.
enum Transfer {
    /// Fetches what is missing of `root` from `sources` (gateway base URLs, tried in order) until
    /// the DAG is whole here: a CAR of the whole DAG first; after a cut, only the subtrees still
    /// missing. A source that sends a block not hashing to its CID, or that has nothing more to
    /// give, is dropped and the next one asked. Returns the blocks stored.
    static func fetch(_ root: CID, from sources: [String], transport: any PeerTransport, local: any LocalStore, log: (String) -> Void) async throws -> Int {
        var missing = try await offload { try local.missing(root, limit: 64) }
        guard !missing.isEmpty else { return 0 }
        var stored = 0
        var failures: [String] = []
        for source in sources {
            var progress = true, dropped = false
            while progress && !dropped && !missing.isEmpty {
                progress = false
                for cid in missing {
                    try Task.checkCancellation()
                    let url = source + "/ipfs/\(cid)?format=car&dag-scope=all"
                    do {
                        let stream = try await transport.open(url)
                        let got = try await withTaskCancellationHandler {
                            try await offload { () throws -> Int in
                                defer { stream.close() }
                                var s: any ByteSource = stream
                                return try local.importBlocks(&s).blocks
                            }
                        } onCancel: {
                            stream.close()
                        }
                        stored += got
                        if got > 0 { progress = true }
                    } catch let e as ClusterError {
                        // A block not hashing to its CID: this source is asked nothing more.
                        if case .badPeer = e {
                            failures.append("\(source): \(e)")
                            dropped = true
                            break
                        }
                        failures.append("\(source): \(e)")
                        // Cut short: what came is kept; the next round asks only for what is missing.
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        failures.append("\(source): \(error)")
                    }
                }
                let before = missing
                missing = try await offload { try local.missing(root, limit: 64) }
                // A cut stream that brought blocks made progress too: the same source is asked again.
                progress = missing != before
            }
            if missing.isEmpty { return stored }
            log("cluster: \(root) still incomplete after \(source)")
        }
        let why = failures.isEmpty ? "no node holds it" : failures.suffix(3).joined(separator: "; ")
        throw ClusterError.notFound("\(root): \(missing.count == 64 ? "64 or more" : String(missing.count)) blocks missing (\(why))")
    }
}
