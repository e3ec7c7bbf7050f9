import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// `Expect: 100-continue` (RFC 9110 §10.1.1): a client that asks waits for `100 Continue` before
/// sending its body (curl waits a second, for uploads over 1 MiB). The route layer sends it once
/// the request is admitted — authenticated, in scope, within its limits, or open — and just before
/// the body is read; a request refused first gets its final status instead and sends no body.
/// The route layer triggers `Continue` (a user outbound event); this handler, next to the HTTP
/// codec, writes the interim response.
final class ExpectContinueHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Asks for the interim `100 Continue`.
    struct Continue: Sendable {}

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is Continue else { return context.triggerUserOutboundEvent(event, promise: promise) }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: promise)
    }

    /// Sends `100 Continue` on `channel` when `request` asks for it.
    static func sendIfExpected(_ headers: HTTPFields, on channel: any Channel) {
        guard let expect = headers[.expect], expect.lowercased() == "100-continue" else { return }
        channel.triggerUserOutboundEvent(Continue(), promise: nil)
    }
}
