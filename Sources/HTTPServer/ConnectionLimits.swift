import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The connections open on one listener.
final class ConnectionCount: Sendable {
    let value = Atomic<Int>(0)
}

/// Limits every connection of a listener (Docs/http.md, "Limits"):
/// - at most `maximumConnections` open at once: one past it is answered `503` (with
///   `Retry-After`) to its first request and closed, so a flood of connections cannot take the
///   daemon's descriptors and memory;
/// - at most `maximumHeaderCount` header fields and `maximumHeaderBytes` of them per request:
///   more is `431 Request Header Fields Too Large` and the connection closes.
/// Sits after the HTTP codec, on the channel's event loop.
final class ConnectionLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let open: ConnectionCount
    private let limits: ServerLimits
    private var counted = false
    /// The status this connection is refused with; what it sends after is dropped.
    private var refusal: HTTPResponse.Status?

    init(open: ConnectionCount, limits: ServerLimits) {
        self.open = open
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { count() }
    }

    func channelActive(context: ChannelHandlerContext) {
        count()
        context.fireChannelActive()
    }

    private func count() {
        guard !counted else { return }
        counted = true
        let now = open.value.wrappingAdd(1, ordering: .relaxed).newValue
        if now > limits.maximumConnections { refusal = .serviceUnavailable }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            open.value.wrappingSubtract(1, ordering: .relaxed)
            counted = false
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if counted {
            open.value.wrappingSubtract(1, ordering: .relaxed)
            counted = false
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if refusal == nil, case .head(let request) = part {
            let bytes = request.headerFields.reduce(0) { $0 + $1.name.rawName.utf8.count + $1.value.utf8.count + 4 }
            if request.headerFields.count > limits.maximumHeaderCount || bytes > limits.maximumHeaderBytes {
                refusal = .requestHeaderFieldsTooLarge
            }
        }
        guard let status = refusal else {
            context.fireChannelRead(data)
            return
        }
        // Answered once, at the first part; the rest of what it sends is dropped.
        guard case .head = part else { return }
        var fields = HTTPFields()
        fields[.connection] = "close"
        fields[.contentLength] = "0"
        if status == .serviceUnavailable { fields[.retryAfter] = "1" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
