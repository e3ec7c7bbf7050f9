import CAR
import IPLD
import Multiformats
import Storage

/// How a file is cut and laid out, with `ipfs add`'s defaults.
public struct ImportOptions: Sendable {
    /// How the file is cut (`--chunker`; Kubo's default `size-262144`).
    public var chunking = Chunking.default
    /// CID version: 0 (Kubo's default) or 1.
    public var cidVersion = 0
    /// Leaves as raw blocks; nil means "raw when CIDv1", as Kubo decides.
    public var rawLeaves: Bool? = nil
    /// Hash function of every block.
    public var hash = Multicodec.sha2_256
    /// Children per node of the balanced layout.
    public var maximumLinks = 174
    /// Compute CIDs only: no block is built or handed out (`--only-hash`).
    public var onlyHash = false
    /// The trickle layout instead of the balanced one (`--trickle`).
    public var trickle = false
    /// Nodes whose encoded size is at most this many bytes get an identity CID (`--inline`; Kubo's default limit is 32).
    public var inlineLimit: Int? = nil

    /// Kubo's defaults.
    public init() {}

    /// Options from a Kubo chunker spec (see `Chunking(spec:)`); nil keeps the default.
    public mutating func chunker(_ spec: String?) throws {
        guard let spec else { return }
        chunking = try Chunking(spec: spec)
    }

    var usesRawLeaves: Bool { rawLeaves ?? (cidVersion == 1) }
}

/// A file imported as a UnixFS DAG.
public struct ImportedFile: Sendable, Equatable {
    /// The root CID.
    public let cid: CID
    /// The file's size in bytes.
    public let size: UInt64
    /// The cumulative size of the DAG (what Kubo's `ipfs add` reports as its size).
    public let dagSize: UInt64
}

/// Imports a byte stream as a UnixFS file with the balanced (or trickle) layout and any of
/// Kubo's chunkers, exactly as Kubo's importer (boxo `balanced.Layout`), so CIDs match
/// `ipfs add` for the same settings. Blocks go to `emit` as they are finished; memory
/// holds one chunk and the links of the nodes on the current path, whatever the size.
public struct FileImporter {
    public let options: ImportOptions
    private let emit: (Block) throws -> Void
    private let leafBuffer = LeafBuffer()

    /// An importer that hands every finished block to `emit` (e.g. a batching store writer, or nothing for --only-hash).
    public init(options: ImportOptions = ImportOptions(), emit: @escaping (Block) throws -> Void) {
        self.options = options
        self.emit = emit
    }

    /// A finished node: its CID, the file bytes under it and its cumulative DAG size.
    struct Built {
        var cid: CID
        var fileSize: UInt64
        var dagSize: UInt64
    }

    /// Reads `source` to its end and returns the file's root.
    public func importFile<S: ByteSource>(_ source: S) throws -> ImportedFile {
        var chunks = Chunker(source: source, chunking: options.chunking)
        if options.trickle {
            var root = InternalNode()
            let built = try fillTrickle(&root, maxDepth: -1, chunks: &chunks)
            return ImportedFile(cid: built.cid, size: built.fileSize, dagSize: built.dagSize)
        }
        guard try !chunks.atEnd() else {
            let empty = try leaf(UnsafeRawBufferPointer(start: nil, count: 0))
            return ImportedFile(cid: empty.cid, size: 0, dagSize: empty.dagSize)
        }
        var root = try chunks.withNext { try leaf($0) }
        var depth = 1
        while !(try chunks.atEnd()) {
            var node = InternalNode()
            node.add(root)
            root = try fill(&node, depth: depth, chunks: &chunks)
            depth += 1
        }
        return ImportedFile(cid: root.cid, size: root.fileSize, dagSize: root.dagSize)
    }

    private struct InternalNode {
        var links: [PBLink] = []
        var blockSizes: [UInt64] = []
        var dagSize: UInt64 = 0
        mutating func add(_ child: Built) {
            links.append(PBLink(hash: child.cid, name: "", tsize: child.dagSize))
            blockSizes.append(child.fileSize)
            dagSize += child.dagSize
        }
    }

    /// boxo's `fillNodeRec`: add children while there is room and data; at depth 1 the
    /// children are leaves, above it each child is a new internal node filled one level down.
    private func fill<S: ByteSource>(_ node: inout InternalNode, depth: Int, chunks: inout Chunker<S>) throws -> Built {
        while node.links.count < options.maximumLinks, !(try chunks.atEnd()) {
            if depth == 1 {
                node.add(try chunks.withNext { try leaf($0) })
            } else {
                var child = InternalNode()
                node.add(try fill(&child, depth: depth - 1, chunks: &chunks))
            }
        }
        return try commit(node)
    }

    /// boxo's trickle layout: a node takes up to `maximumLinks` leaves, then, for each depth
    /// 1, 2, … (below `maxDepth`), up to four subtrees of that depth; leaves are UnixFS `Raw`
    /// nodes (or raw blocks with raw leaves).
    private func fillTrickle<S: ByteSource>(_ node: inout InternalNode, maxDepth: Int, chunks: inout Chunker<S>) throws -> Built {
        while node.links.count < options.maximumLinks, !(try chunks.atEnd()) {
            node.add(try chunks.withNext { try leaf($0, kind: .raw) })
        }
        var depth = 1
        while maxDepth == -1 || depth < maxDepth {
            if try chunks.atEnd() { break }
            var repeatIndex = 0
            while repeatIndex < 4, !(try chunks.atEnd()) {
                var child = InternalNode()
                node.add(try fillTrickle(&child, maxDepth: depth, chunks: &chunks))
                repeatIndex += 1
            }
            depth += 1
        }
        return try commit(node)
    }

    private func commit(_ node: InternalNode) throws -> Built {
        let fileSize = node.blockSizes.reduce(0, +)
        let data = UnixFSData(kind: .file, fileSize: fileSize, blockSizes: node.blockSizes).encode()
        let bytes = try DAGPB.encodeNode(PBNode(links: node.links, data: data))
        let block = try makeBlock(bytes, codec: .dagPB)
        if !options.onlyHash { try emit(block) }
        return Built(cid: block.cid, fileSize: fileSize, dagSize: UInt64(bytes.count) + node.dagSize)
    }

    private func leaf(_ chunk: UnsafeRawBufferPointer, kind: UnixFSData.Kind = .file) throws -> Built {
        if options.usesRawLeaves {
            let cid = try cidOf(chunk, codec: .raw)
            if !options.onlyHash { try emit(Block(hashedCID: cid, data: Array(chunk))) }
            return Built(cid: cid, fileSize: UInt64(chunk.count), dagSize: UInt64(chunk.count))
        }
        // The dag-pb leaf `{Data: UnixFS{Type: File, Data: chunk, filesize: n}}`, written straight
        // into the block's own array (or, when nothing is emitted, into one reused buffer) and
        // hashed there: the chunk's bytes are copied once.
        let n = UInt64(chunk.count)
        var unixfs: [UInt8] = [0x08, UInt8(kind.rawValue)]
        if !chunk.isEmpty { unixfs.append(0x12); Varint.append(n, to: &unixfs) }
        var tail: [UInt8] = [0x18]
        Varint.append(n, to: &tail)
        var head: [UInt8] = [0x0a]
        Varint.append(UInt64(unixfs.count + chunk.count + tail.count), to: &head)
        let total = head.count + unixfs.count + chunk.count + tail.count
        func write(_ out: UnsafeMutableBufferPointer<UInt8>) {
            var at = 0
            for part in [head, unixfs] { for b in part { out[at] = b; at += 1 } }
            if let base = chunk.baseAddress { (out.baseAddress! + at).initialize(from: base.assumingMemoryBound(to: UInt8.self), count: chunk.count) }
            at += chunk.count
            for b in tail { out[at] = b; at += 1 }
        }
        if options.onlyHash {
            let scratch = leafBuffer.reserve(total)
            write(scratch)
            let cid = try cidOf(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: scratch[0..<total])), codec: .dagPB)
            return Built(cid: cid, fileSize: n, dagSize: UInt64(total))
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: total) { out, count in
            write(out)
            count = total
        }
        let cid = try bytes.withUnsafeBytes { try cidOf($0, codec: .dagPB) }
        try emit(Block(hashedCID: cid, data: bytes))
        return Built(cid: cid, fileSize: n, dagSize: UInt64(total))
    }

    private func cidOf(_ bytes: UnsafeRawBufferPointer, codec: Multicodec) throws -> CID {
        if let limit = options.inlineLimit, bytes.count <= limit {
            return CID(codec: codec, multihash: Multihash(code: .identity, digest: Array(bytes)))
        }
        let mh: Multihash
        do { mh = try Multihash.compute(bytes, function: options.hash) } catch { throw BlockStoreError.invalidBlock(reason: "\(error)") }
        // CIDv0 exists only for dag-pb with sha2-256; raw leaves are always CIDv1.
        if options.cidVersion == 0 && codec == .dagPB && options.hash == .sha2_256 { return try CID(v0: mh) }
        return CID(codec: codec, multihash: mh)
    }

    private func makeBlock(_ bytes: [UInt8], codec: Multicodec) throws -> Block {
        Block(hashedCID: try bytes.withUnsafeBytes { try cidOf($0, codec: codec) }, data: bytes)
    }
}

/// A growable scratch buffer for encoding leaves (owned by one importer, used by one thread).
final class LeafBuffer {
    private var storage = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 0)
    func reserve(_ n: Int) -> UnsafeMutableBufferPointer<UInt8> {
        if storage.count < n {
            storage.deallocate()
            storage = .allocate(capacity: n)
        }
        return storage
    }
    deinit { storage.deallocate() }
}
