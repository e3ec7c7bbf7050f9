import Hummingbird
import NIOCore

/// The request context of both listeners: Hummingbird's core context and the client's
/// address, by which per-client limits (concurrent uploads) are counted.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The client's IP address without its port ("" when the transport has none).
    let client: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        client = source.channel.remoteAddress?.ipAddress ?? ""
    }
}
