import Foundation
import HTTPTypes
import Hummingbird
import Locking
import Metrics
import Node
import Prometheus
import Storage
import Synchronization

/// `/health` on both listeners: status, version, repository and store state, uptime; the
/// repository's path on the API listener only (the gateway may face the public).
struct Health: Sendable {
    let node: Node
    let listener: String

    func register(on router: Router<ServerContext>) {
        router.get("/health") { _, _ in self.response() }
        router.head("/health") { _, _ in self.response() }
    }

    func response() -> Response {
        let storeOK = node.storeIsHealthy
        var repository: [String: Any] = ["version": Repository.currentVersion, "store": storeOK ? "ok" : "failing"]
        if listener == "api" { repository["path"] = node.repositoryPath }
        let body: [String: Any] = [
            "status": storeOK ? "ok" : "degraded",
            "version": Node.version,
            "listener": listener,
            "peerID": node.identity.peerID,
            "uptimeSeconds": Int(node.uptime),
            "repository": repository,
        ]
        return JSONOutput.response(body, status: storeOK ? .ok : .serviceUnavailable)
    }
}

/// Prometheus metrics: Hummingbird's per-route request counts and latency histograms
/// (`MetricsMiddleware`), bytes in and out per listener, blocks stored and repository size.
/// The process bootstraps swift-metrics with a factory over `registry` (the executable does, once
/// per process); `/metrics` exports that registry.
public final class MetricsRegistry: Sendable {
    let registry: PrometheusCollectorRegistry
    private let repositoryGauges = Mutex<Date?>(nil)

    /// Exports `registry`, the one `MetricsSystem` was bootstrapped with.
    public init(_ registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    func bytesIn(_ listener: String) -> Metrics.Counter { Metrics.Counter(label: "qstore_http_bytes_in_total", dimensions: [("listener", listener)]) }
    func bytesOut(_ listener: String) -> Metrics.Counter { Metrics.Counter(label: "qstore_http_bytes_out_total", dimensions: [("listener", listener)]) }

    /// Refreshes the repository gauges when older than a minute (the count is a scan of block records).
    func refreshRepositoryGauges(_ node: Node, io: StorageThreads) async {
        let due = repositoryGauges.locked { last -> Bool in
            if let last, Date().timeIntervalSince(last) < 60 { return false }
            last = Date()
            return true
        }
        guard due, let stat = try? await io.run({ try node.repositoryStat() }) else { return }
        Gauge(label: "qstore_blocks_stored").record(stat.blocks)
        Gauge(label: "qstore_block_bytes").record(Int64(clamping: stat.blockBytes))
        Gauge(label: "qstore_repository_bytes").record(Int64(clamping: stat.repositoryBytes))
    }

    func register(on router: Router<ServerContext>, node: Node, io: StorageThreads) {
        router.get("/metrics") { _, _ in
            await self.refreshRepositoryGauges(node, io: io)
            Gauge(label: "qstore_uptime_seconds").record(Int(node.uptime))
            let store = node.storeRecovery
            Gauge(label: "qstore_store_reopens").record(store.reopens)
            Gauge(label: "qstore_store_writes_refused").record(store.refusingWrites ? 1 : 0)
            if let bytes = node.storeMemoryBytes { Gauge(label: "qstore_leveldb_memory_bytes").record(bytes) }
            let hot = node.hotBlockStats
            Gauge(label: "qstore_hot_blocks").record(hot.entries)
            Gauge(label: "qstore_hot_block_bytes").record(hot.bytes)
            Gauge(label: "qstore_hot_block_hits").record(hot.hits)
            Gauge(label: "qstore_hot_block_misses").record(hot.misses)
            var out: [UInt8] = []
            self.registry.emit(into: &out)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: out)))
        }
    }
}

/// Counts request and response bytes per listener (bodies with a known length).
struct ByteCountingMiddleware<Context: RequestContext>: RouterMiddleware {
    let bytesIn: Metrics.Counter
    let bytesOut: Metrics.Counter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let n = request.headers[.contentLength].flatMap(Int.init) { bytesIn.increment(by: n) }
        let response = try await next(request, context)
        if let n = response.body.contentLength { bytesOut.increment(by: n) }
        return response
    }
}
