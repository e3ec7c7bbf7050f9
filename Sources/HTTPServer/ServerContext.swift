import Hummingbird
import NIOCore

/// The request context of both listeners: Hummingbird's core context, the client's address
/// (by which per-client limits are counted) and its connection.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The request's connection.
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The client's IP address without its port ("" when the transport has none). Written out
    /// when asked for: most requests (a gateway GET) never ask.
    var client: String { Self.address(of: channel) }

    static func address(of channel: any Channel) -> String { channel.remoteAddress?.ipAddress ?? "" }

    /// Reads nothing more from this connection: the response is still sent, then the connection
    /// closes. For a body that will not be read (refused, or not to be trusted for its length),
    /// which would otherwise be read to its end before the connection could serve again.
    func stopReading() { channel.close(mode: .input, promise: nil) }
}

/// The client of the request being handled, for code below the route that takes per-client
/// slots (streamed downloads) without every function passing the context along.
enum RequestClient {
    /// The request's connection (nil outside a request).
    @TaskLocal static var channel: (any Channel)?
    /// The client's address ("" outside a request).
    static var address: String { channel.map(ServerContext.address(of:)) ?? "" }
}

/// Sets `RequestClient.channel` for the rest of the request's handling.
struct RequestClientMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await RequestClient.$channel.withValue(context.channel) { try await next(request, context) }
    }
}
