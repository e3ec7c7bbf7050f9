import ArgumentParser
import Foundation

/// The `qstore` command line.
@main
struct Qstore: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "qstore",
        abstract: "Qstore: a content-addressed storage node for the Q ecosystem (IPFS/IPLD formats, byte for byte).",
        discussion: "The repository lives at $QSTORE_PATH (default ~/.qstore). This build has the format tools (CIDs, multihashes, multibase, IPLD codecs, CAR files); the block store, daemon and pinning arrive with the next issues.",
        version: version,
        subcommands: [Info.self, CIDCommand.self, HashCommand.self, MultibaseCommand.self, DagCommand.self, CARCommand.self]
    )
}

/// `qstore info`: what this build is and where its repository would be.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the version, the repository path and its state.")

    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let path = RepositoryPath.resolve()
        let exists = FileManager.default.fileExists(atPath: path)
        let state = exists ? "present (this build does not open repositories yet)" : "not created yet"
        if json {
            try Output.json(["version": Qstore.version, "repository": path, "repositoryExists": exists] as [String: Any])
        } else {
            print("qstore \(Qstore.version)")
            print("repository: \(path) (\(state))")
            print("codecs: raw, dag-pb, dag-cbor, dag-json; CAR v1 and v2")
        }
    }
}

/// Where the repository is: `$QSTORE_PATH`, else `~/.qstore`.
enum RepositoryPath {
    static func resolve() -> String {
        if let p = ProcessInfo.processInfo.environment["QSTORE_PATH"], !p.isEmpty { return p }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".qstore").path
    }
}
