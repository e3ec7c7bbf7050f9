import Backup
import CAR
import Foundation
import IPLD
import Multiformats
import Node
import Pinning
import Qindex
import Registry
import Storage
import Testing
import TestSupport

/// Backups over real repositories: a full set restored into an empty repository gives back every
/// block, pin, pointer head and module; an incremental chain of three restores the same; a
/// flipped byte and a truncated part are named by verify (part and block); a missing parent is
/// refused naming it; restoring into a live repository keeps conflicting pins both.
@Suite struct BackupTests {
    final class Repo {
        let path: String
        let repository: Repository
        let node: Node
        init(_ path: String) throws {
            self.path = path
            try Repository.initialize(at: path)
            repository = try Repository(path: path, purpose: "backup tests")
            node = try Node(repository: repository)
        }
        deinit { repository.close() }

        /// What a repository holds at one moment.
        struct State {
            var blocks: [CID: [UInt8]]
            var pins: [String: Pin]
            var heads: [String: Head]
            init(_ r: Repo) throws { (blocks, pins, heads) = (try r.blocks(), try r.pins(), try r.heads()) }
        }

        /// Every block: CID → bytes.
        func blocks() throws -> [CID: [UInt8]] {
            var out: [CID: [UInt8]] = [:]
            var cids: [CID] = []
            try node.forEachBlock { cids.append($0); return true }
            for c in cids { out[c] = try node.block(c) }
            return out
        }

        func pins() throws -> [String: Pin] {
            var out: [String: Pin] = [:]
            try node.forEachPinObject { out[$0.id.description] = $0; return true }
            return out
        }

        func heads() throws -> [String: Head] {
            var out: [String: Head] = [:]
            try node.forEachHead { out["\($0.type)/\($0.key)"] = $0; return true }
            return out
        }
    }

    /// Fills a repository with a bit of everything: files, a DAG, pins of each kind, pointer
    /// history with a deletion, a module, audit events.
    static func populate(_ r: Repo, dir: String, round: Int) throws {
        var options = AddSession.Options()
        options.importing.cidVersion = 1
        let session = try r.node.add(options)
        _ = try session.file("round-\(round).txt", BytesSource(Array((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ round) })))
        let file = try session.finish()[0]
        var request = Pinner.Request(cid: file, name: "file \(round)", resourceType: "default")
        request.expiresIn = 86_400_000 * 30
        request.meta = ["round": String(round)]
        _ = try r.node.pin(request)
        let dag = try r.node.putDAG(Array(#"{"round": \#(round), "file": {"/": "\#(file)"}}"#.utf8), input: .dagJSON, store: .dagCBOR, hash: .sha2_256)
        _ = try r.node.pin(Pinner.Request(cid: dag, type: .direct, name: "dag \(round)"))
        for v in 0..<3 {
            _ = try r.node.putPointerBlocking(Qindex.Update(type: "docs", key: "guide-\(round)", target: v == 2 ? dag : file))
        }
        _ = try r.node.putPointerBlocking(Qindex.Update(type: "docs", key: "gone-\(round)", target: dag))
        _ = try r.node.putPointerBlocking(Qindex.Update(type: "docs", key: "gone-\(round)", target: nil))
        let m = dir + "/module-\(round)"
        try FileManager.default.createDirectory(atPath: m + "/package", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: m + "/docs", withIntermediateDirectories: true)
        try Data("export default \(round)\n".utf8).write(to: URL(fileURLWithPath: m + "/package/index.js"))
        try Data("# round \(round)\n".utf8).write(to: URL(fileURLWithPath: m + "/docs/index.md"))
        try Data(#"{"module": "q-backup", "version": "1.\#(round).0", "type": "library"}"#.utf8).write(to: URL(fileURLWithPath: m + "/module.json"))
        _ = try r.node.publishModule(directory: m)
    }

    /// What a restore must give back: every block, every pin but the layers' own (same ID and
    /// fields), every head but the audit log's.
    static func expectSame(_ a: Repo.State, _ b: Repo) throws {
        let ab = a.blocks, bb = try b.blocks()
        let missing = ab.keys.filter { bb[$0] == nil }
        #expect(missing.isEmpty, "\(missing.count) blocks not restored, e.g. \(missing.prefix(3))")
        #expect(ab.allSatisfy { bb[$0.key] == nil || bb[$0.key] == $0.value })
        let ap = a.pins.filter { !["index-records", "audit-logs"].contains($0.value.resourceType) }, bp = try b.pins()
        for (id, p) in ap {
            let q = try #require(bp[id], "pin \(id) (\(p.name ?? "")) not restored")
            #expect(q.cid == p.cid && q.type == p.type && q.name == p.name && q.resourceType == p.resourceType && q.expires == p.expires
                    && q.meta == p.meta && q.created == p.created && q.status == p.status)
        }
        let ah = a.heads, bh = try b.heads()
        for (k, h) in ah {
            let g = try #require(bh[k], "head \(k) not restored")
            #expect(g.record == h.record && g.version == h.version && g.target == h.target, "\(k)")
        }
        #expect(try b.node.verifyRepository().isClean)
    }

    @Test func aFullSetRestoresIntoAnEmptyRepository() async throws {
        let dir = TemporaryDirectory()
        let source = try Repo(dir.path + "/source")
        try Self.populate(source, dir: dir.path, round: 1)
        let before = try Repo.State(source)
        let created = try source.node.createBackup(to: dir.path + "/backups", partSize: 1 << 20)
        #expect(created.manifest.parts.count >= 1 && created.manifest.blocks > 0)
        let verified = try BackupDirectory(dir.path + "/backups").verify()
        #expect(verified.ok, "\(verified.problems)")
        let target = try Repo(dir.path + "/target")
        let restored = try target.node.restoreBackup(from: dir.path + "/backups")
        #expect(restored.pinFailures.isEmpty && restored.headFailures.isEmpty && restored.conflicts.isEmpty, "\(restored.pinFailures) \(restored.headFailures)")
        try Self.expectSame(before, target)
        // The registry came with its pointers; the restore is in the target's audit log.
        #expect(try target.node.moduleRelease("q-backup").metadata.version.description == "1.1.0")
        #expect(try target.node.verifyModule("q-backup").allSatisfy(\.ok))
        var q = AuditQuery()
        q.type = "q.backup.restore.v1"
        #expect(try target.node.auditEvents(q).events.count == 1)
        // Run again: nothing new, nothing doubled.
        let again = try target.node.restoreBackup(from: dir.path + "/backups")
        #expect(again.added == 0 && again.pinsRestored == 0 && again.pinsPresent == restored.pinsRestored)
    }

    @Test func aStreamedSetRestoresLikeADirectoryAndACutStreamRestoresNoPin() async throws {
        let dir = TemporaryDirectory()
        let source = try Repo(dir.path + "/source")
        try Self.populate(source, dir: dir.path, round: 1)
        let before = try Repo.State(source)
        let (manifest, sink) = try source.node.streamBackup(to: ArraySink())
        let stream = sink.bytes
        // The set checkpoints the audit log first: a few blocks more than `before`.
        #expect(manifest.parts.isEmpty && manifest.parent == nil && manifest.blocks >= UInt64(before.blocks.count))
        let verified = try BackupStream.verify(BytesSource(stream))
        #expect(verified.ok && verified.blocks == manifest.blocks, "\(verified.problems)")
        let target = try Repo(dir.path + "/target")
        let restored = try target.node.restoreBackup(stream: BytesSource(stream))
        #expect(restored.pinFailures.isEmpty && restored.headFailures.isEmpty, "\(restored.pinFailures) \(restored.headFailures)")
        try Self.expectSame(before, target)
        // The source's audit log is kept here, pinned, and this node's log names where it ended.
        let sourceLog = try #require(manifest.pins.first { $0.resourceType == "audit-logs" })
        #expect(try target.pins()[sourceLog.id.description]?.cid == sourceLog.cid)
        var q = AuditQuery()
        q.type = "q.backup.restore.v1"
        let event = try #require(try target.node.auditEvents(q).events.first)
        #expect(event.event.details["sourceCheckpoint"] == IPLDNode.string(try #require(manifest.audit).checkpoint.string))

        // Cut anywhere before its end, a stream is refused and no pin comes back.
        for cut in [stream.count / 3, stream.count - 1] {
            let other = try Repo(dir.path + "/cut-\(cut)")
            #expect(throws: BackupError.self) { try other.node.restoreBackup(stream: BytesSource(Array(stream[..<cut]))) }
            #expect(try other.pins().values.allSatisfy { $0.resourceType == "audit-logs" })
            #expect(throws: BackupError.self) { try BackupStream.verify(BytesSource(Array(stream[..<cut]))) }
        }
        // A flipped byte in the manifest (the last block) is named.
        var flipped = stream
        flipped[flipped.count - 10] ^= 0x01
        #expect(throws: BackupError.self) { try BackupStream.verify(BytesSource(flipped)) }
    }

    @Test func aSelectionHoldsTheChosenPinsTheirDAGsAndTheirHeads() async throws {
        let dir = TemporaryDirectory()
        let source = try Repo(dir.path + "/source")
        try Self.populate(source, dir: dir.path, round: 1)
        try Self.populate(source, dir: dir.path, round: 2)
        let before = try Repo.State(source)
        let chosen = before.pins.values.filter { $0.name == "file 2" || $0.name == "qindex:docs/guide-1" }
        #expect(chosen.count == 2)
        let selection = try PinSelector("name=file 2|qindex:docs/guide-*1")
        let made = try source.node.createBackup(to: dir.path + "/backups", pins: selection)
        #expect(Set(made.manifest.pins.map(\.id)) == Set(chosen.map(\.id)))
        #expect(made.manifest.heads.map { "\($0.type)/\($0.key)" } == ["docs/guide-1"] && made.manifest.selection == selection.description)
        let v = try BackupDirectory(dir.path + "/backups").verify()
        #expect(v.ok, "\(v.problems)")
        // Exactly the blocks of those DAGs: file 2's, and the pointer's record with what it links.
        let target = try Repo(dir.path + "/target")
        let r = try target.node.restoreBackup(from: dir.path + "/backups")
        #expect(r.pinFailures.isEmpty && r.headFailures.isEmpty && r.headsMerged == 1)
        let file2 = try #require(chosen.first { $0.name == "file 2" })
        #expect(try target.pins()[file2.id.description]?.status == .pinned)
        let file1 = try #require(before.pins.values.first { $0.name == "file 1" })
        #expect(made.manifest.blocks < UInt64(before.blocks.count))
        #expect(try target.heads()["docs/guide-1"]?.record == before.heads["docs/guide-1"]?.record)
        #expect(try target.heads()["docs/guide-2"] == nil)
        // file 1 is reachable from guide-1's history (its first two versions), so it came along; its pin did not.
        #expect(try target.pins()[file1.id.description] == nil)
        #expect(try target.node.verifyRepository().isClean)
    }

    @Test func pinFiltersParseAndMatch() throws {
        for bad in ["", "type", "=x", "colour=red", "name=", "type=a|", "cid=notacid", "cid=bafkqaaa|typo"] {
            #expect(throws: BackupError.self, "\(bad)") { try PinSelector(bad) }
        }
        let pin = Pin(id: PinID(created: 1), cid: try CID("bafkqaaa"), type: .recursive, status: .pinned, name: "photos-2026-summer", resourceType: "qdrive-files",
                      created: 1, expires: nil, replicationFactor: 1, origins: [], meta: ["album": "summer"], owner: "alice", size: nil)
        for (filter, match) in [("name=photos-*", true), ("name=*summer", true), ("name=photos", false), ("name=*-2026-*", true), ("name=p*s*r", true),
                                ("type=qdrive-files|default", true), ("type=default", false), ("meta.album=summer,owner=alice", true),
                                ("meta.album=summer,owner=bob", false), ("meta.missing=x", false), ("cid=bafkqaaa", true)] {
            #expect(try PinSelector(filter).matches(pin) == match, "\(filter)")
        }
    }

    @Test func anIncrementalChainOfThreeRestoresTheLatestState() async throws {
        let dir = TemporaryDirectory()
        let source = try Repo(dir.path + "/source")
        let backups = dir.path + "/backups"
        try Self.populate(source, dir: dir.path, round: 1)
        let full = try source.node.createBackup(to: backups)
        var before: Repo.State?
        var previous = full.manifest
        var ids = [full.manifest.id]
        for round in 2...3 {
            try Self.populate(source, dir: dir.path, round: round)
            before = try Repo.State(source)
            let inc = try source.node.createBackup(to: backups, incremental: true)
            #expect(inc.manifest.parent == previous.id)
            // Only what the chain lacks: fewer blocks than there are.
            #expect(inc.manifest.blocks < UInt64(try source.blocks().count))
            previous = inc.manifest
            ids.append(inc.manifest.id)
        }
        let d = BackupDirectory(backups)
        #expect(try d.chain(previous.id).count == 3)
        #expect(try d.verify().ok)
        let target = try Repo(dir.path + "/target")
        _ = try target.node.restoreBackup(from: backups)
        try Self.expectSame(before!, target)
        #expect(try target.node.moduleVersions("q-backup").map(\.metadata.version.description) == ["1.1.0", "1.2.0", "1.3.0"])
        // A missing parent: refused, naming it.
        try FileManager.default.moveItem(atPath: backups + "/" + full.manifest.id, toPath: dir.path + "/moved")
        let other = try Repo(dir.path + "/other")
        #expect { try other.node.restoreBackup(from: backups) } throws: { e in
            (e as? BackupError) == .missingParent(set: ids[1], parent: ids[0])
        }
    }

    @Test func corruptionAndTruncationAreNamed() throws {
        let dir = TemporaryDirectory()
        let source = try Repo(dir.path + "/source")
        try Self.populate(source, dir: dir.path, round: 1)
        let set = try source.node.createBackup(to: dir.path + "/backups", partSize: 1 << 20).manifest
        let part = dir.path + "/backups/\(set.id)/\(set.parts[0].name)"
        // A flipped byte inside a block's data: the part's hash and that block named.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: part)))
        var reader = try CARReader(path: part)
        var victim: CARBlock?
        while let b = try reader.next() { if b.data.count > 100 { victim = b; break } }
        let hit = try #require(victim)
        bytes[Int(hit.blockOffset) + 50] ^= 0xff
        try Data(bytes).write(to: URL(fileURLWithPath: part))
        var v = try BackupDirectory(dir.path + "/backups").verify()
        #expect(v.problems.contains { $0.contains(set.parts[0].name) && $0.contains("SHA-256") })
        #expect(v.problems.contains { $0.contains(set.parts[0].name) && $0.contains(hit.cid.description) })
        // Truncated: named by part.
        try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: part))
        v = try BackupDirectory(dir.path + "/backups").verify()
        #expect(!v.ok && v.problems.contains { $0.contains(set.parts[0].name) && $0.contains("bytes, the manifest says") })
    }

    @Test func restoringIntoALiveRepositoryKeepsConflictingPinsBoth() async throws {
        let dir = TemporaryDirectory()
        let source = try Repo(dir.path + "/source")
        try Self.populate(source, dir: dir.path, round: 1)
        _ = try source.node.createBackup(to: dir.path + "/backups")
        let live = try Repo(dir.path + "/live")
        try Self.populate(live, dir: dir.path + "/live-src", round: 9)
        // A pin of the live repository that has a source pin's ID (as if made independently).
        let sourcePin = try #require(try source.pins().values.first { $0.name == "file 1" })
        let livePin = try #require(try live.pins().values.first { $0.name == "file 9" })
        var clash = livePin
        clash.id = sourcePin.id
        _ = try live.node.restorePin(clash)
        let r = try live.node.restoreBackup(from: dir.path + "/backups")
        #expect(r.conflicts.count == 1 && r.conflicts[0].id == sourcePin.id.description)
        let pins = try live.pins()
        #expect(pins[sourcePin.id.description]?.cid == livePin.cid)
        #expect(pins[r.conflicts[0].restoredAs]?.cid == sourcePin.cid)
        #expect(try live.node.verifyRepository().isClean)
        // Run again: the copy is found, not made twice.
        let again = try live.node.restoreBackup(from: dir.path + "/backups")
        #expect(again.conflicts.isEmpty && again.pinsRestored == 0)
        #expect(try live.pins().count == pins.count)
    }

    @Test func pruneKeepsWhatKeptSetsNeedAndRefusesABrokenChain() throws {
        let dir = TemporaryDirectory()
        let source = try Repo(dir.path + "/source")
        let backups = dir.path + "/backups"
        var ids: [String] = []
        for round in 1...4 {
            try Self.populate(source, dir: dir.path, round: round)
            ids.append(try source.node.createBackup(to: backups, incremental: round == 3 || round == 4).manifest.id)
        }
        // Sets: full 1, full 2, inc 3 (after 2), inc 4 (after 3). Keeping the newest keeps its chain.
        let d = BackupDirectory(backups)
        let plan = try d.prunePlan(keepLast: 1, keepDaily: 0, keepWeekly: 0)
        #expect(plan.keep == [ids[1], ids[2], ids[3]] && plan.remove == [ids[0]])
        try d.remove(ids[0])
        #expect(try d.sets().map(\.id) == Array(ids[1...]) && d.verify().ok)
        // A kept set whose parent's manifest is unreadable: prune removes nothing.
        try Data("not a manifest".utf8).write(to: URL(fileURLWithPath: backups + "/\(ids[2])/manifest.car"))
        #expect(throws: BackupError.self) { try d.prunePlan(keepLast: 1, keepDaily: 0, keepWeekly: 0) }
    }

    /// A pointer whose older records were let go (keepLatest 10) and collected comes back: its
    /// history starts where they were.
    @Test func aPointerWhoseOlderRecordsWereCollectedIsRestored() throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        try Repository.initialize(at: dir.path + "/a")
        let repo = try Repository(path: dir.path + "/a", purpose: "backup tests")
        defer { repo.close() }
        let node = try Node(repository: repo, clock: clock)
        for i in 0..<15 {
            let c = try node.putBlock(Array("v\(i)".utf8), codec: .raw, hash: .sha2_256, hashLength: nil, pin: false).cid
            _ = try node.putPointerBlocking(Qindex.Update(type: "docs", key: "k", target: c))
            clock.advance(by: .seconds(1))
        }
        clock.advance(by: .seconds(3 * 86_400))
        _ = try node.collectGarbage()
        let head = try node.pointer(type: "docs", key: "k")
        _ = try node.createBackup(to: dir.path + "/b")
        try Repository.initialize(at: dir.path + "/c")
        let repo2 = try Repository(path: dir.path + "/c", purpose: "backup tests")
        defer { repo2.close() }
        let node2 = try Node(repository: repo2, clock: clock)
        let r = try node2.restoreBackup(from: dir.path + "/b")
        #expect(r.headFailures.isEmpty, "\(r.headFailures)")
        let restored = try node2.pointer(type: "docs", key: "k")
        #expect(restored.record == head.record && restored.version == 15 && restored.target == head.target)
        // The history kept is there to read; the pointer moves on from it.
        #expect(try node2.pointerHistory(type: "docs", key: "k", limit: 100, before: nil).records.count >= 10)
        let next = try node2.putBlock(Array("v15".utf8), codec: .raw, hash: .sha2_256, hashLength: nil, pin: false).cid
        #expect(try node2.putPointerBlocking(Qindex.Update(type: "docs", key: "k", target: next)).version == 16)
        #expect(try node2.verifyRepository().isClean)
    }
}
