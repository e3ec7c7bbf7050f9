import CAR
import Foundation
import HTTPMessages
import Hummingbird
import NIOCore
import Pinning

/// A request body read by a blocking importer while it still arrives: an async feeder moves the
/// body's buffers in through a `ByteBridge`, at most `limit` bytes ahead of the reader (then it
/// waits, so the client is slowed by TCP back-pressure, not buffered in memory), and the
/// importer's thread reads them as a `ByteSource`. Once the reader is done (`close`), the rest of
/// the body is read and dropped, so the client can finish sending and read the reply.
///
/// A body that cannot be read to its end (cut short, badly framed) fails the reader with
/// `RequestBodyError`; one larger than the limit with `BodyTooLarge`.
final class BodyPipe: ByteSource, @unchecked Sendable {
    // Safe: `bridge` is Sendable; `current` is touched only by the one reading thread.
    private let bridge: ByteBridge
    private var current = ByteBuffer()

    init(limit: Int = 1 << 20) { bridge = ByteBridge(capacity: limit) }

    /// Feeds `body` in (async side); at most `maximum` bytes are accepted. Once the reader is
    /// done, the rest is read and dropped (so the client can read the reply) — at most
    /// `drainLimit` bytes of it: past that (a client that was refused but keeps sending, slowly
    /// or a lot) `stopReading` ends the connection's input, and the connection closes after the reply.
    func feed(_ body: RequestBody, maximum: Int, drainLimit: Int = 1 << 20, stopReading: @Sendable () -> Void = {}) async {
        var total = 0
        var dropped = 0
        var reading = true
        do {
            do {
                for try await buffer in body {
                    total += buffer.readableBytes
                    if !reading {
                        dropped += buffer.readableBytes
                        if dropped > drainLimit {
                            stopReading()
                            break
                        }
                        continue
                    }
                    guard total <= maximum else { throw BodyTooLarge(limit: maximum) }
                    reading = await bridge.put(buffer)
                }
            } catch let e as BodyTooLarge {
                throw e
            } catch {
                throw RequestBodyError(error, received: total)
            }
            bridge.finish()
        } catch {
            bridge.finish(error)
        }
    }

    /// The reader is done: whatever else arrives is dropped.
    func close() { bridge.close() }

    /// Blocking read (importer side): waits for bytes; 0 at the end; the feeder's error if it failed.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        while current.readableBytes == 0 {
            guard let next = try bridge.take() else { return 0 }
            current = next
        }
        let n = min(current.readableBytes, buffer.count)
        current.withUnsafeReadableBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n)
        }
        current.moveReaderIndex(forwardBy: n)
        return n
    }
}

extension BodyPipe {
    /// Reads `request`'s body as it arrives with `work` on a thread of its own — once one of
    /// `slots` is free for the client — so a slow upload never holds a storage thread; who asks
    /// (`AuditContext`) goes along. At most `maximum` bytes are accepted; the rest of the body is
    /// drained after (`feed`).
    static func consume<T: Sendable>(_ request: Request, _ context: ServerContext, slots: ClientSlots, maximum: Int,
                                     _ work: @escaping @Sendable (BodyPipe) throws -> T) async throws -> T {
        let pipe = BodyPipe()
        let feeder = Task { await pipe.feed(request.body, maximum: maximum, stopReading: { context.stopReading() }) }
        defer {
            pipe.close()
            feeder.cancel()
        }
        let client = context.client
        try await slots.acquire(client: client)
        defer { slots.release(client: client) }
        let auditContext = AuditContext.current
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            Thread.detachNewThread {
                c.resume(with: Result { try AuditContext.$current.withValue(auditContext) { try work(pipe) } })
            }
        }
    }
}
