import Foundation
import Metrics
import Prometheus
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPServer
import Logging
import Node
import Pinning
import ServiceLifecycle
import Storage
import Testing

/// A daemon running in-process on free loopback ports, over a fresh repository.
/// Real HTTP over loopback; `stop()` cancels the services (graceful shutdown).
final class DaemonHarness: @unchecked Sendable {
    /// The test process's metrics, bootstrapped once as the executable does.
    static let metrics: MetricsRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return MetricsRegistry(registry)
    }()
    // Set once in `start` before any use; read-only afterwards.
    let directory: String
    let repository: Repository
    let token: String
    /// The node's clock: it moves only when a test moves it.
    let clock = ManualClock()
    private(set) var apiPort = 0
    private(set) var gatewayPort = 0
    private var task: Task<Void, any Error>?
    private var group: ServiceGroup?
    private(set) var daemon: Daemon?

    init(limits: ServerLimits = ServerLimits(), configuration: Configuration = Configuration(),
         prepare: (Repository) throws -> Void = { _ in }) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-http-\(UUID().uuidString)").path
        try Repository.initialize(at: directory, configuration: configuration)
        repository = try Repository(path: directory, purpose: "http tests")
        token = try repository.apiToken()
        try prepare(repository)
        var config = try DaemonConfiguration(api: "127.0.0.1:0", gateway: "127.0.0.1:0")
        config.limits = limits
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let daemon = Daemon(node: try Node(repository: repository, clock: clock), configuration: config, metrics: Self.metrics, logger: logger)
        self.daemon = daemon
        let (ports, continuation) = AsyncStream<(String, Int)>.makeStream()
        let api = try daemon.apiApplication { port in continuation.yield(("api", port)) }
        let gateway = daemon.gatewayApplication { port in continuation.yield(("gateway", port)) }
        let group = ServiceGroup(configuration: .init(services: [api, gateway], logger: logger))
        self.group = group
        task = Task { try await group.run() }
        var seen = 0
        for await (name, port) in ports {
            if name == "api" { apiPort = port } else { gatewayPort = port }
            seen += 1
            if seen == 2 { break }
        }
    }

    /// Runs `body` against a new daemon and stops it afterwards, also when `body` throws (a
    /// daemon left running would keep its repository locked).
    static func run<T>(limits: ServerLimits = ServerLimits(), configure: (inout Configuration) throws -> Void = { _ in },
                       _ body: (DaemonHarness) async throws -> T) async throws -> T {
        var configuration = Configuration()
        try configure(&configuration)
        let d = try await DaemonHarness(limits: limits, configuration: configuration)
        do {
            let result = try await body(d)
            await d.stop()
            return result
        } catch {
            await d.stop()
            throw error
        }
    }

    func stop() async {
        await group?.triggerGracefulShutdown()
        _ = await task?.result
        try? await daemon?.shutdownThreads()
        repository.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct Reply {
        let status: Int
        let headers: [String: String]
        let body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.key.lowercased() == name.lowercased() }?.value }
        func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any], "not a JSON object: \(text)")
        }
        /// Newline-delimited JSON objects.
        func jsonLines() throws -> [[String: Any]] {
            try text.split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        }
    }

    /// One request; redirects are not followed.
    func request(_ path: String, method: String = "GET", api: Bool = false, headers: [String: String] = [:], body: [UInt8]? = nil, authorized: Bool = true) async throws -> Reply {
        let port = api ? apiPort : gatewayPort
        var req = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        req.httpMethod = method
        if api && authorized { req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        if let body { req.httpBody = Data(body) }
        let (data, response) = try await Self.session.data(for: req)
        let http = try #require(response as? HTTPURLResponse)
        var h: [String: String] = [:]
        for (k, v) in http.allHeaderFields { h["\(k)"] = "\(v)" }
        return Reply(status: http.statusCode, headers: h, body: [UInt8](data))
    }

    /// A session that reports redirects instead of following them.
    static let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)

    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        // Stateless.
        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
            completionHandler(nil)
        }
    }

    /// An RPC call (POST on the API listener).
    func rpc(_ path: String, body: [UInt8]? = nil, headers: [String: String] = [:], authorized: Bool = true) async throws -> Reply {
        try await request("/api/v0/" + path, method: "POST", api: true, headers: headers, body: body, authorized: authorized)
    }

    /// A multipart/form-data body with one file part per element.
    static func multipart(_ files: [[UInt8]], boundary: String = "qstore-test-boundary") -> (body: [UInt8], contentType: String) {
        var body: [UInt8] = []
        for (i, f) in files.enumerated() {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\(i)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += f
            body += Array("\r\n".utf8)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}
