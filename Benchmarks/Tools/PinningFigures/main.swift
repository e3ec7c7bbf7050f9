// The pinning figures of Docs/benchmarks.md, each measured on a fresh repository in a
// temporary directory (real LevelDB, real pack files):
//   gc <live> [settled|fresh [rounds]]  GC of 1,000 garbage blocks beside <live> live blocks
//                 (pinned DAGs); `settled` compacts LevelDB after the bulk load first; `rounds`
//                 repeats garbage + collection (for a profiler)
//   pinls <n>     `pin ls` (all types) over <n> direct pins
//   pinadd <GiB>  recursive pin of a <GiB> GiB UnixFS file's DAG already present
//   put <n>       put-many of <n> 1 KiB blocks with reference counting on and off
//   compact <MiB> <MiB> of 256 KiB blocks, half collected, then the packs compacted
//
//   swift run -c release PinningFigures gc 10000 ; ... gc 1000000 ; pinls 100000 ; pinadd 1 ; put 200000
import CAR
import Foundation
import IPLD
import Multiformats
import Pinning
import Storage
import UnixFS

let args = CommandLine.arguments
let what = args.count > 1 ? args[1] : "gc"
let n = args.count > 2 ? Int(args[2]) ?? 10_000 : 10_000

/// The calling thread's user and system CPU seconds and minor page faults.
func threadUsage() -> (user: Double, system: Double, faults: Int) {
    var u = rusage()
    getrusage(__rusage_who_t(1), &u)  // RUSAGE_THREAD
    return (Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6, Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6, u.ru_minflt)
}

/// CPU seconds (user and system) of the calling thread.
func threadCPU() -> Double {
    let u = threadUsage()
    return u.user + u.system
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
}

// The tool is single-threaded: only the main thread draws random bytes.
nonisolated(unsafe) var rngState: UInt64 = 0x9e3779b97f4a7c15
func randomBytes(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { raw in
        var j = 0
        while j + 8 <= raw.count {
            rngState ^= rngState << 13; rngState ^= rngState >> 7; rngState ^= rngState << 17
            raw.storeBytes(of: rngState, toByteOffset: j, as: UInt64.self)
            j += 8
        }
    }
    return out
}

/// Pinning's services over one repository, built as Node builds them (this tool measures them
/// directly, below Node's use cases).
struct Services {
    let repository: Repository
    let blocks: CountedBlockStore
    let pins: Pinner
    let collector: GarbageCollector
    init(_ repository: Repository) throws {
        self.repository = repository
        let policies = try repository.configuration.section(PinningConfiguration.self).policySet()
        blocks = CountedBlockStore(base: repository.blocks, putGracePeriod: policies.defaultPolicy.gracePeriod)
        pins = Pinner(store: blocks, policies: policies)
        collector = GarbageCollector(store: blocks, batchSize: try repository.configuration.section(GCConfiguration.self).batchSize)
    }
}

/// A fresh repository whose default policy has no put grace period (so garbage is collectable at once).
func freshNode(durability: LevelDBBlockStore.Durability = .sync, packSize: UInt64 = 1 << 30) throws -> (Services, String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-pinning-figures-\(UUID().uuidString)").path
    var config = Configuration()
    config.blockstore.durability = durability
    config.blockstore.maximumPackSize = packSize
    var gc = GCConfiguration()
    gc.interval = "0s"
    try config.setSection(gc)
    let policies = dir + "-policies"
    try FileManager.default.createDirectory(atPath: policies, withIntermediateDirectories: true)
    for f in defaultPolicyFiles {
        try Data(f.contents.replacingOccurrences(of: #""gracePeriod": "1h""#, with: #""gracePeriod": "0s""#).utf8).write(to: URL(fileURLWithPath: policies + "/" + f.name))
    }
    var pinning = PinningConfiguration()
    pinning.policies = policies
    try config.setSection(pinning)
    try Repository.initialize(at: dir, configuration: config)
    return (try Services(try Repository(path: dir)), dir)
}

func cleanup(_ dir: String) {
    try? FileManager.default.removeItem(atPath: dir)
    try? FileManager.default.removeItem(atPath: dir + "-policies")
}

switch what {
case "gc":
    let (node, dir) = try freshNode(durability: .buffered)
    defer { cleanup(dir) }
    // Live: DAGs of 1,000 leaves (256 B) under one pinned dag-cbor root each.
    let setup = try seconds {
        for _ in 0..<max(1, n / 1000) {
            let leaves = try (0..<1000).map { _ in try Block(data: randomBytes(256), codec: .raw) }
            let root = try Block(data: try DAGCBOR().encode(.list(leaves.map { .link($0.cid) })), codec: .dagCBOR)
            try node.blocks.putMany(leaves + [root])
            try node.pins.pin(Pinner.Request(cid: root.cid))
        }
        // Garbage: 1,000 unpinned blocks, in 100 small DAGs (the cascade is part of the work).
        for _ in 0..<100 {
            let leaves = try (0..<9).map { _ in try Block(data: randomBytes(256), codec: .raw) }
            let root = try Block(data: try DAGCBOR().encode(.list(leaves.map { .link($0.cid) })), codec: .dagCBOR)
            try node.blocks.putMany(leaves + [root])
        }
    }
    // Settle LevelDB's compaction debt from the bulk load first: a repository in steady state,
    // not one whose level 0 is still full of just-flushed tables.
    if args.count > 3 && args[3] == "settled" { node.repository.db.compact() }
    // GC_IDLE=<seconds>: wait first (LevelDB's background compaction of the bulk load ends).
    if let idle = ProcessInfo.processInfo.environment["GC_IDLE"].flatMap(Double.init) { Thread.sleep(forTimeInterval: idle) }
    // GC_STATS=1: LevelDB's levels as the collection starts.
    if ProcessInfo.processInfo.environment["GC_STATS"] != nil { print(node.repository.db.property("leveldb.stats") ?? "") }
    var removed = 0
    let cpu0 = threadCPU()
    let t = try seconds { removed = try node.collector.collect(now: node.blocks.clock.now + 1).blocks }
    let cpu = threadCPU() - cpu0
    // `gc <live> settled|fresh <rounds>`: more rounds of 1,000 garbage blocks, for a profiler.
    if args.count > 4, let rounds = Int(args[4]) {
        print("repeating \(rounds) rounds (pid \(ProcessInfo.processInfo.processIdentifier))")
        var total = 0.0
        var totalCPU = 0.0
        var inCollect = (user: 0.0, system: 0.0, faults: 0)
        for _ in 0..<rounds {
            for _ in 0..<100 {
                let leaves = try (0..<9).map { _ in try Block(data: randomBytes(256), codec: .raw) }
                let root = try Block(data: try DAGCBOR().encode(.list(leaves.map { .link($0.cid) })), codec: .dagCBOR)
                try node.blocks.putMany(leaves + [root])
            }
            let u0 = threadUsage()
            total += try seconds { _ = try node.collector.collect(now: node.blocks.clock.now + 1) }
            let u1 = threadUsage()
            totalCPU += (u1.user + u1.system) - (u0.user + u0.system)
            inCollect = (inCollect.user + u1.user - u0.user, inCollect.system + u1.system - u0.system, inCollect.faults + u1.faults - u0.faults)
        }
        print("in collections, per round: user \(String(format: "%.2f", inCollect.user * 1000 / Double(rounds))) ms, system \(String(format: "%.2f", inCollect.system * 1000 / Double(rounds))) ms, minor faults \(inCollect.faults / rounds)")
        print("repeated: \(String(format: "%.2f", total * 1000 / Double(rounds))) ms per 1,000 garbage blocks (CPU \(String(format: "%.2f", totalCPU * 1000 / Double(rounds))) ms)")
    }
    let stat = try node.repository.stat()
    print("gc: live \(stat.blocks) blocks, removed \(removed) in \(String(format: "%.4f", t)) s (CPU \(String(format: "%.4f", cpu)) s, \(String(format: "%.1f", Double(removed) / t)) blocks/s); setup \(String(format: "%.1f", setup)) s")
case "pinls":
    let (node, dir) = try freshNode(durability: .buffered)
    defer { cleanup(dir) }
    let blocks = try (0..<n).map { _ in try Block(data: randomBytes(64), codec: .raw) }
    for i in stride(from: 0, to: n, by: 1000) { try node.blocks.putMany(Array(blocks[i..<min(n, i + 1000)])) }
    let setup = try seconds { for b in blocks { try node.pins.pin(Pinner.Request(cid: b.cid, type: .direct, name: "p")) } }
    for round in 0..<3 {
        var lines = 0
        var bytes = 0
        let t = try seconds {
            try node.pins.forEachListing { cid, type, _, _ in
                lines += 1
                bytes += cid.string.utf8.count + type.rawValue.utf8.count + 20  // as the JSON line would be
                return true
            }
        }
        print("pin ls (round \(round)): \(lines) pins in \(String(format: "%.3f", t)) s; setup \(String(format: "%.1f", setup)) s")
    }
case "pinadd":
    let (node, dir) = try freshNode()
    defer { cleanup(dir) }
    let size = UInt64(n) << 30
    var produced: UInt64 = 0
    struct RandomSource: ByteSource {
        var remaining: UInt64
        mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let k = Int(min(UInt64(buffer.count), remaining))
            let bytes = randomBytes(k)
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
            remaining -= UInt64(k)
            return k
        }
    }
    var file: ImportedFile?
    let add = try seconds {
        let batcher = try BlockBatcher(store: node.blocks)
        file = try FileImporter(options: ImportOptions()) { try batcher.add($0) }.importFile(RandomSource(remaining: size))
        try batcher.finish()
    }
    produced = size
    let root = file!.cid
    let t = try seconds { try node.pins.pin(Pinner.Request(cid: root)) }
    print("pin add: \(produced >> 20) MiB file's DAG (\(root)) pinned in \(String(format: "%.3f", t)) s (added in \(String(format: "%.1f", add)) s)")
case "put":
    for counting in [false, true] {
        let (node, dir) = try freshNode()
        defer { cleanup(dir) }
        let blocks = try (0..<n).map { _ in try Block(data: randomBytes(1024), codec: .raw) }
        let store: any BlockStore = counting ? node.blocks : node.repository.blocks
        let t = try seconds { for i in stride(from: 0, to: n, by: 256) { try store.putMany(Array(blocks[i..<min(n, i + 256)])) } }
        print("put-many 1 KiB (256/batch, sync), counting \(counting ? "on " : "off"): \(String(format: "%.0f", Double(n) / t)) blocks/s")
    }
case "compact":
    // <n> MiB of 256 KiB blocks in 256 MiB packs; every other block unpinned and collected, then
    // the packs (half dead) compacted.
    let (node, dir) = try freshNode(packSize: 256 << 20)
    defer { cleanup(dir) }
    let count = n * 4
    var keep: [CID] = []
    for i in stride(from: 0, to: count, by: 32) {
        let blocks = try (i..<min(count, i + 32)).map { _ in try Block(data: randomBytes(256 << 10), codec: .raw) }
        try node.blocks.putMany(blocks)
        for (j, b) in blocks.enumerated() where (i + j) % 2 == 0 {
            try node.pins.pin(Pinner.Request(cid: b.cid, type: .direct))
            keep.append(b.cid)
        }
    }
    let before = try node.repository.blocks.packBytes()
    var collected = GarbageCollector.Result()
    let tc = try seconds { collected = try node.collector.collect(now: node.blocks.clock.now + 1) }
    var result = (packs: 0, reclaimed: UInt64(0))
    let t = try seconds { result = try node.blocks.compactPacks(threshold: 0.5) }
    let after = try node.repository.blocks.packBytes()
    for c in keep.prefix(64) {
        let data = try node.blocks.get(c)
        precondition(data != nil, "a kept block is gone")
    }
    print("compact: \(n) MiB packed in 256 MiB packs, \(collected.blocks) blocks collected in \(String(format: "%.2f", tc)) s; \(result.packs) packs (half dead) compacted in \(String(format: "%.2f", t)) s, \(result.reclaimed >> 20) MiB given back; pack bytes \(before >> 20) → \(after >> 20) MiB")
default:
    print("usage: PinningFigures gc <live> | pinls <n> | pinadd <GiB> | put <n> | compact <MiB>")
}
