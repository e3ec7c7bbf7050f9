// Sustained store throughput: writes N GiB of distinct 256 KiB raw blocks through
// LevelDBBlockStore.putMany (32 blocks = 8 MiB per batch), hashing each block, and
// prints MB/s every GiB, overall MB/s and the peak resident memory.
//
//   swift run -c release StoreThroughput <GiB> [inline|packed] [sync|buffered] [dir]
//
// "packed" (the default) is Qstore's layout; "inline" keeps every block in LevelDB
// (inline limit above the block size), to show what value separation buys.
import Foundation
import Multiformats
import Storage

let args = CommandLine.arguments
let gib = args.count > 1 ? Int(args[1]) ?? 1 : 1
let inline = args.count > 2 && args[2] == "inline"
let durability = args.count > 3 ? LevelDBBlockStore.Durability(rawValue: args[3]) ?? .sync : .sync
let dir = args.count > 4 ? args[4] : FileManager.default.temporaryDirectory.appendingPathComponent("qstore-throughput-\(UUID().uuidString)").path
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }

var options = LevelDBBlockStore.Options()
options.durability = durability
if inline { options.inlineLimit = 1 << 20 }
let store = try LevelDBBlockStore(db: LevelDB(path: dir + "/db"), packDirectory: dir + "/packs", options: options)

let blockSize = 256 << 10
let perBatch = 32
let blocksTotal = gib * (1 << 30) / blockSize
var template = [UInt8](repeating: 0, count: blockSize)
var x: UInt64 = 0x9e3779b97f4a7c15
for i in stride(from: 0, to: blockSize, by: 8) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17
    withUnsafeBytes(of: x) { template.replaceSubrange(i..<i + 8, with: $0) }
}

func peakRSS() -> String {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    return status.split(separator: "\n").first { $0.hasPrefix("VmHWM") }.map { String($0.dropFirst(6)).trimmingCharacters(in: .whitespaces) } ?? "?"
}

let start = Date()
var lap = Date()
var written = 0
var batch: [Block] = []
batch.reserveCapacity(perBatch)
for i in 0..<blocksTotal {
    var data = template
    // Distinct content per block: a counter in the first and last 8 bytes.
    withUnsafeBytes(of: UInt64(i)) { data.replaceSubrange(0..<8, with: $0); data.replaceSubrange(blockSize - 8..<blockSize, with: $0) }
    batch.append(try Block(data: data))
    if batch.count == perBatch || i == blocksTotal - 1 {
        try store.putMany(batch)
        written += batch.count * blockSize
        batch.removeAll(keepingCapacity: true)
        if written % (1 << 30) == 0 {
            let t = Date().timeIntervalSince(lap)
            print(String(format: "  %d GiB: %.0f MB/s (this GiB)", written >> 30, Double(1 << 30) / t / 1e6))
            lap = Date()
        }
    }
}
let seconds = Date().timeIntervalSince(start)
print(String(format: "%d GiB of 256 KiB blocks, %@, %@: %.1f s, %.0f MB/s, peak RSS %@", gib, inline ? "inline" : "packed",
             durability.rawValue, seconds, Double(written) / seconds / 1e6, peakRSS()))
