import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection for what URLSession cannot send: a body shorter than its
/// Content-Length, broken chunked framing, a chosen loopback source address, a client that
/// reads a little and goes. Blocking: call it from a thread of its own (`ThirdPartyClientTests.aside`)
/// when the daemon runs in this process.
///
/// `@unchecked Sendable`: a connection is used by one thread at a time; tests hand it from one
/// `aside` block to the next, never to two at once.
final class RawConnection: @unchecked Sendable {
    private(set) var fd: Int32

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Connects to `127.0.0.1:port` from `source` (any 127.0.0.0/8 address), with a small
    /// receive buffer when `receiveBuffer` is set (so a client that stops reading stops the server soon).
    init(port: Int, source: String = "127.0.0.1", receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let ok = withUnsafePointer(to: &local) { l in
            l.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && withUnsafePointer(to: &remote) { r in
            r.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else {
            let e = errno
            Glibc.close(fd)
            throw Failure(description: "connect from \(source) to port \(port): errno \(e)")
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Closes the connection now (with a TCP reset when `reset`).
    func close(reset: Bool = false) {
        guard fd >= 0 else { return }
        if reset { self.reset() }
        Glibc.close(fd)
        fd = -1
    }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// No more bytes from this side (the server reads the end of the stream).
    func finishSending() { shutdown(fd, Int32(SHUT_WR)) }

    /// How one read ended.
    enum ReadEnd { case data, end, timeout, failed }

    /// Up to `count` bytes as they come, and how the read ended (bytes, the end of the stream,
    /// `timeout` seconds with nothing, or an error such as a reset).
    func receive(upTo count: Int, timeout: Int = 30) -> ([UInt8], ReadEnd) {
        var t = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count, 0) }
        if n > 0 { return (Array(buffer[0..<n]), .data) }
        if n == 0 { return ([], .end) }
        return ([], errno == EAGAIN || errno == EWOULDBLOCK ? .timeout : .failed)
    }

    /// Up to `count` bytes as they come; empty at the end of the stream or after `timeout` seconds.
    func read(upTo count: Int, timeout: Int = 30) -> [UInt8] { receive(upTo: count, timeout: timeout).0 }

    /// Reads until what arrived contains `text`; false if the stream ends or `timeout` seconds pass first.
    func read(until text: String, timeout: Int) -> Bool { arrived(until: text, timeout: timeout) != nil }

    /// What arrived by the time it contains `text` (which may run past it: bytes come in the
    /// pieces the kernel gives); nil if the stream ends or `timeout` seconds pass first.
    func arrived(until text: String, timeout: Int) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(Double(timeout))
        var seen: [UInt8] = []
        while Date() < deadline {
            let (got, end) = receive(upTo: 65536, timeout: 1)
            if end == .end || end == .failed { return nil }
            seen += got
            if String(decoding: seen, as: UTF8.self).contains(text) { return seen }
        }
        return nil
    }

    /// Reads everything until the server ends the connection (true, with what came) or
    /// `timeout` seconds pass (false).
    func readUntilClosed(timeout: Int) -> (closed: Bool, bytes: [UInt8]) {
        let deadline = Date().addingTimeInterval(Double(timeout))
        var all: [UInt8] = []
        while Date() < deadline {
            let (got, end) = receive(upTo: 65536, timeout: 1)
            all += got
            if end == .end || end == .failed { return (true, all) }
        }
        return (false, all)
    }

    /// Whether the server closed the connection within `timeout` seconds (reads and drops what comes before).
    func closedByServer(within timeout: Int) -> Bool { readUntilClosed(timeout: timeout).closed }

    /// Drops the connection with a TCP reset instead of an orderly close.
    func reset() {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    struct Response {
        let status: Int
        let headers: [String: String]
        let body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    /// Reads one response (Content-Length, chunked, or to the end of the stream).
    func response(timeout: Int = 30) throws -> Response {
        var data: [UInt8] = []
        func more() throws {
            let chunk = read(upTo: 65536, timeout: timeout)
            guard !chunk.isEmpty else { throw Failure(description: "connection ended or timed out after \(data.count) bytes: \(String(decoding: data, as: UTF8.self).prefix(300))") }
            data += chunk
        }
        func find(_ needle: [UInt8], from: Int) -> Int? {
            guard data.count >= needle.count + from else { return nil }
            for i in from...(data.count - needle.count) where data[i] == needle[0] && Array(data[i..<(i + needle.count)]) == needle { return i }
            return nil
        }
        var end: Int? = nil
        while end == nil {
            try more()
            end = find(Array("\r\n\r\n".utf8), from: 0)
        }
        let head = String(decoding: data[0..<end!], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failure(description: "bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var rest = Array(data[(end! + 4)...])
        data = rest
        if let length = headers["content-length"].flatMap(Int.init) {
            while data.count < length { try more() }
            return Response(status: status, headers: headers, body: Array(data.prefix(length)))
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            var body: [UInt8] = []
            var at = 0
            while true {
                var line = find(Array("\r\n".utf8), from: at)
                while line == nil { try more(); line = find(Array("\r\n".utf8), from: at) }
                let sizeText = String(decoding: data[at..<line!], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
                guard let size = Int(sizeText, radix: 16) else { throw Failure(description: "bad chunk size \(sizeText)") }
                at = line! + 2
                if size == 0 { return Response(status: status, headers: headers, body: body) }
                while data.count < at + size + 2 { try more() }
                body += data[at..<(at + size)]
                at += size + 2
            }
        }
        while true {
            let chunk = read(upTo: 65536, timeout: timeout)
            if chunk.isEmpty { break }
            data += chunk
        }
        rest = data
        return Response(status: status, headers: headers, body: rest)
    }
}

/// Expectations checked on a thread of its own (where Swift Testing cannot tell which test an
/// `#expect` belongs to), reported by `verify()` back in the test.
final class Checks: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var failures: [String] = []

    func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        guard !condition else { return }
        let m = message()
        lock.withLock { failures.append(m) }
    }

    /// Records every failed expectation in the current test.
    func verify(sourceLocation: SourceLocation = #_sourceLocation) {
        for f in lock.withLock({ failures }) { Issue.record(Comment(rawValue: f), sourceLocation: sourceLocation) }
    }
}

/// A `qstore daemon` process of its own over a fresh repository (so a crash is seen as a dead
/// process, not as a dead test runner), on free loopback ports. Its log (at `logLevel`) goes to
/// `daemon.log` in its directory (`log`), for a test to show when it fails.
/// Sendable by hand: its properties are set once, by `init`, and each request opens a connection
/// of its own, so threads may send requests at once.
final class ChildDaemon: @unchecked Sendable {
    let directory: String
    let repository: String
    let process = Process()
    let apiPort: Int
    let gatewayPort: Int
    let token: String

    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qstore").path
    }

    init(directory: String? = nil, environment: [String: String] = [:], logLevel: String = "error") throws {
        let dir = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("qstore-child-\(UUID().uuidString)").path
        self.directory = dir
        repository = dir + "/repo"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else { throw RawConnection.Failure(description: "qstore binary not found at \(Self.binary)") }
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["daemon", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0", "--log-level", logLevel]
        process.environment = ChildEnvironment.with(["QSTORE_PATH": repository, "HOME": dir, "QSTORE_GC_INTERVAL": "0s"].merging(environment) { $1 })
        let out = Pipe()
        process.standardOutput = out
        FileManager.default.createFile(atPath: dir + "/daemon.log", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: dir + "/daemon.log")
        try process.run()
        var text = ""
        while !text.contains("api listening") || !text.contains("gateway listening") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        func port(_ name: String) throws -> Int {
            guard let port = text.split(separator: "\n").first(where: { $0.hasPrefix("\(name) listening") }).flatMap({ Int($0.split(separator: " ").last!) }) else {
                throw RawConnection.Failure(description: "the daemon did not say where \(name) listens: \(text)")
            }
            return port
        }
        apiPort = try port("api")
        gatewayPort = try port("gateway")
        token = try String(contentsOfFile: repository + "/api-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A daemon still running when its test ends (the test failed half way) is killed.
    deinit { if process.isRunning { kill9() } }

    var isRunning: Bool { process.isRunning }

    /// The last `lines` lines of the daemon's log.
    func log(last lines: Int = 60) -> String {
        let text = (try? String(contentsOfFile: directory + "/daemon.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Kills the daemon (if it still runs) and removes its directory: the end of a test's daemon.
    func discard() {
        kill9()
        removeDirectory()
    }

    /// SIGTERM and wait; the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func kill9() {
        guard process.isRunning else { return }  // reaped: its pid may be another process's now
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func removeDirectory() { try? FileManager.default.removeItem(atPath: directory) }

    /// A raw request on a new connection (on the API with the admin token, or `bearer`); its response.
    func request(_ method: String, _ target: String, api: Bool, bearer: String? = nil, headers: [String: String] = [:], body: [UInt8] = []) throws -> RawConnection.Response {
        let c = try RawConnection(port: api ? apiPort : gatewayPort)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if api { head += "Authorization: Bearer \(bearer ?? token)\r\n" }
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        try c.send(Array(head.utf8) + body)
        return try c.response()
    }
}

/// A forward HTTP proxy on loopback for the CLI's proxy tests, as AsyncHTTPClient uses one: it
/// takes `CONNECT host:port`, remembers the request line and `Proxy-Authorization`, and relays
/// the tunnel to `127.0.0.1:target` whatever the host (so a name that resolves nowhere works).
final class ForwardProxy: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let target: Int
    private let seen = NSLock()
    private var lines: [(request: String, authorization: String?)] = []

    init(forwardingTo target: Int) throws {
        self.target = target
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        } && listen(listener, 8) == 0
        port = Int(UInt16(bigEndian: address.sin_port))
        guard listening else { throw RawConnection.Failure(description: "the proxy cannot listen: errno \(errno)") }
        Thread.detachNewThread { [weak self] in
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 { return }  // stopped: the test is over
                guard let self else { Glibc.close(fd); return }
                Thread.detachNewThread { self.serve(fd) }
            }
        }
    }

    /// Stops listening (the accepting thread ends); tunnels open end with their connections.
    func stop() { shutdown(listener, Int32(SHUT_RDWR)) }

    deinit { Glibc.close(listener) }

    /// The requests seen: request line and Proxy-Authorization.
    var requests: [(request: String, authorization: String?)] { seen.withLock { lines } }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var end: Range<Int>?
        while end == nil {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            data += buffer[0..<n]
            end = data.firstRange(of: Array("\r\n\r\n".utf8))
        }
        let head = String(decoding: data[..<end!.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let authorization = head.first { $0.lowercased().hasPrefix("proxy-authorization:") }.map { String($0.dropFirst(20)).trimmingCharacters(in: .whitespaces) }
        seen.withLock { lines.append((head[0], authorization)) }
        func sendAll(_ to: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
            var sent = bytes.startIndex
            while sent < bytes.endIndex {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return false }
                sent += n
            }
            return true
        }
        guard head[0].hasPrefix("CONNECT "), let upstream = try? RawConnection(port: target) else {
            _ = sendAll(fd, Array("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)[...])
            return
        }
        guard sendAll(fd, Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8)[...]),
              sendAll(upstream.fd, data[end!.upperBound...]) else { return }
        // Relay both ways until either side closes.
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream.fd, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = poll(&fds, 2, 30_000)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return }
            for (i, p) in fds.enumerated() where p.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(p.fd, $0.baseAddress, $0.count, 0) }
                guard n > 0, sendAll(fds[1 - i].fd, buffer[0..<n]) else { return }
            }
        }
    }
}
