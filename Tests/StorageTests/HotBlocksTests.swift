import Multiformats
import Testing
@testable import Storage

/// `HotBlocks`: bounded by bytes (overhead included), second chance for what was read, blocks
/// read once go in turn, nothing too large, and no entry admitted from a read that a deletion
/// overtook — before, during or after the deleting writer.
@Suite struct HotBlocksTests {
    func block(_ i: Int, size: Int = 1024) throws -> (Multihash, [UInt8]) {
        let data = [UInt8](repeating: UInt8(i & 0xff), count: size - 8) + withUnsafeBytes(of: UInt64(i).bigEndian, Array.init)
        return (try Multihash.compute(data), data)
    }

    let cost = 1024 + HotBlocks.entryOverhead

    @Test func staysWithinItsBytesAndGivesReadEntriesASecondChance() throws {
        let hot = HotBlocks(capacity: 8 * cost)
        let blocks = try (0..<8).map { try block($0) }
        for (mh, d) in blocks { hot.insert(mh, d, ifGeneration: hot.generation) }
        #expect(hot.stats.entries == 8 && hot.stats.bytes == 8 * cost)
        // Block 0 was read: the next insertion evicts another (1), not it.
        #expect(hot.get(blocks[0].0) == blocks[0].1)
        let (mh8, d8) = try block(8)
        hot.insert(mh8, d8, ifGeneration: hot.generation)
        #expect(hot.get(blocks[0].0) != nil && hot.get(blocks[1].0) == nil && hot.get(mh8) == d8)
        // Blocks read once then go in turn, oldest first: none of the first eight stays for good.
        var inserted: [Multihash] = []
        for i in 9..<100 {
            let (mh, d) = try block(i)
            hot.insert(mh, d, ifGeneration: hot.generation)
            inserted.append(mh)
            #expect(hot.stats.bytes <= 8 * cost)
        }
        for (mh, _) in blocks.dropFirst() { #expect(hot.get(mh) == nil) }
        for mh in inserted.suffix(6) { #expect(hot.get(mh) != nil, "a block just inserted was evicted before older ones") }
        // Too large for it: not kept.
        let (big, bigData) = try block(1000, size: 32 << 10)
        hot.insert(big, bigData, ifGeneration: hot.generation)
        #expect(hot.get(big) == nil)
        // Tiny blocks are charged their overhead: the entries stay bounded.
        let tiny = HotBlocks(capacity: 100 * HotBlocks.entryOverhead)
        for i in 0..<1000 {
            let d = withUnsafeBytes(of: UInt32(i).bigEndian, Array.init)
            tiny.insert(try Multihash.compute(d), d, ifGeneration: tiny.generation)
        }
        #expect(tiny.stats.entries < 100 && tiny.stats.bytes <= 100 * HotBlocks.entryOverhead)
    }

    @Test func aReadOvertakenByADeletionIsNotAdmitted() throws {
        let hot = HotBlocks(capacity: 1 << 20)
        let (a, da) = try block(1)
        let (b, db) = try block(2)
        hot.insert(a, da, ifGeneration: hot.generation)
        // A reader looks, the deletion of b is staged, the reader inserts what it read: refused.
        var g = hot.generation
        hot.evict(b)
        hot.insert(b, db, ifGeneration: g)
        #expect(hot.get(b) == nil)
        // A reader that looked after the staging (the batch not written yet): refused too.
        g = hot.generation
        hot.insert(b, db, ifGeneration: g)
        #expect(hot.get(b) == nil)
        // One that looked before the writer ended and inserts after: refused.
        g = hot.generation
        hot.writerDone()
        hot.insert(b, db, ifGeneration: g)
        #expect(hot.get(b) == nil)
        // A writer that deleted nothing does not disturb readers; after the deletion's writer ended,
        // a block with those bytes (put again) may be kept.
        g = hot.generation
        hot.writerDone()
        hot.insert(b, db, ifGeneration: g)
        #expect(hot.get(b) == db)
        // An eviction removes the entry itself.
        hot.evict(a)
        #expect(hot.get(a) == nil && hot.stats.entries == 1 && hot.stats.bytes == db.count + HotBlocks.entryOverhead)
        // Off: nothing kept.
        let off = HotBlocks(capacity: 0)
        off.insert(a, da, ifGeneration: off.generation)
        #expect(off.get(a) == nil)
    }
}
