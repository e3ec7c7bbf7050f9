import Benchmark
import Foundation
import Multiformats
import Storage

// In-process put and get of 1 KiB, 64 KiB and 256 KiB blocks, beside raw LevelDB
// with the same options. Each sample opens a fresh store in a temporary directory
// (outside the measurement), builds its blocks (hashing outside the measurement),
// then measures only the store calls. A sample is ×N operations (in the title), so
// operations per second = samples per second × N, and MB/s = that × the block size.

func temporaryDirectory() -> String {
    let p = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-bench-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

func makeBlocks(_ n: Int, size: Int, seed: Int) -> [Block] {
    var base = [UInt8](repeating: 0, count: size)
    for i in base.indices { base[i] = UInt8(truncatingIfNeeded: i &* 31 &+ seed) }
    return (0..<n).map { i in
        var d = base
        withUnsafeBytes(of: UInt64(i) ^ UInt64(seed) << 32) { d.replaceSubrange(0..<8, with: $0) }
        return try! Block(data: d)
    }
}

func withStore(_ durability: LevelDBBlockStore.Durability, _ body: (LevelDBBlockStore) throws -> Void) rethrows {
    let dir = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var o = LevelDBBlockStore.Options()
    o.durability = durability
    let store = try! LevelDBBlockStore(db: LevelDB(path: dir + "/db"), packDirectory: dir + "/packs", options: o)
    try body(store)
}

let sizes = [(1 << 10, "1 KiB"), (64 << 10, "64 KiB"), (256 << 10, "256 KiB")]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .peakMemoryResident], timeUnits: .microseconds,
        maxDuration: .seconds(4), maxIterations: 30)

    for (size, label) in sizes {
        let n = size <= 1024 ? 10_000 : (size <= 65536 ? 1_000 : 400)
        for durability in [LevelDBBlockStore.Durability.buffered, .sync] {
            // Single synced puts are bounded by fsync latency; fewer of them keep the run short.
            let single = durability == .sync ? min(n, 500) : n
            Benchmark("put \(label) ×\(single), one put each, \(durability)") { b in
                let blocks = makeBlocks(single, size: size, seed: 1)
                withStore(durability) { store in
                    b.startMeasurement()
                    for blk in blocks { try! store.put(blk) }
                    b.stopMeasurement()
                }
            }
            Benchmark("put \(label) ×\(n), put-many of 256, \(durability)") { b in
                let blocks = makeBlocks(n, size: size, seed: 2)
                withStore(durability) { store in
                    b.startMeasurement()
                    var i = 0
                    while i < blocks.count { try! store.putMany(Array(blocks[i..<min(i + 256, blocks.count)])); i += 256 }
                    b.stopMeasurement()
                }
            }
        }
        // Concurrent synced puts: LevelDB commits concurrent writers as one group, one fsync for all.
        Benchmark("put \(label) ×2000, one put each, sync, 16 threads") { b in
            let blocks = makeBlocks(2000, size: size, seed: 6)
            withStore(.sync) { store in
                b.startMeasurement()
                // Real threads (concurrentPerform would use one per core), so 16 puts can wait on one fsync.
                let group = DispatchGroup()
                for t in 0..<16 {
                    group.enter()
                    Thread {
                        for i in stride(from: t, to: blocks.count, by: 16) { try! store.put(blocks[i]) }
                        group.leave()
                    }.start()
                }
                group.wait()
                b.stopMeasurement()
            }
        }
        Benchmark("get \(label) ×\(n)") { b in
            let blocks = makeBlocks(n, size: size, seed: 3)
            withStore(.buffered) { store in
                try! store.putMany(blocks)
                b.startMeasurement()
                for blk in blocks { blackHole(try! store.get(blk.cid)) }
                b.stopMeasurement()
            }
        }
        for sync in [false, true] {
            let count = sync ? min(n, 500) : n
            Benchmark("raw LevelDB put \(label) ×\(count), sync=\(sync)") { b in
                let blocks = makeBlocks(count, size: size, seed: 4)
                let dir = temporaryDirectory()
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let db = try! LevelDB(path: dir + "/db")
                b.startMeasurement()
                for blk in blocks {
                    let batch = WriteBatch()
                    batch.put(blk.cid.multihash.bytes, blk.data)
                    try! db.write(batch, sync: sync)
                }
                b.stopMeasurement()
            }
        }
        Benchmark("raw LevelDB get \(label) ×\(n)") { b in
            let blocks = makeBlocks(n, size: size, seed: 5)
            let dir = temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let db = try! LevelDB(path: dir + "/db")
            let batch = WriteBatch()
            for blk in blocks { batch.put(blk.cid.multihash.bytes, blk.data) }
            try! db.write(batch, sync: false)
            b.startMeasurement()
            for blk in blocks { blackHole(try! db.get(blk.cid.multihash.bytes)) }
            b.stopMeasurement()
        }
    }
}
