import Hummingbird
import NIOCore

/// The request context of both listeners: Hummingbird's core context, the client's address
/// (by which per-client limits are counted) and its connection.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The request's connection.
    let channel: any Channel
    /// The client's address, taken when the request starts (the channel forgets it once closed).
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address without its port ("" when the transport has none). Written out
    /// when asked for: most requests (a gateway GET) never ask.
    var client: String { remoteAddress?.ipAddress ?? "" }

    /// Reads nothing more from this connection: the response is still sent, then the connection
    /// closes. For a body that will not be read (refused, or not to be trusted for its length),
    /// which would otherwise be read to its end before the connection could serve again.
    func stopReading() { channel.close(mode: .input, promise: nil) }
}

/// The client of the request being handled, for code below the route that takes per-client
/// slots (streamed downloads) without every function passing the context along.
enum RequestClient {
    /// The client's socket address (nil outside a request, or when the transport has none).
    @TaskLocal static var socketAddress: SocketAddress?
    /// The client's address ("" outside a request).
    static var address: String { socketAddress?.ipAddress ?? "" }
}

/// Sets `RequestClient.socketAddress` for the rest of the request's handling.
struct RequestClientMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await RequestClient.$socketAddress.withValue(context.remoteAddress) { try await next(request, context) }
    }
}
