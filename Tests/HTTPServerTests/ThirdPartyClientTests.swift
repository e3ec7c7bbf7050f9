import Foundation
import Storage
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// An existing IPFS RPC client from PyPI (aioipfs) drives a real `qstore daemon`
/// process over loopback: block and dag calls, CAR export and import, errors.
/// The client is installed into a virtualenv under `.build/` on first use.
@Suite(.serialized) struct ThirdPartyClientTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func run(_ executable: String, _ args: [String], environment: [String: String]? = nil, directory: String? = nil) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { p.environment = ChildEnvironment.with(environment) }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `run` on a thread of its own, for a client talking to a daemon inside this process: the
    /// wait must not hold one of the few cooperative threads that daemon's requests need.
    static func runAside(_ executable: String, _ args: [String], environment: [String: String]? = nil, directory: String? = nil) async throws -> (Int32, String) {
        try await aside { try run(executable, args, environment: environment, directory: directory) }
    }

    /// Blocking work (waiting for a process, a pip install, a lock) on a thread of its own, so
    /// the few cooperative threads stay free for the daemons other tests run in this process.
    static func aside<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Held while the virtualenv is made or changed: tests that need it run in parallel, and a
    /// half-made venv (python there, pip not yet) or two pip runs at once break each other.
    static let venvLock = NSLock()

    /// A virtualenv with the third-party clients the tests drive (aioipfs, schemathesis) and the
    /// `cryptography` package for independent signature checks, made once
    /// per build directory; `.qstore-ready` marks one whose creation finished.
    static func python() throws -> String {
        try venvLock.withLock {
            let venv = repositoryRoot.appendingPathComponent(".build/e2e-venv").path
            let python = venv + "/bin/python"
            let ready = venv + "/.qstore-ready"
            if !FileManager.default.fileExists(atPath: ready) {
                try? FileManager.default.removeItem(atPath: venv)  // an interrupted creation
                let (rc, out) = try run("/usr/bin/env", ["python3", "-m", "venv", venv])
                try #require(rc == 0, "python3 -m venv failed: \(out)")
                FileManager.default.createFile(atPath: ready, contents: nil)
            }
            let check = "import aioipfs, aiohttp, schemathesis, cryptography; assert aiohttp.__version__ == '3.9.5' and schemathesis.__version__ == '4.32.5' and cryptography.__version__ == '50.0.2'"
            if try run(python, ["-c", check]).0 != 0 {
                let (rc, out) = try run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                                 "aioipfs==0.7.1", "aiohttp==3.9.5", "schemathesis==4.32.5", "cryptography==50.0.2"])
                try #require(rc == 0, "pip install failed: \(out)")
            }
            return python
        }
    }

    /// Blocks one cooperative thread throughout (it waits on processes, never on a daemon inside
    /// this process, so the tests that run one still have the other).
    @Test func aioipfsDrivesTheDaemon() throws {
        let python = try Self.python()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-e2e-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The daemon creates the repository itself (as `make run` does) and prints its ports.
        let daemon = try ChildDaemon(directory: dir)
        let repo = daemon.repository
        let apiPort = daemon.apiPort
        #expect(FileManager.default.fileExists(atPath: repo + "/api"), "the daemon announces its API address")

        let token = daemon.token
        let config = try JSONDecoder().decode(Configuration.self, from: Data(contentsOf: URL(fileURLWithPath: repo + "/config.json")))
        let script = Self.repositoryRoot.appendingPathComponent("Tests/E2E/kubo_rpc_client.py").path
        var env = ProcessInfo.processInfo.environment
        env["QSTORE_API_PORT"] = String(apiPort)
        env["QSTORE_API_TOKEN"] = token
        env["QSTORE_PEER_ID"] = config.identity.peerID
        env["QSTORE_WORKDIR"] = dir
        let (rc, output) = try Self.run(python, [script], environment: env)
        #expect(rc == 0, "aioipfs e2e failed:\n\(output)")

        // SIGTERM: graceful shutdown, exit 0, the api file removed, the repository clean.
        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: repo + "/api"))
        let reopened = try Repository(path: repo)
        #expect(try reopened.verify().isClean)
        #expect(try reopened.stat().blocks >= 2)
    }
}
