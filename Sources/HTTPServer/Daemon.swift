import Audit
import Backup
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Metrics
import Logging
import NIOCore
import Node
import Pinning
import ServiceLifecycle
import Storage

/// Limits on what clients may send, and how long they may take (Docs/http.md; config `http`).
public struct ServerLimits: Sendable {
    /// Largest body of a block/put or dag/put request (the block plus multipart framing).
    public var maximumBlockRequest = 2 << 20
    /// Largest dag/import upload.
    public var maximumImportRequest = 64 << 30
    /// Longest gateway path.
    public var maximumPathLength = 4096
    /// Ranges served from one `Range` header; more are answered with the whole body.
    public var maximumRanges = 100
    /// Connections open at once on each listener (more: 503 and closed), header fields per
    /// request and their bytes (more: 431).
    public var maximumConnections = 1024
    public var maximumHeaderCount = 100
    public var maximumHeaderBytes = 64 << 10
    /// A request's headers must be complete within this (from the connection's start or the previous response).
    public var headerTimeout: Duration = .seconds(30)
    /// A request body that sends nothing for this long has its connection closed.
    public var bodyIdleTimeout: Duration = .seconds(30)
    /// A response the client reads nothing of for this long has its connection closed.
    public var sendTimeout: Duration = .seconds(60)
    /// The same for a response of more than 64 KiB to an authenticated caller of the API
    /// listener (a paused reader there is a person: `qstore cat X | less`); `sendTimeout` again
    /// once the daemon is stopping.
    public var apiSendTimeout: Duration = .seconds(3600)
    /// A whole small body (block/put, dag/put, PUT /ipfs, /pins) must arrive within this (else 408).
    public var requestTimeout: Duration = .seconds(60)
    /// Uploads imported at once, per client address, and how long one waits for a slot.
    public var uploads = SlotLimits(total: 32, perClient: 16, wait: .seconds(10))
    /// Streamed downloads (files, CARs, TARs, `cat`, `get`) produced at once on each listener,
    /// per client address, and how long one waits for a slot.
    public var downloads = SlotLimits(total: 32, perClient: 16, wait: .seconds(10))
    /// Defaults.
    public init() {}

    /// The limits of the repository's `http` configuration section.
    public init(_ c: HTTPConfiguration) throws {
        func duration(_ text: String, _ field: String) throws -> Duration {
            guard let ms = parseDuration(text), ms > 0 else {
                throw RepositoryError.invalidConfiguration("http.\(field) \"\(text)\" is not a positive duration (e.g. 30s, 2m)")
            }
            return .milliseconds(Int64(ms))
        }
        func positive(_ n: Int, _ field: String) throws -> Int {
            guard n > 0 else { throw RepositoryError.invalidConfiguration("http.\(field) \(n) must be at least 1") }
            return n
        }
        headerTimeout = try duration(c.headerTimeout, "headerTimeout")
        bodyIdleTimeout = try duration(c.bodyIdleTimeout, "bodyIdleTimeout")
        sendTimeout = try duration(c.sendTimeout, "sendTimeout")
        apiSendTimeout = try duration(c.apiSendTimeout, "apiSendTimeout")
        requestTimeout = try duration(c.requestTimeout, "requestTimeout")
        maximumRanges = try positive(c.maximumRanges, "maximumRanges")
        maximumConnections = try positive(c.maximumConnections, "maximumConnections")
        maximumHeaderCount = try positive(c.maximumHeaderCount, "maximumHeaderCount")
        maximumHeaderBytes = try positive(c.maximumHeaderBytes, "maximumHeaderBytes")
        let wait = try duration(c.slotWait, "slotWait")
        uploads = SlotLimits(total: try positive(c.uploadSlots, "uploadSlots"), perClient: try positive(c.uploadsPerClient, "uploadsPerClient"), wait: wait)
        downloads = SlotLimits(total: try positive(c.downloadSlots, "downloadSlots"), perClient: try positive(c.downloadsPerClient, "downloadsPerClient"), wait: wait)
    }
}

/// How many requests of a kind that takes a thread (uploads imported as they arrive, streamed
/// downloads) run at once.
public struct SlotLimits: Sendable {
    /// At once, in all.
    public var total: Int
    /// In progress or waiting, from one client address (more: 429).
    public var perClient: Int
    /// How long an upload waits for a free slot (then 503).
    public var wait: Duration
    /// Limits as given.
    public init(total: Int, perClient: Int, wait: Duration) {
        self.total = total
        self.perClient = perClient
        self.wait = wait
    }
}

/// Where the daemon listens, and its limits.
public struct DaemonConfiguration: Sendable {
    /// API listener host and port (admin; loopback by default). Port 0 picks a free port.
    public var api: (host: String, port: Int)
    /// Gateway listener host and port.
    public var gateway: (host: String, port: Int)
    /// Request limits.
    public var limits = ServerLimits()

    /// The gateway as a multiaddr with the node's peer ID (the Pinning Service API's `delegates`).
    func gatewayMultiaddr(peerID: String) -> String {
        let host = gateway.host
        let proto = host.contains(":") ? "ip6" : (host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." } ? "ip4" : "dns")
        return "/\(proto)/\(host)/tcp/\(gateway.port)/http/p2p/\(peerID)"
    }

    /// Parses `host:port` addresses (IPv6 as `[::1]:5001`).
    public init(api: String, gateway: String) throws {
        self.api = try Self.parse(api)
        self.gateway = try Self.parse(gateway)
    }

    static func parse(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
            throw RequestError(.badRequest, "invalid listen address \"\(address)\" (expected host:port)")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}

/// `qstore daemon`: the API and gateway listeners over one node, run until SIGINT or
/// SIGTERM; then in-flight requests finish and the repository closes.
public final class Daemon: Sendable {
    public let node: Node
    let configuration: DaemonConfiguration
    let io = StorageThreads()
    /// Each listener's download producers (slow public clients cannot take the API's threads).
    let apiDownloads: Downloads
    /// Backup and restore jobs started through the API.
    let backupJobs = BackupJobs()
    let gatewayDownloads: Downloads
    let logger: Logger
    let metrics: MetricsRegistry

    /// A daemon over `node`, exporting `metrics` at /metrics.
    public init(node: Node, configuration: DaemonConfiguration, metrics: MetricsRegistry, logger: Logger = Logger(label: "qstore.http")) {
        self.node = node
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        apiDownloads = Downloads(configuration.limits.downloads)
        gatewayDownloads = Downloads(configuration.limits.downloads)
    }

    /// Stops the daemon's thread pools (storage, downloads), once its listeners have stopped.
    public func shutdownThreads() async throws {
        try await io.shutdown()
        try await apiDownloads.shutdown()
        try await gatewayDownloads.shutdown()
    }

    /// HTTP/1.1 with the connection timeouts of `limits` on every connection (`callerSend`: for
    /// the responses to authenticated callers the route layer marks), at most
    /// `maximumConnections` of them at once (each listener its own count), and header limits.
    func server(_ open: ConnectionCount, callerSend: Duration? = nil) -> HTTPServerBuilder {
        let limits = configuration.limits
        return .http1(configuration: .init(additionalChannelHandlers: [
            ExpectContinueHandler(),
            ConnectionLimitHandler(open: open, limits: limits),
            ConnectionTimeoutHandler(header: limits.headerTimeout, bodyIdle: limits.bodyIdleTimeout, send: limits.sendTimeout, callerSend: callerSend),
        ]))
    }

    /// The admin API application.
    public func apiApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        Application(
            router: try apiRouter(), server: server(ConnectionCount(), callerSend: configuration.limits.apiSendTimeout),
            configuration: .init(address: .hostname(configuration.api.host, port: configuration.api.port), serverName: "qstore/\(Node.version)"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// The admin API's routes and middleware.
    func apiRouter() throws -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: RequestClientMiddleware())
        router.add(middleware: SurfaceErrorMiddleware())
        // Metrics first, so refusals (401, 403, 429) are counted; GET on /api/v0 is 405 for anyone.
        router.add(middleware: RequestMetricsMiddleware<ServerContext>())
        router.add(middleware: PostOnlyMiddleware())
        router.add(middleware: AccessMiddleware(access: node.access, rules: AccessRules.api, limits: configuration.limits, marksCallerResponses: true,
                                                recordRefusal: { [node] in await node.auditRefusal($0) }))
        router.add(middleware: TransferCodingMiddleware())
        router.add(middleware: ByteCountingMiddleware(bytesIn: metrics.bytesIn("api"), bytesOut: metrics.bytesOut("api")))
        Health(node: node, listener: "api").register(on: router)
        metrics.register(on: router, node: node, io: io)
        KuboRPC(node: node, io: io, downloads: apiDownloads, limits: configuration.limits).register(on: router)
        VerifiedPut(node: node, io: io, limits: configuration.limits).register(on: router)
        PinningServiceAPI(node: node, io: io, delegates: [configuration.gatewayMultiaddr(peerID: node.identity.peerID)],
                          limits: configuration.limits).register(on: router)
        QindexAPI(node: node, io: io, limits: configuration.limits).register(on: router)
        EventsAPI(node: node, io: io).register(on: router)
        AccessAPI(node: node, io: io, limits: configuration.limits).register(on: router)
        AuditAPI(node: node, io: io, downloads: apiDownloads).register(on: router)
        RegistryAPI(node: node, io: io, downloads: apiDownloads, limits: configuration.limits).register(on: router)
        DriveAPI(node: node, io: io, downloads: apiDownloads, limits: configuration.limits).register(on: router)
        MediaAPI(node: node, io: io, downloads: apiDownloads, limits: configuration.limits).register(on: router)
        BackupAPI(node: node, io: io, jobs: backupJobs, limits: configuration.limits, downloads: apiDownloads).register(on: router)
        ClusterAPI(node: node, limits: configuration.limits).register(on: router)
        return router
    }

    /// The read-only gateway application.
    public func gatewayApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: ServerContext.self)
        router.add(middleware: RequestClientMiddleware())
        router.add(middleware: SurfaceErrorMiddleware())
        router.add(middleware: RequestMetricsMiddleware<ServerContext>())
        router.add(middleware: ByteCountingMiddleware(bytesIn: metrics.bytesIn("gateway"), bytesOut: metrics.bytesOut("gateway")))
        router.add(middleware: GatewayCORSMiddleware(credentials: node.access.configuration.gatewayRequiresRead))
        router.add(middleware: TransferCodingMiddleware())
        if node.access.configuration.gatewayRequiresRead {
            router.add(middleware: AccessMiddleware(access: node.access, rules: AccessRules.gateway(requiresRead: true), limits: configuration.limits,
                                                    recordRefusal: { [node] in await node.auditRefusal($0) }))
        }
        Health(node: node, listener: "gateway").register(on: router)
        Gateway(node: node, io: io, downloads: gatewayDownloads, limits: configuration.limits).register(on: router)
        return Application(
            router: router, server: server(ConnectionCount()),
            configuration: .init(address: .hostname(configuration.gateway.host, port: configuration.gateway.port), serverName: "qstore/\(Node.version)"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Runs both listeners until a shutdown signal; writes `<repo>/api` (the API address,
    /// for the CLI) once it listens and removes it on the way out.
    public func run(announce: @escaping @Sendable (String, Int) async -> Void = { _, _ in }) async throws {
        let apiFile = node.repositoryPath + "/api"
        let host = configuration.api.host
        let api = try apiApplication { port in
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            try? Data((address + "\n").utf8).write(to: URL(fileURLWithPath: apiFile), options: .atomic)
            await announce("api", port)
        }
        let gateway = gatewayApplication { port in await announce("gateway", port) }
        var services: [any Service] = [api, gateway]
        if node.gcInterval > 0 { services.append(BackgroundCollector(node: node, io: io, logger: logger)) }
        if node.auditEnabled { services.append(AuditCheckpointer(node: node, io: io, logger: logger)) }
        let backups = try node.repositoryConfiguration(BackupConfiguration.self)
        if try backups.next(after: 0) != nil {
            services.append(BackupScheduler(node: node, io: io, jobs: backupJobs, configuration: backups, logger: logger))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { try? FileManager.default.removeItem(atPath: apiFile) }
        try await group.run()
        try await shutdownThreads()
    }
}

/// Every `gc.interval`: ends expired pins, completes or fails queued ones, collects garbage and
/// compacts packs, on a storage thread. Between runs it also wakes when a pin expires (looking
/// again at least every `expiryCheck`), so a TEMPORARY pin ends within seconds of its expiry,
/// whatever the interval. Stops with the daemon (graceful shutdown cancels the wait).
struct BackgroundCollector: Service {
    let node: Node
    let io: StorageThreads
    let logger: Logger
    /// The longest wait before looking at the next expiry again (a pin made meanwhile may expire sooner).
    var expiryCheck: UInt64 = 10_000

    func run() async throws {
        var nextCollection = node.clock.now + node.gcInterval
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = node.clock.now
            let expiry = (try? await io.run { try self.node.nextPinExpiry() }) ?? nil
            var wake = min(nextCollection, now + expiryCheck)
            if let expiry { wake = min(wake, max(expiry, now)) }
            if wake > now {
                let wait = wake - now
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(wait)) } } catch { return }
            }
            if Task.isShuttingDownGracefully { return }
            do {
                if node.clock.now >= nextCollection {
                    nextCollection = node.clock.now + node.gcInterval
                    let result = try await io.run { try self.node.collectGarbage() }
                    if result.blocks > 0 || result.packsCompacted > 0 {
                        logger.info("garbage collected", metadata: [
                            "blocks": "\(result.blocks)", "bytes": "\(result.bytes)",
                            "packsCompacted": "\(result.packsCompacted)", "packBytesReclaimed": "\(result.packBytesReclaimed)",
                        ])
                    }
                } else if let expiry, expiry <= node.clock.now {
                    let upkeep = try await io.run { try self.node.maintainPins() }
                    if upkeep.expired > 0 { logger.info("pins expired", metadata: ["pins": "\(upkeep.expired)"]) }
                }
            } catch {
                logger.error("background garbage collection failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Signs a checkpoint of the audit log when events have waited `audit.checkpointInterval` for
/// one (checkpoints every `audit.checkpointEvery` events are made in the appending batch), and a
/// last one on the way out, so a clean shutdown leaves every event covered.
struct AuditCheckpointer: Service {
    let node: Node
    let io: StorageThreads
    let logger: Logger

    func run() async throws {
        let tick = max(250, node.audit.interval / 4)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(tick)) } } catch { break }
            if Task.isShuttingDownGracefully { break }
            do { try await io.run { try self.node.auditCheckpointIfDue() } } catch {
                logger.error("audit checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
        do { _ = try await io.run { try self.node.auditCheckpoint(fresh: true) } } catch AuditError.notFound {
        } catch { logger.error("audit checkpoint at shutdown failed", metadata: ["error": "\(error)"]) }
    }
}

/// The gateway's CORS headers: any origin may read (the gateway is public, read-only content).
/// When the gateway needs `read` (`access.gatewayRequiresRead`), a page may send the credentials
/// too: a bearer token, or a signed request's headers (preflights are open).
struct GatewayCORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let fields: [HTTPField]

    init(credentials: Bool) {
        let credentialHeaders = credentials ? ", Authorization, " + AccessMiddleware.signatureHeaderNames.joined(separator: ", ") : ""
        fields = [
            HTTPField(name: .accessControlAllowOrigin, value: "*"),
            HTTPField(name: .accessControlAllowMethods, value: "GET, HEAD, OPTIONS"),
            HTTPField(name: .accessControlAllowHeaders, value: "Content-Type, Range, User-Agent, X-Requested-With" + credentialHeaders),
            HTTPField(name: .accessControlExposeHeaders, value: "Content-Range, Content-Length, X-Ipfs-Path, X-Ipfs-Roots, X-Chunked-Output, X-Stream-Output"),
        ]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        // Appended (nothing else writes these): a set would first search every field already there.
        response.headers.append(contentsOf: fields)
        return response
    }
}

/// `PUT /ipfs/{cid}` on the API listener: stores the body only if it hashes to the CID.
struct VerifiedPut: Sendable {
    let node: Node
    let io: StorageThreads
    let limits: ServerLimits

    func register(on router: Router<ServerContext>) {
        router.put("/ipfs/:cid") { request, context in
            do {
                let cid = try CID(context.parameters.get("cid") ?? "")
                let body = try await RequestBodies.collect(request, limit: limits.maximumBlockRequest, timeout: limits.requestTimeout)
                let data = Array(buffer: body)
                let block = try await node.putBlock(data, as: cid)
                var headers = HTTPFields()
                headers[.location] = "/ipfs/\(block.cid.string)"
                headers[.xIpfsPath] = "/ipfs/\(block.cid.string)"
                return Response(status: .created, headers: headers)
            } catch {
                return ErrorMapping.gatewayResponse(error)
            }
        }
    }
}

import Multiformats
