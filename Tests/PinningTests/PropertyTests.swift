import Foundation
import IPLD
import Multiformats
@testable import Pinning
import Storage
import Testing
import TestSupport

/// Random sequences of put, pin, unpin, update, GC (with pack compaction) and crash (close and reopen without a
/// clean shutdown of state held in memory) against a from-scratch model: after every GC the
/// stored blocks are exactly those reachable from the pins through stored blocks, and every
/// count equals the one recomputed from the pins and the links.
@Suite struct PinningPropertyTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomSequencesAgreeWithTheModel(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        // Every block in small pack files, so collections leave packs to compact.
        var configuration = Configuration()
        configuration.blockstore.inlineLimit = 0
        configuration.blockstore.maximumPackSize = 2_000
        let h = try PinningHarness(configuration: configuration)
        var made: [Block] = []            // every block ever made
        var stored: [CID: [CID]] = [:]    // model: stored block → links
        var pinned: [CID: PinType] = [:]  // model: pins (one per CID here)
        var compacted = 0
        for step in 0..<300 {
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<40:
                // A block linking to 0–3 earlier blocks (present or not), sometimes the same bytes as raw.
                let links = (0..<Int.random(in: 0...3, using: &rng)).compactMap { _ in made.randomElement(using: &rng)?.cid }
                let b = try PinningHarness.node(step, links: links)
                made.append(b)
                try h.store.put(b)
                stored[b.cid] = links
            case 40..<55:
                guard let b = made.randomElement(using: &rng) else { continue }
                let type: PinType = Bool.random(using: &rng) ? .recursive : .direct
                do {
                    try h.pins.pin(Pinner.Request(cid: b.cid, type: type))
                    #expect(stored[b.cid] != nil)
                    if type == .recursive { #expect(Self.complete(b.cid, stored)) }
                    if pinned[b.cid] != .recursive { pinned[b.cid] = type }
                } catch let e as PinningError {
                    switch e {
                    case .notFound, .incompleteDAG: #expect(stored[b.cid] == nil || (type == .recursive && !Self.complete(b.cid, stored)))
                    case .alreadyPinnedRecursively: #expect(pinned[b.cid] == .recursive)
                    default: Issue.record("unexpected \(e)")
                    }
                }
            case 55..<68:
                guard let c = pinned.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }).randomElement(using: &rng) else { continue }
                try h.pins.unpin(c)
                pinned[c] = nil
            case 68..<75:
                let recursive = pinned.filter { $0.value == .recursive }.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) })
                guard let from = recursive.randomElement(using: &rng), let to = made.randomElement(using: &rng)?.cid, to != from else { continue }
                do {
                    _ = try h.pins.update(from: from, to: to)
                    pinned[from] = nil
                    pinned[to] = .recursive
                } catch is PinningError {
                    #expect(!Self.complete(to, stored) || pinned[to] == .direct)
                    if pinned[to] == .direct && Self.complete(to, stored) { continue }
                }
            case 75..<90:
                _ = try h.collector.collect()
                // Model: keep what is reachable from the pins through stored blocks.
                var keep = Set<CID>()
                var stack = Array(pinned.keys)
                while let c = stack.popLast() {
                    guard let links = stored[c], keep.insert(c).inserted else { continue }
                    stack.append(contentsOf: links)
                }
                stored = stored.filter { keep.contains($0.key) }
                for b in made { #expect(try h.store.has(b.cid) == (stored[b.cid] != nil), "step \(step): \(b.cid)") }
                // Compacting moves what is left and loses nothing.
                compacted += try h.store.compactPacks(threshold: 0.3).packs
                for b in made where stored[b.cid] != nil { #expect(try h.store.get(b.cid) == b.data, "step \(step): \(b.cid) after compaction") }
            default:
                try h.reopen()
            }
        }
        #expect(try h.verifyClean() == [])
        #expect(try h.repository.verify().isClean)
        #expect(compacted > 0, "the sequence compacted packs")
        // Counts from the model.
        var expected: [Multihash: UInt64] = [:]
        for (_, links) in stored { for m in Set(links.map(\.multihash)) { expected[m, default: 0] += 1 } }
        for (c, _) in pinned { expected[c.multihash, default: 0] += 1 }
        for (c, _) in stored { #expect(try h.count(c) == expected[c.multihash] ?? 0) }
    }

    static func complete(_ root: CID, _ stored: [CID: [CID]]) -> Bool {
        var stack = [root]
        var seen = Set<CID>()
        while let c = stack.popLast() {
            guard seen.insert(c).inserted else { continue }
            guard let links = stored[c] else { return false }
            stack.append(contentsOf: links)
        }
        return true
    }
}

/// Pins, unpins, puts and GC from several threads at once; afterwards every pinned DAG is
/// complete and the counts verify.
@Suite struct ConcurrentPinningTests {
    @Test func pinsSurviveConcurrentCollection() async throws {
        let h = try PinningHarness()
        let store = h.store, pins = h.pins
        let collector = h.collector
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var rng = SeededGenerator(seed: UInt64(worker))
                    for round in 0..<60 {
                        // A small DAG, put leaf first, then pinned; some pins removed again.
                        let leaves = try (0..<3).map { try PinningHarness.node(worker * 100_000 + round * 10 + $0, links: []) }
                        let root = try PinningHarness.node(worker * 100_000 + round * 10 + 9, links: leaves.map(\.cid))
                        let lease = store.lease()
                        try store.putMany(leaves)
                        try store.put(root)
                        try pins.pin(Pinner.Request(cid: root.cid, name: "w\(worker)"))
                        lease.release()
                        if Bool.random(using: &rng) { try pins.unpin(root.cid) }
                    }
                }
            }
            group.addTask {
                // A run judged "now" a minute ahead: only the leases keep the imports in flight.
                for _ in 0..<200 { _ = try collector.collect(now: store.clock.now + 60_000) }
            }
            try await group.waitForAll()
        }
        var roots: [CID] = []
        try pins.forEachPin { p in roots.append(p.cid); return true }
        #expect(!roots.isEmpty)
        for r in roots { #expect(try pins.check(r, type: .recursive).missing == nil, "pinned DAG \(r) is complete") }
        _ = try collector.collect(now: store.clock.now + 1)
        for r in roots { #expect(try pins.check(r, type: .recursive).missing == nil) }
        #expect(try h.verifyClean() == [])
    }
}
