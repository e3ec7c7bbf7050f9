import ArgumentParser
import Foundation
import Multiformats
import Storage

/// `qstore debug`: tools for testing and measuring the store itself (hidden from help).
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug", abstract: "Testing and measurement tools.", shouldDisplay: false,
        subcommands: [WriteLoad.self])

    /// Writes pseudo-random blocks and prints each CID once its put is acknowledged.
    /// The crash test kills this process at random moments and checks every printed CID survived.
    struct WriteLoad: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write random blocks; print each CID when its put returns.")
        @Option(help: "Blocks to write.") var count = 1000
        @Option(help: "Seed of the pseudo-random data.") var seed: UInt64 = 1
        @Option(help: "Largest block, bytes (sizes are spread up to it, crossing the inline limit).") var maxSize = 256 << 10
        @Option(help: "Blocks per put-many batch (1: single puts).") var batch = 1

        func run() throws {
            let repo = try openRepository(purpose: "debug write-load")
            var state = seed &* 0x9e3779b97f4a7c15 | 1
            func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
            var pending: [Block] = []
            let out = FileHandle.standardOutput
            for i in 0..<count {
                let size = Int(next() % UInt64(maxSize)) + 1
                var data = [UInt8](repeating: 0, count: size)
                data.withUnsafeMutableBytes { raw in
                    var j = 0
                    while j + 8 <= raw.count { raw.storeBytes(of: next(), toByteOffset: j, as: UInt64.self); j += 8 }
                    while j < raw.count { raw[j] = UInt8(truncatingIfNeeded: next()); j += 1 }
                }
                pending.append(try Block(data: data, codec: .raw))
                if pending.count >= batch || i == count - 1 {
                    try reporting("write-load") { try repo.blocks.putMany(pending) }
                    out.write(Data(pending.map { $0.cid.string + "\n" }.joined().utf8))
                    pending.removeAll(keepingCapacity: true)
                }
            }
        }
    }
}
