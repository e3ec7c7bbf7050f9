import IPLD
import Multiformats
import Storage

/// What a UnixFS node is, read from its block.
public enum UnixFSNode: Sendable {
    /// A file (or a raw block, which is a file of one leaf).
    case file(size: UInt64)
    /// A plain directory and its entries in link order.
    case directory([DirectoryEntry])
    /// A HAMT-sharded directory (entries spread over shard nodes).
    case shardedDirectory
    /// A symbolic link and its target path.
    case symlink(target: String)

    /// Reads the node at `cid` from `store`.
    public static func load(_ cid: CID, from store: any BlockStore) throws -> UnixFSNode {
        if cid.codec == .raw {
            guard let n = try store.size(cid) else { throw UnixFSError.missingBlock(cid) }
            return .file(size: UInt64(n))
        }
        guard cid.codec == .dagPB else { throw UnixFSError.notAFile(cid) }
        guard let bytes = try store.get(cid) else { throw UnixFSError.missingBlock(cid) }
        let node = try DAGPB.decodeNode(bytes)
        guard let d = node.data else { throw UnixFSError.invalid("\(cid) has no UnixFS data") }
        let fs = try UnixFSData(bytes: d)
        switch fs.kind {
        case .file, .raw: return .file(size: fs.fileSize ?? UInt64(fs.data?.count ?? 0))
        case .directory:
            return .directory(node.links.map { DirectoryEntry(name: $0.name ?? "", cid: $0.hash, size: $0.tsize) })
        case .hamtShard: return .shardedDirectory
        case .symlink: return .symlink(target: String(decoding: fs.data ?? [], as: UTF8.self))
        case .metadata: throw UnixFSError.invalid("\(cid) is a UnixFS metadata node")
        }
    }
}

/// One entry of a directory.
public struct DirectoryEntry: Sendable, Equatable {
    /// The entry's name.
    public var name: String
    /// Its CID.
    public var cid: CID
    /// The cumulative size from the link, when recorded.
    public var size: UInt64?
}
