import Foundation
import IPLD
import Multiformats
@testable import Pinning
import Storage
import Testing
import TestSupport

@Suite struct ReferenceCountTests {
    /// A transaction that fails after staging a large block (its pack bytes appended and synced)
    /// counts those bytes dead: nothing else will, and an uncounted entry would keep its pack from
    /// ever being compacted in this open.
    @Test func aFailedTransactionsPackBytesAreCountedDead() throws {
        let h = try PinningHarness()
        struct Refused: Error {}
        func totals() throws -> (size: UInt64, dead: UInt64) {
            try h.store.base.packUsage().reduce((0, 0)) { ($0.0 + $1.size, $0.1 + $1.dead) }
        }
        let before = try totals()
        let large = try Block(data: [UInt8](repeating: 5, count: 100_000))
        #expect(throws: Refused.self) {
            try h.store.transaction { txn in
                try h.store.stage([large], in: txn)
                throw Refused()
            }
        }
        let after = try totals()
        #expect(after.size > before.size && after.size - before.size == after.dead - before.dead, "\(before) → \(after)")
        #expect(try !h.store.has(large.cid))
        // Put for real, it is stored and live (a new entry, not the dead one).
        try h.store.put(large)
        #expect(try h.store.get(large.cid) == large.data)
        #expect(try totals().dead == after.dead)
    }

    @Test func countsFollowPutsPinsAndCollection() throws {
        let h = try PinningHarness()
        let c = try PinningHarness.node(1, links: [])
        let a = try PinningHarness.node(2, links: [c.cid])
        let b = try PinningHarness.node(3, links: [])
        let root = try PinningHarness.node(4, links: [a.cid, b.cid, a.cid])
        try h.store.putMany([c, a])
        try h.store.putMany([b, root])
        #expect(try h.count(root.cid) == 0 && h.count(a.cid) == 1 && h.count(c.cid) == 1, "a link counted once per record")
        try h.pins.pin(Pinner.Request(cid: root.cid))
        #expect(try h.count(root.cid) == 1)
        #expect(try h.verifyClean() == [])
        #expect(try h.collector.collect().blocks == 0)
        // Pinning again changes nothing; a direct pin of a recursively pinned CID is refused.
        try h.pins.pin(Pinner.Request(cid: root.cid))
        #expect(try h.count(root.cid) == 1)
        #expect(throws: PinningError.self) { try h.pins.pin(Pinner.Request(cid: root.cid, type: .direct)) }
        // Re-putting a stored block does not count its links twice.
        try h.store.put(root)
        #expect(try h.count(a.cid) == 1)
        try h.pins.unpin(root.cid)
        let result = try h.collector.collect()
        #expect(result.blocks == 4, "deletion cascades through the whole DAG in one run")
        for blk in [root, a, b, c] { #expect(try !h.store.has(blk.cid)) }
        #expect(try h.verifyClean() == [])
        #expect(try h.collector.candidateCount() == 0)
    }

    /// The collector's scans start where the last one left off (past the tombstones of deleted
    /// candidates), yet a candidate made later with an earlier time — a child freed by a
    /// deletion keeps its own old time — is still found.
    @Test func candidatesOlderThanTheScanFloorAreCollected() throws {
        let h = try PinningHarness()
        let child = try PinningHarness.node(1, links: [])
        try h.store.put(child)
        h.clock.advance(by: .milliseconds(5))
        let root = try PinningHarness.node(2, links: [child.cid])
        try h.store.put(root)
        try h.pins.pin(Pinner.Request(cid: root.cid))
        h.clock.advance(by: .milliseconds(5))
        let garbage = try (3..<8).map { try PinningHarness.node($0, links: []) }
        try h.store.putMany(garbage)
        let oneAtATime = GarbageCollector(store: h.store, batchSize: 1)
        #expect(try oneAtATime.collect(now: h.clock.now + 1).blocks == garbage.count)
        try h.pins.unpin(root.cid)
        #expect(try oneAtATime.collect(now: h.clock.now + 1).blocks == 2, "the root, then its child with its older time")
        #expect(try !h.store.has(child.cid) && !h.store.has(root.cid))
        #expect(try h.verifyClean() == [])
        // Many rounds of garbage: each collection finds all of it.
        for round in 0..<20 {
            let more = try (0..<10).map { try PinningHarness.node(100 + round * 10 + $0, links: []) }
            try h.store.putMany(more)
            #expect(try h.collector.collect(now: h.clock.now + 1).blocks == 10)
        }
        #expect(try h.collector.candidateCount() == 0)
    }

    @Test func recursivePinNeedsTheWholeDAG() throws {
        let h = try PinningHarness()
        let missing = try PinningHarness.node(9, links: [])
        let root = try PinningHarness.node(10, links: [missing.cid])
        try h.store.put(root)
        #expect(throws: PinningError.incompleteDAG(missing: missing.cid, root: root.cid)) { try h.pins.pin(Pinner.Request(cid: root.cid)) }
        #expect(throws: PinningError.notFound(missing.cid)) { try h.pins.pin(Pinner.Request(cid: missing.cid)) }
        // A direct pin needs only the block.
        try h.pins.pin(Pinner.Request(cid: root.cid, type: .direct))
        #expect(try h.count(missing.cid) == 1, "a referenced block that is absent is counted, so it stays when it arrives")
        try h.store.put(missing)
        try h.pins.pin(Pinner.Request(cid: root.cid))
        let on = try h.pins.pins(of: root.cid.multihash)
        #expect(on.count == 1 && on[0].type == .recursive, "the recursive pin replaced the direct one")
        #expect(try h.verifyClean() == [])
    }

    @Test func gracePeriodsAndLeasesProtectUnpinnedBlocks() throws {
        let h = try PinningHarness(putGrace: "1h")
        let b = try PinningHarness.node(1, links: [])
        try h.store.put(b)
        #expect(try h.collector.collect().blocks == 0, "inside the put grace period")
        #expect(try h.collector.collect(now: h.clock.now + 3_600_001).blocks == 1)

        let g = try PinningHarness()
        let lease = g.store.lease()
        let x = try PinningHarness.node(2, links: [])
        try g.store.put(x)
        #expect(try g.collector.collect(now: g.clock.now + 10).blocks == 0, "a lease protects what is put after it began")
        lease.release()
        #expect(try g.collector.collect(now: g.clock.now + 10).blocks == 1)
    }

    /// A pin on an identity CID (its data inside the CID, never stored) holds no count, and the
    /// repository verifies clean with it (found by probing: `pin add bafkqaaa` made verify fail).
    @Test func identityPinsVerifyClean() throws {
        let h = try PinningHarness()
        let inline = CID(codec: .raw, multihash: try Multihash(code: .identity, digest: Array("inline".utf8)))
        try h.pins.pin(Pinner.Request(cid: inline))
        #expect(try h.verifyClean() == [])
    }

    /// With two leases held, the older one protects what was put after it began, even though
    /// the newer one began after that put: GC must honour the oldest lease in force.
    @Test func theOldestLeaseInForceProtects() throws {
        let g = try PinningHarness()
        func nextMillisecond() { g.clock.advance(by: .milliseconds(1)) }
        let older = g.store.lease()
        nextMillisecond()
        let x = try PinningHarness.node(7, links: [])
        try g.store.put(x)
        nextMillisecond()
        let newer = g.store.lease()
        #expect(try g.collector.collect(now: g.clock.now + 10).blocks == 0, "the older lease protects x")
        older.release()
        #expect(try g.collector.collect(now: g.clock.now + 10).blocks == 1, "the newer lease began after x was put")
        newer.release()
    }

    @Test func unpinGraceComesFromThePolicy() throws {
        let h = try PinningHarness(unpinGrace: "1d")
        let b = try PinningHarness.node(1, links: [])
        try h.store.put(b)
        try h.pins.pin(Pinner.Request(cid: b.cid, resourceType: "qdrive-files"))
        try h.pins.unpin(b.cid)
        #expect(try h.collector.collect(now: h.clock.now + 1000).blocks == 0)
        #expect(try h.collector.collect(now: h.clock.now + 86_400_001).blocks == 1)
    }

    @Test func pinUpdateWalksOnlyWhatDiffers() throws {
        let h = try PinningHarness()
        let deep = try PinningHarness.node(1, links: [])
        let shared = try PinningHarness.node(2, links: [deep.cid])
        let x = try PinningHarness.node(3, links: [])
        let y = try PinningHarness.node(4, links: [])
        let from = try PinningHarness.node(5, links: [shared.cid, x.cid])
        let to = try PinningHarness.node(6, links: [shared.cid, y.cid])
        try h.store.putMany([deep, shared, x, y, from, to])
        var request = Pinner.Request(cid: from.cid, name: "site")
        request.resourceType = "module-docs"
        try h.pins.pin(request)
        // Break the shared subtree behind the pins' back: a full walk of `to` would now fail.
        try h.repository.blocks.exclusively {
            let batch = WriteBatch()
            _ = try h.repository.blocks.stageDelete(deep.cid.multihash, into: batch)
            try h.repository.db.write(batch, sync: true)
        }
        #expect(try h.pins.check(to.cid, type: .recursive).missing == deep.cid)
        let moved = try h.pins.update(from: from.cid, to: to.cid)
        #expect(moved.cid == to.cid && moved.name == "site" && moved.resourceType == "module-docs")
        #expect(try h.pins.pins(of: from.cid.multihash).isEmpty)
        #expect(try h.count(to.cid) == 1 && h.count(from.cid) == 0)
    }

    @Test func temporaryConditionalAndRetainedPins() throws {
        let h = try PinningHarness()
        let blocks = try (1...4).map { try PinningHarness.node($0, links: []) }
        try h.store.putMany(blocks)
        // temp-files: TEMPORARY, ttl 24h.
        let temp = try h.pins.pin(Pinner.Request(cid: blocks[0].cid, resourceType: "temp-files"))
        #expect(temp.expires == temp.created + 86_400_000)
        #expect(try h.pins.maintain(now: temp.created + 1000).expired == 0)
        #expect(try h.pins.maintain(now: temp.created + 86_400_000).expired == 1)
        #expect(try h.pins.pins(of: blocks[0].cid.multihash).isEmpty)
        // index-records: CONDITIONAL keepLatest 10 per name (checked with a smaller policy below).
        var records: [Pin] = []
        for b in blocks { records.append(try h.pins.add(Pinner.Request(cid: b.cid, name: "ptr", resourceType: "index-records"))) }
        #expect(try records.allSatisfy { try h.pins.pin(id: $0.id) != nil }, "within keepLatest")
        // audit-logs: retention 365d refuses removal.
        let audit = try h.pins.add(Pinner.Request(cid: blocks[1].cid, resourceType: "audit-logs"))
        #expect(throws: PinningError.self) { try h.pins.remove(id: audit.id) }
        #expect(throws: PinningError.unknownResourceType("nope", known: h.policies.policies.keys.sorted())) {
            try h.pins.pin(Pinner.Request(cid: blocks[2].cid, resourceType: "nope"))
        }
        #expect(try h.verifyClean() == [])
    }

    @Test func keepLatestEndsOlderPinsOfTheSameName() throws {
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path)
        let repo = try Repository(path: dir.path)
        let files: [(String, Data)] = [
            ("default.json", Data(defaultPolicyFiles.first { $0.name == "default.json" }!.contents.utf8)),
            ("index-records.json", Data(defaultPolicyFiles.first { $0.name == "index-records.json" }!.contents.replacingOccurrences(of: "\"keepLatest\": 10", with: "\"keepLatest\": 2").utf8)),
        ]
        let pins = Pinner(store: CountedBlockStore(base: repo.blocks, putGracePeriod: 0), policies: try PolicySet(files: files, source: "test"))
        let blocks = try (1...4).map { try PinningHarness.node($0, links: []) }
        try pins.store.putMany(blocks)
        let made = try blocks.map { try pins.add(Pinner.Request(cid: $0.cid, name: "ptr", resourceType: "index-records")) }
        let left = try made.filter { try pins.pin(id: $0.id) != nil }
        #expect(left.map(\.cid) == [blocks[2].cid, blocks[3].cid])
        #expect(try CountVerifier(pinner: pins).check().problems == [])
    }

    @Test func queuedPinsCompleteWhenBlocksArrive() throws {
        let h = try PinningHarness()
        let child = try PinningHarness.node(1, links: [])
        let root = try PinningHarness.node(2, links: [child.cid])
        let p = try h.pins.add(Pinner.Request(cid: root.cid))
        #expect(p.status == .queued && p.info["missing"] == root.cid.description)
        try h.store.putMany([root, child])
        #expect(try h.pins.maintain().completed == 1)
        #expect(try h.pins.pin(id: p.id)?.status == .pinned)
        let lost = try h.pins.add(Pinner.Request(cid: try PinningHarness.node(3, links: []).cid))
        #expect(try h.pins.maintain(now: lost.created + 60_000).failed == 1)
        #expect(try h.pins.pin(id: lost.id)?.status == .failed)
        #expect(try h.verifyClean() == [])
    }

    @Test func repairRestoresCountsAndIndexes() throws {
        let h = try PinningHarness()
        let a = try PinningHarness.node(1, links: [])
        let root = try PinningHarness.node(2, links: [a.cid])
        try h.store.putMany([a, root])
        try h.pins.pin(Pinner.Request(cid: root.cid, name: "n"))
        // Damage: drop a count record, a candidate-free record, and a pin index entry.
        let batch = WriteBatch()
        batch.delete(KeySpace.referenceCounts.key(a.cid.multihash.bytes))
        batch.put(KeySpace.referenceCounts.key(root.cid.multihash.bytes), [5, 0])
        try h.repository.db.write(batch, sync: true)
        #expect(try h.verifyClean().count >= 2)
        let repaired = try CountVerifier(pinner: h.pins).repair()
        #expect(repaired.repaired >= 2)
        #expect(try h.verifyClean() == [])
        #expect(try h.count(a.cid) == 1 && h.count(root.cid) == 1)
    }
}

@Suite struct PolicyTests {
    @Test func shippedPoliciesAreTheCompiledOnes() throws {
        let folder = Fixtures.repositoryRoot + "/Pinning"
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") && !$0.hasSuffix(".schema.json") }.sorted()
        #expect(onDisk == defaultPolicyFiles.map(\.name), "run Scripts/generate-default-policies.py")
        for f in defaultPolicyFiles {
            let text = try String(contentsOfFile: folder + "/" + f.name, encoding: .utf8)
            #expect(text.trimmingCharacters(in: .newlines) == f.contents, "\(f.name): run Scripts/generate-default-policies.py")
        }
        let set = try PolicySet.load(directory: folder)
        for t in ["module-packages", "module-docs", "audit-logs", "index-records", "qdrive-files", "qpic-media", "temp-files", "default"] {
            #expect(set.policies[t] != nil, "\(t) policy shipped")
        }
    }

    /// A resource type is 1 to 63 lowercase ASCII letters, digits and dashes, not starting with a dash.
    @Test func resourceTypeNames() throws {
        func load(_ name: String) throws {
            let dir = TemporaryDirectory()
            func text(_ type: String) -> String {
                #"{"resourceType":"\#(type)","pinningStrategy":"PERMANENT","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"1h","retention":"0s"}"#
            }
            try Data(text("default").utf8).write(to: URL(fileURLWithPath: dir.path + "/default.json"))
            try Data(text(name).utf8).write(to: URL(fileURLWithPath: dir.path + "/\(name).json"))
            _ = try PolicySet.load(directory: dir.path)
        }
        for good in ["a", "9", "module-docs", "a-", String(repeating: "z", count: 63)] { #expect(throws: Never.self, "\(good)") { try load(good) } }
        for bad in ["Docs", "-x", "a_b", "é", "x y", String(repeating: "z", count: 64)] {
            do {
                try load(bad)
                Issue.record("accepted \(bad)")
            } catch let PinningError.invalidPolicy(_, field, problem) {
                #expect(field == "resourceType" && problem.contains("lowercase"), "\(bad): \(problem)")
            }
        }
    }

    @Test(arguments: [
        (#"{"resourceType":"default","pinningStrategy":"FOREVER","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"1h","retention":"0s"}"#, "pinningStrategy"),
        (#"{"resourceType":"default","pinningStrategy":"TEMPORARY","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"1h","retention":"0s"}"#, "ttl"),
        (#"{"resourceType":"default","pinningStrategy":"PERMANENT","replicationFactor":0,"accessPattern":"HOT","gracePeriod":"1h","retention":"0s"}"#, "replicationFactor"),
        (#"{"resourceType":"default","pinningStrategy":"PERMANENT","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"an hour","retention":"0s"}"#, "gracePeriod"),
        (#"{"resourceType":"default","pinningStrategy":"PERMANENT","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"1h"}"#, "retention"),
        (#"{"resourceType":"other","pinningStrategy":"PERMANENT","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"1h","retention":"0s"}"#, "resourceType"),
        (#"{"resourceType":"default","pinningStrategy":"PERMANENT","replicationFactor":1,"accessPattern":"LUKEWARM","gracePeriod":"1h","retention":"0s"}"#, "accessPattern"),
        (#"{"resourceType":"default","pinningStrategy":"PERMANENT","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"1h","retention":"0s","colour":"red"}"#, "colour"),
        (#"{"resourceType":"default","pinningStrategy":"CONDITIONAL","replicationFactor":1,"accessPattern":"HOT","gracePeriod":"1h","retention":"0s"}"#, "condition"),
        (#"{"resourceType":"default","pinningStrategy":"PERMANENT","replicationFactor":"1","accessPattern":"HOT","gracePeriod":"1h","retention":"0s"}"#, "replicationFactor"),
        (#"[1,2]"#, "(document)"),
    ])
    func invalidPoliciesNameTheFileAndField(text: String, field: String) throws {
        let dir = TemporaryDirectory()
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.path + "/default.json"))
        do {
            _ = try PolicySet.load(directory: dir.path)
            Issue.record("accepted: \(text)")
        } catch let PinningError.invalidPolicy(file, f, _) {
            #expect(file == dir.path + "/default.json")
            #expect(f == field)
        }
    }

    @Test func durations() {
        #expect(parseDuration("1h30m") == 5_400_000)
        #expect(parseDuration("7d") == 604_800_000)
        #expect(parseDuration("0s") == 0)
        #expect(parseDuration("1.5h") == nil && parseDuration("") == nil && parseDuration("h") == nil)
        #expect(parseDuration("90") == nil && parseDuration("1h30") == nil && parseDuration("1hh") == nil, "a number needs its unit")
        #expect(parseDuration("999999999s") == 999_999_999_000 && parseDuration("1000000000s") == nil, "at most 9 digits")
        #expect(parseDuration("1H") == nil && parseDuration(" 1h") == nil && parseDuration("1h ") == nil && parseDuration("١h") == nil)
        #expect(parseDuration("90s\n") == 90_000 && parseDuration("90s\r\n") == 90_000, "one line break at the end (a value read from a file)")
        #expect(parseDuration("90s\n\n") == nil && parseDuration("\n") == nil && parseDuration("9\n0s") == nil)
        #expect(formatDuration(5_400_000) == "1h30m" && formatDuration(0) == "0s")
    }
}
