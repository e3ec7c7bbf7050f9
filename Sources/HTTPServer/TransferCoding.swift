import Foundation
import HTTPTypes
import Hummingbird

/// Refuses request bodies sent with a transfer coding other than `chunked`, before anything is
/// read: the HTTP codec only removes the chunked framing, so a `gzip, chunked` body would
/// otherwise be stored still compressed, as if it were the content. A compression coding gets
/// 415, any other coding 501 (RFC 9112 §6.1: a coding the server does not understand).
struct TransferCodingMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let codings = request.headers[values: .transferEncoding]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let other = codings.first(where: { $0 != "chunked" }) else { return try await next(request, context) }
        let compression = ["gzip", "x-gzip", "deflate", "compress", "x-compress", "br", "zstd"].contains(other)
        let error = RequestError(compression ? .unsupportedMediaType : .notImplemented,
                                 "Transfer-Encoding \"\(other)\" is not supported: send the body plain, with Content-Length or Transfer-Encoding: chunked")
        var response = ErrorMapping.response(error, path: request.uri.path)
        response.headers[.connection] = "close"
        return response
    }
}
