import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The CLI's HTTP requests to a daemon, by AsyncHTTPClient on NIO's event loops while the calling
/// thread waits. (Foundation's URLSession would do, but it brings libcurl and its two dozen
/// libraries into every `qstore` process, the daemon's too: 4.3 MiB of resident memory.)
enum DaemonHTTP {
    /// One client for the process: connections are kept between a command's requests. A reply
    /// that sends nothing for an hour ends the request; so does no connection within 10 s.
    static let client = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(10), read: .hours(1))))

    /// `url` (already percent-encoded) with `query` added, percent-encoded — "+" too, which a
    /// server would read as a space.
    static func url(_ url: String, _ query: [(String, String)]) -> String {
        guard !query.isEmpty, var components = URLComponents(string: url) else { return url }
        components.queryItems = (components.queryItems ?? []) + query.map { URLQueryItem(name: $0.0, value: $0.1) }
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return components.string ?? url
    }

    /// Sends a request with `token` as its bearer and hands the reply to `delegate`; a body is
    /// `body`, or the file `bodyFile` read as it is sent. `timeout` bounds the whole exchange.
    static func send<D: HTTPClientResponseDelegate & Failing>(
        method: String, url: String, token: String, contentType: String?, headers: [String: String] = [:],
        body: Data?, bodyFile: URL?, timeout: TimeInterval?, to delegate: D
    ) throws -> D.Response {
        var request: HTTPClient.Request
        do { request = try HTTPClient.Request(url: url, method: HTTPMethod(rawValue: method)) } catch {
            throw CLIError("cannot reach the daemon: \(url) is not a URL (\(error))")
        }
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let bodyFile {
            request.body = try FileUpload.body(bodyFile)
        } else if let body {
            request.body = .bytes(body)
        }
        let deadline = timeout.map { NIODeadline.now() + .nanoseconds(Int64($0 * 1e9)) }
        do {
            return try client.execute(request: request, delegate: delegate, deadline: deadline).wait()
        } catch {
            // The caller's own failure (writing what arrived) as it was; else the transport's.
            if let failure = delegate.failure { throw failure }
            throw CLIError(delegate.status == 0 ? "cannot reach the daemon: \(error)" : "the daemon's reply ended early: \(error)")
        }
    }
}

/// A reply receiver that knows the status it got (0: none) and a failure of its own.
protocol Failing {
    var status: Int { get }
    var failure: (any Error)? { get }
}

/// Keeps a whole reply: its status and body.
final class CollectedReply: HTTPClientResponseDelegate, Failing, @unchecked Sendable {
    // Touched on the request's event loop only until the task completes; read after the wait.
    private(set) var status = 0
    private var body = Data()
    var failure: (any Error)? { nil }

    func didReceiveHead(task: HTTPClient.Task<(Int, Data)>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        status = Int(head.status.code)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<(Int, Data)>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        body.append(contentsOf: buffer.readableBytesView)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<(Int, Data)>) throws -> (Int, Data) { (status, body) }
}

/// Hands a success reply's body to `write` piece by piece as it arrives (never held whole); keeps
/// an error reply's body to read its message.
final class StreamedReply: HTTPClientResponseDelegate, Failing, @unchecked Sendable {
    // Touched on the request's event loop only until the task completes; read after the wait.
    // `write` is dropped when the request ends: the caller's closure must not outlive the call.
    private var write: (([UInt8]) throws -> Void)?
    private(set) var status = 0
    private(set) var errorBody = Data()
    private(set) var failure: (any Error)?

    init(_ write: @escaping ([UInt8]) throws -> Void) { self.write = write }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        status = Int(head.status.code)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        guard (200..<300).contains(status) else {
            errorBody.append(contentsOf: buffer.readableBytesView)
            return task.eventLoop.makeSucceededVoidFuture()
        }
        do {
            try write?(Array(buffer.readableBytesView))
            return task.eventLoop.makeSucceededVoidFuture()
        } catch {
            failure = error
            write = nil
            return task.eventLoop.makeFailedFuture(error)
        }
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) { write = nil }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws { write = nil }
}

/// A file sent as a request body, 1 MiB at a time, each read once the previous piece is written.
final class FileUpload: @unchecked Sendable {
    // Used on one event loop, one step after the other.
    private let handle: FileHandle
    private let writer: HTTPClient.Body.StreamWriter
    private let loop: any EventLoop
    private let done: EventLoopPromise<Void>

    private init(handle: FileHandle, writer: HTTPClient.Body.StreamWriter, loop: any EventLoop) {
        self.handle = handle
        self.writer = writer
        self.loop = loop
        done = loop.makePromise()
    }

    static func body(_ file: URL) throws -> HTTPClient.Body {
        let size: Int64
        do { size = ((try FileManager.default.attributesOfItem(atPath: file.path)[.size]) as? NSNumber)?.int64Value ?? 0 } catch {
            throw CLIError("\(file.path): \(error.localizedDescription)")
        }
        return .stream(contentLength: size) { writer in
            let loop = DaemonHTTP.client.eventLoopGroup.any()
            do {
                let upload = FileUpload(handle: try FileHandle(forReadingFrom: file), writer: writer, loop: loop)
                loop.execute { upload.step() }
                return upload.done.futureResult
            } catch {
                return loop.makeFailedFuture(error)
            }
        }
    }

    /// Reads and writes the next piece; the next step is a new task on the loop, so a long file
    /// is not a deep recursion of completed futures.
    private func step() {
        let piece: Data
        do { piece = try handle.read(upToCount: 1 << 20) ?? Data() } catch {
            try? handle.close()
            done.fail(error)
            return
        }
        guard !piece.isEmpty else {
            try? handle.close()
            done.succeed(())
            return
        }
        writer.write(.byteBuffer(ByteBuffer(bytes: piece))).whenComplete { result in
            switch result {
            case .success: self.loop.execute { self.step() }
            case .failure(let error):
                try? self.handle.close()
                self.done.fail(error)
            }
        }
    }
}
