import Audit
import CAR
import Foundation
import IPLD
import Multiformats
import Node
import Pinning
import Qindex
import Signing
import Storage
import Testing
import TestSupport

/// The Qerberos audit log over a real repository: what each change appends (and in which
/// batch), the log across reopening and tile boundaries recomputed independently of its own
/// tiles, proofs and checkpoints, tampering found by index, retention.
@Suite struct AuditLogTests {
    final class Fixture {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        private var current: Node?
        private var repository: Repository?
        var node: Node { current! }

        init(checkpointEvery: UInt64 = 1000) throws {
            var configuration = Configuration()
            var audit = AuditConfiguration()
            audit.checkpointEvery = checkpointEvery
            try configuration.setSection(audit)
            _ = try Repository.initialize(at: dir.path, configuration: configuration)
            let repo = try Repository(path: dir.path, purpose: "audit tests")
            repository = repo
            current = try Node(repository: repo, clock: clock)
        }

        func reopen() throws {
            repository?.close()
            current = nil
            repository = nil
            let repo = try Repository(path: dir.path, purpose: "audit tests")
            repository = repo
            current = try Node(repository: repo, clock: clock)
        }

        var db: LevelDB { repository!.blocks.db }

        /// Every event, in order.
        func events() throws -> [AuditRecord] {
            var out: [AuditRecord] = []
            var q = AuditQuery()
            q.limit = 1000
            while true {
                let page = try node.auditEvents(q)
                out += page.events
                guard let c = page.cursor else { return out }
                q.cursor = c
            }
        }

        /// Puts `n` small distinct blocks (one event each).
        @discardableResult
        func put(_ n: Int, tag: String = "") throws -> [Block] {
            try (0..<n).map { try node.putBlock(Array("\(tag) block \($0)".utf8), codec: .raw, hash: .sha2_256, hashLength: nil) }
        }
    }

    static let alice = AuditContext(actor: IdentityRef(squidId: "alice"), requestId: "req-alice-1")

    /// One event per change, in the order the changes were made, carrying the caller's identity
    /// and request; a change that fails leaves none.
    @Test func everyChangeAppendsItsEventAndAFailedOneNone() throws {
        let f = try Fixture()
        let node = f.node
        var expected: [String] = []
        try AuditContext.$current.withValue(Self.alice) {
            let block = try node.putBlock(Array("hello".utf8), codec: .raw, hash: .sha2_256, hashLength: nil, pin: true)
            expected += ["q.block.put.v1", "q.pin.add.v1"]
            _ = try node.putDAG(Array(#"{"a":1}"#.utf8), input: .dagJSON, store: .dagCBOR, hash: .sha2_256)
            expected += ["q.dag.put.v1"]
            let missing = try CID("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
            #expect(throws: (any Error).self) { try node.pin(Pinner.Request(cid: missing)) }
            _ = try node.putPointerBlocking(Qindex.Update(type: "docs", key: "readme", target: block.cid))
            expected += ["q.qindex.record.created.v1"]
            _ = try node.unpin(block.cid)
            expected += ["q.pin.rm.v1"]
            // Still the pointer's target: kept.
            #expect(throws: PinningError.self) { try node.removeBlock(block.cid) }
            let loose = try node.putBlock(Array("loose".utf8), codec: .raw, hash: .sha2_256, hashLength: nil)
            try node.removeBlock(loose.cid)
            expected += ["q.block.put.v1", "q.block.rm.v1"]
            #expect(throws: (any Error).self) { try node.removeBlock(loose.cid) }
            _ = try node.createToken(scopes: [.read], identity: nil, expires: nil, label: "ci")
            expected += ["q.access.token.create.v1"]
            _ = try node.collectGarbage()
            expected += ["q.gc.run.v1"]
        }
        let events = try f.events()
        #expect(events.map(\.event.type) == expected)
        #expect(events.map(\.index) == (0..<UInt64(expected.count)).map { $0 })
        for e in events {
            #expect(e.event.actor == Self.alice.actor, "\(e.event.type)")
            #expect(e.event.requestId == Self.alice.requestId, "\(e.event.type)")
            #expect(e.event.verdict == .allow)
        }
        // The node's own work (no caller) is the node's, with a request id of its own.
        _ = try f.put(1, tag: "node")
        let own = try #require(try f.events().last)
        #expect(own.event.actor.squidId == node.identity.peerID && own.event.requestId.hasPrefix("node-"))
    }

    /// In a group commit, an operation that records its event and then fails takes only its own
    /// event with it (the batch runs again one by one); the others keep theirs, in one log.
    @Test func aFailedOperationInAGroupCommitLeavesNoEvent() async throws {
        let f = try Fixture()
        struct Refused: Error {}
        let node = f.node
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    do {
                        try await node.commits.run { txn, _ in
                            txn.audit("q.test.op.v1", ref: "op-\(i)")
                            if i % 5 == 0 { throw Refused() }
                        }
                    } catch is Refused {}
                }
            }
            try await group.waitForAll()
        }
        let refs = Set(try f.events().map(\.event.ref))
        #expect(refs == Set((0..<40).filter { $0 % 5 != 0 }.map { "op-\($0)" }))
        #expect(try f.node.verifyAudit().ok)
    }

    /// 710 events (two full tiles, then a partial one), the node reopened in between: the root,
    /// every checkpoint, proofs at sizes around the tile edges and the tiles served all match a
    /// tree recomputed here from the event blocks alone.
    /// A batch of the log's that reported failing and yet was applied (LevelDB's reopen after a
    /// full disk replays its log): the log goes on after it, not over it. Simulated by a sink that
    /// settles a written batch as abandoned, then a pending reopen.
    @Test func theLogGoesOnAfterABatchAReopenReplayed() throws {
        let f = try Fixture()
        try f.put(3, tag: "before")
        struct Misreporting: AuditSink {
            let log: AuditLog
            var isRecording: Bool { log.isRecording }
            func prepare(_ entry: AuditEntry, at ts: UInt64) throws -> any Sendable { try log.prepare(entry, at: ts) }
            func stage(_ items: [AuditItem], checkpoint: Bool, in txn: CountTransaction, store: CountedBlockStore) throws -> any Sendable {
                try log.stage(items, checkpoint: checkpoint, in: txn, store: store)
            }
            func settle(_ staged: any Sendable, written: Bool) { log.settle(staged, written: false) }
        }
        f.node.blocks.setAuditSink(Misreporting(log: f.node.audit))
        try f.put(1, tag: "replayed")
        f.node.blocks.setAuditSink(f.node.audit)
        f.db.markWaitingToReopen()
        try f.put(2, tag: "after")
        #expect(f.db.reopenCount == 1)
        let events = try f.events()
        #expect(try f.node.verifyAudit().ok, "the log does not verify after the replayed batch")
        let puts = events.filter { $0.event.type == "q.block.put.v1" }.count
        #expect(puts == 6, "\(puts) put events of 6: one was written over")
    }

    @Test func theLogMatchesAnIndependentRecomputationAcrossReopening() throws {
        let f = try Fixture(checkpointEvery: 100)
        try f.put(400, tag: "a")
        try f.reopen()
        try f.put(310, tag: "b")
        _ = try f.node.auditCheckpoint(fresh: true)
        let events = try f.events()
        #expect(events.count == 710)
        var tree = MemoryHashes()
        var leaves: [[UInt8]] = []
        for e in events {
            let bytes = try f.node.block(e.cid)
            #expect(try AuditEvent(decoding: bytes) == e.event)
            leaves.append(MerkleHash.leaf(bytes))
            tree.append(leafHash: leaves.last!)
        }
        let checkpoints = try f.node.auditCheckpoints()
        #expect(checkpoints.count >= 7)
        #expect(checkpoints.last?.size == 710)
        let key = SigningKey(f.node.identity)
        for c in checkpoints {
            let verified = try Checkpoint.verify(note: c.note, name: f.node.auditOrigin, publicKey: key.publicKey)
            #expect(verified.rootHash == (try MerkleTree.root(of: c.size, tree)), "checkpoint \(c.size)")
        }
        for size: UInt64 in [1, 2, 255, 256, 257, 300, 511, 512, 513, 700, 710] {
            let root = try MerkleTree.root(of: size, tree)
            for index in Set([0, size / 2, size - 1]) {
                let p = try f.node.auditInclusionProof(index: index, size: size)
                #expect(p.leafHash == leaves[Int(index)])
                #expect(MerkleTree.verifyInclusion(leafHash: leaves[Int(index)], index: index, size: size, proof: p.hashes, root: root), "\(index) in \(size)")
            }
            for from: UInt64 in [1, 128, 256, size] where from <= size {
                let p = try f.node.auditConsistencyProof(from: from, to: size)
                #expect(MerkleTree.verifyConsistency(from: from, to: size, proof: p.hashes, oldRoot: try MerkleTree.root(of: from, tree), newRoot: root))
            }
        }
        #expect(try f.node.auditTile(TileCoordinate(level: 0, index: 1), width: nil) == Array(leaves[256..<512].joined()))
        #expect(try f.node.auditTile(TileCoordinate(level: 0, index: 2), width: 198) == Array(leaves[512..<710].joined()))
        let level1 = [try MerkleTree.root(of: 256, tree), try tree.hash(level: 8, index: 1)]
        #expect(try f.node.auditTile(TileCoordinate(level: 1, index: 0), width: 2) == Array(level1.joined()))
        #expect(throws: (any Error).self) { try f.node.auditTile(TileCoordinate(level: 0, index: 2), width: nil) }
        #expect(throws: (any Error).self) { try f.node.auditInclusionProof(index: 5, size: 711) }
        let v = try f.node.verifyAudit()
        #expect(v.ok && v.size == 710 && v.checkpoints == checkpoints.count, "\(v.problems)")
        #expect(try f.node.verifyRepository().isClean)
    }

    /// An import that fails part way leaves what it stored as garbage and says so in the log (a
    /// WARN event with the blocks stored); an add whose pin is refused has no add event.
    @Test func failedOperationsAreNotLoggedAsChanges() throws {
        let f = try Fixture()
        let good = try (0..<3).map { try Block(data: Array("good \($0)".utf8), codec: .raw, hash: .sha2_256) }
        let bad = try Block(data: Array("bad".utf8), codec: .raw, hash: .sha2_256)
        var w = try CARWriter(roots: [good[0].cid], sink: ArraySink())
        for b in good { try w.write(cid: b.cid, data: b.data) }
        try w.write(cid: bad.cid, data: Array("not bad".utf8))
        let car = try w.finish().bytes
        #expect(throws: (any Error).self) { _ = try f.node.importCAR(BytesSource(car)) }
        let warned = try #require(try f.events().last)
        #expect(warned.event.type == "q.dag.import.v1" && warned.event.verdict == .warn)
        #expect(warned.event.details["blocks"] == .int(3), "\(warned.event.details)")
    }

    /// `from`/`to` as times find the events appended in the period (the index's times never
    /// decrease), and the filters combine with them.
    @Test func queriesByTimeAndFilters() throws {
        let f = try Fixture()
        try f.put(5, tag: "morning")
        let noon = f.clock.now + 3_600_000
        f.clock.advance(by: .seconds(3600))
        try f.put(7, tag: "noon")
        f.clock.advance(by: .seconds(3600))
        try f.put(3, tag: "evening")
        let iso = { (ms: UInt64) in Timestamps.format(ms) }
        var q = try AuditQuery(parameters: { name in ["from": iso(noon), "to": iso(noon + 3_600_000)][name] })
        #expect(try f.node.auditEvents(q).events.map(\.index) == Array(5..<12))
        q = try AuditQuery(parameters: { name in ["from": iso(noon), "type": "q.block.*", "limit": "2"][name] })
        let page = try f.node.auditEvents(q)
        #expect(page.events.map(\.index) == [5, 6] && page.cursor == 7)
        #expect(throws: AuditError.self) { try AuditQuery(parameters: { name in ["from": "yesterday"][name] }) }
        #expect(throws: AuditError.self) { try AuditQuery(parameters: { name in ["verdict": "MAYBE"][name] }) }
    }

    /// A byte flipped in an event's stored block, an event block removed, two index entries
    /// swapped: `audit verify` names the index each time; an exported log with an event changed
    /// or missing is caught offline the same way.
    @Test func tamperingIsFoundByIndex() throws {
        let f = try Fixture(checkpointEvery: 128)
        try f.put(600)
        _ = try f.node.auditCheckpoint(fresh: true)
        #expect(try f.node.verifyAudit().ok)
        let events = try f.events()
        func dataKey(_ i: Int) -> [UInt8] { KeySpace.blockData.key(events[i].cid.multihash.bytes) }
        func leafKey(_ i: Int) -> [UInt8] { KeySpace.auditHead.key([1] + withUnsafeBytes(of: UInt64(i).bigEndian) { Array($0) }) }
        func write(_ changes: [([UInt8], [UInt8]?)]) throws {
            let b = WriteBatch()
            for (k, v) in changes { if let v { b.put(k, v) } else { b.delete(k) } }
            try f.db.write(b, sync: true)
        }
        func indices(_ v: AuditVerification) -> Set<UInt64> { Set(v.problems.compactMap(\.index)) }

        // A flipped byte (the record is inline: kind 0, then the bytes).
        let original = try #require(try f.db.get(dataKey(10)))
        var flipped = original
        flipped[flipped.count - 3] ^= 0x01
        try write([(dataKey(10), flipped)])
        var v = try f.node.verifyAudit()
        #expect(!v.ok && indices(v) == [10], "\(v.problems)")
        try write([(dataKey(10), original)])

        // A removed event block.
        let removed = try #require(try f.db.get(dataKey(300)))
        try write([(dataKey(300), nil)])
        v = try f.node.verifyAudit()
        #expect(!v.ok && indices(v) == [300], "\(v.problems)")
        try write([(dataKey(300), removed)])

        // Two events swapped in the log's index.
        let a = try #require(try f.db.get(leafKey(20))), b = try #require(try f.db.get(leafKey(21)))
        try write([(leafKey(20), b), (leafKey(21), a)])
        v = try f.node.verifyAudit()
        #expect(!v.ok && indices(v) == [20, 21], "\(v.problems)")
        try write([(leafKey(20), a), (leafKey(21), b)])
        #expect(try f.node.verifyAudit().ok)

        // Offline: the exported CAR, then a copy with event 5 changed and one without event 400.
        let car = f.dir.path + "/audit.car"
        _ = try f.node.exportAudit(to: try FileSink(path: car))
        var r = try AuditArchive.verify(carAt: car, key: f.node.auditVerifierKey)
        #expect(r.ok && r.size == 600, "\(r.problems)")
        func rewrite(_ path: String, _ change: (CID, [UInt8]) -> [UInt8]?) throws {
            var reader = try CARReader(try FileSource(path: car))
            var w = try CARWriter(roots: reader.roots, sink: try FileSink(path: path))
            while let blk = try reader.next() { if let d = change(blk.cid, blk.data) { try w.write(cid: blk.cid, data: d) } }
            _ = try w.finish()
        }
        let changed = f.dir.path + "/changed.car", missing = f.dir.path + "/missing.car"
        try rewrite(changed) { cid, data in
            guard cid == events[5].cid else { return data }
            var d = data
            d[d.count - 2] ^= 0x01
            return d
        }
        try rewrite(missing) { cid, data in cid == events[400].cid ? nil : data }
        r = try AuditArchive.verify(carAt: changed, key: f.node.auditVerifierKey)
        #expect(!r.ok && indices(r) == [5], "\(r.problems)")
        r = try AuditArchive.verify(carAt: missing, key: nil)
        #expect(!r.ok && indices(r) == [400], "\(r.problems)")
        // Another key's checkpoints are refused.
        let other = SignedNote.verifierKey(name: f.node.auditOrigin, publicKey: SigningKey().publicKey)
        #expect(throws: AuditError.self) { try AuditArchive.verify(carAt: car, key: other) }
    }

    /// The log is pinned under audit-logs: no unpin before its retention (not even by the
    /// admin), no removal of an event, nothing collected by GC, and the repository verifies.
    @Test func retentionKeepsTheLogFromUnpinAndCollection() throws {
        let f = try Fixture(checkpointEvery: 64)
        let blocks = try f.put(300)
        _ = try f.node.auditCheckpoint(fresh: true)
        let head = try #require(f.node.audit.head)
        let pins = try f.node.pinObjects(of: head)
        #expect(pins.count == 1 && pins.first?.resourceType == AuditLog.resourceType)
        #expect(throws: PinningError.self) { try f.node.unpin(head) }
        #expect(throws: PinningError.self) { try f.node.unpin(head, owner: "alice") }
        let event = try #require(try f.events().first)
        #expect(throws: PinningError.self) { try f.node.removeBlock(event.cid) }
        // Events after the latest checkpoint (held by the put grace period only), a raw tile and
        // a tile node are refused too.
        try f.put(3, tag: "late")
        let late = try #require(try f.events().last)
        #expect(throws: PinningError.self) { try f.node.removeBlock(late.cid) }
        let tile = try f.node.auditTile(TileCoordinate(level: 0, index: 0), width: nil)
        let rawTile = try Block(data: tile, codec: .raw, hash: .sha2_256)
        #expect(throws: PinningError.self) { try f.node.removeBlock(rawTile.cid) }
        // An ordinary block with the same shape of count is still removable.
        let loose = try f.node.putBlock(Array("loose".utf8), codec: .raw, hash: .sha2_256, hashLength: nil)
        try f.node.removeBlock(loose.cid)
        // Past every grace period: the unpinned blocks go, the log stays whole.
        f.clock.advance(by: .seconds(40 * 86_400))
        let gc = try f.node.collectGarbage()
        #expect(gc.blocks >= blocks.count)
        #expect(try f.node.verifyAudit().ok)
        for e in try f.events() { #expect(try f.node.blockSize(e.cid) > 0) }
        #expect(try f.node.verifyRepository().isClean)
    }
}

/// Kills a `qstore debug write-load --pins` process (puts, pins, unpins and collections, each
/// change with its event) at random moments: after each kill the log verifies (every tile and
/// checkpoint against the events), and every pin the process acknowledged has its event.
@Suite struct AuditCrashTests {
    @Test func killedDuringAppendsLosesNoAcknowledgedEvent() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qstore")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "qstore binary not found at \(binary.path)")
        let dir = TemporaryDirectory()
        let repoPath = dir.path + "/repo"
        var configuration = Configuration()
        var audit = AuditConfiguration()
        audit.checkpointEvery = 50
        try configuration.setSection(audit)
        _ = try Repository.initialize(at: repoPath, configuration: configuration)
        var rng = SeededGenerator(seed: 14)
        var acknowledged = Set<String>()
        for round in 0..<5 {
            let lines = try runAndKill(binary, ["debug", "write-load", "--pins", "--count", "100000", "--seed", String(round + 1), "--max-size", "2000"],
                                       environment: ["QSTORE_PATH": repoPath], afterLines: Int.random(in: 20...400, using: &rng), using: &rng)
            for line in lines where line.hasPrefix("pinned ") { acknowledged.insert(String(line.dropFirst(7))) }
            let repo = try Repository(path: repoPath, purpose: "audit crash test \(round)")
            let node = try Node(repository: repo)
            let v = try node.verifyAudit()
            #expect(v.ok, "round \(round): \(v.problems.prefix(3))")
            var pinned = Set<String>()
            var q = AuditQuery()
            q.type = "q.pin.add.v1"
            q.limit = 1000
            while true {
                let page = try node.auditEvents(q)
                for e in page.events { if let c = e.event.cid { pinned.insert(c.string) } }
                guard let c = page.cursor else { break }
                q.cursor = c
            }
            let lost = acknowledged.subtracting(pinned)
            #expect(lost.isEmpty, "round \(round): \(lost.count) acknowledged pins without their event")
            #expect(try node.verifyRepository().isClean, "round \(round)")
            repo.close()
        }
        #expect(acknowledged.count > 50)
    }
}
