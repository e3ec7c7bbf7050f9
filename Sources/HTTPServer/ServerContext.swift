import Hummingbird
import NIOCore

/// The request context of both listeners: Hummingbird's core context, the client's address
/// (by which per-client limits are counted) and its connection.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The client's IP address without its port ("" when the transport has none).
    let client: String
    /// The request's connection.
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        client = source.channel.remoteAddress?.ipAddress ?? ""
        channel = source.channel
    }

    /// Reads nothing more from this connection: the response is still sent, then the connection
    /// closes. For a body that will not be read (refused, or not to be trusted for its length),
    /// which would otherwise be read to its end before the connection could serve again.
    func stopReading() { channel.close(mode: .input, promise: nil) }
}

/// The client of the request being handled, for code below the route that takes per-client
/// slots (streamed downloads) without every function passing the context along.
enum RequestClient {
    /// The client's address ("" outside a request).
    @TaskLocal static var address = ""
}

/// Sets `RequestClient.address` for the rest of the request's handling.
struct RequestClientMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await RequestClient.$address.withValue(context.client) { try await next(request, context) }
    }
}
