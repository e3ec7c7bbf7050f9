import CAR
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import IPLD
import Locking
import Multiformats
import Pinning
import Signing
import Storage
import Synchronization

/// Failures of backups, naming the set, part and block.
public enum BackupError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    case invalid(String)
    /// No such set (or no complete one).
    case notFound(String)
    /// A set's parent is not in the directory: restore refuses, naming the id it needs.
    case missingParent(set: String, parent: String)
    /// A backup or restore job is running already.
    case busy(String)
    /// A part or block that is not what the manifest says.
    case corrupt(String)

    public var description: String {
        switch self {
        case .invalid(let m), .notFound(let m), .corrupt(let m), .busy(let m): m
        case .missingParent(let set, let parent): "backup \(set) needs its parent \(parent), which is not in the directory"
        }
    }

    public var kind: ErrorKind {
        switch self {
        case .invalid: .invalidInput
        case .notFound, .missingParent: .notFound
        case .corrupt, .busy: .conflict
        }
    }

    public var code: String? {
        switch self {
        case .invalid: nil
        case .notFound: "BACKUP_NOT_FOUND"
        case .missingParent: "BACKUP_PARENT_MISSING"
        case .corrupt: "BACKUP_CORRUPT"
        case .busy: "BACKUP_BUSY"
        }
    }
}

/// A directory of backup sets: `<dir>/<id>/part-0001.car …` (CARv2, each with its index),
/// `<dir>/<id>/manifest.json` and, written last, `<dir>/<id>/manifest.car` (a CARv1 whose root is
/// the manifest block). A set without `manifest.car` is incomplete (interrupted, or being written).
public struct BackupDirectory: Sendable {
    public let path: String
    public init(_ path: String) { self.path = path }

    public struct SetInfo: Sendable {
        public var id: String
        public var manifest: BackupManifest?
        /// Why the set cannot be used (incomplete, an unreadable manifest), if so.
        public var problem: String?
        public var complete: Bool { manifest != nil }
    }

    /// Every set, oldest first.
    public func sets() throws -> [SetInfo] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            throw BackupError.notFound("no backup directory \(path)")
        }
        return names.filter(BackupManifest.isID).sorted().map { id in
            guard FileManager.default.fileExists(atPath: "\(path)/\(id)/manifest.car") else {
                return SetInfo(id: id, manifest: nil, problem: "incomplete: no manifest (interrupted, or still being written)")
            }
            do { return SetInfo(id: id, manifest: try manifest(id), problem: nil) } catch { return SetInfo(id: id, manifest: nil, problem: "\(error)") }
        }
    }

    /// The manifest of set `id` (not yet verified: `verifySignature`).
    public func manifest(_ id: String) throws -> BackupManifest {
        guard BackupManifest.isID(id) else { throw BackupError.invalid("\(id.prefix(80)) is not a backup id (YYYYMMDDTHHMMSSmmmZ-xxxxxx)") }
        let file = "\(path)/\(id)/manifest.car"
        guard FileManager.default.fileExists(atPath: file) else {
            throw FileManager.default.fileExists(atPath: "\(path)/\(id)") ? BackupError.notFound("backup \(id) is incomplete (no manifest)") : BackupError.notFound("no backup \(id) in \(path)")
        }
        var reader = try CARReader(FileSource(path: file))
        guard let root = reader.roots.first, let block = try reader.next(), block.cid == root else { throw BackupError.corrupt("\(id)/manifest.car: the manifest block is not its root") }
        let m: BackupManifest
        do { m = try BackupManifest(decoding: block.data) } catch { throw BackupError.corrupt("\(id)/manifest.car: \(error)") }
        guard m.id == id else { throw BackupError.corrupt("\(id)/manifest.car is the manifest of \(m.id)") }
        return m
    }

    /// The newest complete set.
    public func latest() throws -> BackupManifest? { try sets().last(where: \.complete)?.manifest }

    /// `id` and its ancestors, oldest first; a missing ancestor refuses naming it.
    public func chain(_ id: String) throws -> [BackupManifest] {
        var out: [BackupManifest] = []
        var next: String? = id
        var child = id
        while let current = next {
            let m: BackupManifest
            do { m = try manifest(current) } catch BackupError.notFound where current != id { throw BackupError.missingParent(set: child, parent: current) }
            guard !out.contains(where: { $0.id == m.id }), out.count < 10_000 else { throw BackupError.corrupt("backup \(id): its parents form a loop") }
            out.append(m)
            child = current
            next = m.parent
        }
        return out.reversed()
    }

    /// The multihashes the sets' parts hold, read from their CARv2 indexes (the parts' blocks are
    /// not read).
    public func multihashes(in chain: [BackupManifest]) throws -> Set<Multihash> {
        var out = Set<Multihash>()
        for m in chain {
            for p in m.parts {
                let file = "\(path)/\(m.id)/\(p.name)"
                guard let index = try CARReader(path: file).readIndex() else { throw BackupError.corrupt("\(m.id)/\(p.name) has no index") }
                for bucket in index.buckets {
                    for e in bucket.entries {
                        out.insert(Multihash(code: Multicodec(bucket.code), digest: e.digest))
                    }
                }
            }
        }
        return out
    }

    /// SHA-256 of a file.
    static func sha256(_ file: String) throws -> (digest: [UInt8], size: UInt64) {
        guard let h = FileHandle(forReadingAtPath: file) else { throw BackupError.notFound("cannot open \(file)") }
        defer { try? h.close() }
        var hasher = HashFunction.lookup(.sha2_256)!.makeHasher()
        var size: UInt64 = 0
        while true {
            let chunk = h.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { hasher.update($0) }
            size += UInt64(chunk.count)
        }
        return (hasher.finalize(), size)
    }

    /// Writes the manifest last: `manifest.json`, then `manifest.car` through a temporary file
    /// renamed into place (a set is complete when, and only when, that name exists).
    public func writeManifest(_ m: BackupManifest) throws {
        let dir = "\(path)/\(m.id)"
        try m.json().write(to: URL(fileURLWithPath: dir + "/manifest.json"))
        let bytes = try m.encoded()
        let block = try Block(data: bytes, codec: .dagCBOR)
        let tmp = dir + "/manifest.car.tmp"
        let sink = try FileSink(path: tmp)
        var car = try CARWriter(roots: [block.cid], sink: sink)
        try car.write(cid: block.cid, data: bytes)
        let out = try car.finish()
        try out.flush()
        try out.sync()
        guard rename(tmp, dir + "/manifest.car") == 0 else { throw BackupError.invalid("cannot write \(dir)/manifest.car: \(String(cString: strerror(errno)))") }
        syncDirectory(dir)
    }
}

/// Writes a set's blocks into CARv2 parts of at most `partSize` bytes (a part holds at least one
/// block), each with its index; a part's root is an identity CID naming the set and the part.
public final class PartWriter {
    let directory: String
    let id: String
    let partSize: UInt64
    private var writer: CARWriter<FileSink>?
    private var current = 0
    private var currentBlocks: UInt64 = 0
    private var currentBytes: UInt64 = 0
    private var finished: [(name: String, blocks: UInt64)] = []
    /// Each closed part is hashed on a thread of its own while the next one is written.
    private let hashing = DispatchGroup()
    private let digests = PartDigests()
    public private(set) var blocks: UInt64 = 0
    public private(set) var bytes: UInt64 = 0

    public init(directory: String, id: String, partSize: UInt64) throws {
        self.directory = directory + "/" + id
        self.id = id
        self.partSize = max(partSize, 1 << 20)
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    static func name(_ n: Int) -> String { "part-" + String(format: "%04d", n) + ".car" }

    public func write(_ cid: CID, _ data: [UInt8]) throws {
        if writer != nil, currentBytes + UInt64(data.count) > partSize { try close() }
        if writer == nil {
            current += 1
            let label = try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: [("backup", .string(id)), ("part", .int(current))])))
            let root = CID(codec: .dagCBOR, multihash: Multihash(code: .identity, digest: label))
            writer = try CARWriter(v2Roots: [root], sink: try FileSink(path: directory + "/" + Self.name(current)))
            currentBlocks = 0
            currentBytes = 0
        }
        try writer!.write(cid: cid, data: data)
        currentBlocks += 1
        currentBytes += UInt64(data.count) + UInt64(cid.bytes.count) + 10
        blocks += 1
        bytes += UInt64(data.count)
    }

    private func close() throws {
        guard var w = writer else { return }
        let sink = try w.finish()
        try sink.flush()
        writer = nil
        let name = Self.name(current)
        finished.append((name, currentBlocks))
        let file = directory + "/" + name
        let digests = self.digests
        // Synced and hashed while the next part is written.
        DispatchQueue.global().async(group: hashing) {
            let r = Result { () throws -> (digest: [UInt8], size: UInt64) in
                let fd = open(file, O_RDONLY)
                guard fd >= 0, fsync(fd) == 0 else {
                    if fd >= 0 { Glibc.close(fd) }
                    throw BackupError.invalid("cannot sync \(file): \(String(cString: strerror(errno)))")
                }
                Glibc.close(fd)
                return try BackupDirectory.sha256(file)
            }
            digests.table.locked { $0[name] = r.map { ($0.digest, $0.size) } }
        }
    }

    /// Closes the last part, waits until every part is synced and hashed, and describes them
    /// (size, SHA-256).
    public func finish() throws -> [BackupManifest.Part] {
        try close()
        syncDirectory(directory)
        hashing.wait()
        return try finished.map { f in
            guard let r = digests.table.locked({ $0[f.name] }) else { throw BackupError.corrupt("\(f.name) was not hashed") }
            let (digest, size) = try r.get()
            return BackupManifest.Part(name: f.name, size: size, sha256: digest, blocks: f.blocks)
        }
    }
}

/// The parts' digests, as their hashing threads finish.
final class PartDigests: Sendable {
    let table = Mutex<[String: Result<([UInt8], UInt64), any Error>]>([:])
}
