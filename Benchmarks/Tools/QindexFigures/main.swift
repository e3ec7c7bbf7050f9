// The Qindex figures of Docs/benchmarks.md, each on a fresh repository in a temporary
// directory (real LevelDB, durable commits: every update acknowledged only once synced):
//   updates <n> <writers>   n pointer updates from <writers> concurrent tasks (one pointer each)
//   get <n>                 n reads of a head
//   history <versions>      a chain of <versions> updates, then pages of 100 at its head, middle, end
//   list <pointers>         <pointers> pointers, then pages of 100 by key, type+prefix, tag, updatedAt
//   ipns <n>                n publishes and resolves of an IPNS name (local)
//
//   swift run -c release QindexFigures updates 50000 16 ; ... history 100000 ; list 1000000 ; ipns 1000
import Foundation
import Multiformats
import Node
import Qindex
import Storage

let args = CommandLine.arguments
let what = args.count > 1 ? args[1] : "updates"
let n = args.count > 2 ? Int(args[2]) ?? 10_000 : 10_000
let writers = args.count > 3 ? Int(args[3]) ?? 16 : 16

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
func ms(_ ns: UInt64) -> String { String(format: "%.3f ms", Double(ns) / 1e6) }

let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qindex-figures-\(UUID().uuidString)").path
try Repository.initialize(at: dir)
defer { try? FileManager.default.removeItem(atPath: dir) }
let node = try Node(repository: try Repository(path: dir, purpose: "qindex figures"))
let target = try node.putBlock(Array("qindex figures target".utf8), codec: .raw, hash: .sha2_256, hashLength: nil).cid

/// `count` updates from `writers` tasks; `key(w, i)` names writer w's i-th pointer.
func load(_ count: Int, writers: Int, tag: (Int) -> [String] = { _ in [] }, key: @escaping @Sendable (Int, Int) -> String) async throws -> Double {
    let t = now()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<writers {
            group.addTask {
                for i in stride(from: w, to: count, by: writers) {
                    _ = try await node.putPointer(Qindex.Update(type: "bench", key: key(w, i), target: target, tags: i % 100 == 0 ? ["hundredth"] : []))
                }
            }
        }
        try await group.waitForAll()
    }
    return Double(count) / (Double(now() - t) / 1e9)
}

/// Median and 99th percentile of `rounds` timings of `body`.
func timings(_ rounds: Int, _ body: () throws -> Void) rethrows -> String {
    var ts: [UInt64] = []
    for _ in 0..<rounds {
        let t = now()
        try body()
        ts.append(now() - t)
    }
    ts.sort()
    return "median \(ms(ts[ts.count / 2])), p99 \(ms(ts[min(ts.count - 1, ts.count * 99 / 100)]))"
}

switch what {
case "updates":
    let rate = try await load(n, writers: writers) { w, _ in "w\(w)" }
    print("updates: \(n) from \(writers) writers: \(Int(rate))/s")
case "get":
    _ = try await node.putPointer(Qindex.Update(type: "bench", key: "head", target: target))
    let t = now()
    for _ in 0..<n { _ = try node.pointer(type: "bench", key: "head") }
    print("get head: \(Int(Double(n) / (Double(now() - t) / 1e9)))/s")
case "history":
    let rate = try await load(n, writers: writers) { _, _ in "chain" }
    print("history: \(n) versions of one pointer at \(Int(rate))/s")
    for (label, before) in [("head", nil), ("middle", Int64(n / 2)), ("end", Int64(101))] as [(String, Int64?)] {
        print("  page of 100 at the \(label): " + (try timings(200) { _ = try node.pointerHistory(type: "bench", key: "chain", limit: 100, before: before) }))
    }
case "list":
    let rate = try await load(n, writers: writers) { _, i in String(format: "p%08d", i) }
    print("list: \(n) pointers created at \(Int(rate))/s")
    var q = Qindex.Query()
    q.limit = 100
    print("  first page by key: " + (try timings(200) { _ = try node.listPointers(q) }))
    var middle = q
    middle.type = "bench"
    middle.prefix = String(format: "p%08d", n / 2).dropLast(2).description
    print("  type+prefix page (middle): " + (try timings(200) { _ = try node.listPointers(middle) }))
    var cursor = q
    cursor.cursor = try node.listPointers(q).next
    print("  second page by cursor: " + (try timings(200) { _ = try node.listPointers(cursor) }))
    var tag = q
    tag.tag = "hundredth"
    print("  page by tag: " + (try timings(200) { _ = try node.listPointers(tag) }))
    var recent = q
    recent.sort = .updatedAt
    print("  page by updatedAt: " + (try timings(200) { _ = try node.listPointers(recent) }))
case "ipns":
    let value = "/ipfs/" + target.string
    print("ipns publish: " + (try timings(n) { _ = try node.publishName(value, lifetime: 3_600_000_000_000, ttl: 60_000_000_000) }))
    let name = try node.publishName(value, lifetime: 3_600_000_000_000, ttl: 60_000_000_000).name
    print("ipns resolve: " + (try timings(n) { _ = try node.resolveName(name) }))
default:
    print("usage: QindexFigures updates|get|history|list|ipns <n> [writers]")
}
