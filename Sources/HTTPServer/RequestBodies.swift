import HTTPMessages
import Hummingbird
import Multiformats
import NIOCore
import NIOHTTP1

/// A request body that could not be read to its end: cut short by the client, or badly
/// framed. The client's error (400), never the server's; nothing of it is kept.
struct RequestBodyError: KindedError, CustomStringConvertible {
    let description: String
    var kind: ErrorKind { .invalidInput }

    /// Says what happened to a body of which `received` bytes had arrived when `error` ended it.
    init(_ error: any Error, received: Int) {
        if let e = error as? HTTPParserError {
            switch e {
            case .invalidEOFState, .closedConnection:
                description = "the upload was truncated: the connection ended after \(received) bytes of the body, before its declared end"
            case .invalidChunkSize:
                description = "the upload is malformed: invalid chunk size in its chunked encoding (after \(received) bytes)"
            case .invalidContentLength, .unexpectedContentLength:
                description = "the upload is malformed: invalid Content-Length"
            default:
                description = "the upload is malformed: \(e) (after \(received) bytes)"
            }
        } else {
            description = "the upload could not be read to its end after \(received) bytes: \(error)"
        }
    }
}

/// Reading whole (small) request bodies, with the two ways that can fail told apart: too large
/// (413) and cut short or malformed (400), and a deadline for the whole body (408).
enum RequestBodies {
    /// The body of `request`, at most `limit` bytes, all of it within `timeout`: checked as each
    /// part arrives (no timer per request); a body that stops arriving altogether is ended by the
    /// connection's body idle timeout.
    static func collect(_ request: Request, limit: Int, timeout: Duration) async throws -> ByteBuffer {
        let deadline = ContinuousClock.now + timeout
        var total = 0
        var collected = ByteBuffer()
        do {
            for try await var part in request.body {
                total += part.readableBytes
                guard total <= limit else { throw BodyTooLarge(limit: limit) }
                guard ContinuousClock.now < deadline else {
                    throw RequestError(.requestTimeout, "the request body did not arrive within \(timeout.components.seconds) s (http.requestTimeout)")
                }
                collected.writeBuffer(&part)
            }
        } catch let e as BodyTooLarge {
            throw e
        } catch let e as RequestError {
            throw e
        } catch {
            throw RequestBodyError(error, received: total)
        }
        return collected
    }
}
