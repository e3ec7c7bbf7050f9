import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing
@testable import HTTPServer

/// `ConnectionTimeoutHandler` on an embedded channel, whose clock and flushes the test drives.
struct ConnectionTimeoutHandlerTests {
    /// The header timeout that follows a response starts when the response's last bytes are sent,
    /// not when its end is queued: a reader paused before the tail of a long reply (its end
    /// written but waiting behind bytes the reader has not taken) is not closed under it.
    @Test func theHeaderTimeoutStartsWhenTheReplyIsSent() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: ConnectionTimeoutHandler(header: .seconds(1), bodyIdle: .seconds(1), send: .seconds(60)), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/")))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.write(HTTPResponsePart.head(HTTPResponse(status: .ok)), promise: nil)
        channel.write(HTTPResponsePart.end(nil), promise: nil)
        loop.advanceTime(by: .seconds(3))
        #expect(channel.isActive, "closed by the header timeout while the reply was still queued")
        channel.flush()
        loop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive, "a connection idle after its reply was sent stayed open past the header timeout")
        _ = try? channel.finish()
    }
}
