import HTTPTypes
import Hummingbird

/// Every API request must carry the repository's token as `Authorization: Bearer <token>`,
/// else 401. `/health` is open, so supervisors can probe without the secret.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" { return try await next(request, context) }
        guard let given = Self.bearerToken(request.headers[.authorization]), constantTimeEqual(Array(given.utf8), Array(token.utf8)) else {
            let message = "missing or wrong API token (Authorization: Bearer <token from the repository's api-token file>)"
            var response = ErrorMapping.response(RequestError(.unauthorized, message), path: request.uri.path)
            response.headers[.wwwAuthenticate] = "Bearer realm=\"qstore\""
            return response
        }
        return try await next(request, context)
    }

    /// The credentials of an `Authorization: Bearer <token>` header. The scheme is
    /// case-insensitive and may be followed by more than one space (RFC 9110 §11.1, §11.4).
    static func bearerToken(_ header: String?) -> Substring? {
        guard let header, let space = header.firstIndex(of: " ") else { return nil }
        guard header[..<space].lowercased() == "bearer" else { return nil }
        let token = header[space...].drop { $0 == " " }
        return token.isEmpty ? nil : token
    }

    /// Comparison whose time does not depend on where the inputs differ.
    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
