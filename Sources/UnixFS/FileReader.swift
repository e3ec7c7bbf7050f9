import IPLD
import Multiformats
import Storage

/// Reads UnixFS files from a block store, any byte range, without loading the
/// file: only the blocks that hold the range are read, one at a time.
public struct FileReader {
    let store: any BlockStore

    /// A reader over `store`.
    public init(store: any BlockStore) { self.store = store }

    /// The deepest file DAG read (a balanced DAG of 174 links per node is 9 levels deep at an
    /// exabyte; a trickle DAG grows about one level per doubling): deeper is refused, not followed
    /// down a chain of blocks until the stack runs out.
    public static let maximumDepth = 1024

    private func load(_ cid: CID) throws -> [UInt8] {
        guard let d = try store.get(cid) else { throw UnixFSError.missingBlock(cid) }
        return d
    }

    /// The file's size (from its root block).
    public func size(of cid: CID) throws -> UInt64 {
        if cid.codec == .raw { return UInt64(try store.size(cid) ?? { throw UnixFSError.missingBlock(cid) }()) }
        let (node, fs) = try decode(cid)
        if let size = fs.fileSize { return size }
        var total = UInt64(fs.data?.count ?? 0)
        for s in node.links.isEmpty ? [] : fs.blockSizes {
            let (sum, overflow) = total.addingReportingOverflow(s)
            if overflow { throw UnixFSError.invalid("\(cid): block sizes add up past 2^64 bytes") }
            total = sum
        }
        return total
    }

    private func decode(_ cid: CID) throws -> (PBNode, UnixFSData) {
        guard cid.codec == .dagPB else { throw UnixFSError.notAFile(cid) }
        let node = try DAGPB.decodeNode(try load(cid))
        guard let d = node.data else { throw UnixFSError.notAFile(cid) }
        let fs = try UnixFSData(bytes: d)
        guard fs.kind == .file || fs.kind == .raw else { throw UnixFSError.notAFile(cid) }
        return (node, fs)
    }

    /// Calls `body` with the bytes of `[offset, offset + length)` in order (length nil: to the end).
    public func read(_ cid: CID, offset: UInt64 = 0, length: UInt64? = nil, _ body: ([UInt8]) throws -> Void) throws {
        let end = length.map { offset &+ $0 } ?? UInt64.max
        guard end > offset else { return }
        try read(cid, from: offset, to: end, base: 0, depth: 0, body)
    }

    /// Reads the part of `cid` (whose first byte is at file position `base`) that falls in [from, to).
    private func read(_ cid: CID, from: UInt64, to: UInt64, base: UInt64, depth: Int, _ body: ([UInt8]) throws -> Void) throws {
        guard depth <= Self.maximumDepth else { throw UnixFSError.invalid("\(cid): the file's DAG is deeper than \(Self.maximumDepth) levels") }
        if cid.codec == .raw || cid.multihash.code == .identity && cid.codec == .raw {
            let data = try load(cid)
            try emitSlice(data, base: base, from: from, to: to, body)
            return
        }
        let (node, fs) = try decode(cid)
        var position = base
        if let data = fs.data, !data.isEmpty {
            let (end, overflow) = position.addingReportingOverflow(UInt64(data.count))
            if overflow { throw UnixFSError.invalid("\(cid): its data ends past 2^64 bytes") }
            try emitSlice(data, base: position, from: from, to: to, body)
            position = end
        }
        guard node.links.count == fs.blockSizes.count else {
            if node.links.isEmpty { return }
            throw UnixFSError.invalid("\(cid): \(node.links.count) links but \(fs.blockSizes.count) block sizes")
        }
        for (link, size) in zip(node.links, fs.blockSizes) {
            let (childEnd, overflow) = position.addingReportingOverflow(size)
            if overflow { throw UnixFSError.invalid("\(cid): block sizes add up past 2^64 bytes") }
            if childEnd > from && position < to { try read(link.hash, from: from, to: to, base: position, depth: depth + 1, body) }
            position = childEnd
            if position >= to { break }
        }
    }

    private func emitSlice(_ data: [UInt8], base: UInt64, from: UInt64, to: UInt64, _ body: ([UInt8]) throws -> Void) throws {
        let end = base.addingReportingOverflow(UInt64(data.count))
        let start = max(from, base), stop = min(to, end.overflow ? .max : end.partialValue)
        guard stop > start else { return }
        if start == base && !end.overflow && stop == end.partialValue { try body(data) } else { try body(Array(data[Int(start - base)..<Int(stop - base)])) }
    }
}
