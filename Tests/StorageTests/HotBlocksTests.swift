import Multiformats
import Testing
@testable import Storage

/// `HotBlocks`: bounded by bytes, second chance for what was read, nothing too large, and no
/// entry admitted from a read that a deletion overtook.
@Suite struct HotBlocksTests {
    func block(_ i: Int, size: Int = 1024) throws -> (Multihash, [UInt8]) {
        let data = [UInt8](repeating: UInt8(i & 0xff), count: size - 8) + withUnsafeBytes(of: UInt64(i).bigEndian, Array.init)
        return (try Multihash.compute(data), data)
    }

    @Test func staysWithinItsBytesAndGivesReadEntriesASecondChance() throws {
        let hot = HotBlocks(capacity: 8 * 1024)
        let blocks = try (0..<8).map { try block($0) }
        for (mh, d) in blocks { hot.insert(mh, d, ifGeneration: hot.generation) }
        #expect(hot.stats.entries == 8 && hot.stats.bytes == 8 * 1024)
        // Block 0 was read: the next insertion evicts another (1), not it.
        #expect(hot.get(blocks[0].0) == blocks[0].1)
        let (mh8, d8) = try block(8)
        hot.insert(mh8, d8, ifGeneration: hot.generation)
        #expect(hot.get(blocks[0].0) != nil && hot.get(blocks[1].0) == nil && hot.get(mh8) == d8)
        for i in 9..<100 {
            let (mh, d) = try block(i)
            hot.insert(mh, d, ifGeneration: hot.generation)
            #expect(hot.stats.bytes <= 8 * 1024)
        }
        // Too large for it: not kept.
        let (big, bigData) = try block(1000, size: 32 << 10)
        hot.insert(big, bigData, ifGeneration: hot.generation)
        #expect(hot.get(big) == nil)
    }

    @Test func aReadOvertakenByADeletionIsNotAdmitted() throws {
        let hot = HotBlocks(capacity: 1 << 20)
        let (a, da) = try block(1)
        let (b, db) = try block(2)
        hot.insert(a, da, ifGeneration: hot.generation)
        // A reader looks, a deletion of b is staged, the reader inserts what it read: refused.
        var g = hot.generation
        hot.evict(b)
        hot.insert(b, db, ifGeneration: g)
        #expect(hot.get(b) == nil)
        // Between the staging and the end of the writer: refused too.
        g = hot.generation
        hot.writerDone()
        hot.insert(b, db, ifGeneration: g)
        #expect(hot.get(b) == nil)
        // A writer that deleted nothing does not disturb readers.
        g = hot.generation
        hot.writerDone()
        hot.insert(b, db, ifGeneration: g)
        #expect(hot.get(b) == db)
        // An eviction removes the entry itself.
        hot.evict(a)
        #expect(hot.get(a) == nil && hot.stats.entries == 1 && hot.stats.bytes == db.count)
        // Off: nothing kept.
        let off = HotBlocks(capacity: 0)
        off.insert(a, da, ifGeneration: off.generation)
        #expect(off.get(a) == nil)
    }
}
