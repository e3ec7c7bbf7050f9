import ArgumentParser
import Foundation
import IPLD
import Locking
import Multiformats
import Node
import Pinning
import QpiC
import Qindex
import Storage
import Synchronization

/// `qstore debug`: tools for testing and measuring the store itself (hidden from help).
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug", abstract: "Testing and measurement tools.", shouldDisplay: false,
        subcommands: [WriteLoad.self, Image.self])

    /// A test picture on standard output (benchmarks of QpiC).
    struct Image: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a WIDTH × HEIGHT test picture (JPEG, or --png, or --format) to standard output.")
        @Option var width = 4000
        @Option var height = 3000
        @Flag(help: "PNG instead of JPEG.") var png = false
        @Option(help: "jpeg, png, webp, avif or heic (the last two need libheif's encoders).") var format: String?
        @Flag(help: "Noise (as costly as a photograph) instead of a gradient.") var noise = false
        func run() throws {
            let chosen = try format.map { name -> MediaFormat in
                guard let f = MediaFormat(rawValue: name) else { throw ValidationError("--format: jpeg, png, webp, avif or heic") }
                return f
            } ?? (png ? .png : .jpeg)
            Output.write(Data(try MediaProcessor.testImage(width: width, height: height, format: chosen, noise: noise)))
        }
    }

    /// Writes pseudo-random blocks and prints each CID once its put is acknowledged.
    /// The crash test kills this process at random moments and checks every printed CID survived.
    struct WriteLoad: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write random blocks; print each CID when its put returns.")
        @Option(help: "Blocks to write.") var count = 1000
        @Option(help: "Seed of the pseudo-random data.") var seed: UInt64 = 1
        @Option(help: "Largest block, bytes (sizes are spread up to it, crossing the inline limit).") var maxSize = 256 << 10
        @Option(help: "Blocks per put-many batch (1: single puts).") var batch = 1
        @Flag(help: "Pin, unpin and collect too: print `pinned <cid>` / `unpinned <cid>` once acknowledged.") var pins = false
        @Flag(help: "Move Qindex pointers from 8 writers at once: print `indexed <key> <version> <record>` once acknowledged.") var index = false

        func run() throws {
            let node = try localNode(purpose: "debug write-load")
            if pins { return try pinLoad(node) }
            if index { return try indexLoad(node) }
            var rng = XorShift(seed: seed)
            func next() -> UInt64 { rng.next() }
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
                    try reporting("write-load") { try node.putBlocks(pending) }
                    out.write(Data(pending.map { $0.cid.string + "\n" }.joined().utf8))
                    pending.removeAll(keepingCapacity: true)
                }
            }
        }
    
        /// Eight writers move pointers `load/k0`…`load/k15` to fresh blocks (every seventh update a
        /// deletion), each update on top of whatever the head is; each acknowledged update is printed.
        private func indexLoad(_ node: Node) throws {
            let out = Mutex(FileHandle.standardOutput)
            let failure = Mutex<(any Error)?>(nil)
            let seed = self.seed, count = self.count, maxSize = self.maxSize
            // Eight threads of their own (concurrentPerform would run about one per core).
            let done = DispatchGroup()
            for writer in 0..<8 {
                done.enter()
                Thread.detachNewThread {
                    defer { done.leave() }
                    indexWriter(writer)
                }
            }
            done.wait()
            if let e = failure.locked({ $0 }) { throw CLIError("write-load: \(e)") }

            @Sendable func indexWriter(_ writer: Int) {
                var rng = XorShift(seed: seed &+ UInt64(writer) &* 7919)
                for _ in 0..<(count / 8) {
                    let key = "k\(rng.next() % 16)"
                    do {
                        var u = Qindex.Update(type: "load", key: key, target: nil)
                        if rng.next() % 7 != 0 {
                            let size = Int(rng.next() % UInt64(maxSize)) + 1
                            let block = try Block(data: (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, codec: .raw)
                            try node.putBlocks([block])
                            u.target = block.cid
                        }
                        let head: Head
                        do { head = try node.putPointerBlocking(u) } catch QindexError.notFound { continue }  // deleting a deleted one
                        let line = "indexed \(key) \(head.version) \(head.record)\n"
                        out.locked { $0.write(Data(line.utf8)) }
                    } catch {
                        failure.locked { $0 = error }
                        return
                    }
                }
            }
        }

        /// Each step: a random leaf and a root linking it and (mostly) the previous root, put together
        /// and pinned; every third step unpins an earlier root; every fifth collects garbage (and
        /// compacts packs).
        private func pinLoad(_ node: Node) throws {
            var rng = XorShift(seed: seed)
            func next() -> UInt64 { rng.next() }
            let out = FileHandle.standardOutput
            var previous: CID?
            var roots: [CID] = []
            for i in 0..<count {
                let leaf = try Block(data: (0..<Int(next() % UInt64(maxSize)) + 1).map { _ in UInt8(truncatingIfNeeded: next()) }, codec: .raw)
                var links: [(String, IPLDNode)] = [("leaf", .link(leaf.cid)), ("step", .int(i)), ("seed", .int(seed))]
                // Short chains (a root links the previous one, except every fourth), so unpinning frees data.
                if let previous, i % 4 != 0 { links.append(("previous", .link(previous))) }
                let root = try Block(data: try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: links))), codec: .dagCBOR)
                try reporting("write-load") {
                    try node.withLease {
                        try node.putBlocks([leaf, root])
                        try node.pin(Pinner.Request(cid: root.cid))
                    }
                }
                out.write(Data("pinned \(root.cid)\n".utf8))
                roots.append(root.cid)
                previous = root.cid
                if i % 3 == 2 {
                    let victim = roots.remove(at: Int(next() % UInt64(roots.count)))
                    // Said before: once the unpin starts, the pin may be gone whether or not it returns.
                    out.write(Data("unpinning \(victim)\n".utf8))
                    try reporting("write-load") { _ = try node.unpin(victim) }
                }
                if i % 5 == 4 { try reporting("write-load") { _ = try node.collectGarbage() } }
            }
        }
    }
}

/// The write load's pseudo-random numbers (xorshift64), reproducible from a seed.
struct XorShift {
    private var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9e3779b97f4a7c15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
