import Foundation
import Multiformats

/// What a cluster's coordination needs from a consistent key-value store with leases, compare-
/// and-swap transactions and watches — etcd's v3 model. Qstore writes no consensus of its own:
/// the daemon hands `Cluster` an adapter (`EtcdCoordinator`), tests may hand it the same adapter
/// over a real etcd. Keys and values are bytes; every call may fail with
/// `ClusterError.unavailable` when the store cannot be reached.
public protocol Coordinator: Sendable {
    /// The pairs whose key starts with `prefix` (sorted by key), and the store's revision then.
    func list(prefix: String) async throws -> (pairs: [KeyValue], revision: Int64)
    func get(_ key: String) async throws -> KeyValue?
    /// Applies `success` when every comparison holds, else `failure`; whether they held, the
    /// pairs each `.get` of the branch taken read, and the revision it wrote at (0 when it changed
    /// nothing: a watch of the prefix sees that revision once it has seen the change).
    func transaction(_ compares: [Comparison], success: [TxnOp], failure: [TxnOp]) async throws -> TxnResult
    /// A lease of `ttl` seconds: keys put under it go when it expires (not kept alive) or is revoked.
    func grantLease(ttl: Int) async throws -> Int64
    /// Keeps `lease` alive; the seconds it has left, 0 when it had expired already.
    func keepAlive(_ lease: Int64) async throws -> Int
    func revoke(_ lease: Int64) async throws
    /// The changes under `prefix` after `revision`, batch by batch, until the task is cancelled
    /// or the store goes away (the stream then ends with `unavailable`; watch again from the last
    /// revision seen). A revision compacted away ends it with `compacted`: read again, then watch.
    /// The first batch is empty: the watch is in place.
    func watch(prefix: String, after revision: Int64) -> AsyncThrowingStream<[WatchEvent], any Error>
}

public struct KeyValue: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    /// The revision of the key's last change, and how many times it changed since created.
    public var modRevision: Int64
    public var version: Int64
    public var lease: Int64
    public init(key: String, value: [UInt8], modRevision: Int64 = 0, version: Int64 = 0, lease: Int64 = 0) {
        (self.key, self.value, self.modRevision, self.version, self.lease) = (key, value, modRevision, version, lease)
    }
}

/// A transaction's condition on one key.
public enum Comparison: Sendable, Equatable {
    /// The key's version (0: absent).
    case version(String, equals: Int64)
    /// The key's last change was at this revision (0: absent).
    case modRevision(String, equals: Int64)
    case value(String, equals: [UInt8])
}

public enum TxnOp: Sendable, Equatable {
    case put(String, [UInt8], lease: Int64 = 0)
    case delete(String)
    case get(String)
}

public struct TxnResult: Sendable {
    public var succeeded: Bool
    /// What each `.get` of the branch taken read.
    public var read: [[KeyValue]]
    /// The revision the transaction's changes were made at; 0 when it changed nothing.
    public var revision: Int64
    public init(succeeded: Bool, read: [[KeyValue]], revision: Int64) { (self.succeeded, self.read, self.revision) = (succeeded, read, revision) }
}

public struct WatchEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case put, delete }
    public var kind: Kind
    public var pair: KeyValue
    public init(kind: Kind, pair: KeyValue) { (self.kind, self.pair) = (kind, pair) }
}

/// The cluster's failures, each with its kind and code (the HTTP layer maps them).
public enum ClusterError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    /// The coordinator (etcd) cannot be reached.
    case unavailable(String)
    /// This node runs without a cluster.
    case disabled(String)
    case invalid(String)
    case notFound(String)
    /// A watch started at a revision the store has compacted away.
    case compacted(Int64)
    /// A peer sent something wrong (a block not hashing to its CID, a cut stream).
    case badPeer(String)

    public var description: String {
        switch self {
        case .unavailable(let m), .disabled(let m), .invalid(let m), .notFound(let m), .badPeer(let m): m
        case .compacted(let r): "revision \(r) was compacted"
        }
    }

    public var kind: ErrorKind {
        switch self {
        case .unavailable, .compacted, .badPeer: .unavailable
        case .invalid: .invalidInput
        case .notFound: .notFound
        case .disabled: .conflict
        }
    }

    public var code: String? {
        switch self {
        case .unavailable: "SERVICE_UNAVAILABLE"
        case .disabled: "CLUSTER_DISABLED"
        case .invalid: "CLUSTER_INVALID"
        case .notFound: "CLUSTER_NOT_FOUND"
        case .compacted: "SERVICE_UNAVAILABLE"
        case .badPeer: "CLUSTER_BAD_PEER"
        }
    }
}
