import CAR
import Multiformats
import Storage
import UnixFS

extension Node {
    /// Streams the bytes of a UnixFS file (or raw block) at `root`/`path`, `[offset, offset+length)`.
    public func cat(_ root: CID, path: [String] = [], offset: UInt64 = 0, length: UInt64? = nil, _ body: ([UInt8]) throws -> Void) throws {
        let target = path.isEmpty ? root : try resolve(root, path: path).terminal
        do {
            try FileReader(store: blocks).read(target, offset: offset, length: length, body)
        } catch UnixFSError.missingBlock(let c) {
            throw NodeError.notFound(c)
        } catch let e as UnixFSError {
            throw NodeError.badInput("\(e)")
        }
    }

    /// The size of the UnixFS file at `cid`.
    public func fileSize(_ cid: CID) throws -> UInt64 {
        do { return try FileReader(store: blocks).size(of: cid) } catch UnixFSError.missingBlock(let c) { throw NodeError.notFound(c) } catch let e as UnixFSError {
            throw NodeError.badInput("\(e)")
        }
    }
}

/// One entry of `ls`.
public struct ListedEntry: Sendable {
    /// The entry name.
    public var name: String
    /// Its CID.
    public var cid: CID
    /// The link's cumulative size.
    public var size: UInt64
    /// Kubo's entry type: 1 directory, 2 file, 4 symlink (0 unknown).
    public var type: Int
    /// A symlink's target.
    public var target: String
}

extension Node {
    /// The entries of the directory at `root`/`path` (plain or HAMT-sharded), with their types.
    public func list(_ root: CID, path: [String] = []) throws -> [ListedEntry] {
        let cid = path.isEmpty ? root : try resolve(root, path: path).terminal
        let entries: [DirectoryEntry]
        do {
            switch try UnixFSNode.load(cid, from: blocks) {
            case .directory(let e): entries = e
            case .shardedDirectory: entries = try HAMT.entries(cid, store: blocks)
            default: throw NodeError.badInput("\(cid) is not a directory")
            }
            return entries.map { e in
                var type = 0, target = ""
                switch try? UnixFSNode.load(e.cid, from: blocks) {
                case .file?: type = 2
                case .directory?, .shardedDirectory?: type = 1
                case .symlink(let t)?: type = 4; target = t
                case nil: type = 0
                }
                return ListedEntry(name: e.name, cid: e.cid, size: e.size ?? 0, type: type, target: target)
            }
        } catch UnixFSError.missingBlock(let c) { throw NodeError.notFound(c) }
    }
}
