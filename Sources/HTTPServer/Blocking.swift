import CAR
import Dispatch
import NIOCore
import NIOPosix
import Synchronization

/// Runs blocking storage work (LevelDB, pack files, fsync) on a dedicated thread
/// pool, off Swift's cooperative pool. Sixteen threads, so that many synced puts
/// can wait on one fsync together (LevelDB commits them as a group).
final class StorageThreads: Sendable {
    let pool: NIOThreadPool

    init(threads: Int = 16) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    /// Runs `body` on the pool and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }

    func shutdown() async throws { try await pool.shutdownGracefully() }
}

/// Hands chunks from a synchronous producer (a thread writing a CAR) to an async
/// consumer (the response body writer), holding at most `capacity` chunks: the
/// producer blocks when the client reads slowly, so memory stays flat.
final class ChunkChannel: Sendable {
    private struct State {
        var chunks: [ByteBuffer] = []
        var finished = false
        var failure: (any Error)?
        var cancelled = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())
    private let space: DispatchSemaphoreBox
    let capacity: Int

    init(capacity: Int = 8) {
        self.capacity = capacity
        space = DispatchSemaphoreBox(capacity)
    }

    /// Producer: adds a chunk, waiting while the channel is full. Throws once the consumer has gone.
    func send(_ bytes: [UInt8]) throws {
        space.wait()
        let waiter = try state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.cancelled { throw CancellationError() }
            s.chunks.append(ByteBuffer(bytes: bytes))
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Producer: one JSON value and a newline (a line of Kubo's streamed replies).
    func sendLine(_ object: [String: Any]) throws { try send(Array(JSONOutput.bytes(object).readableBytesView)) }

    /// Producer: no more chunks (with the error that stopped it, if any).
    func finish(_ error: (any Error)? = nil) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.finished = true
            s.failure = error
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Consumer: the next chunk, nil at the end; rethrows the producer's error.
    func next() async throws -> ByteBuffer? {
        while true {
            enum Step { case chunk(ByteBuffer), end, failed(any Error), wait }
            let step: Step = state.withLock { s in
                if !s.chunks.isEmpty { return .chunk(s.chunks.removeFirst()) }
                if let f = s.failure { return .failed(f) }
                return s.finished ? .end : .wait
            }
            switch step {
            case .chunk(let c):
                space.signal()
                return c
            case .end: return nil
            case .failed(let e): throw e
            case .wait:
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if !s.chunks.isEmpty || s.finished { return true }
                        s.waiter = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
        }
    }

    /// Consumer: stop; a blocked producer is released and its next send throws.
    func cancel() {
        state.withLock { $0.cancelled = true }
        for _ in 0..<capacity { space.signal() }
    }
}

/// A counting semaphore usable from `Sendable` types (DispatchSemaphore is thread-safe by design).
final class DispatchSemaphoreBox: @unchecked Sendable {
    private let semaphore: DispatchSemaphore
    init(_ value: Int) { semaphore = DispatchSemaphore(value: value) }
    func wait() { semaphore.wait() }
    func signal() { semaphore.signal() }
}

/// A `ByteSink` that sends what is written through a `ChunkChannel` in pieces of about 64 KiB.
struct ChannelSink: ByteSink {
    let channel: ChunkChannel
    var pending: [UInt8] = []

    init(_ channel: ChunkChannel) { self.channel = channel }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        pending.append(contentsOf: bytes)
        if pending.count >= 64 << 10 { try flush() }
    }

    mutating func flush() throws {
        guard !pending.isEmpty else { return }
        try channel.send(pending)
        pending.removeAll(keepingCapacity: true)
    }
}

/// A bound on work that takes a thread of its own (uploads imported as they arrive): past
/// `count` at once, the next waits (asynchronously) for one to end, so many clients cannot make
/// the daemon start unbounded threads.
final class ThreadSlots: Sendable {
    private let state: Mutex<(free: Int, waiters: [CheckedContinuation<Void, Never>])>

    init(_ count: Int) { state = Mutex((max(1, count), [])) }

    func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.free > 0 {
                    s.free -= 1
                    return true
                }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
