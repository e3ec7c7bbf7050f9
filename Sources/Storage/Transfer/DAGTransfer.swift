import CAR
import IPLD
import Multiformats

/// Why a DAG could not be moved.
public enum DAGTransferError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A block the DAG links to is not in the store.
    case missingBlock(CID)
    public var description: String {
        switch self {
        case .missingBlock(let c): "block \(c) is not in the repository (the DAG is incomplete)"
        }
    }
}

/// What an import did.
public struct ImportSummary: Sendable, Equatable {
    /// The CAR's roots.
    public var roots: [CID]
    /// Blocks read and stored.
    public var blocks: Int
    /// Bytes of block data.
    public var bytes: UInt64
}

/// Moving whole DAGs between a block store and CAR streams.
public enum DAGTransfer {
    /// Writes the DAG under `root` to `writer` depth first (pre-order, links in
    /// block order), each block once — the order `ipfs dag export` writes.
    /// Memory: the set of visited CIDs and the stack of pending links.
    public static func export<S: ByteSink>(
        root: CID, from store: some BlockStore, to writer: inout CARWriter<S>,
        progress: (_ blocks: Int, _ bytes: UInt64) -> Void = { _, _ in }
    ) throws {
        var visited = Set<CID>()
        var stack = [root]
        var blocks = 0
        var bytes: UInt64 = 0
        while let cid = stack.popLast() {
            guard visited.insert(cid).inserted else { continue }
            guard let data = try store.get(cid) else { throw DAGTransferError.missingBlock(cid) }
            try writer.write(cid: cid, data: data)
            blocks += 1
            bytes += UInt64(data.count)
            progress(blocks, bytes)
            let links = try store.links(of: cid) ?? (try Codecs.links(in: data, codec: cid.codec))
            // Reversed, so the first link is visited first.
            for l in links.reversed() where !visited.contains(l) { stack.append(l) }
        }
    }

    /// Stores every block of a CAR (the reader verifies each against its CID) through a
    /// `BlockBatcher` (atomic batches of about `batchBytes`); returns the roots and counts.
    public static func `import`<Source: ByteSource>(
        from reader: inout CARReader<Source>, into store: some BlockStore, batchBytes: Int = 3 << 20,
        progress: (_ blocks: Int, _ bytes: UInt64) -> Void = { _, _ in }
    ) throws -> ImportSummary {
        var summary = ImportSummary(roots: reader.roots, blocks: 0, bytes: 0)
        let batcher = try BlockBatcher(store: store, batchBytes: batchBytes)
        // A CAR from elsewhere must be verified; one read without verification is hashed here.
        let verified = reader.options.verifyBlocks
        do {
            while let b = try reader.next() {
                try batcher.add(verified ? Block(trusted: b.cid, data: b.data) : try Block(cid: b.cid, data: b.data))
                summary.blocks += 1
                summary.bytes += UInt64(b.data.count)
                if summary.blocks % 256 == 0 { progress(summary.blocks, summary.bytes) }
            }
        } catch {
            // What was read and verified before the failure is stored (and reported).
            if (try? batcher.finish()) != nil { progress(summary.blocks, summary.bytes) }
            throw error
        }
        try batcher.finish()
        progress(summary.blocks, summary.bytes)
        return summary
    }
}

extension DAGTransferError: KindedError { public var kind: ErrorKind { .notFound } }
