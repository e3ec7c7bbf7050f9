import CAR
import Multiformats
import Pinning
import Storage
import UnixFS

/// What an add reports as it goes, in Kubo's order: progress while a file is read, one `added`
/// per file as it is done, then the directories (the root last).
public enum AddEvent: Sendable, Equatable {
    /// `bytes` of the file `name` read so far (Kubo's `{"Name","Bytes"}` lines; 0 at the end of an empty file).
    case progress(name: String, bytes: UInt64)
    /// An entry is stored (a file, symlink or directory; `name` is its path in the add, "" for
    /// the wrapping directory).
    case added(name: String, cid: CID, dagSize: UInt64)
}

/// One `add`, the use case behind `qstore add` and `/api/v0/add`: files, symlinks and empty
/// directories named by their path in the add (Kubo's clients send "dir/sub/file"), or trees read
/// from local disk; `finish` builds the directories the names imply, wraps the top-level entries
/// when asked, and pins what the add made at the top (the wrapping directory, else each
/// top-level entry), as Kubo does.
///
/// Blocks go through one `BlockBatcher`, flushed after each file, so an `added` event means the
/// file's blocks are durable. A lease is held from the first block to the pins: a collection in
/// between cannot take them. Make one with `Node.add` (or `AddSession.hashOnly`), then call
/// `finish` or `cancel`.
public final class AddSession {
    /// How the add is made.
    public struct Options: Sendable {
        /// UnixFS import settings (chunker, CID version, raw leaves, hash, inlining, only-hash).
        public var importing = ImportOptions()
        /// Wrap the top-level entries in a directory.
        public var wrap = false
        /// How each root is pinned; nil: not pinned.
        public var pin: (@Sendable (CID) throws -> Pinner.Request)?
        /// Include names starting with "." when reading trees from disk.
        public var includeHidden = false
        public init() {}
    }

    private let node: Node?
    private let options: Options
    private let report: (AddEvent) throws -> Void
    private let lease: CountedBlockStore.Lease?
    private let batcher: BlockBatcher?
    /// Entries named with a path ("dir/file"), built into directories by `finish`.
    private var nested: [(path: String, cid: CID, dagSize: UInt64)] = []
    private var directories: [String] = []
    /// Top-level entries, in the order they came.
    private var top: [(name: String, cid: CID, dagSize: UInt64)] = []
    private var ended = false
    /// The paths this add has given, as files (and symlinks) and as directories: a path given
    /// twice, or as a file and as a directory, is refused (the tree would keep one, silently).
    private var filePaths = Set<String>(), directoryPaths = Set<String>()

    /// `batcher`: where `node`'s blocks go (nil: nothing is stored).
    init(node: Node?, batcher: BlockBatcher?, options: Options, report: @escaping (AddEvent) throws -> Void) {
        self.node = node
        var options = options
        if node == nil { options.importing.onlyHash = true }
        if options.importing.onlyHash { options.pin = nil }
        self.options = options
        self.report = report
        lease = options.importing.onlyHash ? nil : node?.blocks.lease()
        self.batcher = batcher
    }

    /// An add that stores nothing and needs no repository (`--only-hash`).
    public static func hashOnly(_ options: Options, report: @escaping (AddEvent) throws -> Void = { _ in }) -> AddSession {
        AddSession(node: nil, batcher: nil, options: options, report: report)
    }

    deinit { lease?.release() }

    private func emit(_ block: Block) throws { try batcher?.add(block) }

    /// The path segments of an entry's name; `NodeError.badInput` for a name no file system or TAR
    /// header can carry (NUL), or a path with "." or ".." segments. A top-level name may be empty
    /// (Kubo's clients send unnamed data so) unless it is to be wrapped.
    private func segments(_ name: String) throws -> [String] {
        if name.utf8.contains(0) {
            throw NodeError.badInput("invalid UnixFS: the name \"\(name.replacingOccurrences(of: "\0", with: "\\0"))\" contains a NUL character")
        }
        if name.isEmpty {
            if options.wrap { throw NodeError.badInput("invalid UnixFS: an entry of a wrapped directory needs a name") }
            return [""]
        }
        do { return try DirectoryImporter.pathComponents(name) } catch { throw NodeError.badInput("\(error)") }
    }

    /// Claims the path `parts` as a directory or as a file; `NodeError.badInput` when the add gave
    /// it already, or gave one of its parents as a file. Two top-level entries of one name are two
    /// roots, not a conflict, unless they are to be wrapped in one directory.
    private func claim(_ parts: [String], directory: Bool) throws {
        let path = parts.joined(separator: "/")
        func conflict(_ p: String) -> NodeError { .badInput("invalid UnixFS: the add gives \"\(p)\" twice, or as a file and as a directory") }
        var prefix = ""
        for p in parts.dropLast() {
            prefix = prefix.isEmpty ? p : prefix + "/" + p
            if filePaths.contains(prefix) { throw conflict(prefix) }
            directoryPaths.insert(prefix)
        }
        if directory {
            if filePaths.contains(path) { throw conflict(path) }
            directoryPaths.insert(path)
        } else {
            let separateRoot = parts.count == 1 && !options.wrap
            if directoryPaths.contains(path) || (!separateRoot && filePaths.contains(path)) { throw conflict(path) }
            filePaths.insert(path)
        }
    }

    private func record(_ name: String, _ cid: CID, _ dagSize: UInt64) throws {
        let parts = try segments(name)
        if parts.count == 1 { top.append((parts[0], cid, dagSize)) } else { nested.append((parts.joined(separator: "/"), cid, dagSize)) }
        try report(.added(name: parts.joined(separator: "/"), cid: cid, dagSize: dagSize))
    }

    /// Imports `source` as the file `name`; with `progressEvery`, reports the bytes read that often
    /// and at the end.
    @discardableResult
    public func file<S: ByteSource>(_ name: String, _ source: S, progressEvery: UInt64? = nil) throws -> ImportedFile {
        let parts = try segments(name)
        try claim(parts, directory: false)
        let shown = parts.joined(separator: "/")
        let observed = ObservedSource(source, every: progressEvery ?? .max) { bytes, _ in
            if progressEvery != nil { try self.report(.progress(name: shown, bytes: bytes)) }
        }
        let f = try FileImporter(options: options.importing) { try self.emit($0) }.importFile(observed)
        try batcher?.finish()
        try record(name, f.cid, f.dagSize)
        return f
    }

    /// Adds a symbolic link `name` → `target`.
    public func symlink(_ name: String, target: String) throws {
        try claim(try segments(name), directory: false)
        let link = try DirectoryImporter(options: options.importing) { try self.emit($0) }.makeSymlink(target)
        try batcher?.finish()
        try record(name, link.cid, link.dagSize)
    }

    /// Declares the directory `name` (so an empty one is kept).
    public func directory(_ name: String) throws {
        let parts = try segments(name)
        try claim(parts, directory: true)
        directories.append(parts.joined(separator: "/"))
    }

    /// Imports the file, directory or symlink at `path` on local disk as the top-level entry named
    /// after its last component, reporting every entry of it.
    @discardableResult
    public func tree(at path: String) throws -> (cid: CID, dagSize: UInt64) {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        try claim(try segments(name), directory: false)
        var importer = DirectoryImporter(options: options.importing) { try self.emit($0) }
        importer.includeHidden = options.includeHidden
        var events: [(String, CID, UInt64)] = []
        importer.onAdded = { events.append(($0, $1, $2)) }
        let root = try importer.importTree(at: path)
        try batcher?.finish()
        for (p, c, s) in events.dropLast() { try report(.added(name: p, cid: c, dagSize: s)) }
        try record(name, root.cid, root.dagSize)
        return root
    }

    /// Builds the directories the names imply, wraps when asked, stores what is pending and pins
    /// the roots; returns the roots (the wrapping directory, else each top-level entry).
    @discardableResult
    public func finish() throws -> [CID] {
        precondition(!ended, "an AddSession is finished once")
        ended = true
        defer { lease?.release() }
        guard !top.isEmpty || !nested.isEmpty || !directories.isEmpty else { throw NodeError.badInput("the add holds no file") }
        let builder = DirectoryImporter(options: options.importing) { try self.emit($0) }
        var top = self.top
        if !directories.isEmpty || !nested.isEmpty {
            let tree: [(path: String, cid: CID, dagSize: UInt64)]
            do { tree = try builder.makeTree(files: nested, directories: directories) } catch let e as UnixFSError { throw NodeError.badInput("\(e)") }
            try batcher?.finish()
            for d in tree {
                try report(.added(name: d.path, cid: d.cid, dagSize: d.dagSize))
                if !d.path.contains("/") { top.append((d.path, d.cid, d.dagSize)) }
            }
        }
        var roots = top.map(\.cid)
        if options.wrap {
            let w = try builder.makeDirectory(top)
            try batcher?.finish()
            roots = [w.cid]
            try report(.added(name: "", cid: w.cid, dagSize: w.dagSize))
        }
        if let node, let request = options.pin {
            for cid in roots { try node.pins.pin(try node.withQuota(try request(cid))) }
        }
        // Once the pins hold (a refused pin fails the add: its blocks are garbage, not a change).
        if let node {
            let sizes = Dictionary(top.map { ($0.cid, $0.dagSize) }, uniquingKeysWith: { a, _ in a })
            try node.auditAlone(AuditEntry("q.unixfs.add.v1", ref: roots.map(\.description).joined(separator: ","), cid: roots.first, details: [
                ("roots", .list(roots.map { .string($0.description) })), ("dagSize", .int(roots.compactMap { sizes[$0] }.reduce(0, +))),
                ("pinned", .bool(options.pin != nil)),
            ]))
        }
        return roots
    }

    /// Ends an add that will not finish: what it stored and nothing else references is
    /// collectable at once (no put grace period: a disk filled by a failed add can be emptied).
    public func cancel() {
        ended = true
        try? batcher?.finish()
        if let node {
            // A transaction per few thousand blocks: an add of any size is let go in bounded memory.
            try? batcher?.forEachStored { stored in
                try node.blocks.transaction { txn in for mh in stored { try txn.unprotect(mh) } }
            }
        }
        lease?.release()
    }
}

extension Node {
    /// Starts an add into this node (see `AddSession`).
    public func add(_ options: AddSession.Options, report: @escaping (AddEvent) throws -> Void = { _ in }) throws -> AddSession {
        // What is stored is remembered for `cancel`, on disk: memory stays flat however large the add.
        let batcher = options.importing.onlyHash ? nil : try BlockBatcher(store: blocks, rememberIn: repository.path)
        return AddSession(node: self, batcher: batcher, options: options, report: report)
    }
}
