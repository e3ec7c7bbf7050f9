@preconcurrency import Crypto
import CAR
import Foundation
import IPLD
import Multiformats
import Node
import Qdrive
import Storage
import Testing
import TestSupport

/// Qdrive over a real repository: encrypted and plain round trips at the sizes around segment
/// borders (and 100 MiB), ranges, history and restore, sharing and revoking (with rotation),
/// client-held keys, and erasure that leaves no wrap anywhere in the repository's key spaces.
@Suite struct DriveTests {
    final class Repo {
        let repository: Repository
        let node: Node
        let path: String
        init(_ path: String) throws {
            self.path = path
            try Repository.initialize(at: path)
            repository = try Repository(path: path, purpose: "drive tests")
            node = try Node(repository: repository)
        }
        deinit { repository.close() }

        func read(_ owner: String, _ path: String, reader: String? = nil, from: UInt64 = 0, length: UInt64? = nil, version: Int64? = nil) throws -> [UInt8] {
            var out: [UInt8] = []
            try node.driveRead(try node.driveInfo(owner: owner, path: path, version: version), reader: reader ?? owner, from: from, length: length) { out += $0 }
            return out
        }
    }

    static func bytes(_ n: Int, seed: Int = 1) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* (seed | 1) &+ $0 >> 11 &+ seed) } }

    @Test func roundTripsEncryptedAndPlain() throws {
        let dir = TemporaryDirectory()
        let r = try Repo(dir.path + "/repo")
        let seg = SegmentCipher.minimumSegment
        for encrypt in [true, false] {
            for n in [0, 1, seg - 1, seg, seg + 1, 4 * seg + 3] {
                var o = DrivePutOptions()
                o.encrypt = encrypt
                o.segmentSize = seg
                let data = Self.bytes(n, seed: n)
                let info = try r.node.drivePut(owner: "alice", path: "/t/\(encrypt)/f-\(n)", from: BytesSource(data), options: o)
                #expect(info.file.size == UInt64(n) && (info.file.encryption != nil) == encrypt)
                #expect(try r.read("alice", "/t/\(encrypt)/f-\(n)") == data, "\(encrypt) \(n)")
                if encrypt, n > 16 {
                    // What is stored is not the plaintext.
                    var stored: [UInt8] = []
                    try r.node.cat(info.file.content) { stored += $0 }
                    #expect(stored.count == n + 16 * ((n + seg - 1) / seg) && !stored.starts(with: data.prefix(16)))
                }
            }
        }
        // Ranges across segment borders.
        let n = 4 * seg + 3
        let data = Self.bytes(n, seed: n)
        for (from, length) in [(0, 1), (seg - 1, 2), (seg, seg), (2 * seg - 5, seg + 10), (n - 1, 1), (n - 10, 100), (3, 0)] {
            let expected = Array(data[from..<min(n, from + length)])
            #expect(try r.read("alice", "/t/true/f-\(n)", from: UInt64(from), length: UInt64(length)) == expected, "\(from)+\(length)")
        }
        #expect(try r.node.driveList(owner: "alice", path: "/t/true").count == 6)
        #expect(try r.node.verifyRepository().isClean)
    }

    @Test func aHundredMebibytesRoundTrip() throws {
        let dir = TemporaryDirectory()
        let r = try Repo(dir.path + "/repo")
        let n = 100 << 20
        var hasher = SHA256()
        var at = 0
        struct Gen: ByteSource {
            var at = 0
            let n: Int
            mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
                let k = min(buffer.count, n - at)
                for i in 0..<k { buffer[i] = UInt8(truncatingIfNeeded: (at + i) &* 2654435761 >> 13) }
                at += k
                return k
            }
        }
        _ = try r.node.drivePut(owner: "alice", path: "big.bin", from: Gen(n: n))
        var expected = SHA256()
        var g = Gen(n: n)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let k = try chunk.withUnsafeMutableBytes { try g.read(into: $0) }
            if k == 0 { break }
            expected.update(data: chunk[..<k])
        }
        try r.node.driveRead(try r.node.driveInfo(owner: "alice", path: "big.bin"), reader: "alice") { b in
            hasher.update(data: b)
            at += b.count
        }
        #expect(at == n && hasher.finalize() == expected.finalize())
    }

    /// A read long enough to decrypt on both threads (`OrderedWork`) still detects every change to
    /// the ciphertext, and hands out in order what came before the broken segment.
    @Test func tamperingIsDetectedWhenDecryptingInParallel() throws {
        let dir = TemporaryDirectory()
        let r = try Repo(dir.path + "/repo")
        let seg = SegmentCipher.minimumSegment, s = seg + SegmentCipher.tagSize
        let n = 20 * seg + 123
        let data = Self.bytes(n, seed: 7)
        var o = DrivePutOptions()
        o.segmentSize = seg
        let info = try r.node.drivePut(owner: "alice", path: "/big", from: BytesSource(data), options: o)
        #expect(try r.read("alice", "/big") == data)
        var sealed: [UInt8] = []
        try r.node.cat(info.file.content) { sealed += $0 }
        var flipped = sealed
        flipped[13 * s + 5] ^= 0x20
        var swapped = sealed
        swapped.replaceSubrange((9 * s)..<(11 * s), with: sealed[(10 * s)..<(11 * s)] + sealed[(9 * s)..<(10 * s)])
        let dropped = Array(sealed[..<(12 * s)] + sealed[(13 * s)...])
        let cut = Array(sealed[..<(18 * s)])
        var plain = DrivePutOptions()
        plain.encrypt = false
        for (what, bytes, firstBad) in [("flipped", flipped, 13), ("swapped", swapped, 9), ("dropped", dropped, 12), ("cut", cut, 18)] {
            let stored = try r.node.drivePut(owner: "alice", path: "/tampered/\(what)", from: BytesSource(bytes), options: plain)
            var forged = info
            forged.file.content = stored.file.content
            var out: [UInt8] = []
            #expect(throws: DriveError.self, "\(what)") { try r.node.driveRead(forged, reader: "alice") { out += $0 } }
            // Everything handed out came in order, from the segments before the broken one.
            #expect(out.count <= firstBad * seg && out == Array(data.prefix(out.count)), "\(what)")
            // A range that ends before the broken segment still reads.
            let length = UInt64(min(firstBad, 9) * seg - 1)
            var head: [UInt8] = []
            try r.node.driveRead(forged, reader: "alice", from: 1, length: length) { head += $0 }
            #expect(head == Array(data[1..<(1 + Int(length))]), "\(what)")
        }
    }

    @Test func historySharingRevokingAndClientHeldKeys() throws {
        let dir = TemporaryDirectory()
        let r = try Repo(dir.path + "/repo")
        let v1 = try r.node.drivePut(owner: "alice", path: "docs/plan.txt", from: BytesSource(Array("first".utf8)))
        _ = try r.node.drivePut(owner: "alice", path: "docs/plan.txt", from: BytesSource(Array("second".utf8)))
        #expect(try r.read("alice", "docs/plan.txt") == Array("second".utf8))
        _ = try r.node.driveRestore(owner: "alice", path: "docs/plan.txt", version: v1.version)
        #expect(try r.read("alice", "docs/plan.txt") == Array("first".utf8))
        // Another owner's drive is another tree.
        #expect(throws: DriveError.self) { try r.node.driveInfo(owner: "bob", path: "docs/plan.txt") }
        // Bob is not a recipient: no key opens it for him; shared, it does; revoked, not again.
        #expect(throws: DriveError.self) { _ = try r.read("alice", "docs/plan.txt", reader: "bob") }
        let shared = try r.node.driveShare(owner: "alice", path: "docs/plan.txt", identity: "bob", publicKey: nil)
        #expect(try r.read("alice", "docs/plan.txt", reader: "bob") == Array("first".utf8))
        // Sharing again changes nothing: no new version.
        #expect(try r.node.driveShare(owner: "alice", path: "docs/plan.txt", identity: "bob", publicKey: nil).version == shared.version)
        let before = try r.node.driveInfo(owner: "alice", path: "docs/plan.txt")
        let rotated = try r.node.driveRevoke(owner: "alice", path: "docs/plan.txt", who: "bob", rotate: true)
        #expect(throws: DriveError.self) { _ = try r.read("alice", "docs/plan.txt", reader: "bob") }
        #expect(rotated.file.content != before.file.content && rotated.file.encryption?.id != before.file.encryption?.id)
        #expect(try r.read("alice", "docs/plan.txt") == Array("first".utf8))
        // Client-held: wrapped for the client's key only; the node cannot open it, the client can.
        let client = Curve25519.KeyAgreement.PrivateKey()
        var o = DrivePutOptions()
        o.recipients = [Array(client.publicKey.rawRepresentation)]
        let secret = try r.node.drivePut(owner: "alice", path: "secret.bin", from: BytesSource(Self.bytes(70_000)), options: o)
        #expect(throws: DriveError.self) { _ = try r.read("alice", "secret.bin") }
        let e = try #require(secret.file.encryption)
        let wrapped = try r.node.driveWrappedKey(secret, keyID: KeyWrap.keyID(Array(client.publicKey.rawRepresentation)))
        let fileKey = try KeyWrap.unwrap(wrapped, with: client, id: e.id)
        let cipher = try SegmentCipher(fileKey: fileKey, nonce: e.nonce, segmentSize: e.segmentSize)
        var sealed: [UInt8] = []
        try r.node.cat(secret.file.content) { sealed += $0 }
        var plain: [UInt8] = []
        var w = DecryptingWriter(cipher: cipher, size: secret.file.size, from: 0, length: secret.file.size) { plain += $0 }
        try w.write(sealed)
        try w.finish()
        #expect(plain == Self.bytes(70_000))
    }

    /// Erase reaches every version a path has had (overwritten, moved there), and a key once
    /// erased is never wrapped again; a file does not replace a directory; mv does not swallow
    /// what holds its source.
    @Test func eraseReachesEveryVersionAndTreesKeepTheirShape() throws {
        let dir = TemporaryDirectory()
        let r = try Repo(dir.path + "/repo")
        let v1 = try r.node.drivePut(owner: "alice", path: "a/x", from: BytesSource(Array("one".utf8)))
        _ = try r.node.drivePut(owner: "alice", path: "a/x", from: BytesSource(Array("two".utf8)))
        _ = try r.node.driveMove(owner: "alice", from: "a", to: "b")
        let v3 = try r.node.drivePut(owner: "alice", path: "b/x", from: BytesSource(Array("three".utf8)))
        #expect(try r.read("alice", "a/x", version: v1.version) == Array("one".utf8))
        _ = try r.node.driveRemove(owner: "alice", path: "b", erase: true)
        for v in [v1.version, v1.version + 1, v3.version] {
            let old = try r.node.driveInfo(owner: "alice", path: v < v3.version ? (v == v1.version || v == v1.version + 1 ? "a/x" : "b/x") : "b/x", version: v)
            #expect(throws: DriveError.self, "version \(v)") { try r.node.driveRead(old, reader: "alice") { _ in } }
        }
        // Restored from the history, an erased file cannot be shared (its key is gone for good).
        _ = try r.node.driveRestore(owner: "alice", path: "a", version: v1.version)
        #expect(throws: DriveError.self) { try r.node.driveShare(owner: "alice", path: "a/x", identity: "bob", publicKey: nil) }
        // Shapes: a file does not replace a directory; mv onto what holds the source is refused.
        _ = try r.node.drivePut(owner: "alice", path: "c/d/e", from: BytesSource([1]))
        #expect(throws: DriveError.self) { try r.node.drivePut(owner: "alice", path: "c/d", from: BytesSource([2])) }
        #expect(throws: DriveError.self) { try r.node.driveMove(owner: "alice", from: "c/d/e", to: "c") }
        #expect(try r.node.driveList(owner: "alice", path: "c/d").map(\.name) == ["e"])
    }

    /// A file with a TTL ends on the pins' clock: removed, its keys erased; one put again without
    /// a TTL before its time stays.
    @Test func filesWithATTLEndOnTime() throws {
        let dir = TemporaryDirectory()
        let r = try Repo(dir.path + "/repo")
        var o = DrivePutOptions()
        o.expiresIn = 1
        let short = try r.node.drivePut(owner: "alice", path: "tmp/a", from: BytesSource(Array("soon gone".utf8)), options: o)
        _ = try r.node.drivePut(owner: "alice", path: "tmp/b", from: BytesSource(Array("kept".utf8)), options: o)
        _ = try r.node.drivePut(owner: "alice", path: "tmp/b", from: BytesSource(Array("kept".utf8)))
        #expect(short.file.expiresAt != nil)
        #expect(try r.node.nextPinExpiry() != nil)
        Thread.sleep(forTimeInterval: 0.01)
        let upkeep = try r.node.maintainPins()
        #expect(upkeep.expired == 1)
        #expect(throws: DriveError.self) { try r.node.driveInfo(owner: "alice", path: "tmp/a") }
        #expect(throws: DriveError.self) { try r.node.driveRead(short, reader: "alice") { _ in } }
        #expect(try r.read("alice", "tmp/b") == Array("kept".utf8))
        #expect(try r.node.nextDriveExpiry() == nil)
    }

    @Test func eraseLeavesNoWrapAnywhere() throws {
        let dir = TemporaryDirectory()
        let r = try Repo(dir.path + "/repo")
        let info = try r.node.drivePut(owner: "alice", path: "photos/me.jpg", from: BytesSource(Self.bytes(200_000)))
        _ = try r.node.driveShare(owner: "alice", path: "photos/me.jpg", identity: "bob", publicKey: nil)
        let id = try #require(info.file.encryption?.id)
        let aliceWrap = try r.node.driveWrappedKey(info, keyID: info.file.encryption!.recipients[0].keyId)
        let (_, erased) = try r.node.driveRemove(owner: "alice", path: "photos", erase: true)
        #expect(erased.contains(info.file.content))
        // Not readable from the history either: the wraps are gone.
        #expect(throws: DriveError.self) { try r.node.driveRead(info, reader: "alice") { _ in } }
        #expect(throws: DriveError.self) { try r.node.driveRead(info, reader: "bob") { _ in } }
        // Nowhere in the repository's files: not the wrap's bytes, not a keyring key naming the file key.
        r.repository.blocks.db.compact()
        var found: [String] = []
        let needle = Data(aliceWrap.prefix(24)), idBytes = Data(id.utf8)
        for file in try FileManager.default.subpathsOfDirectory(atPath: r.path) {
            guard let data = FileManager.default.contents(atPath: r.path + "/" + file) else { continue }
            if data.range(of: needle) != nil { found.append(file + " (wrap)") }
            if file.hasSuffix(".ldb") || file.hasSuffix(".log"), data.range(of: Data([0x56, 0x01]) + idBytes) != nil { found.append(file + " (key)") }
        }
        #expect(found.isEmpty, "\(found)")
        var q = AuditQuery()
        q.type = "q.qdrive.file.erased.v1"
        let event = try #require(try r.node.auditEvents(q).events.first)
        guard case .list(let cids)? = event.event.details["cids"] else { Issue.record("no cids"); return }
        #expect(cids.contains(.string(info.file.content.string)))
        #expect(try r.node.verifyRepository().isClean)
    }
}
