import HTTPTypes
import Hummingbird

/// Every API request must carry the repository's token as `Authorization: Bearer <token>`,
/// else 401. `/health` is open, so supervisors can probe without the secret.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" { return try await next(request, context) }
        let given = request.headers[.authorization] ?? ""
        guard given.hasPrefix("Bearer "), constantTimeEqual(Array(given.utf8.dropFirst(7)), Array(token.utf8)) else {
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Bearer realm=\"qstore\""
            headers[.contentType] = "application/json"
            let message = "missing or wrong API token (Authorization: Bearer <token from the repository's api-token file>)"
            // The Pinning Service API has its own error shape.
            let body = request.uri.path.hasPrefix("/pins")
                ? JSONOutput.bytes(["error": ["reason": "UNAUTHORIZED", "details": message]])
                : JSONOutput.bytes(["Message": message, "Code": 1, "Type": "error"])
            return Response(status: .unauthorized, headers: headers, body: .init(byteBuffer: body))
        }
        return try await next(request, context)
    }

    /// Comparison whose time does not depend on where the inputs differ.
    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
