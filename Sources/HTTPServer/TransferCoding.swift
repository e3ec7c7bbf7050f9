import Foundation
import HTTPTypes
import HTTPMessages
import Hummingbird

/// Refuses request bodies sent with a transfer coding other than `chunked`, before anything is
/// read: the HTTP codec only removes the chunked framing, so a `gzip, chunked` body would
/// otherwise be stored still compressed, as if it were the content. When `chunked` is not the
/// last coding the body's length cannot be known: 400 (RFC 9112 §6.3); otherwise a compression
/// coding gets 415 and any other coding 501 (§6.1). Either way nothing more is read from the
/// connection, which closes after the response.
struct TransferCodingMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let codings = request.headers[values: .transferEncoding]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingOWS.lowercased() }
        guard let other = codings.first(where: { $0 != "chunked" }) else { return try await next(request, context) }
        let error: RequestError
        if codings.last != "chunked" {
            error = RequestError(.badRequest, "Transfer-Encoding \"\(codings.joined(separator: ", "))\" does not end with chunked: the body's length cannot be known")
        } else {
            let compression = ["gzip", "x-gzip", "deflate", "compress", "x-compress", "br", "zstd"].contains(other)
            error = RequestError(compression ? .unsupportedMediaType : .notImplemented,
                                 "Transfer-Encoding \"\(other)\" is not supported: send the body plain, with Content-Length or Transfer-Encoding: chunked")
        }
        context.stopReading()
        // What the connection already read of the body (with the codec's error for a body it
        // cannot frame) is consumed here, so the HTTP layer does not answer that error a second time.
        do { for try await _ in request.body {} } catch {}
        var response = ErrorMapping.response(error, path: request.uri.path)
        response.headers[.connection] = "close"
        return response
    }
}
