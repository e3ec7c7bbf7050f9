import IPLD
import Multiformats

/// Resolving `<cid>/a/b/0` paths through the data model, loading blocks as links are crossed.
public enum DAGPath {
    /// Why a path could not be resolved.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// No such key or index at that point.
        case notFound(path: String, segment: String)
        /// A scalar cannot be descended into.
        case notTraversable(path: String, kind: String)
        public var description: String {
            switch self {
            case .notFound(let p, let s): "no \"\(s)\" at /\(p)"
            case .notTraversable(let p, let k): "cannot descend into a \(k) at /\(p)"
            }
        }
    }

    /// The value at `segments` below `root`.
    public static func resolve(_ root: CID, _ segments: [String], in store: some BlockStore) throws -> IPLDNode {
        var node = try load(root, store)
        var walked: [String] = []
        for segment in segments where !segment.isEmpty {
            if case .link(let c) = node { node = try load(c, store) }
            switch node {
            case .map(let m):
                guard let v = m[segment] else { throw Failure.notFound(path: walked.joined(separator: "/"), segment: segment) }
                node = v
            case .list(let items):
                guard let i = Int(segment), i >= 0, i < items.count else {
                    throw Failure.notFound(path: walked.joined(separator: "/"), segment: segment)
                }
                node = items[i]
            default:
                throw Failure.notTraversable(path: walked.joined(separator: "/"), kind: node.kind)
            }
            walked.append(segment)
        }
        return node
    }

    static func load(_ cid: CID, _ store: some BlockStore) throws -> IPLDNode {
        guard let data = try store.get(cid) else { throw DAGTransferError.missingBlock(cid) }
        return try Codecs.codec(for: cid.codec).decode(data)
    }
}

extension DAGPath.Failure: KindedError { public var kind: ErrorKind { .notFound } }
