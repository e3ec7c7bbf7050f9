import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Pinning
import Signing
import Storage

/// glibc's mallopt (<malloc.h>, which the Glibc module does not bring).
@_silgen_name("mallopt") func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32

/// The `qstore` command line.
@main
struct Qstore: AsyncParsableCommand {
    /// glibc hands allocations above 128 KiB to mmap and gives them back at once, so every
    /// block-sized buffer (256 KiB chunks, sealed segments, batches) costs fresh pages and their
    /// faults: `cat` of 1 GiB took 1.4 s, 0.58 s with these (`drive get` 2.6 s → 1.0 s), peak RSS
    /// unchanged (Docs/benchmarks.md, "Qdrive and QpiC"). And each malloc arena keeps what its
    /// threads freed, up to that trim threshold: glibc makes up to 8 arenas per core, so they are
    /// capped at `QSTORE_MALLOC_ARENAS` (default one per core, at least 2; 0 keeps glibc's): the
    /// daemon's RSS after the gateway loads of Benchmarks/HTTP/run.sh went from 96 to 64 MiB,
    /// rates unchanged. Set before anything allocates; the environment's GLIBC_TUNABLES (and
    /// MALLOC_ARENA_MAX for the arenas) still win when given.
    static func tuneAllocator(environment env: [String: String] = ProcessInfo.processInfo.environment) throws {
        var arenas = max(2, ProcessInfo.processInfo.activeProcessorCount)
        if let v = env["QSTORE_MALLOC_ARENAS"] {
            guard let n = Int32(v), (0...1024).contains(n) else { throw CLIError("QSTORE_MALLOC_ARENAS=\(v): expected 0 (glibc's default) to 1024 arenas") }
            arenas = Int(n)
        }
        #if canImport(Glibc)
        guard env["GLIBC_TUNABLES"] == nil else { return }
        // <malloc.h>: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3, M_ARENA_MAX -8 (macros Swift does not import).
        _ = glibcMallopt(-3, 4 << 20)
        _ = glibcMallopt(-1, 16 << 20)
        if arenas > 0 && env["MALLOC_ARENA_MAX"] == nil { _ = glibcMallopt(-8, Int32(arenas)) }
        #endif
    }

    static let version = "0.1.0"

    /// Changes made on the repository directly (no daemon) are logged as the admin's (whoever
    /// may open the repository holds its admin token), under one request id per command.
    static func main() async {
        do { try Self.tuneAllocator() } catch { exit(withError: error) }
        let context = AuditContext(actor: IdentityRef(squidId: "admin"), requestId: AuditContext.newRequestID(prefix: "cli-"))
        await AuditContext.$current.withValue(context) {
            do {
                var command = try parseAsRoot(KuboBooleans.rewrite(Array(CommandLine.arguments.dropFirst())))
                if var c = command as? any AsyncParsableCommand { try await c.run() } else { try command.run() }
            } catch {
                exit(withError: error)
            }
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "qstore",
        abstract: "Qstore: a content-addressed storage node for the Q ecosystem (IPFS/IPLD formats, byte for byte).",
        discussion: "The repository lives at $QSTORE_PATH (default ~/.qstore). Repository commands go through the running daemon when there is one (its address is in <repo>/api; the repository's admin token is sent for you, or $QSTORE_API_TOKEN when set), else they open the repository directly. With $QSTORE_API (host:port) and $QSTORE_API_TOKEN they talk to that daemon as that token's caller (Docs/access.md), through $http_proxy unless $no_proxy names its host. `qstore daemon` serves the Kubo RPC API and the gateway. Format tools (cid, hash, multibase, car, dag convert) need no repository. Options that take true or false may be given bare, as Kubo reads them: --pin alone is --pin=true.",
        version: version,
        subcommands: [
            Info.self, InitCommand.self, DaemonCommand.self, AddCommand.self, CatCommand.self, LsCommand.self, GetCommand.self, BlockCommand.self, DagCommand.self, PinCommand.self, IndexCommand.self, NameCommand.self, KeyCommand.self, RoutingCommand.self, RepoCommand.self,
            IdentityCommand.self, GrantCommand.self, TokenCommand.self, AuditCommand.self, ModuleCommand.self, BackupCommand.self, DriveCommand.self, MediaCommand.self, ClusterCommand.self,
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
