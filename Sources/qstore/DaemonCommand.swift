import ArgumentParser
import Foundation
import HTTPServer
import Logging
import Metrics
import Node
import EtcdCoordinator
import Prometheus
import Replication
import Storage

/// `qstore daemon`: serve the repository over HTTP.
struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the node: the admin API (Kubo RPC /api/v0, the Pinning Service API /pins, the Q API /q/v1, /metrics) and the read-only gateway (/ipfs, /ipns).",
        discussion: """
            Opens the repository at $QSTORE_PATH (default ~/.qstore), creating it first when absent, \
            and serves until SIGINT or SIGTERM: in-flight requests finish, then the repository closes. \
            Every API request is authenticated: `Authorization: Bearer <token>` (the repository's api-token file \
            is the admin token, which the CLI sends; `qstore token create` makes scoped ones), or a request signed by \
            a registered identity (x-squid-id, x-ts, x-nonce, x-sig). Each route needs a scope (read, write, pin, gc, \
            index:write:TYPE/KEY, admin, …) that grants give (`qstore grant add`); callers are rate-limited and pins \
            count against storage quotas (config section `access`). The gateway is public unless \
            access.gatewayRequiresRead (or QSTORE_GATEWAY_REQUIRES_READ=1). See Docs/access.md. \
            The API address is written to <repo>/api while the daemon runs. \
            With --cluster etcd=URL[,URL…] (or config cluster.etcd) the node joins a Qstore cluster coordinated by \
            etcd: membership under a lease, cluster pins placed by replication factor and zone, blocks pulled from \
            peers' gateways (`qstore cluster --help`, Docs/cluster.md). \
            glibc's malloc arenas are capped at one per core, at least 2 (QSTORE_MALLOC_ARENAS; 0 keeps glibc's default).
            """
    )

    @Option(help: "API listen address (host:port; default from config, 127.0.0.1:5001).") var api: String?
    @Option(help: "Gateway listen address (host:port; default from config, 127.0.0.1:8080).") var gateway: String?
    @Flag(help: "Do not create the repository when it is absent.") var noInit = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(help: "Join a cluster: etcd=http://HOST:2379[,http://HOST:2379…] (default from config cluster.etcd).") var cluster: String?

    func run() async throws {
        // Process-wide, once, before the first logger: lines as swift-log's stream handler writes
        // them, the metadata rendered only for lines written (Docs/http.md).
        LoggingSystem.bootstrap { label in DaemonLogHandler(label: label) }
        var logger = Logger(label: "qstore")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let path = Repository.defaultPath()
        if !Repository.exists(at: path) {
            guard !noInit else { throw CLIError("no repository at \(path) (and --no-init given)") }
            let config = try reporting("init") { try Repository.initialize(at: path, configuration: try newConfiguration()) }
            logger.info("initialized repository", metadata: ["path": "\(path)", "peerID": "\(config.identity.peerID)"])
        }
        let repo = try openRepository(purpose: "qstore daemon")
        let config = try reporting("daemon") {
            let addresses = try repo.configuration.section(AddressesConfiguration.self)
            var c = try DaemonConfiguration(api: api ?? addresses.api, gateway: gateway ?? addresses.gateway)
            c.limits = try ServerLimits(repo.configuration.section(HTTPConfiguration.self))
            return c
        }
        let node = try reporting("daemon") { try Node(repository: repo, logger: logger) }
        // Process-wide, once: every metric of the process goes to the registry /metrics exports.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let daemon = Daemon(node: node, configuration: config, metrics: MetricsRegistry(registry), logger: logger)
        let log = logger
        let joining = try reporting("daemon") { try clusterJoining(repo, config: config) }
        let ports = PortsSeen()
        try await daemon.run { listener, port in
            log.notice("\(listener) listening", metadata: ["port": "\(port)"])
            // Unbuffered: supervisors and tests read this line from a pipe.
            FileHandle.standardOutput.write(Data("\(listener) listening on port \(port)\n".utf8))
            // Once both listen (their ports may have been chosen by the system), join the cluster.
            if let joining, let (api, gateway) = ports.saw(listener, port) {
                do {
                    let c = try joining(api, gateway, node)
                    node.attach(cluster: c)
                    Task { await c.start() }
                    // Pointers written while etcd was away merge and publish once it is back.
                    Task {
                        while !Task.isCancelled {
                            try? await Task.sleep(nanoseconds: 3_000_000_000)
                            await node.mergeOfflinePointers()
                        }
                    }
                    log.notice("cluster", metadata: ["name": "\(c.config.name)", "node": "\(c.config.nodeId)"])
                } catch {
                    log.error("cluster: \(error)")
                }
            }
        }
        if let c = node.cluster { await c.stop() }
        repo.close()
        logger.notice("stopped")
    }
}

/// The API's and the gateway's ports as the daemon reports them: both, once both are known.
final class PortsSeen: @unchecked Sendable {
    // Safe: touched under `lock`.
    private let lock = NSLock()
    private var api: Int?
    private var gateway: Int?
    func saw(_ listener: String, _ port: Int) -> (Int, Int)? {
        lock.withLock {
            if listener == "api" { api = port } else if listener == "gateway" { gateway = port }
            guard let api, let gateway else { return nil }
            defer { (self.api, self.gateway) = (nil, nil) }
            return (api, gateway)
        }
    }
}

extension DaemonCommand {
    /// How the node joins its cluster once its ports are known; nil without one.
    func clusterJoining(_ repo: Repository, config: DaemonConfiguration) throws -> (@Sendable (Int, Int, Node) throws -> Cluster)? {
        var settings = try repo.configuration.section(ClusterSettings.self)
        if let cluster {
            guard cluster.hasPrefix("etcd=") else { throw CLIError("--cluster: etcd=http://HOST:2379[,…]") }
            settings.etcd = cluster.dropFirst(5).split(separator: ",").map(String.init)
        }
        guard !settings.etcd.isEmpty else { return nil }
        let coordinator = try EtcdCoordinator(endpoints: settings.etcd)
        let host = settings.advertiseHost ?? config.api.host
        guard host != "0.0.0.0", host != "::" else { throw CLIError("cluster.advertiseHost: the API listens on every address; name the one peers reach") }
        let peerID = repo.identity.peerID.description
        // Checked now: a daemon told to join a cluster does not start without one.
        _ = try settings.configuration(nodeId: peerID, api: "", gateway: "", version: Node.version)
        let chosen = settings
        return { api, gateway, node in
            let shown = host.contains(":") ? "[\(host)]" : host
            let c = try chosen.configuration(nodeId: peerID, api: "http://\(shown):\(api)", gateway: "http://\(shown):\(gateway)", version: Node.version)
            let logger = node.logger
            return Cluster(config: c, coordinator: coordinator, transport: PeerHTTP(), local: node.clusterStore, log: { logger.notice("\($0)") })
        }
    }
}
