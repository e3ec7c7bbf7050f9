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
            let link = try makeSymlink(try FileManager.default.destinationOfSymbolicLink(atPath: path))
            onAdded(relative, link.cid, link.dagSize)
            return link
        case .typeDirectory?:
            let names = try FileManager.default.contentsOfDirectory(atPath: path)
                .filter { includeHidden || !$0.hasPrefix(".") }
                .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            var children: [(name: String, cid: CID, dagSize: UInt64)] = []
            for name in names {
                let child = try importEntry(path + "/" + name, relative: relative + "/" + name)
                children.append((name, child.cid, child.dagSize))
            }
            let dir = try makeDirectory(children)
            onAdded(relative, dir.cid, dir.dagSize)
            return dir
        default:
            let file = try FileImporter(options: options, emit: emit).importFile(try FileSource(path: path))
            onAdded(relative, file.cid, file.dagSize)
            return (file.cid, file.dagSize)
        }
    }

    /// A UnixFS symlink node pointing at `target` (never followed).
    public func makeSymlink(_ target: String) throws -> (cid: CID, dagSize: UInt64) {
        let block = try node(PBNode(data: UnixFSData(kind: .symlink, data: Array(target.utf8)).encode()))
        try emitUnlessHashing(block)
        return (block.cid, UInt64(block.data.count))
    }

    /// A directory of already-imported entries (sorted by name bytes here): a plain dag-pb
    /// directory, or a HAMT once the links reach the sharding threshold. Also `--wrap-with-directory`.
    public func makeDirectory(_ entries: [(name: String, cid: CID, dagSize: UInt64)]) throws -> (cid: CID, dagSize: UInt64) {
        let sorted = entries.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.name == b.name {
            throw UnixFSError.invalid("duplicate directory entry \(a.name)")
        }
        let linkBytes = sorted.reduce(0) { $0 + $1.name.utf8.count + $1.cid.bytes.count }
        if linkBytes >= Self.shardingThreshold {
            return try HAMT.build(sorted, cidVersion: options.cidVersion, hash: options.hash) { try emitUnlessHashing($0) }
        }
        let links = sorted.map { PBLink(hash: $0.cid, name: $0.name, tsize: $0.dagSize) }
        let block = try node(PBNode(links: links, data: UnixFSData(kind: .directory).encode()))
        try emitUnlessHashing(block)
        return (block.cid, UInt64(block.data.count) + sorted.reduce(0) { $0 + $1.dagSize })
    }

    /// The names along a relative entry path; refuses empty, absolute and `.`/`..` paths, which
    /// would leave the tree being built.
    public static func pathComponents(_ path: String) throws -> [String] {
        let c = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !c.isEmpty, !c.contains(".."), !c.contains("."), !path.hasPrefix("/") else { throw UnixFSError.invalid("unsafe path \"\(path)\"") }
        return c
    }

    /// Directories for entries given by relative paths (files already imported, plus empty
    /// directories), as `ipfs add -r` over the RPC builds them from multipart parts. Returns
    /// every directory made, children before parents, with its path.
    public func makeTree(files: [(path: String, cid: CID, dagSize: UInt64)], directories: [String]) throws -> [(path: String, cid: CID, dagSize: UInt64)] {
        final class Dir { var files: [String: (CID, UInt64)] = [:]; var dirs: [String: Dir] = [:] }
        let top = Dir()
        let components = Self.pathComponents
        func dir(_ c: ArraySlice<String>) -> Dir {
            var d = top
            for name in c {
                if let next = d.dirs[name] { d = next } else { let n = Dir(); d.dirs[name] = n; d = n }
            }
            return d
        }
        for p in directories { _ = dir(try components(p)[...]) }
        for f in files {
            let c = try components(f.path)
            dir(c.dropLast()).files[c.last!] = (f.cid, f.dagSize)
        }
        var made: [(path: String, cid: CID, dagSize: UInt64)] = []
        func build(_ d: Dir, _ path: String) throws -> (cid: CID, dagSize: UInt64) {
            var entries = d.files.map { (name: $0.key, cid: $0.value.0, dagSize: $0.value.1) }
            for (name, sub) in d.dirs {
                let built = try build(sub, path.isEmpty ? name : path + "/" + name)
                entries.append((name, built.cid, built.dagSize))
            }
            let result = try makeDirectory(entries)
            made.append((path, result.cid, result.dagSize))
            return result
        }
        for (name, sub) in top.dirs.sorted(by: { $0.key < $1.key }) { _ = try build(sub, name) }
        return made
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
