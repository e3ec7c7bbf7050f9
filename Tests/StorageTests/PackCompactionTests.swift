import Foundation
import Multiformats
@testable import Storage
import Testing
import TestSupport

/// Pack compaction: dead entries are counted as they are deleted; compacting a pack copies its
/// live blocks on, repoints them in one batch and removes the file; an interruption between the
/// steps leaves a repository that opens clean; a reader holding an old location follows the move.
struct PackCompactionTests {
    struct Fixture {
        let dir = TemporaryDirectory()
        let store: LevelDBBlockStore
        let blocks: [Block]
        init(count: Int = 40, seed: UInt64 = 5) throws {
            var o = LevelDBBlockStore.Options()
            o.inlineLimit = 1000
            o.maximumPackSize = 100_000
            store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
            var rng = SeededGenerator(seed: seed)
            blocks = try (0..<count).map { _ in try Block(data: rng.bytes(30_000)) }
            for b in blocks { try store.put(b) }
        }
        func reopen() throws -> LevelDBBlockStore {
            try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: store.options)
        }
        /// The blocks whose record points into `pack`.
        func blocks(in pack: UInt32, of store: LevelDBBlockStore) throws -> [Block] {
            try blocks.filter { b in
                if case .packed(let l)? = try store.record(b.cid.multihash) { return l.pack == pack }
                return false
            }
        }
        func compact(_ pack: UInt32, on store: LevelDBBlockStore, between: () throws -> Void = {}) throws -> LevelDBBlockStore.PackCompaction {
            let c = try #require(try store.copyLiveEntries(of: pack))
            try between()
            try store.exclusively {
                let batch = WriteBatch()
                try store.stageRetirement(c, into: batch)
                // Written synced whatever the durability: the file goes right after.
                #expect(batch.mustSync, "a retirement batch may be written unsynced")
                try store.db.write(batch, sync: false)
            }
            try store.removeRetiredPacks()
            return c
        }
    }

    @Test func deadSpaceIsCountedAndReclaimed() throws {
        let f = try Fixture()
        let first = try #require(try f.store.packUsage().first)
        #expect(!first.current && first.dead == 0 && first.size > 60_000)
        let inFirst = try f.blocks(in: first.pack, of: f.store)
        #expect(inFirst.count >= 2)
        for b in inFirst.dropFirst() { #expect(try f.store.delete(b.cid)) }
        let usage = try #require(try f.store.packUsage().first { $0.pack == first.pack })
        #expect(usage.dead == UInt64(inFirst.count - 1) * PackStore.entrySize(multihash: inFirst[0].cid.multihash, length: 30_000))
        let before = try f.store.packBytes()
        let c = try f.compact(first.pack, on: f.store)
        #expect(c.copiedBytes == PackStore.entrySize(multihash: inFirst[0].cid.multihash, length: 30_000))
        #expect(!FileManager.default.fileExists(atPath: PackStore.path(f.dir.path + "/packs", first.pack)))
        #expect(try f.store.packBytes() < before - 30_000)
        #expect(try f.store.get(inFirst[0].cid) == inFirst[0].data, "the live block moved and reads back")
        for b in f.blocks where !inFirst.dropFirst().contains(b) { #expect(try f.store.get(b.cid) == b.data) }
        #expect(try f.store.packUsage().allSatisfy { $0.pack != first.pack && $0.dead == 0 }, "its dead-entry records went with it")
    }

    /// Interrupted after the retirement batch, before the file was removed: the next open removes it.
    @Test func anInterruptedRetirementFinishesAtOpen() throws {
        let f = try Fixture()
        let pack = try #require(try f.store.packUsage().first).pack
        let inPack = try f.blocks(in: pack, of: f.store)
        for b in inPack.dropFirst() { try f.store.delete(b.cid) }
        let c = try #require(try f.store.copyLiveEntries(of: pack))
        try f.store.exclusively {
            let batch = WriteBatch()
            try f.store.stageRetirement(c, into: batch)
            try f.store.db.write(batch, sync: true)
        }
        // "Crash": the file is still there; a fresh store over the same database removes it.
        #expect(FileManager.default.fileExists(atPath: PackStore.path(f.dir.path + "/packs", pack)))
        f.store.db.close()
        let again = try f.reopen()
        #expect(!FileManager.default.fileExists(atPath: PackStore.path(f.dir.path + "/packs", pack)))
        #expect(try again.get(inPack[0].cid) == inPack[0].data)
        // Interrupted after the copy, before the batch: nothing changed but dead bytes; compaction reruns.
        let pack2 = try #require(try again.packUsage().first { !$0.current }).pack
        _ = try again.copyLiveEntries(of: pack2)
        again.db.close()
        let third = try f.reopen()
        for b in f.blocks where !inPack.dropFirst().contains(b) { #expect(try third.get(b.cid) == b.data) }
        _ = try f.compact(pack2, on: third)
        for b in f.blocks where !inPack.dropFirst().contains(b) { #expect(try third.get(b.cid) == b.data) }
    }

    /// A pack whose bytes are not exactly live entries plus counted dead ones — a torn entry at its
    /// end, or an entry no record names and no deletion counted — is left alone.
    @Test func unaccountedBytesKeepAPackAsItIs() throws {
        let f = try Fixture()
        let pack = try #require(try f.store.packUsage().first).pack
        let inPack = try f.blocks(in: pack, of: f.store)
        for b in inPack.dropFirst() { try f.store.delete(b.cid) }
        let path = PackStore.path(f.dir.path + "/packs", pack)
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        // A torn entry: a header announcing more bytes than follow.
        try (original + Data([34, 0x12, 0x20] + [UInt8](repeating: 7, count: 32) + [0xff, 0x7f, 1, 2, 3])).write(to: URL(fileURLWithPath: path))
        #expect(try f.store.copyLiveEntries(of: pack) == nil)
        // A whole entry that nothing accounts for.
        let stray = try Block(data: [UInt8](repeating: 9, count: 2000))
        var entry: [UInt8] = []
        Varint.append(UInt64(stray.cid.multihash.bytes.count), to: &entry)
        entry += stray.cid.multihash.bytes
        Varint.append(2000, to: &entry)
        entry += stray.data
        try (original + Data(entry)).write(to: URL(fileURLWithPath: path))
        #expect(try f.store.copyLiveEntries(of: pack) == nil)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try f.store.get(inPack[0].cid) == inPack[0].data, "the live block is where it was")
        // Put back as it was, it compacts.
        try original.write(to: URL(fileURLWithPath: path))
        #expect(try f.store.copyLiveEntries(of: pack) != nil)
    }

    /// Appends a pack entry of `data` under `mh` (its first `keep` bytes of data: torn) to a pack
    /// file, as a put whose record never came would leave it.
    static func appendEntry(_ path: String, _ mh: Multihash, _ data: [UInt8], keep: Int? = nil) throws -> Int {
        var entry: [UInt8] = []
        Varint.append(UInt64(mh.bytes.count), to: &entry)
        entry += mh.bytes
        Varint.append(UInt64(data.count), to: &entry)
        entry += data.prefix(keep ?? data.count)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: entry)
        try handle.close()
        return entry.count
    }

    /// In a pack from before this open, an entry nothing points at is dead, counted or not (no
    /// append of this process can be waiting for its record): the pack compacts, its live block
    /// moves to a pack of this open, the stray entry goes — also one under the live block's own
    /// multihash, and a torn entry at its end (a crash during an append).
    @Test func strayEntriesOfAnEarlierOpenAreDead() throws {
        for variant in ["stray", "same multihash", "torn"] {
            let f = try Fixture()
            let pack = try #require(try f.store.packUsage().first).pack
            let inPack = try f.blocks(in: pack, of: f.store)
            for b in inPack.dropFirst() { try f.store.delete(b.cid) }
            let path = PackStore.path(f.dir.path + "/packs", pack)
            let stray = variant == "same multihash" ? inPack[0] : try Block(data: [UInt8](repeating: 9, count: 2000))
            let added = try Self.appendEntry(path, stray.cid.multihash, stray.data, keep: variant == "torn" ? 1500 : nil)
            let withStray = try #require(PackStore.fileSize(path))
            #expect(try f.store.copyLiveEntries(of: pack) == nil, "\(variant): compacted in the open that may still be writing its record")
            f.store.db.close()
            let again = try f.reopen()
            let c = try f.compact(pack, on: again)
            #expect(c.packBytes == withStray && c.copiedBytes + UInt64(added) < withStray)
            #expect(!FileManager.default.fileExists(atPath: path), "\(variant): the pack was not removed")
            #expect(try again.packUsage().allSatisfy { $0.pack != pack })
            let moved = try #require(try again.record(inPack[0].cid.multihash)?.packLocation)
            #expect(moved.pack >= again.packs.firstPackOfThisOpen, "\(variant): the live block was not moved")
            #expect(try again.get(inPack[0].cid) == inPack[0].data, "\(variant): the live block was lost")
            for b in f.blocks where !inPack.dropFirst().contains(where: { $0.cid == b.cid }) {
                #expect(try again.get(b.cid) == b.data)
            }
        }
    }

    /// A pack from before this open whose scan stops early is compacted only when every record
    /// pointing into it points at an entry the scan found: damage before a live entry (a
    /// multihash length no multihash has), or a length grown by one flipped bit so that the scan
    /// steps over a live entry and stops in the garbage after it, leaves the pack as it is and the
    /// live block readable. Damage after every live entry looks like a torn append and goes.
    @Test func damageThatHidesALiveEntryKeepsThePack() throws {
        for variant in ["bad multihash length before the live entry", "length grown over the live entry", "damage after every live entry"] {
            let f = try Fixture()
            let pack = try #require(try f.store.packUsage().first).pack
            let inPack = try f.blocks(in: pack, of: f.store)
            try #require(inPack.count >= 3)
            let (live, damaged) = variant == "damage after every live entry" ? (inPack[0], inPack.last!) : (inPack[1], inPack[0])
            let at = try #require(try f.store.record(damaged.cid.multihash)?.packLocation)
            for b in inPack where b.cid != live.cid { try f.store.delete(b.cid) }
            f.store.db.close()
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: PackStore.path(f.dir.path + "/packs", pack)))
            if variant == "length grown over the live entry" {
                // 30,000 is B0 EA 01; its last byte 03 makes it 62,768: past the live entry,
                // into the next one's data.
                try #require(at.length == 30_000)
                try handle.seek(toOffset: at.offset - 1)
                try handle.write(contentsOf: [0x03])
            } else {
                // A multihash length of 16,383, more than any multihash has: the scan stops there.
                try handle.seek(toOffset: at.offset - (PackStore.entrySize(multihash: damaged.cid.multihash, length: at.length) - UInt64(at.length)))
                try handle.write(contentsOf: [0xFF, 0x7F])
            }
            try handle.close()
            let again = try f.reopen()
            try #require(try again.packs.scan(pack) { _, _, _ in } != nil, "\(variant): the damaged pack parsed to its end")
            if variant == "damage after every live entry" {
                _ = try f.compact(pack, on: again)
                #expect(!FileManager.default.fileExists(atPath: PackStore.path(f.dir.path + "/packs", pack)))
            } else {
                #expect(try again.copyLiveEntries(of: pack) == nil, "\(variant): the damaged pack was compacted")
                #expect(again.packs.refusedForCompaction.locked { $0[pack] != nil })
                #expect(FileManager.default.fileExists(atPath: PackStore.path(f.dir.path + "/packs", pack)))
            }
            #expect(try again.get(live.cid) == live.data, "\(variant): the live block was lost")
            for b in f.blocks where !inPack.contains(where: { $0.cid == b.cid }) { #expect(try again.get(b.cid) == b.data) }
        }
    }

    /// A compaction decides before it copies: a pack refused (an entry of this open nothing
    /// accounts for — a put's record may still be coming —, or a torn end) gets nothing copied;
    /// the torn one is not scanned again in the same open. Copies made before a failure (here the
    /// copies' sync) are counted dead: uncounted, their own pack would be refused in turn.
    @Test func aRefusedCompactionCopiesNothing() throws {
        for torn in [false, true] {
            let f = try Fixture()
            let pack = try #require(try f.store.packUsage().first).pack
            let inPack = try f.blocks(in: pack, of: f.store)
            for b in inPack.dropFirst() { try f.store.delete(b.cid) }
            let stray = try Block(data: [9, 9, 9])
            _ = try Self.appendEntry(PackStore.path(f.dir.path + "/packs", pack), stray.cid.multihash, stray.data, keep: torn ? 1 : nil)
            let before = try Self.totals(f.store)
            #expect(try f.store.copyLiveEntries(of: pack) == nil)
            #expect(try Self.totals(f.store) == before, "torn \(torn): a refused pack was copied")
            #expect(f.store.packs.refusedForCompaction.locked { $0[pack] != nil } == torn)
            #expect(try f.store.get(inPack[0].cid) == inPack[0].data)
        }
        let f = try Fixture()
        let pack = try #require(try f.store.packUsage().first).pack
        for b in try f.blocks(in: pack, of: f.store).dropFirst() { try f.store.delete(b.cid) }
        let before = try Self.totals(f.store)
        f.store.packs.failNextSyncs(1)
        #expect(throws: BlockStoreError.self) { try f.store.copyLiveEntries(of: pack) }
        let after = try Self.totals(f.store)
        #expect(after.size > before.size && after.size - before.size == after.dead - before.dead, "\(before) → \(after)")
    }

    static func totals(_ store: LevelDBBlockStore) throws -> (size: UInt64, dead: UInt64) {
        try store.packUsage().reduce((0, 0)) { ($0.0 + $1.size, $0.1 + $1.dead) }
    }

    /// Under the writer lock, a pack of this open whose live entries are not all among the moves
    /// (a put's record landed after the scan) is not retired: the retirement throws, the block
    /// stays readable where it is, and a compaction tried again moves it.
    @Test func aLiveEntryTheScanMissedStopsTheRetirement() throws {
        let f = try Fixture()
        let pack = try #require(try f.store.packUsage().first).pack
        let inPack = try f.blocks(in: pack, of: f.store)
        try #require(inPack.count >= 2)
        let c = try #require(try f.store.copyLiveEntries(of: pack))
        let missed = try #require(c.moves.last)
        let partial = LevelDBBlockStore.PackCompaction(pack: c.pack, moves: Array(c.moves.dropLast()), packBytes: c.packBytes,
                                                       copiedBytes: c.copiedBytes - PackStore.entrySize(multihash: missed.0, length: missed.1.length))
        #expect(throws: LevelDBBlockStore.PackChangedDuringCompaction.self) { try f.store.exclusively { try f.store.stageRetirement(partial, into: WriteBatch()) } }
        #expect(FileManager.default.fileExists(atPath: PackStore.path(f.dir.path + "/packs", pack)))
        for b in inPack { #expect(try f.store.get(b.cid) == b.data) }
        _ = try f.compact(pack, on: f.store)
        for b in f.blocks { #expect(try f.store.get(b.cid) == b.data) }
    }

    /// The pack bytes of a put that failed after appending them (its sync failed; or, through a
    /// transaction, whatever failed after the stage) are counted dead at once, so their pack is
    /// accounted for and compacts in the same open.
    @Test func aFailedPutsPackBytesAreCountedDead() throws {
        let f = try Fixture(count: 2)
        func totals() throws -> (size: UInt64, dead: UInt64) {
            try f.store.packUsage().reduce((0, 0)) { ($0.0 + $1.size, $0.1 + $1.dead) }
        }
        let before = try totals()
        let poisoned = f.store.packs.currentPack
        f.store.packs.failNextSyncs(1)
        let failed = try Block(data: [UInt8](repeating: 3, count: 30_000))
        #expect(throws: BlockStoreError.self) { try f.store.put(failed) }
        let after = try totals()
        #expect(after.size > before.size && after.size - before.size == after.dead - before.dead,
                "the failed put's pack bytes are not counted dead: \(before) → \(after)")
        // The next put leaves the poisoned pack for a new one, which compacts now: every byte is
        // accounted for.
        let next = try Block(data: [UInt8](repeating: 4, count: 30_000))
        try f.store.put(next)
        #expect(f.store.packs.currentPack != poisoned)
        let c = try f.compact(poisoned, on: f.store)
        #expect(c.packBytes > c.copiedBytes)
        for b in f.blocks + [next] { #expect(try f.store.get(b.cid) == b.data) }
        #expect(try f.store.get(failed.cid) == nil)
    }

    /// An entry a block's record points at is never counted dead for a dropped batch (a write that
    /// reported a failure may have been applied after all).
    @Test func aDroppedBatchLeavesLiveEntriesUncounted() throws {
        let f = try Fixture(count: 3)
        let live = f.blocks[0]
        let location = try #require(try f.store.record(live.cid.multihash)?.packLocation)
        let batch = WriteBatch()
        batch.appended = [(live.cid.multihash, location)]
        f.store.recordDropped(batch)
        #expect(try f.store.deadBytes(of: location.pack) == 0, "a live entry was counted dead")
    }

    /// A writer's reads come after a pending reopen (which replays LevelDB's log, where a write
    /// that reported failing may sit): `exclusively` makes it before its body runs.
    @Test func aPendingReopenIsMadeBeforeAWriterReads() throws {
        let f = try Fixture(count: 2)
        f.store.db.markWaitingToReopen()
        try f.store.exclusively {
            #expect(!f.store.db.isWaitingToReopen && f.store.db.reopenCount == 1, "the writer ran before the pending reopen")
        }
        for b in f.blocks { #expect(try f.store.get(b.cid) == b.data) }
        try f.store.put(try Block(data: [UInt8](repeating: 6, count: 30_000)))
    }

    /// After every open, appends go to a fresh pack, so a torn entry can only end its pack.
    @Test func appendsStartAFreshPackAfterAnOpen() throws {
        let f = try Fixture(count: 3)
        let before = try PackStore.packNumbers(in: f.dir.path + "/packs")
        f.store.db.close()
        let again = try f.reopen()
        try again.put(try Block(data: [UInt8](repeating: 4, count: 30_000)))
        let after = try PackStore.packNumbers(in: f.dir.path + "/packs")
        #expect(after.last == (before.last ?? 0) + 1)
    }

    /// A pack number is never used twice: the empty pack an open made and did not append to is
    /// removed at the next open, which starts the next number (records of an earlier life of a
    /// number would be taken for new entries at the same offsets).
    @Test func anEmptyLastPackIsRemovedNotReused() throws {
        let f = try Fixture(count: 3)
        let before = try #require(try PackStore.packNumbers(in: f.dir.path + "/packs").last)
        f.store.db.close()
        let idle = try f.reopen()
        #expect(idle.packs.currentPack == before + 1)
        idle.db.close()
        let again = try f.reopen()
        #expect(again.packs.currentPack == before + 2)
        #expect(!FileManager.default.fileExists(atPath: PackStore.path(f.dir.path + "/packs", before + 1)), "the empty pack was kept")
        for b in f.blocks { #expect(try again.get(b.cid) == b.data) }
    }

    /// A block deleted between the copy and the retirement stays deleted (its copy counts as
    /// dead); one read with a location taken before the move still gets its bytes.
    @Test func concurrentChangesAreRespected() throws {
        let f = try Fixture()
        let pack = try #require(try f.store.packUsage().first).pack
        let inPack = try f.blocks(in: pack, of: f.store)
        try #require(inPack.count >= 2)
        let staleRecord = try #require(try f.store.record(inPack[1].cid.multihash))
        _ = try f.compact(pack, on: f.store) {
            _ = try f.store.delete(inPack[0].cid)
        }
        #expect(try f.store.get(inPack[0].cid) == nil, "not resurrected by the repointing")
        #expect(try f.store.readFollowingMoves(inPack[1].cid.multihash, staleRecord) == inPack[1].data)
        let copyPack = try #require(try f.store.record(inPack[1].cid.multihash)).packLocation?.pack
        #expect(try f.store.packUsage().first { $0.pack == copyPack }?.dead ?? 0 > 0, "the orphaned copy is dead space")
    }
}

extension LevelDBBlockStore.Record {
    var packLocation: PackLocation? { if case .packed(let l) = self { l } else { nil } }
}
