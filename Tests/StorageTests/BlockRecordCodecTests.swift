import Foundation
import IPLD
import Multiformats
@testable import Storage
import Testing
import TestSupport

/// Version 2 block records list the codecs their block is stored under, so a deletion reads the
/// links records by key; version 1 records (no list) are still deleted by a prefix seek, and a
/// version 1 repository opens as version 2.
struct BlockRecordCodecTests {
    struct Fixture {
        let dir = TemporaryDirectory()
        let store: LevelDBBlockStore
        init(inlineLimit: Int = 16 << 10) throws {
            var o = LevelDBBlockStore.Options()
            o.inlineLimit = inlineLimit
            o.maximumPackSize = 100_000
            store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        }
        func bytes(_ mh: Multihash) throws -> [UInt8] { try #require(try store.db.get(LevelDBBlockStore.dataKey(mh))) }
        /// The record's list, sorted (duplicates kept: a list must not hold any).
        func codecs(_ mh: Multihash) throws -> [UInt64]? { try LevelDBBlockStore.Record.codecs(try bytes(mh))?.sorted() }
        /// The codecs of the links records left for `mh` (a prefix scan, the ground truth).
        func linksRecords(_ mh: Multihash) throws -> [UInt64] {
            var out: [UInt64] = []
            try store.db.makeIterator().forEach(prefix: KeySpace.blockLinks.key(mh.bytes)) { k, _ in
                out.append(try LevelDBBlockStore.parseLinksKey(k).1.code)
                return true
            }
            return out
        }
        /// Deletes `mh` the way the collector does: staged under the writer lock, then written.
        func delete(_ mh: Multihash) throws -> (links: [CID], size: Int)? {
            try store.exclusively {
                let batch = WriteBatch()
                let r = try store.stageDelete(mh, into: batch)
                try store.db.write(batch, sync: false)
                return r
            }
        }
        /// Rewrites `mh`'s record as version 1 wrote it (no codec list).
        func makeVersion1(_ mh: Multihash) throws {
            let batch = WriteBatch()
            batch.put(LevelDBBlockStore.dataKey(mh), try LevelDBBlockStore.Record(try bytes(mh)).encode())
            try store.db.write(batch, sync: false)
        }
    }

    /// A parent stored as dag-cbor (one link) and the same bytes as raw (no links).
    static func parentAndChild(_ seed: UInt64, size: Int = 200) throws -> (parent: [UInt8], child: Block) {
        var rng = SeededGenerator(seed: seed)
        let child = try Block(data: rng.bytes(64), codec: .raw)
        let node: IPLDNode = ["pad": .bytes(rng.bytes(size)), "child": .link(child.cid)]
        let parent = try DAGCBOR().encode(node)
        return (parent, child)
    }

    @Test(arguments: [16 << 10, 100])  // inline, and packed
    func aRecordListsEveryCodecAndItsDeletionTakesEveryLinksRecord(inlineLimit: Int) throws {
        let f = try Fixture(inlineLimit: inlineLimit)
        let (data, child) = try Self.parentAndChild(1)
        let asCBOR = try Block(data: data, codec: .dagCBOR)
        try f.store.putMany([child, asCBOR])
        let mh = asCBOR.cid.multihash
        #expect(try f.codecs(mh) == [Multicodec.dagCBOR.code])
        let before = try LevelDBBlockStore.Record(try f.bytes(mh))
        // The same bytes under another codec: listed too, and (packed) not appended again.
        try f.store.put(try Block(data: data, codec: .raw))
        #expect(try f.codecs(mh) == [Multicodec.raw.code, Multicodec.dagCBOR.code].sorted())
        if inlineLimit < data.count {
            guard case .packed(let l) = before, case .packed(let now) = try LevelDBBlockStore.Record(try f.bytes(mh)) else { Issue.record("not packed"); return }
            #expect(l == now, "the location stays")
        }
        #expect(try f.store.get(asCBOR.cid) == data)
        // Both links records go; the child's link is returned once (raw has none).
        let deleted = try #require(try f.delete(mh))
        #expect(deleted.links == [child.cid])
        #expect(deleted.size == data.count)
        #expect(try f.linksRecords(mh).isEmpty)
        #expect(try f.store.get(asCBOR.cid) == nil)
    }

    /// Two codecs of a new block, and the same CID twice, in one put; then both again: new once only.
    @Test func oneBatchListsEveryCodecOnceAndARepeatIsNotNew() throws {
        let f = try Fixture()
        let (data, child) = try Self.parentAndChild(4)
        let asCBOR = try Block(data: data, codec: .dagCBOR), asRaw = try Block(data: data, codec: .raw)
        let first = try f.store.exclusively { () throws -> [LevelDBBlockStore.Staged] in
            let batch = WriteBatch()
            let s = try f.store.stage([child, asCBOR, asRaw, asCBOR], into: batch)
            try f.store.db.write(batch, sync: false)
            return s
        }
        #expect(first.map(\.cid) == [child.cid, asCBOR.cid, asRaw.cid], "the repeated CID is staged once")
        #expect(first.allSatisfy { $0.isNew })
        #expect(try f.codecs(asCBOR.cid.multihash) == [Multicodec.raw.code, Multicodec.dagCBOR.code].sorted())
        let again = try f.store.exclusively { try f.store.stage([asRaw, asCBOR], into: WriteBatch()) }
        #expect(again.allSatisfy { !$0.isNew }, "stored already under both codecs: nothing is new (no second count of the children)")
    }

    /// Two stages into one batch (a transaction staging blocks twice): the second sees the first's
    /// record, so the list written last names both codecs.
    @Test func twoStagesIntoOneBatchMergeTheirLists() throws {
        let f = try Fixture()
        let (data, child) = try Self.parentAndChild(5)
        let asCBOR = try Block(data: data, codec: .dagCBOR), asRaw = try Block(data: data, codec: .raw)
        let second = try f.store.exclusively { () throws -> [LevelDBBlockStore.Staged] in
            let batch = WriteBatch()
            _ = try f.store.stage([child, asCBOR], into: batch)
            let s = try f.store.stage([asRaw, asCBOR], into: batch)
            try f.store.db.write(batch, sync: false)
            return s
        }
        #expect(second.map(\.isNew) == [true, false], "the second stage sees what the first staged")
        #expect(try f.codecs(asCBOR.cid.multihash) == [Multicodec.raw.code, Multicodec.dagCBOR.code].sorted())
        _ = try #require(try f.delete(asCBOR.cid.multihash))
        #expect(try f.linksRecords(asCBOR.cid.multihash).isEmpty, "no links record outlives the block")
    }

    /// A block stored under more codecs than a list holds keeps a record without one (deleted by
    /// the seek), and stays readable.
    @Test func moreCodecsThanAListHoldsLeaveNoList() throws {
        let f = try Fixture()
        let data = Array("many codecs".utf8)
        let codes = (0..<(LevelDBBlockStore.Record.maximumListedCodecs + 1)).map { 0x30_0000 + UInt64($0) }
        for c in codes { try f.store.put(try Block(data: data, codec: Multicodec(c))) }
        let mh = try Block(data: data).cid.multihash
        #expect(try f.codecs(mh) == nil)
        #expect(try f.store.get(CID(codec: Multicodec(codes[0]), multihash: mh)) == data)
        #expect(try f.linksRecords(mh).count == codes.count)
        _ = try #require(try f.delete(mh))
        #expect(try f.linksRecords(mh).isEmpty)
    }

    @Test func aVersion1RecordIsDeletedByItsPrefixAndGainsNoList() throws {
        let f = try Fixture()
        let (data, child) = try Self.parentAndChild(2)
        let asCBOR = try Block(data: data, codec: .dagCBOR)
        try f.store.putMany([child, asCBOR])
        let mh = asCBOR.cid.multihash
        try f.makeVersion1(mh)
        #expect(try f.codecs(mh) == nil)
        // Another codec added to a version 1 record: the record still lists none (it cannot know
        // them all without a seek), so the deletion still seeks, and finds both.
        try f.store.put(try Block(data: data, codec: .raw))
        #expect(try f.codecs(mh) == nil)
        #expect(try f.linksRecords(mh).count == 2)
        let deleted = try #require(try f.delete(mh))
        #expect(deleted.links == [child.cid])
        #expect(try f.linksRecords(mh).isEmpty)
    }

    @Test func compactionKeepsTheList() throws {
        let f = try Fixture(inlineLimit: 1000)
        var rng = SeededGenerator(seed: 3)
        let blocks = try (0..<12).map { _ in try Block(data: rng.bytes(30_000)) }
        for b in blocks { try f.store.put(b) }
        let pack = try #require(try f.store.packUsage().first { !$0.current }).pack
        let inPack = try blocks.filter { b in
            if case .packed(let l)? = try f.store.record(b.cid.multihash) { return l.pack == pack }
            return false
        }
        #expect(inPack.count >= 2)
        for b in inPack.dropFirst() { #expect(try f.store.delete(b.cid)) }
        let c = try #require(try f.store.copyLiveEntries(of: pack))
        try f.store.exclusively {
            let batch = WriteBatch()
            try f.store.stageRetirement(c, into: batch)
            try f.store.db.write(batch, sync: true)
        }
        try f.store.removeRetiredPacks()
        let moved = inPack[0].cid.multihash
        guard case .packed(let l)? = try f.store.record(moved) else { Issue.record("not packed"); return }
        #expect(l.pack != pack, "it moved")
        #expect(try f.codecs(moved) == [Multicodec.raw.code])
        #expect(try f.store.get(inPack[0].cid) == inPack[0].data)
    }

    @Test func aVersion1RepositoryOpensAsVersion2() throws {
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path)
        let block = try Block(data: Array("kept across the upgrade".utf8))
        do {
            let repo = try Repository(path: dir.path)
            try repo.blocks.put(block)
            // As version 1 left it: the record without a list, the version file saying 1.
            let batch = WriteBatch()
            batch.put(LevelDBBlockStore.dataKey(block.cid.multihash), try LevelDBBlockStore.Record(try #require(try repo.db.get(LevelDBBlockStore.dataKey(block.cid.multihash)))).encode())
            try repo.db.write(batch, sync: true)
            repo.close()
        }
        try "1\n".write(toFile: dir.path + "/version", atomically: true, encoding: .utf8)
        let repo = try Repository(path: dir.path)
        #expect(try String(contentsOfFile: dir.path + "/version", encoding: .utf8) == "\(Repository.currentVersion)\n")
        #expect(Repository.currentVersion == 2)
        #expect(try repo.blocks.get(block.cid) == block.data)
        #expect(try repo.verify().isClean)
        #expect(try repo.blocks.delete(block.cid))
        #expect(try repo.verify().isClean)
        repo.close()
    }

    @Test func verifyFindsAListThatDisagreesWithTheLinksRecords() throws {
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path)
        let repo = try Repository(path: dir.path)
        let block = try Block(data: Array("listed wrong".utf8))
        try repo.blocks.put(block)
        #expect(try repo.verify().isClean)
        let key = LevelDBBlockStore.dataKey(block.cid.multihash)
        let batch = WriteBatch()
        batch.put(key, try LevelDBBlockStore.Record(try #require(try repo.db.get(key))).encode(codecs: [Multicodec.dagCBOR.code]))
        try repo.db.write(batch, sync: true)
        let report = try repo.verify()
        #expect(report.problems.contains { $0.contains("its record lists codecs") }, "\(report.problems)")
        repo.close()
    }

    @Test func malformedListsAreRefused() throws {
        // Kind 2 with a count running past the record, a huge count, and an unknown kind.
        for bad: [UInt8] in [[2, 3, 0x55], [2, 0xff, 0x01], [9, 0]] {
            #expect(throws: (any Error).self) { try LevelDBBlockStore.Record(bad) }
        }
        #expect(try LevelDBBlockStore.Record.codecs([2, 0]) == [])
        #expect(try LevelDBBlockStore.Record.codecs([0, 1, 2]) == nil)
    }
}
