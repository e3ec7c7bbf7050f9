import CAR
import Dispatch
import Foundation
import Multiformats
import Storage
import UnixFS

extension Node {
    /// Imports a byte stream as a UnixFS file and stores its blocks in atomic batches of
    /// about 3 MiB, written by a second thread while the next is hashed (the measured balance of
    /// throughput and peak memory, Docs/benchmarks.md) (nothing is stored with `options.onlyHash`).
    public func addFile<S: ByteSource>(_ source: S, options: ImportOptions) throws -> ImportedFile {
        let writer = BatchWriter(store: blocks)
        var pending: [Block] = []
        var pendingBytes = 0
        let importer = FileImporter(options: options) { block in
            pending.append(block)
            pendingBytes += block.data.count
            if pendingBytes >= 3 << 20 {
                try writer.submit(pending)
                pending.removeAll(keepingCapacity: true)
                pendingBytes = 0
            }
        }
        let file: ImportedFile
        do {
            file = try importer.importFile(source)
            if !pending.isEmpty { try writer.submit(pending) }
        } catch {
            _ = try? writer.finish()
            throw error
        }
        try writer.finish()
        return file
    }

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

/// Writes put-many batches on a second thread while the importer hashes the next one, so
/// hashing and disk overlap. One batch is written while the next is built, so memory stays bounded; `finish`
/// returns once every batch is durable (or throws the first failure).
final class BatchWriter: @unchecked Sendable {
    // `failure` is guarded by `lock`; the rest is immutable after init.
    private let store: any BlockStore
    private let queue = DispatchQueue(label: "qstore.import-writer")
    private let slots = DispatchSemaphore(value: 1)
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var failure: (any Error)?

    init(store: any BlockStore) { self.store = store }

    func submit(_ batch: [Block]) throws {
        if let f = lock.withLock({ failure }) { throw f }
        slots.wait()
        group.enter()
        queue.async {
            defer { self.slots.signal(); self.group.leave() }
            if self.lock.withLock({ self.failure }) != nil { return }
            do { try self.store.putMany(batch) } catch { self.lock.withLock { if self.failure == nil { self.failure = error } } }
        }
    }

    func finish() throws {
        group.wait()
        if let f = lock.withLock({ failure }) { throw f }
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
