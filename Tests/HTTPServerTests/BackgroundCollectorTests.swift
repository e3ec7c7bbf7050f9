import Foundation
@testable import HTTPServer
import Logging
import Multiformats
import Node
import Pinning
import Storage
import Testing
import TestSupport

/// The daemon's background collector ends a pin when it expires, not at the next `gc.interval`.
struct BackgroundCollectorTests {
    @Test func pinsEndWhenTheyExpire() async throws {
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path)
        let repository = try Repository(path: dir.path, purpose: "collector test")
        defer { repository.close() }
        let node = try Node(repository: repository)
        #expect(node.gcInterval == 3_600_000, "the default interval: an hour")
        let block = try Block(data: Array("expiring".utf8), codec: .raw)
        try node.blocks.put(block)
        var request = Pinner.Request(cid: block.cid)
        request.expires = node.clock.now + 600
        try node.pins.pin(request)
        let lasting = try Block(data: Array("lasting".utf8), codec: .raw)
        try node.blocks.put(lasting)
        try node.pins.pin(Pinner.Request(cid: lasting.cid))
        #expect(try node.pins.nextExpiry() == request.expires)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let collector = BackgroundCollector(node: node, io: StorageThreads(threads: 2), logger: logger, expiryCheck: 200)
        let running = Task { try await collector.run() }
        defer { running.cancel() }
        var ended = false
        for _ in 0..<50 where !ended {
            try await Task.sleep(for: .milliseconds(100))
            ended = try node.pins.pins(of: block.cid.multihash).isEmpty
        }
        #expect(ended, "the pin ended within 5 s of its expiry with a 1 h interval")
        #expect(try !node.pins.pins(of: lasting.cid.multihash).isEmpty, "a pin without expiry stays")
        #expect(try node.pins.nextExpiry() == nil)
        running.cancel()
        _ = await running.result
    }
}

/// Uploads beyond the slot count wait for one to end instead of starting more threads.
struct ClientSlotsTests {
    /// Past the total, the next upload waits (and is counted as waiting) until one ends.
    @Test func thirdWaitsForARelease() async throws {
        let slots = ClientSlots(SlotLimits(total: 2, perClient: 8, wait: .seconds(60)))
        try await slots.acquire(client: "a")
        try await slots.acquire(client: "b")
        let third = Task { try await slots.acquire(client: "c") }
        while slots.available.waiting == 0 { await Task.yield() }
        #expect(slots.available.free == 0)
        slots.release(client: "a")
        try await third.value
        #expect(slots.available == (free: 0, waiting: 0))
        slots.release(client: "b")
        slots.release(client: "c")
        #expect(slots.available.free == 2)
    }

    /// One client past its share is refused at once with 429, whatever is free; others are not.
    @Test func oneClientGetsItsShare() async throws {
        let slots = ClientSlots(SlotLimits(total: 8, perClient: 2, wait: .seconds(60)))
        try await slots.acquire(client: "greedy")
        try await slots.acquire(client: "greedy")
        await #expect { try await slots.acquire(client: "greedy") } throws: { ($0 as? Overloaded)?.status == .tooManyRequests }
        try await slots.acquire(client: "other")
        slots.release(client: "greedy")
        try await slots.acquire(client: "greedy")
        #expect(slots.available.free == 5)
    }

    /// A wait that runs out ends with 503 and a Retry-After, and gives its place up.
    @Test func waitRunsOut() async throws {
        let slots = ClientSlots(SlotLimits(total: 1, perClient: 8, wait: .milliseconds(50)))
        try await slots.acquire(client: "a")
        await #expect { try await slots.acquire(client: "b") } throws: { e in
            guard let o = e as? Overloaded else { return false }
            return o.status == .serviceUnavailable && o.retryAfter >= 1
        }
        #expect(slots.available == (free: 0, waiting: 0))
        slots.release(client: "a")
        try await slots.acquire(client: "b")
    }
}
