import Foundation
import NIOCore

/// A bounded queue of byte buffers between a thread and a task: the one back-pressured
/// bridge between blocking storage work and async HTTP I/O, in either direction.
///
/// - Downloads (`ChunkChannel`): a storage thread produces (`put`, blocking), the response
///   writer consumes (`take() async`).
/// - Uploads (`BodyPipe`): the request-body task produces (`put() async`), an importer thread
///   consumes (`take`, blocking).
///
/// At most `capacity` bytes wait in the queue (one buffer is always let in when it is
/// empty): a producer past that waits until the consumer takes one, so a slow peer slows
/// the other side instead of filling memory. Either side may stop at any instant: `close()`
/// (the consumer has gone) wakes a waiting producer, whose `put` then reports `false`;
/// `finish` (the producer is done, with or without an error) wakes a waiting consumer.
/// Nothing here counts or releases permits, so no interleaving of the two can leave the
/// bridge in a state it cannot be torn down from.
///
/// Safety of `@unchecked Sendable`: every stored property below `condition` is read and
/// written only while `condition` is locked. The thread side waits on `condition`; the async
/// side parks one continuation (`parked`), resumed by the other side after it unlocks. Only one
/// side of a bridge is async, so one slot suffices.
final class ByteBridge: @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [ByteBuffer] = []
    private var head = 0
    private var bytes = 0
    private var ended = false
    private var failure: (any Error)?
    private var closed = false
    private var parked: CheckedContinuation<Void, Never>?
    /// Bytes allowed to wait in the queue.
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    private var hasRoom: Bool { bytes < capacity }
    private var isEmpty: Bool { head == chunks.count }

    /// Runs `body` under the lock, then wakes whoever waits on the other side.
    private func changeAndWake(_ body: () -> Void) {
        condition.lock()
        body()
        let continuation = parked
        parked = nil
        condition.broadcast()
        condition.unlock()
        continuation?.resume()
    }

    private func append(_ buffer: ByteBuffer) {
        chunks.append(buffer)
        bytes += buffer.readableBytes
    }

    // MARK: producer

    /// Thread side: adds `buffer`, blocking while the queue is full. `false` once the consumer has gone.
    func put(_ buffer: ByteBuffer) -> Bool {
        condition.lock()
        while !hasRoom && !closed { condition.wait() }
        guard !closed else {
            condition.unlock()
            return false
        }
        append(buffer)
        let continuation = parked
        parked = nil
        condition.broadcast()
        condition.unlock()
        continuation?.resume()
        return true
    }

    /// Async side: adds `buffer`, suspending while the queue is full. `false` once the consumer has gone.
    func put(_ buffer: ByteBuffer) async -> Bool {
        while true {
            switch tryPut(buffer) {
            case .added: return true
            case .gone: return false
            case .full: await park { !self.hasRoom && !self.closed }
            }
        }
    }

    private enum PutStep { case added, gone, full }

    /// One attempt of the async `put`, under the lock.
    private func tryPut(_ buffer: ByteBuffer) -> PutStep {
        condition.lock()
        defer { condition.unlock() }
        if closed { return .gone }
        guard hasRoom else { return .full }
        append(buffer)
        condition.broadcast()  // a consumer thread may wait for data
        return .added
    }

    /// Suspends until the other side changes something, unless `stillBlocked` (checked under the
    /// lock, so no wake-up is lost between the check and parking) is already false.
    private func park(_ stillBlocked: () -> Bool) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if stillBlocked() {
                parked = c
                condition.unlock()
            } else {
                condition.unlock()
                c.resume()
            }
        }
    }

    /// The producer is done; `error` (if any) reaches the consumer after the queued bytes.
    func finish(_ error: (any Error)? = nil) {
        changeAndWake {
            if !ended {
                ended = true
                failure = error
            }
        }
    }

    // MARK: consumer

    private enum Taken { case buffer(ByteBuffer), end, failed(any Error), wait }

    /// Under the lock: the next buffer, the end, or nothing yet.
    private func takeLocked() -> Taken {
        if !isEmpty {
            let b = chunks[head]
            head += 1
            bytes -= b.readableBytes
            if head > 64 || head == chunks.count {
                chunks.removeFirst(head)
                head = 0
            }
            return .buffer(b)
        }
        if ended { return failure.map { .failed($0) } ?? .end }
        if closed { return .end }
        return .wait
    }

    /// Thread side: the next buffer, blocking until one arrives; nil at the end; the producer's error.
    func take() throws -> ByteBuffer? {
        condition.lock()
        var taken = takeLocked()
        while case .wait = taken {
            condition.wait()
            taken = takeLocked()
        }
        let continuation = parked
        parked = nil
        condition.broadcast()
        condition.unlock()
        continuation?.resume()
        switch taken {
        case .buffer(let b): return b
        case .failed(let e): throw e
        case .end, .wait: return nil
        }
    }

    /// Async side: the next buffer, suspending until one arrives; nil at the end; the producer's error.
    func take() async throws -> ByteBuffer? {
        while true {
            switch tryTake() {
            case .buffer(let b): return b
            case .failed(let e): throw e
            case .end: return nil
            case .wait: await park { self.isEmpty && !self.ended && !self.closed }
            }
        }
    }

    /// One attempt of the async `take`, under the lock.
    private func tryTake() -> Taken {
        condition.lock()
        defer { condition.unlock() }
        let taken = takeLocked()
        if case .wait = taken {} else { condition.broadcast() }  // a producer thread may wait for room
        return taken
    }

    /// The consumer has gone: queued bytes are dropped, a waiting producer wakes and every
    /// later `put` reports `false`.
    func close() {
        changeAndWake {
            closed = true
            chunks = []
            head = 0
            bytes = 0
        }
    }
}

/// A response body produced by a blocking thread (a CAR, a file's bytes, Kubo's JSON lines)
/// for the async response writer, through a `ByteBridge` of 512 KiB.
final class ChunkChannel: Sendable {
    let bridge = ByteBridge(capacity: 512 << 10)

    /// Producer: adds a chunk, waiting while the channel is full. Throws once the consumer has gone.
    func send(_ bytes: [UInt8]) throws {
        guard bridge.put(ByteBuffer(bytes: bytes)) else { throw CancellationError() }
    }

    /// Producer: one wire value and a newline (a line of Kubo's streamed replies).
    func sendLine<T: Encodable>(_ value: T) throws {
        guard bridge.put(JSONOutput.line(value)) else { throw CancellationError() }
    }

    /// Producer: no more chunks (with the error that stopped it, if any).
    func finish(_ error: (any Error)? = nil) { bridge.finish(error) }

    /// Consumer: the next chunk, nil at the end; rethrows the producer's error.
    func next() async throws -> ByteBuffer? { try await bridge.take() }

    /// Consumer: stop; a blocked producer is released and its next send throws.
    func cancel() { bridge.close() }
}
