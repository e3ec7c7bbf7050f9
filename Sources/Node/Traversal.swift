import IPLD
import UnixFS
import Multiformats
import Storage

/// How much of the DAG under a path a CAR response carries (IPIP-402).
public enum DAGScope: String, Sendable, CaseIterable {
    /// Every block reachable from the terminal element.
    case all
    /// The blocks needed to read the terminal entity: a whole UnixFS file; a
    /// directory's own node (and its HAMT shards); the block itself otherwise.
    case entity
    /// Only the terminal block.
    case block
}

/// A resolved `/ipfs/<root>/<path>`: the terminal CID and the blocks crossed to reach it.
public struct ResolvedPath: Sendable, Equatable {
    /// The CID the path ends at.
    public var terminal: CID
    /// Every block the resolution read, in order (root first); their CIDs are the `X-Ipfs-Roots`.
    public var crossed: [CID]
}

extension Node {
    /// Resolves a path below `root`: named links through dag-pb nodes, map keys and list
    /// indexes through dag-cbor/dag-json values, following links into the next block.
    public func resolve(_ root: CID, path: [String]) throws -> ResolvedPath {
        var current = root
        var crossed: [CID] = []
        var segments = path.filter { !$0.isEmpty }[...]
        while let segment = segments.first {
            crossed.append(current)
            let data = try block(current)
            switch current.codec {
            case .dagPB:
                let pb: PBNode
                do { pb = try DAGPB.decodeNode(data) } catch { throw NodeError.badInput("\(current) is not valid dag-pb: \(error)") }
                if UnixFSKind(pb) == .hamtShard {
                    let found: (walked: [CID], entry: CID?)
                    do { found = try HAMT.lookup(segment, in: current, store: blocks) } catch UnixFSError.missingBlock(let c) { throw NodeError.notFound(c) }
                    guard let entry = found.entry else { throw NodeError.noSuchPath(segment, in: current) }
                    // The root shard is already counted; the sub-shards walked are crossed too.
                    crossed.append(contentsOf: found.walked.dropFirst())
                    current = entry
                    segments = segments.dropFirst()
                    continue
                }
                guard let link = pb.links.first(where: { $0.name == segment }) else { throw NodeError.noSuchPath(segment, in: current) }
                current = link.hash
                segments = segments.dropFirst()
            case .dagCBOR, .dagJSON:
                var node: IPLDNode
                do { node = try Codecs.codec(for: current.codec).decode(data) } catch { throw NodeError.badInput("\(current) does not decode: \(error)") }
                // Walk within this block until a link is reached or the path ends.
                while let seg = segments.first {
                    switch node {
                    case .map(let m):
                        guard let v = m[seg] else { throw NodeError.noSuchPath(seg, in: current) }
                        node = v
                    case .list(let items):
                        guard let i = Int(seg), i >= 0, i < items.count else { throw NodeError.noSuchPath(seg, in: current) }
                        node = items[i]
                    default:
                        throw NodeError.noSuchPath(seg, in: current)
                    }
                    segments = segments.dropFirst()
                    if case .link = node { break }
                }
                guard case .link(let next) = node else {
                    if segments.isEmpty { throw NodeError.unsupported("paths ending inside a block (at a \(node.kind)) in \(current)") }
                    throw NodeError.noSuchPath(segments.first!, in: current)
                }
                current = next
            default:
                throw NodeError.noSuchPath(segment, in: current)
            }
        }
        return ResolvedPath(terminal: current, crossed: crossed)
    }

    /// Emits the blocks of a CAR response for `root`/`path` (IPIP-402/412): the blocks
    /// crossed by the path, then the terminal's `scope`, depth first; with `duplicates`
    /// a block is emitted each time the walk meets it, otherwise once. A missing block
    /// stops the walk with `NodeError.notFound`.
    /// With `entityBytes` (`from:to` of IPIP-402; negative counts from the end, nil `to` is the end)
    /// and `dag-scope=entity`, a UnixFS file contributes only the blocks holding that range.
    public func carBlocks(
        root: CID, path: [String], scope: DAGScope, duplicates: Bool, entityBytes: (from: Int64, to: Int64?)? = nil,
        emit: (CID, [UInt8]) throws -> Void
    ) throws {
        let resolved = try resolve(root, path: path)
        try withoutActuallyEscaping(emit) { emitAny in
            // Identity CIDs carry their data: they are never written to a CAR.
            let emit: (CID, [UInt8]) throws -> Void = { c, d in if c.multihash.code != .identity { try emitAny(c, d) } }
            try carBlocks(resolved, scope: scope, duplicates: duplicates, entityBytes: entityBytes, emit: emit)
        }
    }

    private func carBlocks(_ resolved: ResolvedPath, scope: DAGScope, duplicates: Bool, entityBytes: (from: Int64, to: Int64?)?, emit: (CID, [UInt8]) throws -> Void) throws {
        var seen = Set<CID>()
        func send(_ cid: CID, _ data: [UInt8]) throws {
            if duplicates || seen.insert(cid).inserted { try emit(cid, data) }
        }
        for c in resolved.crossed { try send(c, try block(c)) }
        let terminal = resolved.terminal
        let data = try block(terminal)
        switch scope {
        case .block:
            try send(terminal, data)
        case .all:
            try walk(terminal, data, seen: &seen, duplicates: duplicates, follow: { _, _ in true }, emit: emit)
        case .entity:
            guard terminal.codec == .dagPB, let pb = try? DAGPB.decodeNode(data) else {
                try send(terminal, data)
                return
            }
            switch UnixFSKind(pb) {
            case .file, .raw:
                if let range = entityBytes, let fs = try? UnixFSData(bytes: pb.data ?? []) {
                    guard let size = Int64(exactly: fs.fileSize ?? 0) else {
                        throw NodeError.badInput("\(terminal) declares a file size of \(fs.fileSize ?? 0) bytes, past what a file can have")
                    }
                    let from = range.from < 0 ? max(0, size + range.from) : range.from
                    let to = range.to.map { $0 < 0 ? size + $0 : $0 } ?? (size - 1)
                    try send(terminal, data)
                    if from <= to && from < size { try walkRange(pb, fs, from: UInt64(from), to: UInt64(min(to, size - 1)), base: 0, send: send) }
                } else {
                    try walk(terminal, data, seen: &seen, duplicates: duplicates, follow: { _, _ in true }, emit: emit)
                }
            case .hamtShard:
                // The shard nodes, not the entries: sub-shard links are named by their 2-hex-digit prefix alone.
                try walk(terminal, data, seen: &seen, duplicates: duplicates,
                         follow: { _, link in link.name.map { $0.utf8.count == 2 } ?? false }, emit: emit)
            default:
                try send(terminal, data)
            }
        }
    }

    /// The children of a file node overlapping the inclusive byte range [from, to], depth first;
    /// blocks outside the range are never read (they may be missing).
    private func walkRange(_ node: PBNode, _ fs: UnixFSData, from: UInt64, to: UInt64, base: UInt64, depth: Int = 0, send: (CID, [UInt8]) throws -> Void) throws {
        guard depth <= FileReader.maximumDepth else { throw NodeError.badInput("a UnixFS file DAG deeper than \(FileReader.maximumDepth) levels") }
        func sum(_ a: UInt64, _ b: UInt64) throws -> UInt64 {
            let (s, overflow) = a.addingReportingOverflow(b)
            if overflow { throw NodeError.badInput("a UnixFS file whose block sizes add up past 2^64 bytes") }
            return s
        }
        var position = try sum(base, UInt64(fs.data?.count ?? 0))
        for (link, size) in zip(node.links, fs.blockSizes) {
            let end = try sum(position, size)
            if size > 0 && end > from && position <= to {
                let bytes = try block(link.hash)
                try send(link.hash, bytes)
                if link.hash.codec == .dagPB {
                    let child = try DAGPB.decodeNode(bytes)
                    if let d = child.data, let cfs = try? UnixFSData(bytes: d), !child.links.isEmpty {
                        try walkRange(child, cfs, from: from, to: to, base: position, depth: depth + 1, send: send)
                    }
                }
            }
            position = end
            if position > to { break }
        }
    }

    /// Depth-first pre-order walk from `cid`, following the links `follow` allows.
    private func walk(
        _ cid: CID, _ data: [UInt8], seen: inout Set<CID>, duplicates: Bool,
        follow: (CID, PBLink) -> Bool, emit: (CID, [UInt8]) throws -> Void
    ) throws {
        var stack: [(CID, [UInt8]?)] = [(cid, data)]
        while let (c, known) = stack.popLast() {
            if !duplicates && seen.contains(c) { continue }
            seen.insert(c)
            let bytes = try known ?? block(c)
            try emit(c, bytes)
            var next: [CID] = []
            if c.codec == .dagPB {
                let pb = try DAGPB.decodeNode(bytes)
                next = pb.links.filter { follow(c, $0) }.map(\.hash)
            } else {
                next = try blocks.links(of: c) ?? (try Codecs.links(in: bytes, codec: c.codec))
            }
            for l in next.reversed() { stack.append((l, nil)) }
        }
    }
}

/// The UnixFS node type in a dag-pb node's Data (field 1 of the UnixFS protobuf).
public enum UnixFSKind: UInt64, Sendable {
    case raw = 0, directory = 1, file = 2, metadata = 3, symlink = 4, hamtShard = 5

    /// The type of `node`, or nil when its Data is not UnixFS.
    public init?(_ node: PBNode) {
        guard let d = node.data, d.count >= 2, d[0] == 0x08, let (v, _) = try? Varint.decode(d, at: 1), let k = UnixFSKind(rawValue: v) else {
            return nil
        }
        self = k
    }
}
