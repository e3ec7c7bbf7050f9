import ArgumentParser
import Foundation
import Storage

/// `qstore init`: create the repository.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a repository at $QSTORE_PATH (default ~/.qstore).",
        discussion: "Writes the layout version, config.json, the LevelDB datastore, the pack directory, the node's Ed25519 identity key (keystore/identity.key, mode 0600) and the daemon's API token (api-token, mode 0600)."
    )

    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let path = Repository.defaultPath()
        let config = try reporting("init") {
            var c = Configuration()
            try c.applyEnvironment()
            return try Repository.initialize(at: path, configuration: c)
        }
        if json {
            try Output.json(["path": path, "peerID": config.identity.peerID, "version": config.version] as [String: Any])
        } else {
            print("initialized qstore repository at \(path)")
            print("peer identity: \(config.identity.peerID)")
        }
    }
}
