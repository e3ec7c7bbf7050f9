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
        request.expires = millisecondsNow() + 600
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
struct ThreadSlotsTests {
    @Test func thirdWaitsForARelease() async throws {
        let slots = ThreadSlots(2)
        await slots.acquire()
        await slots.acquire()
        let third = Task { await slots.acquire(); return true }
        try await Task.sleep(for: .milliseconds(100))
        slots.release()
        #expect(await third.value)
        slots.release()
        slots.release()
        // Back to two free: two acquire at once again.
        await slots.acquire()
        await slots.acquire()
    }
}
