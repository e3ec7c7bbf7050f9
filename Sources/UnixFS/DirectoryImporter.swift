import CAR
import Foundation
import IPLD
import Multiformats
import Storage

/// Imports a directory tree from disk as UnixFS, as `ipfs add -r` does: each
/// directory is a dag-pb node `{Data: UnixFS{Type: Directory}}` whose links are its
/// entries sorted by name bytes, each with the entry's cumulative size; files go
/// through `FileImporter`; symbolic links become UnixFS symlinks (never followed);
/// hidden entries (names starting with ".") are skipped unless asked for.
///
/// A directory whose links reach Kubo's sharding threshold (256 KiB of names and CIDs,
/// `>=` as Kubo v0.22 compares) becomes a HAMT-sharded directory (`HAMT.build`), as Kubo does.
public struct DirectoryImporter {
    public let options: ImportOptions
    /// Include entries whose names start with ".".
    public var includeHidden = false
    private let emit: (Block) throws -> Void
    /// Kubo's `Import.UnixFSHAMTDirectorySizeThreshold`: the sum of link name and CID byte lengths.
    public static let shardingThreshold = 262_144

    /// Called for every file and directory added, with its path relative to the import root.
    public var onAdded: (String, CID, UInt64) -> Void = { _, _, _ in }

    public init(options: ImportOptions = ImportOptions(), emit: @escaping (Block) throws -> Void) {
        self.options = options
        self.emit = emit
    }

    /// Imports the tree at `path`; returns the root's CID and cumulative size.
    public func importTree(at path: String) throws -> (cid: CID, dagSize: UInt64) {
        try importEntry(path, relative: URL(fileURLWithPath: path).lastPathComponent)
    }

    private func importEntry(_ path: String, relative: String) throws -> (cid: CID, dagSize: UInt64) {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        switch attributes[.type] as? FileAttributeType {
        case .typeSymbolicLink?:
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
            let data = UnixFSData(kind: .symlink, data: Array(target.utf8)).encode()
            let block = try node(PBNode(data: data))
            try emitUnlessHashing(block)
            onAdded(relative, block.cid, UInt64(block.data.count))
            return (block.cid, UInt64(block.data.count))
        case .typeDirectory?:
            let names = try FileManager.default.contentsOfDirectory(atPath: path)
                .filter { includeHidden || !$0.hasPrefix(".") }
                .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            var links: [PBLink] = []
            var linkBytes = 0
            var total: UInt64 = 0
            for name in names {
                let child = try importEntry(path + "/" + name, relative: relative + "/" + name)
                links.append(PBLink(hash: child.cid, name: name, tsize: child.dagSize))
                linkBytes += name.utf8.count + child.cid.bytes.count
                total += child.dagSize
            }
            if linkBytes >= Self.shardingThreshold {
                let sharded = try HAMT.build(links.map { ($0.name ?? "", $0.hash, $0.tsize ?? 0) }, cidVersion: options.cidVersion, hash: options.hash) {
                    try emitUnlessHashing($0)
                }
                onAdded(relative, sharded.cid, sharded.dagSize)
                return sharded
            }
            let block = try node(PBNode(links: links, data: UnixFSData(kind: .directory).encode()))
            try emitUnlessHashing(block)
            let size = UInt64(block.data.count) + total
            onAdded(relative, block.cid, size)
            return (block.cid, size)
        default:
            let file = try FileImporter(options: options, emit: emit).importFile(try FileSource(path: path))
            onAdded(relative, file.cid, file.dagSize)
            return (file.cid, file.dagSize)
        }
    }

    /// Wraps already-imported entries in one directory (`--wrap-with-directory`).
    public func wrap(_ entries: [(name: String, cid: CID, dagSize: UInt64)]) throws -> (cid: CID, dagSize: UInt64) {
        let sorted = entries.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        let links = sorted.map { PBLink(hash: $0.cid, name: $0.name, tsize: $0.dagSize) }
        let block = try node(PBNode(links: links, data: UnixFSData(kind: .directory).encode()))
        try emitUnlessHashing(block)
        return (block.cid, UInt64(block.data.count) + sorted.reduce(0) { $0 + $1.dagSize })
    }

    private func node(_ pb: PBNode) throws -> Block {
        let bytes = try DAGPB.encodeNode(pb)
        let v0 = options.cidVersion == 0 && options.hash == .sha2_256
        return try Block(data: bytes, codec: .dagPB, hash: options.hash, cidVersion: v0 ? 0 : 1)
    }

    private func emitUnlessHashing(_ block: Block) throws {
        if !options.onlyHash { try emit(block) }
    }
}
