import CAR
import Foundation
import Hummingbird
import NIOCore

/// A request body read by a blocking importer while it still arrives: an async feeder moves the
/// body's buffers in, at most `limit` bytes ahead of the reader (then it waits, so the client is
/// slowed by TCP back-pressure, not buffered in memory), and the importer's thread reads them
/// as a `ByteSource`. Once the reader is done (`close`), the rest of the body is read and dropped,
/// so the client can finish sending and read the reply.
final class BodyPipe: ByteSource, @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [ByteBuffer] = []
    private var head = 0
    private var buffered = 0
    private var ended = false
    private var failure: (any Error)?
    private var closed = false
    private var spaceWaiter: CheckedContinuation<Void, Never>?
    private let limit: Int

    init(limit: Int = 1 << 20) { self.limit = limit }

    /// Feeds `body` in (async side); at most `maximum` bytes are accepted.
    func feed(_ body: RequestBody, maximum: Int) async {
        var total = 0
        do {
            for try await buffer in body {
                total += buffer.readableBytes
                guard total <= maximum else { throw BodyTooLarge(limit: maximum) }
                await push(buffer)
            }
            end(nil)
        } catch {
            end(error)
        }
    }

    private func push(_ buffer: ByteBuffer) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if closed {
                condition.unlock()
                c.resume()
                return
            }
            chunks.append(buffer)
            buffered += buffer.readableBytes
            condition.signal()
            if buffered >= limit {
                spaceWaiter = c
                condition.unlock()
            } else {
                condition.unlock()
                c.resume()
            }
        }
    }

    private func end(_ error: (any Error)?) {
        condition.lock()
        ended = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    /// The reader is done: whatever else arrives is dropped.
    func close() {
        condition.lock()
        closed = true
        chunks = []
        head = 0
        buffered = 0
        let waiter = spaceWaiter
        spaceWaiter = nil
        condition.unlock()
        waiter?.resume()
    }

    /// Blocking read (importer side): waits for bytes; 0 at the end; the feeder's error if it failed.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        condition.lock()
        while head == chunks.count && !ended && !closed { condition.wait() }
        guard head < chunks.count else {
            let failure = self.failure
            condition.unlock()
            if let failure { throw failure }
            return 0
        }
        let n = chunks[head].withUnsafeReadableBytes { src in
            let n = min(src.count, buffer.count)
            buffer.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n)
            return n
        }
        chunks[head].moveReaderIndex(forwardBy: n)
        if chunks[head].readableBytes == 0 {
            head += 1
            if head > 64 {
                chunks.removeFirst(head)
                head = 0
            }
        }
        buffered -= n
        var waiter: CheckedContinuation<Void, Never>?
        if buffered < limit {
            waiter = spaceWaiter
            spaceWaiter = nil
        }
        condition.unlock()
        waiter?.resume()
        return n
    }
}
