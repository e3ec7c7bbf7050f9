import Access
import ArgumentParser
import Foundation
import HTTPServer
import Pinning
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
            try Repository.initialize(at: path, configuration: try newConfiguration())
        }
        if json {
            try Output.json(["path": path, "peerID": config.identity.peerID, "version": config.version] as [String: Any])
        } else {
            print("initialized qstore repository at \(path)")
            print("peer identity: \(config.identity.peerID)")
        }
    }
}

/// The configuration a new repository is written with: every layer's section at its defaults,
/// with the environment's overrides (so `config.json` shows every field there is).
func newConfiguration(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
    var c = Configuration()
    try c.applyEnvironment(env)
    func add<S: ConfigurationSection>(_ type: S.Type) throws {
        var s = S()
        try s.applyEnvironment(env)
        try c.setSection(s)
    }
    try add(AddressesConfiguration.self)
    try add(PinningConfiguration.self)
    try add(GCConfiguration.self)
    try add(HTTPConfiguration.self)
    try add(AccessConfiguration.self)
    return c
}
