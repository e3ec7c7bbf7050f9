import CAR
@preconcurrency import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import IPLD
import Multiformats
import Pinning
import Qdrive
import Qindex
import Signing
import Storage
import UnixFS

/// A drive entry as listed.
public struct DriveEntry: Sendable {
    public var name: String
    /// `file` or `directory`.
    public var kind: String
    public var size: UInt64
    public var cid: CID
    public var file: DriveFile?
}

/// How a file is put.
public struct DrivePutOptions: Sendable {
    public var mediaType = "application/octet-stream"
    public var tags: [String] = []
    /// Encrypt (the default); false stores the content as a plain UnixFS file.
    public var encrypt = true
    /// Client-held mode: wrap the file key for these X25519 public keys only (the node keeps no
    /// key that opens the file). Empty: server-held, wrapped for the owner's key the node holds.
    public var recipients: [[UInt8]] = []
    public var segmentSize = SegmentCipher.defaultSegment
    public var privacyProfile: String?
    /// The file ends this long after the put (ms); a TEMPORARY `qdrive-files` policy's TTL caps it.
    public var expiresIn: UInt64?
    /// A sealed upload: the source is ciphertext a client made (`FileSealing`), stored as it is,
    /// with this encryption and these wraps (recipient key id → wrap). The node never has the key.
    public var sealed: (encryption: DriveFile.Encryption, wraps: [String: [UInt8]])?
    public init() {}
}

/// A file version: the tree version it was in.
public struct DriveFileInfo: Sendable {
    public var path: String
    public var cid: CID
    public var file: DriveFile
    /// The drive's version (its pointer's) this was read at.
    public var version: Int64
}

extension Node {
    /// Qindex pointer type of the per-owner trees: `drive/<owner>`.
    public static let drivePointerType = "drive"

    // MARK: keys

    /// The node's master key (`keystore/drive-master.key`, 32 random bytes, mode 0600), made on
    /// first use: it seals the private keys the node holds for owners.
    func driveMasterKey() throws -> SymmetricKey {
        let file = repository.path + "/keystore/drive-master.key"
        func read() throws -> SymmetricKey? {
            guard let d = FileManager.default.contents(atPath: file) else { return nil }
            guard d.count == 32 else { throw DriveError.failed("\(file): not a 32-byte key") }
            return SymmetricKey(data: d)
        }
        if let k = try read() { return k }
        return try driveKeyLock.withLock {
            if let k = try read() { return k }
            // Written whole to a temporary name, synced, renamed into place, the directory synced:
            // the key exists whole or not at all, before any key sealed under it is stored.
            let key = KeyWrap.randomKey()
            let tmp = file + ".tmp"
            unlink(tmp)
            let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else { throw DriveError.failed("cannot create \(tmp): \(String(cString: strerror(errno)))") }
            let written = write(fd, key, 32)
            let synced = fsync(fd)
            close(fd)
            guard written == 32, synced == 0, rename(tmp, file) == 0 else { throw DriveError.failed("cannot write \(file): \(String(cString: strerror(errno)))") }
            let dir = open(repository.path + "/keystore", O_RDONLY)
            if dir >= 0 { _ = fsync(dir); close(dir) }
            return SymmetricKey(data: key)
        }
    }

    static func ownerKeyKey(_ owner: String) -> [UInt8] { KeySpace.driveKeys.key([0x02] + Array(owner.utf8)) }
    static func wrapKey(_ id: String, _ keyID: String) -> [UInt8] { KeySpace.driveKeys.key([0x01] + Array(id.utf8) + [0] + Array(keyID.utf8)) }
    static func wrapPrefix(_ id: String) -> [UInt8] { KeySpace.driveKeys.key([0x01] + Array(id.utf8) + [0]) }
    /// `V 03 ‖ owner ‖ 00 ‖ path ‖ 00 ‖ file key id`: every key a path of the drive has had (erase
    /// destroys them all, not only the current version's).
    static func pathKey(_ owner: String, _ path: String, _ id: String) -> [UInt8] {
        KeySpace.driveKeys.key([0x03] + Array(owner.utf8) + [0] + Array(path.utf8) + [0] + Array(id.utf8))
    }
    static func pathPrefix(_ owner: String) -> [UInt8] { KeySpace.driveKeys.key([0x03] + Array(owner.utf8) + [0]) }
    /// `V 05 ‖ u64be(expiresAt) ‖ owner ‖ 00 ‖ path`: a file that ends then (checked against the
    /// file at the path when due: a later put or removal leaves the entry stale, not wrong).
    static func expiryKey(_ at: UInt64, _ owner: String, _ path: String) -> [UInt8] {
        KeySpace.driveKeys.key([0x05] + withUnsafeBytes(of: at.bigEndian, Array.init) + Array(owner.utf8) + [0] + Array(path.utf8))
    }

    /// `V 04 ‖ file key id`: an erased key (no wrap of it is written again).
    static func erasedKey(_ id: String) -> [UInt8] { KeySpace.driveKeys.key([0x04] + Array(id.utf8)) }

    /// Writes wraps of file key `id` (and records it under `paths`), unless the key was erased:
    /// under the keyring's lock, so an erase and a share cannot cross.
    /// `fresh`: the key id must be new (a client chose it): another file's key id is refused, or
    /// erasing one file would erase the other's wraps.
    func driveWriteWraps(_ id: String, _ wraps: [(keyID: String, wrapped: [UInt8])], owner: String, paths: [String], fresh: Bool = false) throws {
        try driveKeyLock.withLock {
            guard try repository.blocks.db.get(Self.erasedKey(id)) == nil else { throw DriveError.noKey("the file's key was erased") }
            if fresh, !(try driveWraps(id).isEmpty) { throw DriveError.conflict("the key id \(id) is another file's: choose a new one") }
            let batch = WriteBatch()
            for w in wraps { batch.put(Self.wrapKey(id, w.keyID), w.wrapped) }
            for p in paths { batch.put(Self.pathKey(owner, p, id), []) }
            try repository.blocks.db.write(batch, sync: true)
        }
    }

    /// Destroys every wrap of the keys `ids` for good (tombstoned, compacted out of LevelDB's files).
    func driveEraseKeys(_ ids: Set<String>, extra: [[UInt8]] = []) throws {
        try driveKeyLock.withLock {
            let batch = WriteBatch()
            for id in ids {
                batch.put(Self.erasedKey(id), [])
                for keyID in try driveWraps(id).keys { batch.delete(Self.wrapKey(id, keyID)) }
            }
            for k in extra { batch.delete(k) }
            try repository.blocks.db.write(batch, sync: true)
        }
        for id in ids { repository.blocks.db.compact(from: Self.wrapPrefix(id), to: Self.wrapPrefix(id) + [0xff]) }
    }

    /// The X25519 key pair the node holds for `owner` (server-held mode), made on first use.
    func driveOwnerKey(_ owner: String) throws -> Curve25519.KeyAgreement.PrivateKey {
        let master = try driveMasterKey()
        return try driveKeyLock.withLock {
            if let v = try repository.blocks.db.get(Self.ownerKeyKey(owner)), v.count > 32 {
                return try KeyWrap.unseal(Array(v.dropFirst(32)), owner: owner, master: master)
            }
            let key = Curve25519.KeyAgreement.PrivateKey()
            let batch = WriteBatch()
            batch.put(Self.ownerKeyKey(owner), Array(key.publicKey.rawRepresentation) + (try KeyWrap.seal(key, owner: owner, master: master)))
            try repository.blocks.db.write(batch, sync: true)
            return key
        }
    }

    /// The public key files are wrapped for when shared with `owner` (made on first use).
    public func drivePublicKey(_ owner: String) throws -> [UInt8] { Array(try driveOwnerKey(owner).publicKey.rawRepresentation) }

    /// The wraps of file key `id`: recipient key id → wrapped key.
    func driveWraps(_ id: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        let prefix = Self.wrapPrefix(id)
        try repository.blocks.db.makeIterator().forEach(prefix: prefix) { k, v in
            out[String(decoding: k.dropFirst(prefix.count), as: UTF8.self)] = v
            return true
        }
        return out
    }

    /// The file key of `info` wrapped for the recipient key `keyID` (client-held mode: the client
    /// opens it with its private key, `KeyWrap.unwrap`, and decrypts the content itself).
    public func driveWrappedKey(_ info: DriveFileInfo, keyID: String) throws -> [UInt8] {
        guard let e = info.file.encryption else { throw DriveError.invalid("\(info.path) is not encrypted") }
        guard let w = try driveWraps(e.id)[keyID] else { throw DriveError.noKey("\(info.path): no key \(keyID) wrap (not a recipient, or erased)") }
        return w
    }

    /// The file key of `file`, opened with the key the node holds for `reader` (the owner, or a
    /// recipient identity).
    func driveFileKey(_ file: DriveFile, reader: String) throws -> [UInt8] {
        guard let e = file.encryption else { throw DriveError.invalid("\(file.name) is not encrypted") }
        let wraps = try driveWraps(e.id)
        guard !wraps.isEmpty else { throw DriveError.noKey("\(file.name): its key was erased") }
        let key = try driveOwnerKey(reader)
        let keyID = KeyWrap.keyID(Array(key.publicKey.rawRepresentation))
        guard let wrapped = wraps[keyID] else {
            throw DriveError.noKey("\(file.name): no key the node holds opens it for \(reader) (client-held, or not shared with \(reader))")
        }
        return try KeyWrap.unwrap(wrapped, with: key, id: e.id)
    }

    // MARK: the tree

    /// The owner's tree: its root directory and the pointer's version (0: none yet).
    func driveTree(_ owner: String, version: Int64? = nil) throws -> (root: DriveDirectory, cid: CID?, version: Int64) {
        if let version {
            let (_, record) = try pointerRecord(type: Self.drivePointerType, key: owner, version: version)
            guard let c = record.cid else { return (DriveDirectory(), nil, version) }
            return (try driveDirectory(c), c, version)
        }
        guard let head = try index.head(type: Self.drivePointerType, key: owner), !head.isDeleted, let target = head.target else {
            return (DriveDirectory(), nil, try index.head(type: Self.drivePointerType, key: owner)?.version ?? 0)
        }
        return (try driveDirectory(target), target, head.version)
    }

    func driveObject(_ cid: CID) throws -> IPLDNode { try DAGCBOR().decode(try block(cid)) }
    func driveDirectory(_ cid: CID) throws -> DriveDirectory { try DriveDirectory(try driveObject(cid)) }

    /// The entry at `path` under `root` (nil path: the root).
    func driveLookup(_ root: DriveDirectory, _ rootCID: CID?, _ path: [String]) throws -> (cid: CID?, directory: DriveDirectory?, file: DriveFile?) {
        var dir = root
        var cid = rootCID
        for (i, name) in path.enumerated() {
            guard let c = dir.entries[name] else { throw DriveError.notFound("/" + path[...i].joined(separator: "/") + ": no such file or directory") }
            let node = try driveObject(c)
            if case .map(let m) = node, case .string("qdrive.file")? = m["type"] {
                guard i == path.count - 1 else { throw DriveError.conflict("/" + path[...i].joined(separator: "/") + " is a file, not a directory") }
                return (c, nil, try DriveFile(node))
            }
            dir = try DriveDirectory(node)
            cid = c
        }
        return (cid, dir, nil)
    }

    /// `root` with the entry at `path` set to `entry` (a file or directory block, with its plaintext
    /// size) or removed (nil), directories made as needed; the new blocks to store, the new root
    /// last.
    func driveReplace(_ root: DriveDirectory, _ path: [String], with entry: (cid: CID, size: UInt64)?) throws -> [Block] {
        var made: [Block] = []
        func replace(_ dir: DriveDirectory, _ i: Int) throws -> (DriveDirectory, changed: Bool) {
            var d = dir
            let name = path[i]
            if i == path.count - 1 {
                let oldSize = try d.entries[name].map { try driveEntrySize($0) } ?? 0
                if let entry {
                    d.entries[name] = entry.cid
                    d.size = d.size - min(d.size, oldSize) + entry.size
                } else {
                    guard d.entries.removeValue(forKey: name) != nil else { return (d, false) }
                    d.size -= min(d.size, oldSize)
                }
                return (d, true)
            }
            var child = DriveDirectory()
            var childSize: UInt64 = 0
            if let c = d.entries[name] {
                let node = try driveObject(c)
                if case .map(let m) = node, case .string("qdrive.file")? = m["type"] {
                    throw DriveError.conflict("/" + path[...i].joined(separator: "/") + " is a file, not a directory")
                }
                child = try DriveDirectory(node)
                childSize = child.size
            } else if entry == nil {
                return (d, false)
            }
            let (newChild, changed) = try replace(child, i + 1)
            guard changed else { return (d, false) }
            let block = try Block(data: try newChild.encoded(), codec: .dagCBOR)
            made.append(block)
            d.entries[name] = block.cid
            d.size = d.size - min(d.size, childSize) + newChild.size
            return (d, true)
        }
        let (newRoot, changed) = try replace(root, 0)
        guard changed else { throw DriveError.notFound("/" + path.joined(separator: "/") + ": no such file or directory") }
        made.append(try Block(data: try newRoot.encoded(), codec: .dagCBOR))
        return made
    }

    /// The file key ids of the files at or under `cid`, each with its path when `cid` sits at `path`.
    func driveKeyIDs(_ cid: CID, path: String) throws -> [(String, String)] {
        let node = try driveObject(cid)
        if case .map(let m) = node, case .string("qdrive.file")? = m["type"] {
            return try DriveFile(node).encryption.map { [(path, $0.id)] } ?? []
        }
        return try DriveDirectory(node).entries.flatMap { try driveKeyIDs($0.value, path: path + "/" + $0.key) }
    }

    func driveEntrySize(_ cid: CID) throws -> UInt64 {
        let node = try driveObject(cid)
        if case .map(let m) = node, case .string("qdrive.file")? = m["type"] { return try DriveFile(node).size }
        return try DriveDirectory(node).size
    }

    /// Moves the owner's tree with `change` (given the current root, it returns the new blocks,
    /// the new root last), by compare-and-swap on the pointer's version: a concurrent change makes
    /// it read again and redo (at most 8 times).
    /// `shrinking`: a removal — never refused for the quota (an owner over it must be able to free room).
    @discardableResult
    func driveCommit(_ owner: String, shrinking: Bool = false, _ change: (DriveDirectory, CID?) throws -> [Block]) throws -> Head {
        for _ in 0..<8 {
            let (root, cid, version) = try driveTree(owner)
            let blocks = try change(root, cid)
            try putBlocks(blocks)
            var update = Qindex.Update(type: Self.drivePointerType, key: owner, target: blocks.last!.cid)
            update.expectedVersion = version
            update.author = IdentityRef(squidId: owner)
            if owner != "admin" { try chargePointer(&update, to: owner, enforceQuota: !shrinking) }
            do { return try index.putBlocking(update) } catch QindexError.versionConflict { continue }
        }
        throw DriveError.conflict("the drive of \(owner) kept changing; try again")
    }

    // MARK: operations

    /// What `owner` may still store at `path` (its storage quota less its usage, plus what the
    /// file there now holds and would give back); nil: no quota.
    public func driveRoom(owner: String, path: String) throws -> UInt64? {
        let quota = access.storageQuota(of: owner)
        guard owner != "admin", quota > 0 else { return nil }
        let used = try pins.usage(of: owner)
        let replaced = (try? driveInfo(owner: owner, path: path))?.file.size ?? 0
        return (quota > used ? quota - used : 0) + replaced
    }

    /// Puts a file at `path` of `owner`'s drive from `source`, encrypted by default (streamed: a
    /// segment at a time), replacing what was there (the drive's history keeps it).
    public func drivePut<S: ByteSource>(owner: String, path text: String, from source: S, options: DrivePutOptions = DrivePutOptions()) throws -> DriveFileInfo {
        let lease = blocks.lease()
        defer { lease.release() }
        return try driveCommitFiles(owner: owner, [try drivePrepare(owner: owner, path: text, from: source, options: options)])[0]
    }

    /// A file stored and keyed, not yet in the tree (`driveCommitFiles`).
    public struct DrivePrepared: Sendable {
        public var path: [String]
        public var file: DriveFile
        /// The metadata block as prepared (a new path keeps it; replacing a file keeps that file's createdAt).
        public var block: Block
    }

    /// Stores a file's content (encrypted by default, a segment at a time) and its key's wraps;
    /// the tree names it once `driveCommitFiles` runs (under the caller's lease, or the put grace).
    public func drivePrepare<S: ByteSource>(owner: String, path text: String, from source: S, options: DrivePutOptions = DrivePutOptions()) throws -> DrivePrepared {
        let path = try DrivePath.parse(text)
        guard !path.isEmpty else { throw DriveError.invalid("put: give a file path, not the drive's root") }
        var importing = ImportOptions()
        importing.cidVersion = 1
        importing.rawLeaves = true
        var encryption: DriveFile.Encryption?
        var wraps: [String: [UInt8]] = [:]
        let content: CID
        let size: UInt64
        var add = AddSession.Options()
        if let (e, w) = options.sealed {
            try FileSealing.check(e, wraps: w)
            (encryption, wraps) = (e, w)
            importing.chunking = .fixed(e.segmentSize + SegmentCipher.tagSize)
            add.importing = importing
            let session = try self.add(add)
            _ = try session.file(path.last!, source)
            content = try session.finish()[0]
            let cipher = try SegmentCipher(fileKey: KeyWrap.randomKey(), nonce: e.nonce, segmentSize: e.segmentSize)
            let stored = try fileSize(content)
            guard let plain = cipher.plaintextSize(stored) else {
                throw DriveError.invalid("sealed: \(stored) bytes is no ciphertext of \(e.segmentSize)-byte segments (each sealed segment is 16 bytes longer)")
            }
            size = plain
        } else if options.encrypt {
            var sealing = try FileSealing(segmentSize: options.segmentSize)
            importing.chunking = .fixed(options.segmentSize + SegmentCipher.tagSize)
            let reader = EncryptingSource(sealing.cipher, source)
            add.importing = importing
            let session = try self.add(add)
            _ = try session.file(path.last!, reader)
            content = try session.finish()[0]
            size = reader.plaintextSize
            if options.recipients.isEmpty {
                try sealing.wrap(for: try drivePublicKey(owner), identity: owner)
            } else {
                for r in options.recipients { try sealing.wrap(for: r) }
            }
            (encryption, wraps) = (sealing.encryption, sealing.wraps)
        } else {
            add.importing = importing
            let session = try self.add(add)
            _ = try session.file(path.last!, source)
            content = try session.finish()[0]
            size = try fileSize(content)
        }
        // The wraps first: once the tree names the file, it opens.
        if let e = encryption {
            try driveWriteWraps(e.id, wraps.map { ($0.key, $0.value) }, owner: owner, paths: ["/" + path.joined(separator: "/")], fresh: true)
        }
        let now = blocks.clock.now
        var expiresAt = options.expiresIn.map { now + $0 }
        if let policy = try? pins.policies.policy("qdrive-files"), policy.pinningStrategy == .temporary, let ttl = policy.ttl {
            expiresAt = min(expiresAt ?? .max, now + ttl)
        }
        if let e = expiresAt {
            let batch = WriteBatch()
            batch.put(Self.expiryKey(e, owner, "/" + path.joined(separator: "/")), [])
            try repository.blocks.db.write(batch, sync: true)
        }
        var file = DriveFile(name: path.last!, mediaType: options.mediaType, size: size, owner: IdentityRef(squidId: owner), createdAt: now,
                             modifiedAt: now, tags: options.tags, privacyProfile: options.privacyProfile, encryption: encryption, content: content)
        file.expiresAt = expiresAt
        return DrivePrepared(path: path, file: file, block: try Block(data: try file.encoded(), codec: .dagCBOR))
    }

    /// Puts prepared files into `owner`'s tree in one change (one version), in order; a file
    /// replacing another keeps its createdAt; a file does not replace a directory.
    public func driveCommitFiles(owner: String, _ prepared: [DrivePrepared]) throws -> [DriveFileInfo] {
        var made: [(DrivePrepared, Block)] = []
        let head = try driveCommit(owner) { root, rootCID in
            made = []
            var tree = root
            var treeCID = rootCID
            var out: [Block] = []
            for p in prepared {
                var block = p.block
                if let found = try? driveLookup(tree, treeCID, p.path) {
                    guard let old = found.file else { throw DriveError.conflict("/" + p.path.joined(separator: "/") + " is a directory: a file does not replace it") }
                    var file = p.file
                    file.createdAt = old.createdAt
                    block = try Block(data: try file.encoded(), codec: .dagCBOR)
                }
                let changed = try driveReplace(tree, p.path, with: (block.cid, p.file.size))
                // The next file's change reads these directories.
                if prepared.count > 1 { try putBlocks(changed) }
                out += [block] + changed
                made.append((p, block))
                tree = try DriveDirectory(try DAGCBOR().decode(changed.last!.data))
                treeCID = changed.last!.cid
            }
            return out.filter { $0.cid != treeCID } + out.filter { $0.cid == treeCID }.prefix(1)
        }
        return try made.map { p, b in
            try auditDrive("q.qdrive.file.put.v1", owner: owner, path: p.path, cid: b.cid, [("content", .string(p.file.content.string)), ("size", .int(p.file.size)),
                                                                                          ("encrypted", .bool(p.file.encryption != nil))])
            return DriveFileInfo(path: "/" + p.path.joined(separator: "/"), cid: b.cid, file: try DriveFile(try DAGCBOR().decode(b.data)), version: head.version)
        }
    }

    /// The file at `path` (at the drive's `version`, or now).
    public func driveInfo(owner: String, path text: String, version: Int64? = nil) throws -> DriveFileInfo {
        let path = try DrivePath.parse(text)
        let (root, cid, v) = try driveTree(owner, version: version)
        let found = try driveLookup(root, cid, path)
        guard let file = found.file, let c = found.cid else { throw DriveError.conflict("/" + path.joined(separator: "/") + " is a directory") }
        return DriveFileInfo(path: "/" + path.joined(separator: "/"), cid: c, file: file, version: v)
    }

    /// Reads bytes `[from, from+length)` of the file (all when nil) for `reader` (its owner or a
    /// recipient identity), decrypting only the segments that hold them.
    public func driveRead(_ info: DriveFileInfo, reader: String, from: UInt64 = 0, length: UInt64? = nil, _ body: ([UInt8]) throws -> Void) throws {
        let f = info.file
        // Ended, even if the daemon has not removed it yet.
        if let e = f.expiresAt, e <= blocks.clock.now { throw DriveError.notFound("\(info.path) ended at \(Timestamps.format(e))") }
        let from = min(from, f.size)
        let length = min(length ?? f.size, f.size - from)
        guard let e = f.encryption else {
            if length > 0 || f.size == 0 { try cat(f.content, offset: from, length: length, body) }
            return
        }
        let cipher = try SegmentCipher(fileKey: try driveFileKey(f, reader: reader), nonce: e.nonce, segmentSize: e.segmentSize)
        let range = DecryptingWriter.ciphertextRange(cipher, size: f.size, from: from, length: length)
        try withoutActuallyEscaping(body) { emit in
            if range.length < 8 * UInt64(e.segmentSize) {
                var writer = DecryptingWriter(cipher: cipher, size: f.size, from: from, length: length, emit: emit)
                try cat(f.content, offset: range.offset, length: range.length) { try writer.write($0) }
                try writer.finish()
                return
            }
            // Read and cut into segments on a thread of its own; each segment is opened by
            // whichever thread is free (the reader when it is ahead, this one when it waits), and
            // handed out here in order: both cores decrypt.
            var segments = SegmentRange(cipher: cipher, size: f.size, from: from, length: length)
            let opener = segments
            let work = OrderedWork<(UInt64, [UInt8]), [UInt8]>(capacity: 8) { try opener.open($0.1, index: $0.0) }
            let content = f.content
            Thread.detachNewThread { [self] in
                defer { work.exited() }
                do {
                    var splitter = SegmentSplitter(cipher: cipher)
                    var index = opener.first
                    func hand(_ segment: [UInt8]) throws {
                        guard work.put((index, segment)) else { throw CancellationError() }
                        index += 1
                    }
                    try cat(content, offset: range.offset, length: range.length) { try splitter.write($0, hand) }
                    if let rest = splitter.finish() { try hand(rest) } else if index <= opener.lastNeeded { try hand([]) }
                    work.finish(nil)
                } catch {
                    work.finish(error)
                }
            }
            defer { work.cancelAndWait() }
            while let plain = try work.take() { try segments.take(plain, emit) }
            try segments.finish()
        }
    }

    /// The entries of the directory at `path`.
    public func driveList(owner: String, path text: String, version: Int64? = nil) throws -> [DriveEntry] {
        let path = try DrivePath.parse(text)
        let (root, cid, _) = try driveTree(owner, version: version)
        let found = try driveLookup(root, cid, path)
        if let file = found.file, let c = found.cid { return [DriveEntry(name: file.name, kind: "file", size: file.size, cid: c, file: file)] }
        return try found.directory!.entries.sorted { $0.key < $1.key }.map { name, c in
            let node = try driveObject(c)
            if case .map(let m) = node, case .string("qdrive.file")? = m["type"] {
                let f = try DriveFile(node)
                return DriveEntry(name: name, kind: "file", size: f.size, cid: c, file: f)
            }
            return DriveEntry(name: name, kind: "directory", size: try DriveDirectory(node).size, cid: c, file: nil)
        }
    }

    /// Moves (renames) `from` to `to` (replacing a file there; the history keeps it).
    public func driveMove(owner: String, from: String, to: String) throws -> Int64 {
        let source = try DrivePath.parse(from), target = try DrivePath.parse(to)
        guard !source.isEmpty, !target.isEmpty else { throw DriveError.invalid("mv: the root does not move") }
        guard source != target else { throw DriveError.invalid("mv: \(from) and \(to) are the same path") }
        guard !target.starts(with: source) else { throw DriveError.invalid("mv: \(to) is inside \(from)") }
        guard !source.starts(with: target) else { throw DriveError.invalid("mv: \(to) holds \(from): it would replace what holds it") }
        var movedIDs: [(String, String)] = []
        let head = try driveCommit(owner) { root, rootCID in
            let found = try driveLookup(root, rootCID, source)
            if let there = try? driveLookup(root, rootCID, target), there.file == nil {
                throw DriveError.conflict("/" + target.joined(separator: "/") + " is a directory: move into it by naming the path inside")
            }
            movedIDs = try driveKeyIDs(found.cid!, path: "/" + target.joined(separator: "/"))
            let size = found.file?.size ?? found.directory?.size ?? 0
            var cid = found.cid!
            var moved: [Block] = []
            if var f = found.file {
                // A file's name is the last name of its path.
                f.name = target.last!
                let b = try Block(data: try f.encoded(), codec: .dagCBOR)
                moved.append(b)
                cid = b.cid
            }
            let without = try driveReplace(root, source, with: nil)
            // The second change reads the first's directories.
            try putBlocks(without)
            let intermediate = try DriveDirectory(try DAGCBOR().decode(without.last!.data))
            return moved + without.dropLast() + (try driveReplace(intermediate, target, with: (cid, size)))
        }
        // The keys now under the new path, and every key the old path had, are erased with it too;
        // a moved file's end moves with it.
        let batch = WriteBatch()
        if let moved = try? driveInfo(owner: owner, path: to), let e = moved.file.expiresAt { batch.put(Self.expiryKey(e, owner, moved.path), []) }
        for (p, id) in movedIDs { batch.put(Self.pathKey(owner, p, id), []) }
        let (from, into) = ("/" + source.joined(separator: "/"), "/" + target.joined(separator: "/"))
        let prefix = Self.pathPrefix(owner)
        try repository.blocks.db.makeIterator().forEach(prefix: prefix + Array(from.utf8)) { k, _ in
            let rest = Array(k.dropFirst(prefix.count))
            guard let zero = rest.firstIndex(of: 0) else { return true }
            let p = String(decoding: rest[..<zero], as: UTF8.self)
            if p == from || p.hasPrefix(from + "/") {
                batch.put(Self.pathKey(owner, into + p.dropFirst(from.count), String(decoding: rest[(zero + 1)...], as: UTF8.self)), [])
            }
            return true
        }
        try repository.blocks.db.write(batch, sync: true)
        try auditDrive("q.qdrive.file.moved.v1", owner: owner, path: source, cid: nil, [("to", .string("/" + target.joined(separator: "/")))])
        return head.version
    }

    /// Removes `path` (a file, or a directory with all below it). The drive's history keeps it
    /// (`driveRestore`) until its records are let go — unless `erase`: then every wrap of the key
    /// of every file removed is destroyed (and compacted out of the keyring's files), so their
    /// ciphertext opens nowhere from then on, and an audit event names their CIDs.
    public func driveRemove(owner: String, path text: String, erase: Bool = false) throws -> (version: Int64, erased: [CID]) {
        let path = try DrivePath.parse(text)
        guard !path.isEmpty else { throw DriveError.invalid("rm: give a path, not the drive's root") }
        var files: [(CID, DriveFile)] = []
        let head = try driveCommit(owner, shrinking: true) { root, rootCID in
            files = []
            let found = try driveLookup(root, rootCID, path)
            if erase {
                func collect(_ c: CID) throws {
                    let node = try driveObject(c)
                    if case .map(let m) = node, case .string("qdrive.file")? = m["type"] { files.append((c, try DriveFile(node))); return }
                    for child in try DriveDirectory(node).entries.values { try collect(child) }
                }
                try collect(found.cid!)
            }
            return try driveReplace(root, path, with: nil)
        }
        var erased: [CID] = []
        if erase {
            var ids = Set<String>()
            var plain = 0
            for (c, f) in files {
                guard let e = f.encryption else { plain += 1; continue }
                erased += [c, f.content]
                ids.insert(e.id)
            }
            // Every key the path (or a path below it) has had: earlier versions too.
            let base = "/" + path.joined(separator: "/")
            let prefix = Self.pathPrefix(owner)
            var recorded: [[UInt8]] = []
            try repository.blocks.db.makeIterator().forEach(prefix: prefix + Array(base.utf8)) { k, _ in
                let rest = Array(k.dropFirst(prefix.count))
                guard let zero = rest.firstIndex(of: 0) else { return true }
                let p = String(decoding: rest[..<zero], as: UTF8.self)
                if p == base || p.hasPrefix(base + "/") {
                    ids.insert(String(decoding: rest[(zero + 1)...], as: UTF8.self))
                    recorded.append(k)
                }
                return true
            }
            try driveEraseKeys(ids, extra: recorded)
            try auditDrive("q.qdrive.file.erased.v1", owner: owner, path: path, cid: nil, [
                ("cids", .list(erased.map { .string($0.string) })), ("keys", .int(ids.count)), ("unencrypted", .int(plain)),
            ])
        } else {
            try auditDrive("q.qdrive.file.removed.v1", owner: owner, path: path, cid: nil, [])
        }
        return (head.version, erased)
    }

    /// Puts back what `path` was at the drive's `version` (a file or a directory), as a new version.
    public func driveRestore(owner: String, path text: String, version: Int64) throws -> Int64 {
        let path = try DrivePath.parse(text)
        guard !path.isEmpty else { throw DriveError.invalid("restore: give a path") }
        let old: (root: DriveDirectory, cid: CID?, version: Int64)
        do { old = try driveTree(owner, version: version) } catch QindexError.notFound {
            throw DriveError.notFound("version \(version) of the drive of \(owner) is not kept (the index-records policy keeps the newest versions; see qstore index history drive \(owner))")
        }
        let found = try driveLookup(old.root, old.cid, path)
        let size = found.file?.size ?? found.directory?.size ?? 0
        let head = try driveCommit(owner) { root, _ in try driveReplace(root, path, with: (found.cid!, size)) }
        try auditDrive("q.qdrive.file.restored.v1", owner: owner, path: path, cid: found.cid, [("fromVersion", .int(version))])
        return head.version
    }

    /// Shares the file with `identity` (the node holds its key) or a client's X25519 `publicKey`:
    /// the file key, opened with the owner's key, is wrapped for it too.
    public func driveShare(owner: String, path text: String, identity: String?, publicKey: [UInt8]?) throws -> DriveFileInfo {
        guard (identity == nil) != (publicKey == nil) else { throw DriveError.invalid("share: give an identity or a public key (one)") }
        let path = try DrivePath.parse(text)
        let info = try driveInfo(owner: owner, path: text)
        guard var e = info.file.encryption else { throw DriveError.invalid("\(text) is not encrypted: anyone who may read the drive reads it") }
        let fileKey = try driveFileKey(info.file, reader: owner)
        let pub = try publicKey ?? drivePublicKey(identity!)
        let keyID = KeyWrap.keyID(pub)
        let who = identity ?? "key:" + keyID
        let existed = try driveWraps(e.id)[keyID] != nil
        // Shared already: nothing changes (no new version).
        if existed, e.recipients.contains(where: { $0.keyId == keyID }) { return info }
        try driveWriteWraps(e.id, [(keyID, try KeyWrap.wrap(fileKey, for: pub, id: e.id))], owner: owner, paths: [])
        if !e.recipients.contains(where: { $0.keyId == keyID }) { e.recipients.append(.init(identity: who, keyId: keyID)) }
        let updated: DriveFileInfo
        do { updated = try driveRewrite(owner, path, info) { $0.encryption = e } } catch {
            // Not shared after all: the wrap goes again (unless it was there before).
            if !existed { try? driveKeyLock.withLock { let b = WriteBatch(); b.delete(Self.wrapKey(e.id, keyID)); try repository.blocks.db.write(b, sync: true) } }
            throw error
        }
        try auditDrive("q.qdrive.file.shared.v1", owner: owner, path: path, cid: updated.cid, [("with", .string(who))])
        return updated
    }

    /// Takes `who` (an identity, or `key:<keyId>`) off the file's recipients and destroys its wrap.
    /// A recipient who already read the file has had it; `rotate` re-encrypts the file under a new
    /// key for the others, so the old key (if kept) opens nothing new.
    ///
    /// The wraps `who` holds of the keys the path had in the drive's earlier versions go too: an
    /// overwrite makes a new key shared with nobody, and the version before it (`?version=N`)
    /// would otherwise still open for `who`.
    public func driveRevoke(owner: String, path text: String, who: String, rotate: Bool = false) throws -> DriveFileInfo {
        let path = try DrivePath.parse(text)
        let info = try driveInfo(owner: owner, path: text)
        guard var e = info.file.encryption else { throw DriveError.invalid("\(text) is not encrypted") }
        let current = e.recipients.first(where: { $0.identity == who || $0.keyId == who })
        guard current?.identity != owner else { throw DriveError.invalid("the owner's own key is not revoked (rm --erase ends the file)") }
        var wraps = try driveEarlierWraps(owner: owner, path: path, before: info.version, of: who)
        if let current { wraps.append((e.id, current.keyId)) }
        guard !wraps.isEmpty else { throw DriveError.notFound("\(who) is not a recipient of \(text) (nor of its earlier versions)") }
        let batch = WriteBatch()
        for (id, keyId) in wraps { batch.delete(Self.wrapKey(id, keyId)) }
        try repository.blocks.db.write(batch, sync: true)
        for (id, keyId) in wraps { repository.blocks.db.compact(from: Self.wrapKey(id, keyId), to: Self.wrapKey(id, keyId)) }
        guard let r = current else {
            try auditDrive("q.qdrive.file.revoked.v1", owner: owner, path: path, cid: info.cid, [("who", .string(who)), ("rotated", .bool(false)), ("earlierKeys", .int(wraps.count))])
            return info
        }
        e.recipients.removeAll { $0.keyId == r.keyId }
        var updated = try driveRewrite(owner, path, info) { $0.encryption = e }
        if rotate { updated = try driveRotate(owner: owner, info: updated) }
        try auditDrive("q.qdrive.file.revoked.v1", owner: owner, path: path, cid: updated.cid, [("who", .string(who)), ("rotated", .bool(rotate))])
        return updated
    }

    /// `who`'s wraps (key id, recipient key id) of the keys `path` had in the drive's kept versions
    /// before `version`, whose wrap is still stored.
    func driveEarlierWraps(owner: String, path: [String], before version: Int64, of who: String) throws -> [(String, String)] {
        var found: [(String, String)] = []
        var seen = Set<String>()
        var v = version - 1
        while v >= 1 {
            defer { v -= 1 }
            let tree: (root: DriveDirectory, cid: CID?, version: Int64)
            do { tree = try driveTree(owner, version: v) } catch QindexError.notFound { break }
            guard let file = (try? driveLookup(tree.root, tree.cid, path))?.file, let e = file.encryption, seen.insert(e.id).inserted else { continue }
            guard let r = e.recipients.first(where: { $0.identity == who || $0.keyId == who }), r.identity != owner else { continue }
            if try driveWraps(e.id)[r.keyId] != nil { found.append((e.id, r.keyId)) }
        }
        return found
    }

    /// Re-encrypts a file under a new key for its remaining recipients the node holds keys for
    /// (spooled through a temporary file, removed after).
    func driveRotate(owner: String, info: DriveFileInfo) throws -> DriveFileInfo {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qdrive-rotate-\(UUID().uuidString)").path
        guard FileManager.default.createFile(atPath: tmp, contents: nil, attributes: [.posixPermissions: 0o600]), let out = FileHandle(forWritingAtPath: tmp) else {
            throw DriveError.failed("cannot make a temporary file to re-encrypt through")
        }
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try driveRead(info, reader: owner) { try out.write(contentsOf: Data($0)) }
        try out.close()
        var options = DrivePutOptions()
        options.mediaType = info.file.mediaType
        options.tags = info.file.tags
        options.privacyProfile = info.file.privacyProfile
        options.segmentSize = info.file.encryption?.segmentSize ?? SegmentCipher.defaultSegment
        if let e = info.file.expiresAt { options.expiresIn = max(1, e > blocks.clock.now ? e - blocks.clock.now : 1) }
        // Shared again with those that still hold a wrap of the old key, nobody else.
        let old = info.file.encryption?.id
        let wrapped = Set(try old.map { try driveWraps($0).keys } ?? [:].keys)
        let others = info.file.encryption?.recipients.filter { $0.identity != owner && wrapped.contains($0.keyId) } ?? []
        var rotated = try drivePut(owner: owner, path: info.path, from: try FileSource(path: tmp), options: options)
        for r in others where !r.identity.hasPrefix("key:") { rotated = try driveShare(owner: owner, path: info.path, identity: r.identity, publicKey: nil) }
        // The old key is destroyed: nothing opens with it from now on.
        if let old { try driveEraseKeys([old]) }
        return rotated
    }

    /// Replaces the file at `path` with `info.file` changed by `change` (a new metadata block).
    func driveRewrite(_ owner: String, _ path: [String], _ info: DriveFileInfo, _ change: (inout DriveFile) -> Void) throws -> DriveFileInfo {
        var file = info.file
        change(&file)
        let b = try Block(data: try file.encoded(), codec: .dagCBOR)
        let head = try driveCommit(owner) { root, rootCID in
            guard try driveLookup(root, rootCID, path).cid == info.cid else { throw DriveError.conflict("\(info.path) changed meanwhile; try again") }
            return [b] + (try driveReplace(root, path, with: (b.cid, file.size)))
        }
        return DriveFileInfo(path: info.path, cid: b.cid, file: file, version: head.version)
    }

    /// When the next drive file ends (nil: none has a TTL).
    public func nextDriveExpiry() throws -> UInt64? {
        var next: UInt64?
        try repository.blocks.db.makeIterator().forEach(prefix: KeySpace.driveKeys.key([0x05])) { k, _ in
            guard k.count >= 10 else { return true }
            next = k[2..<10].reduce(0) { $0 << 8 | UInt64($1) }
            return false
        }
        return next
    }

    /// Ends the drive files whose time has come: each is removed and its keys erased (a file with
    /// a TTL ends for good, its older versions at that path too). Returns how many.
    @discardableResult
    public func expireDriveFiles() throws -> Int {
        let now = blocks.clock.now
        var due: [(key: [UInt8], at: UInt64, owner: String, path: String)] = []
        try repository.blocks.db.makeIterator().forEach(prefix: KeySpace.driveKeys.key([0x05])) { k, _ in
            guard k.count >= 10 else { return true }
            let at = k[2..<10].reduce(0) { $0 << 8 | UInt64($1) }
            guard at <= now else { return false }
            let rest = Array(k[10...])
            if let zero = rest.firstIndex(of: 0) {
                due.append((k, at, String(decoding: rest[..<zero], as: UTF8.self), String(decoding: rest[(zero + 1)...], as: UTF8.self)))
            }
            return due.count < 1000
        }
        var ended = 0
        for d in due {
            let batch = WriteBatch()
            batch.delete(d.key)
            do {
                // Still the file that was given this time? (A later put or a removal makes the entry stale.)
                if let info = try? driveInfo(owner: d.owner, path: d.path), let e = info.file.expiresAt, e <= now {
                    try driveEnd(owner: d.owner, info)
                    ended += 1
                }
            } catch {
                // Tried again in a minute; the others go on.
                batch.put(Self.expiryKey(now + 60_000, d.owner, d.path), [])
            }
            try repository.blocks.db.write(batch, sync: true)
        }
        return ended
    }

    /// Ends one file whose time has come: removed from the tree if it is still the file there
    /// (checked in the commit), and its own key erased.
    func driveEnd(owner: String, _ info: DriveFileInfo) throws {
        let path = try DrivePath.parse(info.path)
        try driveCommit(owner, shrinking: true) { root, rootCID in
            guard try driveLookup(root, rootCID, path).cid == info.cid else { throw DriveError.conflict("\(info.path) changed: not ended") }
            return try driveReplace(root, path, with: nil)
        }
        if let id = info.file.encryption?.id { try driveEraseKeys([id]) }
        try auditDrive("q.qdrive.file.expired.v1", owner: owner, path: path, cid: info.cid, [("content", .string(info.file.content.string))])
    }

    func auditDrive(_ type: String, owner: String, path: [String], cid: CID?, _ details: [(String, IPLDNode)]) throws {
        let all = [("owner", IPLDNode.string(owner)), ("path", .string("/" + path.joined(separator: "/")))] + details
        try commits.run { txn, _ in txn.audit(type, ref: "drive/\(owner)", cid: cid, details: all) }
    }
}

/// An `EncryptingReader` as a `ByteSource` (its plaintext count readable after).
public final class EncryptingSource: ByteSource {
    var reader: EncryptingReader
    public init(_ r: EncryptingReader) { reader = r }
    /// Encrypts what `source` reads with `cipher`.
    public convenience init<S: ByteSource>(_ cipher: SegmentCipher, _ source: S) {
        var input = source
        self.init(EncryptingReader(cipher: cipher) { try input.read(into: $0) })
    }
    public var plaintextSize: UInt64 { reader.plaintextSize }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try reader.read(into: buffer) }
}
