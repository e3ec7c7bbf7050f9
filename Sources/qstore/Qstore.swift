import ArgumentParser
import Foundation
import Pinning
import Signing
import Storage

/// The `qstore` command line.
@main
struct Qstore: AsyncParsableCommand {
    static let version = "0.1.0"

    /// Changes made on the repository directly (no daemon) are logged as the admin's (whoever
    /// may open the repository holds its admin token), under one request id per command.
    static func main() async {
        let context = AuditContext(actor: IdentityRef(squidId: "admin"), requestId: AuditContext.newRequestID(prefix: "cli-"))
        await AuditContext.$current.withValue(context) {
            do {
                var command = try parseAsRoot()
                if var c = command as? any AsyncParsableCommand { try await c.run() } else { try command.run() }
            } catch {
                exit(withError: error)
            }
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "qstore",
        abstract: "Qstore: a content-addressed storage node for the Q ecosystem (IPFS/IPLD formats, byte for byte).",
        discussion: "The repository lives at $QSTORE_PATH (default ~/.qstore). Repository commands go through the running daemon when there is one (its address is in <repo>/api; the repository's admin token is sent for you, or $QSTORE_API_TOKEN when set), else they open the repository directly. With $QSTORE_API (host:port) and $QSTORE_API_TOKEN they talk to that daemon as that token's caller (Docs/access.md). `qstore daemon` serves the Kubo RPC API and the gateway. Format tools (cid, hash, multibase, car, dag convert) need no repository.",
        version: version,
        subcommands: [
            Info.self, InitCommand.self, DaemonCommand.self, AddCommand.self, CatCommand.self, LsCommand.self, GetCommand.self, BlockCommand.self, DagCommand.self, PinCommand.self, IndexCommand.self, NameCommand.self, KeyCommand.self, RoutingCommand.self, RepoCommand.self,
            IdentityCommand.self, GrantCommand.self, TokenCommand.self, AuditCommand.self, ModuleCommand.self, BackupCommand.self, DriveCommand.self, MediaCommand.self,
            CIDCommand.self, HashCommand.self, MultibaseCommand.self, CARCommand.self, DebugCommand.self,
        ]
    )
}

/// `qstore info`: what this build is and where its repository is.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the version, the repository path and its state.")

    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let path = Repository.defaultPath()
        let exists = Repository.exists(at: path)
        var info: [String: Any] = ["version": Qstore.version, "repository": path, "repositoryExists": exists]
        if exists, let data = FileManager.default.contents(atPath: path + "/config.json"),
           let config = try? JSONDecoder().decode(Configuration.self, from: data) {
            info["peerID"] = config.identity.peerID
            info["repositoryVersion"] = config.version
        }
        if json { try Output.json(info); return }
        print("qstore \(Qstore.version)")
        print("repository: \(path) (\(exists ? "initialized" : "not initialized: run `qstore init`"))")
        if let peer = info["peerID"] { print("peer identity: \(peer)") }
        print("codecs: raw, dag-pb, dag-cbor, dag-json; CAR v1 and v2")
    }
}
