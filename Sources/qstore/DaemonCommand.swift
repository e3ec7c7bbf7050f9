import ArgumentParser
import Foundation
import HTTPServer
import Logging
import Metrics
import Node
import Prometheus
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
            The API address is written to <repo>/api while the daemon runs.
            """
    )

    @Option(help: "API listen address (host:port; default from config, 127.0.0.1:5001).") var api: String?
    @Option(help: "Gateway listen address (host:port; default from config, 127.0.0.1:8080).") var gateway: String?
    @Flag(help: "Do not create the repository when it is absent.") var noInit = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"

    func run() async throws {
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
        try await daemon.run { listener, port in
            log.notice("\(listener) listening", metadata: ["port": "\(port)"])
            // Unbuffered: supervisors and tests read this line from a pipe.
            FileHandle.standardOutput.write(Data("\(listener) listening on port \(port)\n".utf8))
        }
        repo.close()
        logger.notice("stopped")
    }
}
