import AsyncHTTPClient
import CAR
import Foundation
import Locking
import NIOCore
import NIOHTTP1
import Synchronization

/// The CLI's HTTP requests to a daemon, by AsyncHTTPClient on NIO's event loops while the calling
/// thread waits. (Foundation's URLSession would do, but it brings libcurl and its two dozen
/// libraries into every `qstore` process, the daemon's too: 4.3 MiB of resident memory.)
enum DaemonHTTP {
    /// One client for the process: connections are kept between a command's requests. A request
    /// ends when no connection is made within 10 s, or when nothing can be sent, or nothing
    /// arrives, for an hour.
    static let client = makeClient(proxy: nil)

    static func makeClient(proxy: HTTPClient.Configuration.Proxy?) -> HTTPClient {
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(10), read: .hours(1), write: .hours(1)))
        configuration.proxy = proxy
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Clients through a proxy, by the proxy's setting (made on first use).
    private static let proxiedClients = Mutex([String: HTTPClient]())

    /// The client for `url`: for a remote daemon (`proxied`: named by `QSTORE_API`), through the
    /// proxy the environment names for its scheme (`http_proxy` or `https_proxy`, lower case
    /// first, as curl and Go read them; an HTTP proxy, `[http://][user:password@]host[:port]`),
    /// unless the host is loopback or matches `no_proxy` (comma-separated names, each matching
    /// itself and its subdomains, IP addresses only themselves; `*` matches every host).
    static func client(for url: String, proxied: Bool, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HTTPClient {
        guard proxied, let setting = proxySetting(for: url, environment: environment) else { return client }
        return try proxiedClients.locked { clients in
            if let c = clients[setting] { return c }
            let c = makeClient(proxy: try parseProxy(setting))
            clients[setting] = c
            return c
        }
    }

    /// The proxy setting that applies to `url` (nil: none, go direct).
    static func proxySetting(for url: String, environment env: [String: String]) -> String? {
        guard let components = URLComponents(string: url), let host = components.host?.lowercased() else { return nil }
        let name = components.scheme?.lowercased() == "https" ? "https_proxy" : "http_proxy"
        guard let setting = env[name] ?? env[name.uppercased()], !setting.isEmpty else { return nil }
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        let literal = bare.contains(":") || bare.allSatisfy { $0.isNumber || $0 == "." }
        if bare == "localhost" || bare.hasSuffix(".localhost") || ["::1", "0.0.0.0", "::"].contains(bare) || (literal && bare.hasPrefix("127.")) { return nil }
        let exclusions = (env["no_proxy"] ?? env["NO_PROXY"] ?? "").split(separator: ",").map {
            var entry = $0.trimmingCharacters(in: .whitespaces).lowercased()
            if entry.hasPrefix("[") { entry = String(entry.dropFirst().prefix { $0 != "]" }) }
            else if entry.filter({ $0 == ":" }).count == 1 { entry = String(entry.prefix { $0 != ":" }) }  // host:port
            return entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
        }
        for entry in exclusions where !entry.isEmpty {
            if entry == "*" || bare == entry || (!literal && bare.hasSuffix("." + entry)) { return nil }
        }
        return setting
    }

    /// `[http://][user:password@]host[:port]` (port 80 when not given) as AsyncHTTPClient's proxy.
    /// As in a URL (and as curl and Go read it), the authority ends at the first `/`, `?` or `#`:
    /// such characters in a password are percent-encoded.
    static func parseProxy(_ setting: String) throws -> HTTPClient.Configuration.Proxy {
        var rest = Substring(setting)
        var scheme = ""
        if let separator = rest.range(of: "://") {
            scheme = String(rest[..<separator.upperBound])
            rest = rest[separator.upperBound...]
        }
        if let end = rest.firstIndex(where: { "/?#".contains($0) }) { rest = rest[..<end] }
        // Messages name the proxy without its credentials.
        let shown = scheme + (rest.lastIndex(of: "@").map { "…" + rest[$0...] } ?? String(rest))
        guard scheme.isEmpty || scheme.lowercased() == "http://" else {
            throw CLIError("proxy \(shown): only an http:// proxy is supported")
        }
        var authorization: HTTPClient.Authorization?
        if let at = rest.lastIndex(of: "@") {
            let user = rest[..<at]
            let (name, password) = user.firstIndex(of: ":").map { (user[..<$0], user[user.index(after: $0)...]) } ?? (user, "")
            authorization = .basic(username: name.removingPercentEncoding ?? String(name), password: password.removingPercentEncoding ?? String(password))
            rest = rest[rest.index(after: at)...]
        }
        var host = rest
        var port = 80
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw CLIError("proxy \(shown): \(rest[rest.index(after: colon)...]) is not a port")
            }
            port = p
            host = rest[..<colon]
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw CLIError("proxy \(shown): no host") }
        return .server(host: String(host), port: port, authorization: authorization)
    }

    /// `url` (already percent-encoded) with `query` added, percent-encoded — "+" too, which a
    /// server would read as a space.
    static func url(_ url: String, _ query: [(String, String)]) -> String {
        guard !query.isEmpty, var components = URLComponents(string: url) else { return url }
        components.queryItems = (components.queryItems ?? []) + query.map { URLQueryItem(name: $0.0, value: $0.1) }
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return components.string ?? url
    }

    /// Sends a request with `token` as its bearer and hands the reply to `reply`; a body is
    /// `body`, or the file `bodyFile` read as it is sent. `timeout` bounds the whole exchange.
    static func send<R: DaemonReply>(
        method: String, url: String, proxied: Bool, token: String, contentType: String?, headers: [String: String] = [:],
        body: Data?, bodyFile: URL?, timeout: TimeInterval?, to reply: R
    ) throws -> R.Response {
        var request: HTTPClient.Request
        do { request = try HTTPClient.Request(url: url, method: HTTPMethod(rawValue: method)) } catch {
            throw CLIError("cannot reach the daemon: \(url) is not a URL (\(error))")
        }
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let bodyFile {
            let upload = try FileUpload(bodyFile)
            reply.upload = upload
            request.body = upload.body
        } else if let body {
            request.body = .bytes(body)
        }
        let deadline = timeout.map { NIODeadline.now() + .nanoseconds(Int64($0 * 1e9)) }
        do {
            return try client(for: url, proxied: proxied).execute(request: request, delegate: reply, deadline: deadline).wait()
        } catch {
            // The caller's own failure (writing what arrived) as it was: a closed pipe ends the
            // process by SIGPIPE, as it does when the CLI reads the repository itself (the write
            // failed on an event loop thread, which blocks the signal).
            if let failure = reply.failure {
                endIfPipeClosed(failure)
                throw failure
            }
            // An upload the daemon refused before taking it all: its answer.
            if let answer = reply.answerToStoppedUpload { return answer }
            throw CLIError(reply.status == 0 ? "cannot reach the daemon: \(error)" : "the daemon's reply ended early: \(error)")
        }
    }
}

/// A receiver of a daemon's reply: the status it got (0: none yet), a failure of its own, and the
/// upload it stops when the daemon refuses the request before the whole body is sent.
protocol DaemonReply: HTTPClientResponseDelegate {
    var status: Int { get }
    var failure: (any Error)? { get }
    var upload: FileUpload? { get set }
    /// The reply, when the request failed only because the upload was stopped.
    var answerToStoppedUpload: Response? { get }
}

/// Keeps a whole reply: its status and body.
///
/// A refusal that arrives while a file is still being sent (a 4xx or 5xx before the daemon read
/// the body) pauses the upload for good in AsyncHTTPClient, and the request would wait for the
/// rest of a body it will never take. So the upload is stopped once the refusal's own body has
/// arrived (its `Content-Length`, or a moment for one of unknown length), and that refusal is
/// the answer.
final class CollectedReply: DaemonReply, @unchecked Sendable {
    // Touched on the request's event loop only until the task completes; read after the wait.
    private(set) var status = 0
    private var body = Data()
    private var expected: Int?
    private var stopped = false
    var upload: FileUpload?
    var failure: (any Error)? { nil }
    var answerToStoppedUpload: (Int, Data)? { stopped ? (status, body) : nil }

    func didReceiveHead(task: HTTPClient.Task<(Int, Data)>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        status = Int(head.status.code)
        if status >= 300, upload != nil {
            expected = head.headers.first(name: "Content-Length").flatMap { Int($0) }
            if expected == 0 {
                stopUpload()
            } else if expected == nil {
                task.eventLoop.scheduleTask(in: .milliseconds(250)) { self.stopUpload() }
            }
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<(Int, Data)>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        body.append(contentsOf: buffer.readableBytesView)
        if let expected, body.count >= expected { stopUpload() }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<(Int, Data)>) throws -> (Int, Data) { (status, body) }

    private func stopUpload() {
        guard let upload, !stopped else { return }
        stopped = true
        upload.stop()
    }
}

/// Hands a success reply's body to `write` piece by piece as it arrives (never held whole); keeps
/// an error reply's body to read its message.
final class StreamedReply: DaemonReply, @unchecked Sendable {
    // Touched on the request's event loop only until the task completes; read after the wait.
    // `write` is dropped when the request ends: the caller's closure must not outlive the call.
    private var write: (([UInt8]) throws -> Void)?
    private(set) var status = 0
    private(set) var errorBody = Data()
    private(set) var failure: (any Error)?
    var upload: FileUpload?
    var answerToStoppedUpload: Void? { nil }

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

/// A file sent as a request body, 1 MiB at a time, each piece read once the previous one is
/// written. Its length is that of what is opened (a symbolic link's target); a pipe or other
/// stream goes out chunked.
final class FileUpload: @unchecked Sendable {
    // Everything but `loop` and `length` is touched on `loop` only.
    private let loop: any EventLoop
    private let length: Int64?
    private let handle: FileHandle
    private let path: String
    private var writer: HTTPClient.Body.StreamWriter?
    private var done: EventLoopPromise<Void>?
    private var stopped = false

    /// The upload was stopped (the daemon refused the request).
    struct Stopped: Error {}

    init(_ file: URL) throws {
        path = file.path
        do { handle = try FileHandle(forReadingFrom: file) } catch { throw CLIError("\(file.path): \(error.localizedDescription)") }
        var info = stat()
        guard fstat(handle.fileDescriptor, &info) == 0 else { throw CLIError("\(file.path): \(String(cString: strerror(errno)))") }
        length = (info.st_mode & S_IFMT) == S_IFREG ? Int64(info.st_size) : nil
        loop = DaemonHTTP.client.eventLoopGroup.next()
    }

    deinit {
        done?.fail(Stopped())  // never left pending (NIO reports a promise dropped unfulfilled)
        try? handle.close()
    }

    var body: HTTPClient.Body {
        .stream(contentLength: length) { writer in
            let done = self.loop.makePromise(of: Void.self)
            self.loop.execute { self.start(writer, done) }
            return done.futureResult
        }
    }

    /// Stops sending: the body ends as failed (AsyncHTTPClient then ends the request).
    func stop() {
        loop.execute {
            self.stopped = true
            self.done?.fail(Stopped())
            self.done = nil
        }
    }

    private func start(_ writer: HTTPClient.Body.StreamWriter, _ done: EventLoopPromise<Void>) {
        guard !stopped else { return done.fail(Stopped()) }
        // A second start (a redirect) sends the file again from its beginning.
        if length != nil { try? handle.seek(toOffset: 0) }
        self.writer = writer
        self.done = done
        step()
    }

    /// Reads and writes the next piece; the next step is a new task on the loop, so a long file
    /// is not a deep recursion of completed futures.
    private func step() {
        guard let done, let writer, !stopped else { return }
        let piece: Data
        do { piece = try handle.read(upToCount: 1 << 20) ?? Data() } catch {
            self.done = nil
            return done.fail(CLIError("\(path): \(error.localizedDescription)"))
        }
        guard !piece.isEmpty else {
            self.done = nil
            return done.succeed(())
        }
        writer.write(.byteBuffer(ByteBuffer(bytes: piece))).whenComplete { result in
            self.loop.execute {
                switch result {
                case .success: self.step()
                case .failure(let error):
                    self.done?.fail(error)
                    self.done = nil
                }
            }
        }
    }
}
