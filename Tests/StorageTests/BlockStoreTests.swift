import Foundation
import Testing
import TestSupport
import IPLD
import Multiformats
@testable import Storage

/// The block stores under test; every test of the shared suite runs against each.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, leveldb
    var testDescription: String { rawValue }

    /// A fresh store; the directory (for LevelDB) lives as long as the returned holder.
    func make(inlineLimit: Int = 16 << 10, maximumBlockSize: Int = 2 << 20, verifyOnRead: Bool = false) throws -> (any BlockStore, Any) {
        switch self {
        case .memory:
            var o = BlockStoreOptions()
            o.maximumBlockSize = maximumBlockSize
            o.verifyOnRead = verifyOnRead
            return (MemoryBlockStore(options: o), ())
        case .leveldb:
            let dir = TemporaryDirectory()
            var o = LevelDBBlockStore.Options()
            o.inlineLimit = inlineLimit
            o.blocks.maximumBlockSize = maximumBlockSize
            o.blocks.verifyOnRead = verifyOnRead
            o.maximumPackSize = 1 << 20  // small packs, so tests cross pack boundaries
            let db = try LevelDB(path: dir.path + "/db")
            return (try LevelDBBlockStore(db: db, packDirectory: dir.path + "/packs", options: o), dir)
        }
    }
}

struct BlockStoreTests {
    func randomData(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        return rng.bytes(n)
    }

    @Test(arguments: StoreKind.allCases)
    func putGetHasSizeDeleteAcrossTheInlineLimit(_ kind: StoreKind) throws {
        let (store, holder) = try kind.make()
        for (i, size) in [0, 1, 100, 16 << 10, (16 << 10) + 1, 300_000, 2 << 20].enumerated() {
            let data = randomData(size, seed: UInt64(i))
            let cid = try store.put(data: data)
            #expect(try store.has(cid))
            #expect(try store.get(cid) == data)
            #expect(try store.size(cid) == size)
            #expect(try store.links(of: cid) == [])
            #expect(try store.delete(cid))
            #expect(try !store.has(cid))
            #expect(try store.get(cid) == nil)
            #expect(try store.size(cid) == nil)
            #expect(try !store.delete(cid))
        }
        _ = holder
    }

    @Test(arguments: StoreKind.allCases)
    func refusesOversizedAndMismatchedBlocksAndChangesNothing(_ kind: StoreKind) throws {
        let (store, holder) = try kind.make(maximumBlockSize: 1000)
        let ok = try Block(data: [1, 2, 3])
        #expect(throws: BlockStoreError.blockTooLarge(size: 1001, limit: 1000)) {
            try store.putMany([ok, try Block(data: [UInt8](repeating: 7, count: 1001))])
        }
        #expect(try !store.has(ok.cid), "a refused batch stores nothing")
        let cid = CID(codec: .raw, multihash: try Multihash.compute([1]))
        #expect(throws: BlockStoreError.hashMismatch(cid)) { try Block(cid: cid, data: [2]) }
        // A block whose codec has links must parse.
        #expect(throws: BlockStoreError.self) { try store.put(Block(data: [0xff, 0x00], codec: .dagCBOR)) }
        var count = 0
        try store.forEach { _ in count += 1; return true }
        #expect(count == 0)
        _ = holder
    }

    @Test(arguments: StoreKind.allCases)
    func recordsLinksPerCodecAndStoresBytesOnce(_ kind: StoreKind) throws {
        let (store, holder) = try kind.make()
        let leaf = try store.put(data: Array("leaf".utf8))
        let nodeBytes = try DAGCBOR().encode(["child": .link(leaf), "n": 1])
        let node = try store.put(data: nodeBytes, codec: .dagCBOR)
        #expect(try store.links(of: node) == [leaf])
        // The same bytes under the raw codec: one copy, no links under raw.
        let rawAlias = CID(codec: .raw, multihash: node.multihash)
        try store.put(Block(cid: rawAlias, data: nodeBytes))
        #expect(try store.links(of: rawAlias) == [])
        #expect(try store.links(of: node) == [leaf])
        var seen: [CID] = []
        try store.forEach { seen.append($0); return true }
        #expect(Set(seen) == Set([leaf, node, rawAlias]))
        // Delete is by multihash: both codecs go.
        #expect(try store.delete(node))
        #expect(try !store.has(rawAlias))
        #expect(try store.links(of: rawAlias) == nil)
        _ = holder
    }

    @Test(arguments: StoreKind.allCases)
    func identityCIDsAreNeverStored(_ kind: StoreKind) throws {
        let (store, holder) = try kind.make()
        let b = try Block(data: [1, 2, 3], hash: .identity)
        try store.put(b)
        #expect(try store.has(b.cid))
        #expect(try store.get(b.cid) == [1, 2, 3])
        var n = 0
        try store.forEach { _ in n += 1; return true }
        #expect(n == 0)
        _ = holder
    }

    @Test(arguments: StoreKind.allCases)
    func putManyIsAtomicAndConcurrentUseIsSafe(_ kind: StoreKind) async throws {
        let (store, holder) = try kind.make(inlineLimit: 1000)
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<25 {
                        let blocks = (0..<4).map { j in try! Block(data: self.randomData(500 + 300 * j, seed: UInt64(t * 1000 + i * 10 + j))) }
                        try! store.putMany(blocks)
                        for b in blocks { #expect(try! store.get(b.cid) == b.data) }
                    }
                }
            }
        }
        var n = 0
        try store.forEach { _ in n += 1; return true }
        #expect(n == 8 * 25 * 4)
        _ = holder
    }
}

struct LevelDBBlockStoreTests {
    @Test func verifyOnReadCatchesCorruptPackData() throws {
        let dir = TemporaryDirectory()
        var o = LevelDBBlockStore.Options()
        o.inlineLimit = 10
        o.blocks.verifyOnRead = true
        let store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        let data = [UInt8](repeating: 42, count: 100)
        let cid = try store.put(data: data)
        // Flip the last byte of the pack, which is the block's last byte.
        let pack = PackStore.path(dir.path + "/packs", 1)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: pack)))
        bytes[bytes.count - 1] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: pack))
        #expect(throws: BlockStoreError.self) { try store.get(cid) }
    }

    /// Verify-on-read covers blocks kept inline in LevelDB too, not only packed ones.
    @Test func verifyOnReadCatchesCorruptInlineData() throws {
        let dir = TemporaryDirectory()
        var o = LevelDBBlockStore.Options()
        o.blocks.verifyOnRead = true
        let store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        let cid = try store.put(data: Array("small enough to stay inline".utf8))
        let batch = WriteBatch()
        batch.put(LevelDBBlockStore.dataKey(cid.multihash), LevelDBBlockStore.Record.inline(Array("small enough to stay inlinE".utf8)).encode())
        try store.db.write(batch, sync: false)
        #expect(throws: BlockStoreError.self) { try store.get(cid) }
    }

    /// A durable put of a packed block returns only once its pack bytes are fdatasync'ed (they
    /// must be on disk before the LevelDB record that points at them); a buffered one does not
    /// sync (so the check can tell).
    @Test(arguments: [LevelDBBlockStore.Durability.sync, .buffered])
    func durablePutsSyncTheirPack(_ durability: LevelDBBlockStore.Durability) throws {
        let dir = TemporaryDirectory()
        var o = LevelDBBlockStore.Options()
        o.inlineLimit = 10
        o.durability = durability
        let store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        try store.put(data: [UInt8](repeating: 5, count: 5000))
        let state = store.packs.appendState
        #expect(state.end >= 5000)
        #expect((state.synced >= state.end) == (durability == .sync), "\(durability): \(state)")
    }

    /// Which of a file's pages are in the page cache (mincore over a read-only mapping).
    static func residentPages(_ path: String) throws -> [Bool] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw PackStore.error("open \(path)") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return [] }
        let length = Int(info.st_size)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { throw PackStore.error("mmap \(path)") }
        defer { munmap(map, length) }
        var resident = [UInt8](repeating: 0, count: (length + page - 1) / page)
        guard mincore(map, length, &resident) == 0 else { throw PackStore.error("mincore") }
        return resident.map { $0 & 1 == 1 }
    }

    /// Whether `path` is on a file system whose page cache is its storage (tmpfs), where the
    /// advice to let pages go is ignored.
    static func onTmpfs(_ path: String) -> Bool {
        // The mount with the longest point that holds the path (/proc/self/mounts: device, point, type, …).
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var best: (point: String, type: String)?
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count > 2 else { continue }
            let point = fields[1]
            let holds = point == "/" || real == point || real.hasPrefix(point + "/")
            if holds, point.count > (best?.point.count ?? -1) { best = (point, fields[2]) }
        }
        return best?.type == "tmpfs"
    }

    /// Once synced, a pack's pages leave the page cache but for the last `PackStore.cachedTail`
    /// bytes (what was just written stays for the reads that follow), and a sealed pack's all of
    /// them; every block still reads back. Blocks and batches of uneven sizes, so that the synced
    /// ends fall anywhere (a large folio across a released range's end would stay cached).
    @Test(arguments: [false, true])
    func syncedPackPagesLeaveThePageCacheButTheTail(sealing: Bool) throws {
        let dir = TemporaryDirectory()
        var o = LevelDBBlockStore.Options()
        o.durability = .sync
        if sealing { o.maximumPackSize = 24 << 20 }
        let store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        let total = Int(sealing ? 80 << 20 : PackStore.cachedTail + (24 << 20))
        var blocks: [Block] = []
        var written = 0
        var i = 0
        while written < total {
            let batch = try (0..<(1 + i % 7)).map { _ in
                i += 1
                let size = 100_000 + (i * 7_919) % 300_000
                var data = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: size)
                withUnsafeBytes(of: UInt64(i)) { for (k, b) in $0.enumerated() { data[k] = b } }
                written += size
                return try Block(data: data)
            }
            try store.putMany(batch)
            blocks += batch
        }
        let state = store.packs.appendState
        #expect(state.synced == state.end)
        let packs = dir.path + "/packs"
        if !Self.onTmpfs(packs) {
            let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
            for number in try PackStore.packNumbers(in: packs) {
                let resident = try Self.residentPages(PackStore.path(packs, number))
                let sealed = number != state.pack
                let boundary = sealed ? resident.count
                    : Int((state.end > PackStore.cachedTail ? state.end - PackStore.cachedTail : 0) / PackStore.releaseUnit * PackStore.releaseUnit / page)
                let before = resident[..<boundary].filter { $0 }.count
                let tail = resident[boundary...].filter { $0 }.count
                #expect(before == 0, "pack \(number)\(sealed ? " (sealed)" : ""): \(before) of \(boundary) pages still cached")
                #expect(tail >= (resident.count - boundary) * 9 / 10, "pack \(number): \(tail) of \(resident.count - boundary) tail pages cached")
            }
            #expect(!sealing || state.pack > 2, "packs were sealed")
            #expect(sealing || state.end > PackStore.cachedTail + PackStore.releaseUnit, "a tail and more before it")
        }
        for b in blocks.prefix(8) + blocks.suffix(8) { #expect(try store.get(b.cid) == b.data) }
    }

    /// A failed fdatasync (EIO) poisons its pack. Linux reports a failed write-back once: a later
    /// fdatasync of the same file succeeds although what was written before may not be on disk.
    /// So nothing appended to that pack is acknowledged any more — a sync for an append made
    /// before the failure is refused, also once appends have moved on to a new pack — and the
    /// refusal is an I/O error (500), not the client's. Also when the failure comes while a full
    /// pack is being sealed.
    @Test(arguments: [false, true])
    func aFailedSyncPoisonsItsPack(whileSealing: Bool) throws {
        let dir = TemporaryDirectory()
        var o = LevelDBBlockStore.Options()
        o.durability = .sync
        o.maximumPackSize = 1 << 20
        let store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        func block(_ n: Int, size: Int = 40_000) throws -> Block { try Block(data: [UInt8](repeating: UInt8(n), count: size)) }
        func isIOError(_ e: any Error) -> Bool { (e as? BlockStoreError)?.kind == .internal }
        let before = try block(1)
        try store.put(before)
        let packs = store.packs
        let pack = packs.appendState.pack
        // An append not yet synced (another writer's, e.g. pack compaction), then the failure.
        let earlier = try packs.append([(try block(2).cid.multihash, try block(2).data)])
        packs.failNextSyncs(1)
        if whileSealing {
            // An append that fills the pack: the seal's fdatasync fails.
            let big = try block(3, size: 1 << 20)
            #expect(performing: { _ = try packs.append([(big.cid.multihash, big.data)]) }, throws: isIOError)
        } else {
            #expect(performing: { try store.put(try block(3)) }, throws: isIOError)
            #expect(try store.get(try block(3).cid) == nil, "a put whose sync failed is not stored")
        }
        #expect(performing: { try packs.sync(earlier) }, throws: isIOError)
        // Appends move on to a new pack, and are acknowledged there …
        let after = try block(4)
        try store.put(after)
        #expect(packs.appendState.pack > pack, "appends moved to a new pack")
        // … but the earlier append's sync is still refused, though the current pack is synced.
        #expect(performing: { try packs.sync(earlier) }, throws: isIOError)
        #expect(try store.get(before.cid) == before.data && store.get(after.cid) == after.data)
        try store.put(try block(3))
        #expect(try store.get(try block(3).cid) == (try block(3)).data, "the refused put succeeds again")
    }

    /// Opening a database another handle holds fails with an error (it used to double-free).
    @Test func openingALockedDatabaseThrows() throws {
        let dir = TemporaryDirectory()
        let first = try LevelDB(path: dir.path + "/db")
        #expect(throws: LevelDBError.self) { try LevelDB(path: dir.path + "/db") }
        first.close()
        _ = try LevelDB(path: dir.path + "/db")
    }

    @Test func packsRollAndStayReadable() throws {
        let dir = TemporaryDirectory()
        var o = LevelDBBlockStore.Options()
        o.inlineLimit = 1000
        o.maximumPackSize = 100_000
        let store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        var rng = SeededGenerator(seed: 3)
        let blocks = try (0..<40).map { _ in try Block(data: rng.bytes(30_000)) }
        try store.putMany(Array(blocks[0..<20]))
        for b in blocks[20...] { try store.put(b) }
        #expect(try PackStore.packNumbers(in: dir.path + "/packs").count > 5)
        for b in blocks { #expect(try store.get(b.cid) == b.data) }
    }

    /// Blocks gathered into one write and blocks written from their own arrays
    /// (`PackStore.directWriteSize` and up), mixed in one batch across pack boundaries, are each
    /// found where the store says they are, also after the store is opened again.
    @Test func smallAndLargeBlocksMixedInOneBatchStayReadable() throws {
        let dir = TemporaryDirectory()
        var o = LevelDBBlockStore.Options()
        o.inlineLimit = 1000
        o.maximumPackSize = 100_000
        var rng = SeededGenerator(seed: 11)
        let large = PackStore.directWriteSize
        let sizes = [2000, large, 5000, large - 1, 70_000, 1500, large + 1, 3000, 90_000, 1200, 1200, 40_000]
        let blocks = try (sizes + sizes.reversed()).map { try Block(data: rng.bytes($0)) }
        do {
            let store = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
            try store.putMany(blocks)
            let numbers = try PackStore.packNumbers(in: dir.path + "/packs")
            #expect(numbers.count > 3)
            for b in blocks { #expect(try store.get(b.cid) == b.data) }
            // Every pack is entries end to end (no gap, no overlap), and the store appends after
            // the last byte of the last one.
            var entries = 0
            for n in numbers { #expect(try store.packs.scan(n) { _, _, _ in entries += 1 } == nil, "pack \(n)") }
            #expect(entries == blocks.count)
            let state = store.packs.appendState
            let last = try FileManager.default.attributesOfItem(atPath: PackStore.path(dir.path + "/packs", state.pack))[.size] as? UInt64
            #expect(last == state.end)
        }
        let reopened = try LevelDBBlockStore(db: LevelDB(path: dir.path + "/db"), packDirectory: dir.path + "/packs", options: o)
        for b in blocks { #expect(try reopened.get(b.cid) == b.data) }
    }
}

struct BlockBatcherTests {
    /// A remembering batcher gives back every block it stored, in order, whatever the chunk size:
    /// multihashes of several lengths (truncated digests) cross the read buffer's boundaries, and
    /// the list leaves no file behind.
    @Test(arguments: [1, 7, 4096])
    func remembersWhatItStoredOnDisk(chunk: Int) throws {
        let dir = TemporaryDirectory()
        let store = MemoryBlockStore()
        let batcher = try BlockBatcher(store: store, batchBytes: 4096, rememberIn: dir.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "the list's file has no name")
        var put: [Multihash] = []
        for i in 0..<6000 {
            let b = try Block(data: Array("block \(i)".utf8), codec: .raw, hash: .sha2_256, hashLength: [32, 20, 31, 24][i % 4])
            try batcher.add(b)
            put.append(b.cid.multihash)
        }
        try batcher.finish()
        var got: [Multihash] = []
        var calls = 0
        try batcher.forEachStored(chunk: chunk) { hashes in
            #expect(!hashes.isEmpty && hashes.count <= chunk)
            got += hashes
            calls += 1
        }
        #expect(got == put)
        #expect(calls == (put.count + chunk - 1) / chunk)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    /// Without a directory nothing is remembered.
    @Test func forgetsWhenToldTo() throws {
        let batcher = try BlockBatcher(store: MemoryBlockStore())
        try batcher.add(try Block(data: [1], codec: .raw, hash: .sha2_256, hashLength: nil))
        try batcher.finish()
        var calls = 0
        try batcher.forEachStored { _ in calls += 1 }
        #expect(calls == 0)
    }
}
