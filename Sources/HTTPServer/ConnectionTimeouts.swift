import NIOCore
import NIOHTTPTypes

/// Closes connections whose client is too slow, so a client cannot hold the daemon's
/// connections, upload slots or threads by going quiet:
/// - `header`: a request's headers must be complete within this, counted from the
///   connection's start or from when the previous exchange ended (its response sent and its
///   body read); this also ends idle keep-alive connections and clients that trickle headers;
/// - `bodyIdle`: while a request body is being read, each part must come within this of the
///   server asking for more (`read`). Time in which the server itself does not ask (its import
///   is behind, the upload waits for a slot) is not counted against the client;
/// - `send`: while a response cannot be written because the client reads nothing (the channel
///   stays unwritable), the client must read something within this. A response that is slow
///   to produce (a long import before its first line) is not timed out: only a client that
///   stops reading is. A response the route layer marks as one to an authenticated caller
///   (`CallerResponse`, on the API listener: `qstore cat X | less`) gets `callerSend` instead,
///   until the server is told to quiesce: then `send` again, so that a paused reader cannot hold
///   up a shutdown for longer than that.
/// Sits after the HTTP codec (it sees request and response parts) on the event loop of its
/// channel; every method runs there.
final class ConnectionTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let header: TimeAmount
    private let bodyIdle: TimeAmount
    private let send: TimeAmount
    private let callerSend: TimeAmount
    /// When the client must have sent what it owes (nil: nothing owed). Moving it is an
    /// assignment; one scheduled check per connection follows it, so a request costs no timer.
    private var readDeadline: NIODeadline?
    private var readCheck: Scheduled<Void>?
    private var readCheckAt: NIODeadline = .distantFuture
    private var sendTimer: Scheduled<Void>?
    /// Whether the response being sent is a `CallerResponse` (from its head to the next
    /// response's head: its last bytes may still be queued after its end is written), whether the
    /// next one is, and whether the timer running is `callerSend`'s.
    private var callerResponse = false
    private var nextIsCallers = false
    private var sendTimerIsCallers = false
    private var quiescing = false
    /// Requests whose head was read and whose response has not ended.
    private var open = 0
    private var readingBody = false

    /// Sent (as a user outbound event) before the head of a response to an authenticated caller.
    struct CallerResponse: Sendable {}

    /// `callerSend` nil: every response gets `send`.
    init(header: Duration, bodyIdle: Duration, send: Duration, callerSend: Duration? = nil) {
        self.header = TimeAmount(header)
        self.bodyIdle = TimeAmount(bodyIdle)
        self.send = TimeAmount(send)
        self.callerSend = TimeAmount(callerSend ?? send)
    }

    private func armRead(_ context: ChannelHandlerContext, _ after: TimeAmount) {
        let deadline = context.eventLoop.now + after
        readDeadline = deadline
        // A check already due by then follows the deadline; one due later is moved up.
        if readCheck != nil && readCheckAt <= deadline { return }
        readCheck?.cancel()
        scheduleCheck(context, at: deadline)
    }

    private func scheduleCheck(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        readCheckAt = deadline
        readCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.readCheck = nil
            self.readCheckAt = .distantFuture
            guard let due = self.readDeadline else { return }
            if due <= context.eventLoop.now { context.close(promise: nil) } else { self.scheduleCheck(context, at: due) }
        }
    }

    private func cancelRead() { readDeadline = nil }

    private func cancelAll() {
        readDeadline = nil
        readCheck?.cancel()
        readCheck = nil
        sendTimer?.cancel()
        sendTimer = nil
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armRead(context, header) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { cancelAll() }

    func channelActive(context: ChannelHandlerContext) {
        armRead(context, header)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            open += 1
            readingBody = true
            cancelRead()  // the body's timer starts when the server asks for it
        case .body:
            cancelRead()
        case .end:
            readingBody = false
            cancelRead()
            // The response may have ended before the body did: then the exchange ends here.
            if open == 0 { armRead(context, header) }
        }
        context.fireChannelRead(data)
    }

    /// The server asks for more bytes: while a body is being read, the client has `bodyIdle` to send some.
    func read(context: ChannelHandlerContext) {
        if readingBody && readDeadline == nil { armRead(context, bodyIdle) }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head:
            callerResponse = nextIsCallers
            nextIsCallers = false
        case .end:
            open = max(0, open - 1)
            // Waiting for the next request's headers again (unless its body is still coming) once
            // the response's last bytes are handed to the kernel, not when its end is queued: a
            // reader paused near the end of a long reply has its tail waiting here, and the header
            // timeout would otherwise close the connection under it.
            let sent = promise ?? context.eventLoop.makePromise(of: Void.self)
            sent.futureResult.assumeIsolated().whenSuccess {
                if self.open == 0 && !self.readingBody && context.channel.isActive { self.armRead(context, self.header) }
            }
            context.write(data, promise: sent)
            return
        case .body:
            break
        }
        context.write(data, promise: promise)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendTimer?.cancel()
            sendTimer = nil
        } else if sendTimer == nil {
            armSend(context)
        }
        context.fireChannelWritabilityChanged()
    }

    private func armSend(_ context: ChannelHandlerContext) {
        sendTimerIsCallers = callerResponse && !quiescing
        sendTimer = context.eventLoop.assumeIsolated().scheduleTask(in: sendTimerIsCallers ? callerSend : send) { context.close(promise: nil) }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is CallerResponse else { return context.triggerUserOutboundEvent(event, promise: promise) }
        nextIsCallers = true
        promise?.succeed(())
    }

    /// On shutdown a caller's paused response has `send` left (from now), not `callerSend`.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if sendTimer != nil && sendTimerIsCallers {
                sendTimer?.cancel()
                armSend(context)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}
