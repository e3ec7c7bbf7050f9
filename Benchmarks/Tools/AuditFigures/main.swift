// Audit log figures (Docs/benchmarks.md, "Audit log"): appends per second in-process (batched,
// each batch one synced transaction, as a group commit makes them), inclusion and consistency
// proofs at the log's full size (tiles read from the repository, cache cold and warm), and
// `audit verify` (the whole log recomputed from its events).
//
//   swift run -c release AuditFigures [EVENTS (default 1000000)] [BATCH (default 1000)]
import Audit
import Foundation
import Multiformats
import Pinning
import Signing
import Storage

let args = CommandLine.arguments
let total = args.count > 1 ? Int(args[1])! : 1_000_000
let batch = args.count > 2 ? Int(args[2])! : 1000
let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-auditfigures-\(UUID().uuidString)").path
defer { try? FileManager.default.removeItem(atPath: dir) }
_ = try Repository.initialize(at: dir)
let repo = try Repository(path: dir, purpose: "audit figures")
let policies = try PolicySet(files: defaultPolicyFiles.map { ($0.name, Data($0.contents.utf8)) }, source: "built-in")
let store = CountedBlockStore(base: repo.blocks, putGracePeriod: 3_600_000)
let pins = Pinner(store: store, policies: policies, reservedTypes: [AuditLog.resourceType])
let log = try AuditLog(store: store, pins: pins, events: EventLog(db: repo.blocks.db), key: SigningKey(repo.identity),
                       origin: "qstore.audit/" + repo.identity.peerID, nodeActor: IdentityRef(squidId: repo.identity.peerID),
                       checkpointEvery: 1000, interval: 10_000)
store.setAuditSink(log)

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

// 1. Appends: events like a block put's (a CID, a codec, a size), `batch` per synced transaction.
let cid = try CID("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
let who = AuditContext(actor: IdentityRef(squidId: "bench"), requestId: "req-bench")
var appended = 0
let appendTime = try AuditContext.$current.withValue(who) {
    try seconds {
        while appended < total {
            let n = min(batch, total - appended)
            try store.transaction { txn in
                for i in 0..<n {
                    txn.audit("q.block.put.v1", ref: cid.string, cid: cid, details: [("codec", .string("raw")), ("size", .int(1024 + (appended + i) % 7))])
                }
            }
            appended += n
            if appended % 1_000_000 == 0 { FileHandle.standardError.write(Data("\(appended) events\n".utf8)) }
        }
        try log.checkpointNow()
    }
}
print(String(format: "append: %d events in batches of %d: %.2f s, %.0f events/s", total, batch, appendTime, Double(total) / appendTime))
print("log: \(log.size) events, latest checkpoint at \(log.latestCheckpoint!.size)")

// 2. Proofs at the full size: random indices, the tile cache cold (a fresh log object) then warm.
let size = UInt64(total)
func proofs(_ count: Int, label: String) throws {
    var rng = SystemRandomNumberGenerator()
    var times: [Double] = []
    for _ in 0..<count {
        let index = UInt64.random(in: 0..<size, using: &rng)
        let t = try seconds { _ = try log.inclusionProof(index: index, size: size) }
        times.append(t * 1e6)
    }
    times.sort()
    print(String(format: "inclusion proof at %d events (%@): mean %.1f µs, p50 %.1f µs, p99 %.1f µs", total, label,
                 times.reduce(0, +) / Double(times.count), times[times.count / 2], times[times.count * 99 / 100]))
}
try proofs(1000, label: "1000 random, first reads")
try proofs(10000, label: "10000 random, tiles cached")
var ctimes: [Double] = []
var rng = SystemRandomNumberGenerator()
for _ in 0..<1000 {
    let from = UInt64.random(in: 1..<size, using: &rng)
    ctimes.append(try seconds { _ = try log.consistencyProof(from: from, to: size) } * 1e6)
}
ctimes.sort()
print(String(format: "consistency proof to %d events: mean %.1f µs, p99 %.1f µs", total, ctimes.reduce(0, +) / Double(ctimes.count), ctimes[ctimes.count * 99 / 100]))

// 3. Verify: every event re-read, re-hashed, checked against its CID, tiles and checkpoints.
var result: AuditVerification?
let verifyTime = try seconds { result = try log.verify() }
print(String(format: "verify: %d events, %d checkpoints, ok=%@: %.2f s, %.0f events/s", result!.size, result!.checkpoints,
             result!.ok ? "yes" : "no", verifyTime, Double(result!.size) / verifyTime))
let bytes = (try? FileManager.default.subpathsOfDirectory(atPath: dir))?.reduce(UInt64(0)) { sum, p in
    sum + ((try? FileManager.default.attributesOfItem(atPath: dir + "/" + p)[.size] as? UInt64) ?? 0)
} ?? 0
print(String(format: "repository: %.1f MiB (%.0f bytes per event)", Double(bytes) / 1048576, Double(bytes) / Double(total)))
repo.close()
