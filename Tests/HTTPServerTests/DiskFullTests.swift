import Crypto
import Foundation
import Multiformats
@testable import Storage
import Testing
import TestSupport

/// A repository on a small file system the test mounts itself (tmpfs with `size=`), filled by a
/// running daemon through add, block/put and dag/import: each is refused with 507 and a message
/// saying why once the space left is the repository's reserve; what was acknowledged before
/// reads back whole; a failed add's blocks are collected and its pack bytes given back by
/// `repo gc`, after which writes succeed again without a restart. Then the disk filled to the
/// last byte by someone else: the repository still opens, reads and verifies clean. And a pack
/// cut short under the daemon: errors for what it lost, no crash.
@Suite(.serialized) struct DiskFullTests {
    static func sh(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command.contains(">") ? command : command + " >/dev/null 2>&1"]
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// A tmpfs of `megabytes` mounted at a new temporary directory; nil (an issue recorded) when
    /// this is not root or the mount fails.
    static func mountTmpfs(megabytes: Int) throws -> String? {
        guard getuid() == 0 else {
            Issue.record("needs root to mount a tmpfs")
            return nil
        }
        let mount = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        guard sh("mount -t tmpfs -o size=\(megabytes)m tmpfs \(mount)") == 0 else {
            Issue.record("cannot mount a tmpfs at \(mount)")
            return nil
        }
        return mount
    }

    /// Unmounts and removes the mount point; lazily when something still holds the file system
    /// (a child process on its way out), so no test leaves a mount behind.
    static func unmount(_ mount: String) {
        if sh("umount \(mount)") != 0 { _ = sh("umount -l \(mount)") }
        try? FileManager.default.removeItem(atPath: mount)
    }

    static func random(_ n: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<n).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    @Test func aFullDiskRefusesWritesKeepsWhatWasAcknowledgedAndRecovers() async throws {
        guard let mount = try Self.mountTmpfs(megabytes: 40) else { return }
        defer { Self.unmount(mount) }
        let env = ["QSTORE_RESERVE_BYTES": String(4 << 20)]
        // Another file on the same disk, removed later: space freed by someone else.
        let ballast = mount + "/ballast"
        try Data(count: 6 << 20).write(to: URL(fileURLWithPath: ballast))
        var daemon: ChildDaemon? = try ChildDaemon(directory: mount + "/d", environment: env)
        let d = daemon!
        func add(_ bytes: [UInt8]) throws -> RawConnection.Response {
            let (body, type) = DaemonHarness.multipart([bytes])
            return try d.request("POST", "/api/v0/add?cid-version=1&quieter=true", api: true, headers: ["Content-Type": type], body: body)
        }
        func cid(_ r: RawConnection.Response) -> String? {
            (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["Hash"] as? String
        }
        // Fill through add: 3 MB files until refused.
        var acknowledged: [String: [UInt8]] = [:]
        var refusal: RawConnection.Response?
        for i in 0..<40 {
            let bytes = Self.random(3_000_000, seed: UInt64(i + 1))
            let r = try add(bytes)
            if r.status == 200, let c = cid(r), !r.text.contains("\"Message\"") {
                acknowledged[c] = bytes
            } else {
                refusal = r
                break
            }
        }
        #expect(refusal?.status == 507, "\(refusal?.status ?? 0) \(refusal?.text.prefix(300) ?? "never refused")")
        #expect(refusal?.text.contains("no space") == true, "\(refusal?.text.prefix(300) ?? "")")
        #expect(acknowledged.count >= 5, "\(acknowledged.count) adds before the disk was full")
        // block/put and dag/import are refused the same way.
        let (blockBody, blockType) = DaemonHarness.multipart([Self.random(1_000_000, seed: 999)])
        let block = try d.request("POST", "/api/v0/block/put?cid-codec=raw", api: true, headers: ["Content-Type": blockType], body: blockBody)
        #expect(block.status == 507, "\(block.status) \(block.text.prefix(300))")
        let car = Self.carOfRawBlock(Self.random(1_000_000, seed: 1234))
        let (carBody, carType) = DaemonHarness.multipart([car])
        let imported = try d.request("POST", "/api/v0/dag/import", api: true, headers: ["Content-Type": carType], body: carBody)
        #expect(imported.status == 507 || imported.text.contains("no space"), "\(imported.status) \(imported.text.prefix(300))")
        // A refused request alone writes no audit entry on a full disk (a flood of refusals must
        // not eat the reserve), but is still answered 401.
        func denials() throws -> Int {
            let r = try d.request("GET", "/q/v1/audit/events?type=q.access.credential.invalid.v1&limit=1000", api: true)
            return (((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any])?["data"] as? [String: Any])?["events"].flatMap { $0 as? [Any] }?.count ?? -1
        }
        func refused() throws -> Int { try d.request("POST", "/api/v0/version", api: true, bearer: "not-a-token").status }
        // (Fill what the refused add left to within the repository's margin, as a flood would.)
        let squeeze = mount + "/squeeze"
        let room = Int(SpaceLeft.bytes(mount)) - (4 << 20) + (256 << 10)
        if room > 0 { try Data(count: room).write(to: URL(fileURLWithPath: squeeze)) }
        let denied = try denials()
        #expect(denied >= 0)
        for _ in 0..<20 { #expect(try refused() == 401) }
        #expect(try denials() == denied, "refusals were recorded within the margin of a full disk")
        try? FileManager.default.removeItem(atPath: squeeze)
        // Reads go on; what was acknowledged is whole.
        for (c, bytes) in acknowledged { #expect(try d.request("GET", "/ipfs/\(c)", api: false).body == bytes, "\(c)") }
        // Space freed by someone else: writes work again, no restart.
        try FileManager.default.removeItem(atPath: ballast)
        let again = try add(Self.random(3_000_000, seed: 4242))
        #expect(again.status == 200 && cid(again) != nil, "\(again.status) \(again.text.prefix(300))")
        // With room again, a refusal is recorded (so the count above could have moved).
        #expect(try refused() == 401)
        #expect(try denials() == denied + 1)
        // An add stopped half way by the full disk: the batches it stored are collected at once
        // and their pack bytes given back.
        let before = SpaceLeft.bytes(mount)
        // (The daemon may answer and close while the body is still being sent.)
        if let big = try? add(Self.random(20_000_000, seed: 77)) {
            #expect(big.status == 507 || big.text.contains("no space"), "\(big.status) \(big.text.prefix(300))")
        }
        let after = SpaceLeft.bytes(mount)
        #expect(after < before - (1 << 20), "the failed add stored nothing (\(before) → \(after) bytes free): it does not test reclaiming")
        let gcReply = try d.request("POST", "/api/v0/repo/gc", api: true)
        #expect(gcReply.status == 200, "\(gcReply.status) \(gcReply.text.prefix(400))")
        let collected = SpaceLeft.bytes(mount)
        #expect(collected + (1 << 20) >= before, "\(before) bytes free before the failed add, \(collected) after gc")
        d.stop()
        daemon = nil

        // The disk filled to its last byte by another writer: the repository opens (its reserve
        // given back for LevelDB's recovery), reads, and verifies clean.
        _ = Self.sh("dd if=/dev/zero of=\(mount)/filler bs=1M")
        #expect(SpaceLeft.bytes(mount) < 1 << 20)
        let repo = mount + "/d/repo"
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-full-cat-\(UUID().uuidString)").path
        defer {
            try? FileManager.default.removeItem(atPath: output)
            try? FileManager.default.removeItem(atPath: output + ".err")
        }
        for (c, bytes) in acknowledged.prefix(2) {
            let rc = Self.sh("QSTORE_PATH=\(repo) HOME=\(mount)/d QSTORE_RESERVE_BYTES=\(4 << 20) \(ChildDaemon.binary) cat \(c) > \(output) 2>\(output).err")
            if rc != 0 { Issue.record(Comment(rawValue: (try? String(contentsOfFile: output + ".err", encoding: .utf8)) ?? "")) }
            #expect(rc == 0 && (try? Data(contentsOf: URL(fileURLWithPath: output))) == Data(bytes), "cat \(c) on a full disk: \(rc)")
        }
        #expect(Self.sh("QSTORE_PATH=\(repo) HOME=\(mount)/d \(ChildDaemon.binary) repo verify") == 0, "repo verify on a full disk")
    }

    /// LevelDB's own writes on a disk another writer filled to the last byte: the first write that
    /// finds no room gives the repository's reserve back, the database is opened again (LevelDB
    /// cannot go on after a failed table or log write: `qstore_store_reopens` counts it) and the
    /// write goes through; every pin change is answered 200, and after a restart the pins are as
    /// the last answers said.
    /// A put-many whose packs fill the disk after the store rolled into a new pack: the pack it
    /// rolled into is cut back to nothing (every byte there was the failed call's, large blocks
    /// written as they came), so no unreferenced entry is left in it; what was stored before reads
    /// back, and once space is freed the store appends again.
    @Test func aBatchRefusedAfterARollLeavesNothingInThePackItRolledInto() throws {
        guard let mount = try Self.mountTmpfs(megabytes: 3) else { return }
        defer { Self.unmount(mount) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-fullpack-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = LevelDBBlockStore.Options()
        o.maximumPackSize = 600_000
        let store = try LevelDBBlockStore(db: LevelDB(path: dir + "/db"), packDirectory: mount + "/packs", options: o)
        let first = try (0..<4).map { try Block(data: Self.random(100_000, seed: UInt64($0) + 1)) }
        try store.putMany(first)
        let refused = try (0..<40).map { try Block(data: Self.random(100_000, seed: UInt64($0) + 100)) }
        #expect(throws: BlockStoreError.self) { try store.putMany(refused) }
        let state = store.packs.appendState
        func size(_ pack: UInt32) throws -> UInt64 {
            try FileManager.default.attributesOfItem(atPath: PackStore.path(mount + "/packs", pack))[.size] as? UInt64 ?? 0
        }
        let current = try size(state.pack)
        #expect(state.end == 0 && current == 0, "the current pack (\(state.pack)) holds \(current) bytes")
        // Every other pack was sealed because the next entry did not fit: none is the pack the
        // refusal came in, left part-written and sealed.
        let entry = PackStore.entrySize(multihash: refused[0].cid.multihash, length: 100_000)
        for pack in try PackStore.packNumbers(in: mount + "/packs") where pack != state.pack {
            let bytes = try size(pack)
            #expect(bytes + entry > o.maximumPackSize, "pack \(pack) holds \(bytes) bytes")
        }
        for b in first { #expect(try store.get(b.cid) == b.data) }
        for b in refused { #expect(try store.has(b.cid) == false) }
    }

    @Test func levelDBsOwnWritesOnAFullDiskReopenAndGoOn() async throws {
        guard let mount = try Self.mountTmpfs(megabytes: 24) else { return }
        defer { Self.unmount(mount) }
        let env = ["QSTORE_RESERVE_BYTES": String(4 << 20)]
        var daemon: ChildDaemon? = try ChildDaemon(directory: mount + "/d", environment: env)
        let d = daemon!
        var cids: [String] = []
        for i in 0..<3 {
            let (body, type) = DaemonHarness.multipart([Self.random(100_000, seed: UInt64(50 + i))])
            let r = try d.request("POST", "/api/v0/add?cid-version=1&quieter=true", api: true, headers: ["Content-Type": type], body: body)
            let c = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["Hash"] as? String
            #expect(r.status == 200 && c != nil, "\(r.status) \(r.text.prefix(200))")
            if let c { cids.append(c) }
        }
        let repo = mount + "/d/repo"
        #expect(FileManager.default.fileExists(atPath: repo + "/reserve"), "no reserve file to give back")
        _ = Self.sh("dd if=/dev/zero of=\(mount)/filler bs=64k")
        #expect(SpaceLeft.bytes(mount) < 1 << 20)
        // Only LevelDB writes now: unpin and pin again, over and over.
        var failures: [String] = []
        for round in 0..<400 {
            let c = cids[round % cids.count]
            for op in ["rm", "add"] {
                let r = try d.request("POST", "/api/v0/pin/\(op)?arg=\(c)", api: true)
                if r.status != 200 { failures.append("round \(round) pin \(op): \(r.status) \(r.text.prefix(200))") }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) pin changes failed, first: \(failures.first ?? "")")
        #expect(!FileManager.default.fileExists(atPath: repo + "/reserve"), "LevelDB never found the disk full: the test did not test it")
        let metrics = try d.request("GET", "/metrics", api: true).text
        let reopens = metrics.split(separator: "\n").first { $0.hasPrefix("qstore_store_reopens ") }.flatMap { Double($0.split(separator: " ").last!) }
        #expect((reopens ?? 0) >= 1, "no reopen counted: \(metrics.split(separator: "\n").filter { $0.contains("qstore_store") })")
        #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("qstore_store_writes_refused 0") })
        // One more change, then a restart with the disk still full: the pins are as answered.
        #expect(try d.request("POST", "/api/v0/pin/rm?arg=\(cids[0])", api: true).status == 200)
        d.stop()
        daemon = nil
        let listed = mount + "/pins.txt"
        _ = try? FileManager.default.removeItem(atPath: mount + "/filler")
        #expect(Self.sh("QSTORE_PATH=\(repo) HOME=\(mount)/d \(ChildDaemon.binary) pin ls --type=recursive --quiet > \(listed)") == 0)
        let pins = Set(((try? String(contentsOfFile: listed, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init))
        #expect(pins == Set(cids.dropFirst()), "\(pins)")
        #expect(Self.sh("QSTORE_PATH=\(repo) HOME=\(mount)/d \(ChildDaemon.binary) repo verify") == 0, "repo verify after the full disk")
    }

    /// A pack file cut short under a running daemon (a disk error, a careless hand): the blocks it
    /// no longer holds answer 500 naming the block, the others are served as before, the daemon
    /// keeps running, and `repo verify` names what is lost.
    @Test func aPackCutUnderTheDaemonGivesErrorsNotACrash() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cut-\(UUID().uuidString)").path
        let d = try ChildDaemon(directory: dir)
        defer { d.discard() }
        var files: [(String, [UInt8])] = []
        for i in 0..<4 {
            let bytes = Self.random(600_000, seed: UInt64(100 + i))
            let (body, type) = DaemonHarness.multipart([bytes])
            let r = try d.request("POST", "/api/v0/add?cid-version=1&raw-leaves=true&quieter=true", api: true, headers: ["Content-Type": type], body: body)
            let cid = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["Hash"] as? String
            #expect(r.status == 200 && cid != nil, "\(r.status) \(r.text.prefix(200))")
            files.append((cid ?? "", bytes))
        }
        // Cut the pack in half: the first files stay whole, the last ones lose blocks.
        let packs = try FileManager.default.contentsOfDirectory(atPath: d.repository + "/packs").filter { $0.hasSuffix(".pack") }.sorted()
        let pack = d.repository + "/packs/" + packs.last { ((try? FileManager.default.attributesOfItem(atPath: d.repository + "/packs/" + $0)[.size] as? Int) ?? 0) > 0 }!
        let size = try FileManager.default.attributesOfItem(atPath: pack)[.size] as! Int
        #expect(truncate(pack, off_t(size / 2)) == 0)
        var served = 0, refused = 0
        for (cid, bytes) in files {
            let r = try d.request("GET", "/ipfs/\(cid)", api: false)
            if r.status == 200 && r.body == bytes {
                served += 1
            } else {
                // Whole or an error: never wrong bytes with a 200 and a full length.
                #expect(r.status >= 500 || r.body.count < bytes.count, "\(cid): \(r.status), \(r.body.count) bytes")
                let stat = try d.request("POST", "/api/v0/block/get?arg=\(cid)", api: true)
                #expect(stat.status == 500 || stat.status == 200, "\(stat.status) \(stat.text.prefix(200))")
                refused += 1
            }
        }
        #expect(served >= 1 && refused >= 1, "\(served) served, \(refused) refused")
        #expect(d.isRunning)
        #expect(try d.request("POST", "/api/v0/version", api: true).status == 200)
        d.stop()
        let verify = Self.sh("QSTORE_PATH=\(d.repository) HOME=\(dir) \(ChildDaemon.binary) repo verify > \(dir)/verify.out 2>&1")
        let report = (try? String(contentsOfFile: dir + "/verify.out", encoding: .utf8)) ?? ""
        #expect(verify != 0 && report.contains("cannot be read"), "repo verify: \(verify) \(report.suffix(400))")
    }

    /// A CARv1 of one raw block (sha2-256).
    static func carOfRawBlock(_ data: [UInt8]) -> [UInt8] {
        let cid: [UInt8] = [0x01, 0x55, 0x12, 0x20] + Array(SHA256.hash(data: data))
        func varint(_ n: Int) -> [UInt8] {
            var v = UInt64(n), out: [UInt8] = []
            while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
            return out + [UInt8(v)]
        }
        // Header: dag-cbor {roots: [cid], version: 1}.
        let link: [UInt8] = [0xd8, 0x2a, 0x58, UInt8(cid.count + 1), 0x00] + cid
        let header: [UInt8] = [0xa2, 0x65] + Array("roots".utf8) + [0x81] + link + [0x67] + Array("version".utf8) + [0x01]
        return varint(header.count) + header + varint(cid.count + data.count) + cid + data
    }
}

enum SpaceLeft {
    static func bytes(_ path: String) -> UInt64 {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return 0 }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }
}
