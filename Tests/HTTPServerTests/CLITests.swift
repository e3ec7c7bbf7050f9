import Foundation
import Testing
import TestSupport

/// The `qstore` command line as a user runs it: the same output whether it opens the repository
/// itself or goes through a running daemon.
@Suite(.serialized) struct CLITests {
    static func qstore(_ args: [String], repository: String, home: String) throws -> (Int32, String) {
        try ThirdPartyClientTests.run(ChildDaemon.binary, args, environment: ["QSTORE_PATH": repository, "HOME": home])
    }

    /// A scratch directory with `sub` in it and a repository made by `qstore init` at `repo`
    /// (paths under the directory); the caller removes the directory.
    static func scratch(_ sub: String, repo: String) throws -> (dir: String, repo: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        #expect(try Self.qstore(["init"], repository: dir + "/" + repo, home: dir).0 == 0)
        return (dir, dir + "/" + repo)
    }

    /// Kubo's boolean options take no value: `--pin` alone is `--pin=true`, as `ipfs` reads it
    /// (`--pin=false` and `--pin false` still work, and a flag of the same name elsewhere, `add
    /// --recursive`, is still a flag).
    @Test func booleanOptionsTakeNoValueAsKubosDo() throws {
        let (dir, repo) = try Self.scratch("tree", repo: "repo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/tree/f"
        try Data("bare booleans\n".utf8).write(to: URL(fileURLWithPath: file))
        func q(_ args: [String]) throws -> String {
            let (rc, out) = try Self.qstore(args, repository: repo, home: dir)
            #expect(rc == 0, "\(args): \(out)")
            return out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let block = try q(["block", "put", "--pin", file])
        #expect(try q(["pin", "ls", "--type", "recursive"]).contains(block), "block put --pin did not pin")
        let unpinned = try q(["block", "put", "--pin=false", "--cid-codec", "raw", "--mhtype", "sha2-512", file])
        #expect(try !q(["pin", "ls", "--type", "recursive"]).contains(unpinned))
        // --raw-leaves alone: the one-chunk file is its raw leaf (bafk…), not a dag-pb node (Qm…).
        #expect(try q(["add", "-Q", "--raw-leaves", file]).hasPrefix("bafk"))
        #expect(try q(["add", "-Q", "--raw-leaves", "false", file]).hasPrefix("Qm"))
        #expect(try q(["add", "-Q", "--recursive", "--pin", dir + "/tree"]).hasPrefix("Qm"))
        _ = try q(["pin", "rm", "--recursive", block])
        #expect(try !q(["pin", "ls", "--type", "recursive"]).contains(block))
    }

    /// `add`'s output, `-q` and `-Q` (Kubo's "only the final hash"), without and with a daemon.
    @Test func addQuietAndQuieterBothWays() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/files", withIntermediateDirectories: true)
        for (name, text) in [("a.txt", "alpha\n"), ("b.txt", "beta\n")] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/files/" + name))
        }
        let files = [dir + "/files/a.txt", dir + "/files/b.txt"]
        let invocations: [[String]] = [["add"] + files, ["add", "-q"] + files, ["add", "-Q"] + files, ["add", "-Q", "-w"] + files,
                                       ["add", "-w"] + files, ["add", "-p", "-q"] + files]
        func outputs(_ repository: String) throws -> [String] {
            var all = try invocations.map { args in
                let (rc, out) = try Self.qstore(args, repository: repository, home: dir)
                #expect(rc == 0, "qstore \(args.joined(separator: " ")): \(out)")
                return out
            }
            // Reading back (streamed through the daemon when one runs): a file, a file by path, a DAG as a CAR.
            let root = String(all[3].split(separator: "\n").last ?? "")
            for args in [["cat", String(all[1].split(separator: "\n")[0])], ["cat", root + "/b.txt"], ["dag", "export", root]] {
                let (rc, out) = try Self.qstore(args, repository: repository, home: dir)
                #expect(rc == 0, "qstore \(args.joined(separator: " ")): \(out)")
                all.append(out)
            }
            return all
        }
        let offlineRepo = dir + "/offline"
        #expect(try Self.qstore(["init"], repository: offlineRepo, home: dir).0 == 0)
        let offline = try outputs(offlineRepo)
        let daemon = try ChildDaemon(directory: dir + "/d")
        let online = try outputs(daemon.repository)
        daemon.stop()
        #expect(offline == online, "the CLI prints the same with and without a daemon")

        let lines = offline.map { $0.split(separator: "\n").map(String.init) }
        #expect(lines[0].count == 2 && lines[0].allSatisfy { $0.hasPrefix("added ") })
        #expect(lines[1] == lines[0].map { String($0.split(separator: " ")[1]) }, "-q: the hashes")
        #expect(lines[2] == [String(lines[0][1].split(separator: " ")[1])], "-Q: only the last hash")
        let wrapped = lines[4].last.map { String($0.split(separator: " ")[1]) }
        #expect(lines[3].count == 1 && lines[3].first == wrapped, "-Q -w: only the wrapping directory's hash")
        #expect(lines[5] == lines[1], "-p is accepted")
        #expect(offline[6] == "alpha\n" && offline[7] == "beta\n", "cat: \(offline[6]) \(offline[7])")
        #expect(offline[8].utf8.count > 100, "dag export writes a CAR")
    }

    /// A file read through a daemon into a slow reader: the CLI passes the reply on as the reader
    /// takes it, so its memory stays flat (URLSession, used before, buffered the whole reply: 450 MB
    /// for `cat` of 1 GiB). The bytes arrive whole.
    @Test func catThroughADaemonKeepsFlatMemory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let size = 384 << 20
        let file = dir + "/big"
        FileManager.default.createFile(atPath: file, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
        for i in 0..<(size >> 20) { try out.write(contentsOf: Data(repeating: UInt8(i % 7), count: 1 << 20)) }
        try out.close()
        let daemon = try ChildDaemon(directory: dir + "/d")
        defer { daemon.stop() }
        let (rc, added) = try Self.qstore(["add", "-Q", file], repository: daemon.repository, home: dir)
        #expect(rc == 0, "\(added)")
        let cat = Process()
        cat.executableURL = URL(fileURLWithPath: ChildDaemon.binary)
        cat.arguments = ["cat", added.trimmingCharacters(in: .whitespacesAndNewlines)]
        cat.environment = ChildEnvironment.with(["QSTORE_PATH": daemon.repository, "HOME": dir])
        let pipe = Pipe()
        cat.standardOutput = pipe
        try cat.run()
        var read = 0
        var peak = 0
        while let piece = try pipe.fileHandleForReading.read(upToCount: 256 << 10), !piece.isEmpty {
            read += piece.count
            usleep(400)  // a reader slower than the daemon
            if read % (16 << 20) < piece.count, let status = try? String(contentsOfFile: "/proc/\(cat.processIdentifier)/status", encoding: .utf8),
               let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }), let kb = Int(line.split(separator: " ").dropFirst().first ?? "") {
                peak = max(peak, kb << 10)
            }
        }
        cat.waitUntilExit()
        #expect(cat.terminationStatus == 0 && read == size, "read \(read) of \(size)")
        #expect(peak > 0 && peak < 192 << 20, "the CLI's peak memory: \(peak >> 20) MiB for a \(size >> 20) MiB reply")
    }

    /// `qstore cat X | head -c1`: a reader that goes ends the CLI by SIGPIPE, quietly (the
    /// shell's status 141), through a daemon as on the repository itself — also for a file small
    /// enough that the broken pipe shows only when the last bytes are flushed.
    @Test func aClosedPipeEndsTheCLIQuietlyBothWays() throws {
        let (dir, repo) = try Self.scratch("d", repo: "d/repo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: dir + "/small"))
        let (rc, added) = try Self.qstore(["add", "-Q", dir + "/small"], repository: repo, home: dir)
        #expect(rc == 0, "\(added)")
        // Also with SIGPIPE ignored by the parent (as a process that embeds NIO has it), which the
        // child inherits: its writes then fail with EPIPE instead (Foundation's FileHandle.write
        // trapped on that).
        func catIntoAClosedPipe(ignoringSIGPIPE: Bool) throws -> (Process.TerminationReason, Int32, String) {
            let cat = Process()
            cat.executableURL = URL(fileURLWithPath: "/bin/sh")
            cat.arguments = ["-c", (ignoringSIGPIPE ? "trap '' PIPE; " : "trap - PIPE; ") + "exec \"$0\" cat \"$1\"",
                             ChildDaemon.binary, added.trimmingCharacters(in: .whitespacesAndNewlines)]
            cat.environment = ChildEnvironment.with(["QSTORE_PATH": repo, "HOME": dir])
            let out = Pipe(), err = Pipe()
            cat.standardOutput = out
            cat.standardError = err
            try out.fileHandleForReading.close()
            try cat.run()
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            cat.waitUntilExit()
            return (cat.terminationReason, cat.terminationStatus, message)
        }
        for ignoring in [false, true] {
            let offline = try catIntoAClosedPipe(ignoringSIGPIPE: ignoring)
            #expect(offline.0 == .uncaughtSignal && offline.1 == SIGPIPE && offline.2.isEmpty, "offline, SIGPIPE ignored \(ignoring): \(offline)")
        }
        let daemon = try ChildDaemon(directory: dir + "/d")
        defer { daemon.kill9() }
        for ignoring in [false, true] {
            let remote = try catIntoAClosedPipe(ignoringSIGPIPE: ignoring)
            #expect(remote.0 == .uncaughtSignal && remote.1 == SIGPIPE && remote.2.isEmpty, "through the daemon, SIGPIPE ignored \(ignoring): \(remote)")
        }
    }

    /// A pager left open on `qstore cat` through a daemon is not cut off after the gateway's
    /// `http.sendTimeout` (its caller has a token: `http.apiSendTimeout`), and does not hold up
    /// the daemon's stop for as long: stopping, the daemon gives it `http.sendTimeout` again.
    @Test func aPausedPagerLastsButDoesNotHoldUpAStop() throws {
        let (dir, repo) = try Self.scratch("d", repo: "d/repo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configURL = URL(fileURLWithPath: repo + "/config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        var http = config["http"] as? [String: Any] ?? [:]
        http["sendTimeout"] = "1s"
        config["http"] = http
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let file = dir + "/big"
        try Data((0..<(32 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 >> 3) }).write(to: URL(fileURLWithPath: file))
        let daemon = try ChildDaemon(directory: dir + "/d")
        defer { daemon.kill9() }
        let (rc, added) = try Self.qstore(["add", "-Q", file], repository: repo, home: dir)
        #expect(rc == 0, "\(added)")
        let cat = Process()
        cat.executableURL = URL(fileURLWithPath: ChildDaemon.binary)
        cat.arguments = ["cat", added.trimmingCharacters(in: .whitespacesAndNewlines)]
        cat.environment = ChildEnvironment.with(["QSTORE_PATH": repo, "HOME": dir])
        let pipe = Pipe()
        cat.standardOutput = pipe
        cat.standardError = FileHandle.nullDevice
        try cat.run()
        defer { if cat.isRunning { kill(cat.processIdentifier, SIGKILL) } }
        _ = try pipe.fileHandleForReading.read(upToCount: 64 << 10)
        sleep(4)  // the pager is paused past http.sendTimeout
        var read = 0
        while read < 1 << 20, let piece = try pipe.fileHandleForReading.read(upToCount: 64 << 10), !piece.isEmpty { read += piece.count }
        #expect(read == 1 << 20, "the paused pager's reply was cut off after http.sendTimeout")
        // Paused again, and the daemon is told to stop: it must not wait for the pager for long.
        sleep(2)
        let stopping = Date()
        kill(daemon.process.processIdentifier, SIGTERM)
        while daemon.isRunning && Date().timeIntervalSince(stopping) < 30 { usleep(100_000) }
        #expect(!daemon.isRunning, "the daemon's stop waited 30 s for a paused pager")
        while let piece = try pipe.fileHandleForReading.read(upToCount: 1 << 20), !piece.isEmpty { read += piece.count }
        cat.waitUntilExit()
        #expect(cat.terminationStatus != 0 && read < 32 << 20, "the pager's reply outlived the daemon: \(read) bytes, status \(cat.terminationStatus)")
    }

    /// A remote daemon (`QSTORE_API`) is reached through the proxy of `http_proxy` (a CONNECT
    /// tunnel, as AsyncHTTPClient makes one), with its credentials; not a host `no_proxy` names, and never a local daemon; a proxy of a kind the
    /// CLI cannot use is an error that says so.
    @Test func aRemoteDaemonThroughAProxy() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let daemon = try ChildDaemon(directory: dir + "/d")
        defer { daemon.stop() }
        let file = dir + "/note"
        try Data("through a proxy\n".utf8).write(to: URL(fileURLWithPath: file))
        let (rc, added) = try Self.qstore(["add", "-Q", file], repository: daemon.repository, home: dir)
        let cid = added.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(rc == 0, "\(added)")
        let proxy = try ForwardProxy(forwardingTo: daemon.apiPort)
        defer { proxy.stop() }
        // A name that resolves nowhere: only the proxy can reach it.
        let remote = ["QSTORE_API": "qstore-remote.invalid:\(daemon.apiPort)", "QSTORE_API_TOKEN": daemon.token, "HOME": dir,
                      "QSTORE_PATH": dir + "/none", "http_proxy": "http://someone:p%40ss@127.0.0.1:\(proxy.port)"]
        let (catRC, text) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["cat", cid], environment: remote)
        #expect(catRC == 0 && text == "through a proxy\n", "\(catRC): \(text)")
        let seen = proxy.requests
        #expect(!seen.isEmpty && seen.allSatisfy { $0.request == "CONNECT qstore-remote.invalid:\(daemon.apiPort) HTTP/1.1" }, "\(seen.map(\.request))")
        #expect(seen.allSatisfy { $0.authorization == "Basic " + Data("someone:p@ss".utf8).base64EncodedString() }, "\(seen.map(\.authorization))")
        // no_proxy names it: straight to a host that does not resolve.
        var excluded = remote
        excluded["no_proxy"] = "localhost, .invalid"
        let (directRC, _) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["cat", cid], environment: excluded)
        #expect(directRC != 0 && proxy.requests.count == seen.count, "no_proxy was not followed")
        // The local daemon is never reached through the proxy, also when it announces an address
        // that is not a loopback one (a daemon listening on every interface: 0.0.0.0).
        let announced = try String(contentsOfFile: daemon.repository + "/api", encoding: .utf8)
        for address in [announced, "0.0.0.0:\(daemon.apiPort)"] {
            try Data(address.utf8).write(to: URL(fileURLWithPath: daemon.repository + "/api"))
            let (localRC, localText) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["cat", cid],
                                                                   environment: ["QSTORE_PATH": daemon.repository, "HOME": dir, "http_proxy": "127.0.0.1:\(proxy.port)"])
            #expect(localRC == 0 && localText == "through a proxy\n" && proxy.requests.count == seen.count, "\(address): \(localRC): \(localText)")
        }
        var socks = remote
        socks["http_proxy"] = "socks5://127.0.0.1:1080"
        let (socksRC, socksText) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["cat", cid], environment: socks)
        #expect(socksRC != 0 && socksText.contains("only an http:// proxy"), "\(socksText)")
        // A message names the proxy without its password.
        socks["http_proxy"] = "socks5://someone:secret@127.0.0.1:1080"
        let (_, redacted) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["cat", cid], environment: socks)
        #expect(redacted.contains("127.0.0.1:1080") && !redacted.contains("secret"), "\(redacted)")
    }

    /// An upload the daemon refuses before reading it (here: no connection left, 503 and closed)
    /// gives the daemon's answer at once; it used to wait forever for a body the daemon would not
    /// take. A file given through a symbolic link is sent whole.
    @Test func aRefusedUploadAnswersAtOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/big"
        FileManager.default.createFile(atPath: file, contents: Data(repeating: 0x71, count: 64 << 20))
        let daemon = try ChildDaemon(directory: dir + "/d", environment: ["QSTORE_MAX_CONNECTIONS": "2"])
        defer { daemon.stop() }
        let remote = ["QSTORE_PATH": dir + "/none", "HOME": dir, "QSTORE_API": "127.0.0.1:\(daemon.apiPort)", "QSTORE_API_TOKEN": daemon.token]
        do {
            // Both connections taken and left idle.
            let held = try (0..<2).map { _ in try RawConnection(port: daemon.apiPort) }
            let started = Date()
            let (rc, out) = try ThirdPartyClientTests.run("/usr/bin/timeout", ["-s", "KILL", "30", ChildDaemon.binary, "add", "-Q", file], environment: remote)
            #expect(rc == 1 && out.contains("503"), "rc \(rc) (137: still waiting after 30 s): \(out)")
            #expect(Date().timeIntervalSince(started) < 20, "answered at once")
            _ = held
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: file)
        let (rc, out) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["drive", "put", "--plain", dir + "/link", "/big"], environment: remote)
        #expect(rc == 0, "\(out)")
        let (_, size) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["drive", "info", "/big", "--json"], environment: remote)
        #expect(size.contains("\(64 << 20)"), "the link's target sent whole: \(size)")
    }

    /// Every repository command of the CLI, run on two repositories in the same state, one opened
    /// by the CLI itself and one through a running daemon: the same standard output and error, the
    /// same exit status, the same files written — successes and failures alike. Only what names the
    /// repository (its path, its size on disk) may differ, and is masked.
    @Test func everyCommandBothWays() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/files/tree/sub", withIntermediateDirectories: true)
        for (name, text) in [("a.txt", "alpha\n"), ("tree/b.txt", "beta\n"), ("tree/sub/c.txt", String(repeating: "gamma ", count: 60_000))] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/files/" + name))
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/files/tree/link", withDestinationPath: "b.txt")
        try Data(#"{"hello":"world","n":[1,2,3]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/files/node.json"))
        let files = dir + "/files"

        /// The transcript of one run: each command with its status and output, in order.
        func transcript(repository: String, work: String) throws -> [String] {
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            var lines: [String] = []
            @discardableResult
            func q(_ args: [String]) throws -> String {
                // The audit log is off on both sides: it records who and when, which differ by design
                // (request ids, times, checkpoints); the repositories' content is what is compared.
                let (rc, out) = try ThirdPartyClientTests.run(ChildDaemon.binary, args, environment: ["QSTORE_PATH": repository, "HOME": dir, "QSTORE_AUDIT": "off"], directory: work)
                let masked = Self.maskRecords(out.replacingOccurrences(of: repository, with: "<repo>").replacingOccurrences(of: work, with: "<work>"))
                    .split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.hasPrefix("RepoSize:") ? "RepoSize: <masked>" : String($0) }
                    .joined(separator: "\n")
                lines.append("$ qstore \(Self.maskRecords(args.joined(separator: " ").replacingOccurrences(of: work, with: "<work>"))) → \(rc)\n\(masked)")
                return out
            }
            func word(_ out: String, line: Int = 0, _ index: Int) -> String {
                let ls = out.split(separator: "\n")
                let l = line < 0 ? ls.last : ls.indices.contains(line) ? ls[line] : nil
                let ws = l?.split(separator: " ") ?? []
                return ws.indices.contains(index) ? String(ws[index]) : ""
            }
            // Blocks.
            let raw = word(try q(["block", "put", files + "/a.txt"]), 0)
            try q(["block", "put", "--json", "--cid-codec", "dag-json", "--mhtype", "sha2-512", files + "/node.json"])
            try q(["block", "get", raw])
            try q(["block", "stat", raw])
            try q(["block", "stat", "--json", raw])
            try q(["block", "stat", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"])
            try q(["block", "get", "not-a-cid"])
            try q(["block", "put", "--cid-codec", "no-such-codec", files + "/a.txt"])
            // DAGs.
            let node = try q(["dag", "put", files + "/node.json"]).trimmingCharacters(in: .whitespacesAndNewlines)
            try q(["dag", "put", "--json", "--store-codec", "dag-json", "--pin=true", files + "/node.json"])
            try q(["dag", "get", node])
            try q(["dag", "get", node + "/n/1"])
            try q(["dag", "get", node + "/no/such"])
            try q(["dag", "get", "--output-codec", "dag-cbor", node])
            let car = work + "/node.car"
            try q(["dag", "export", node])
            // The CAR's bytes, from standard output alone.
            _ = FileManager.default.createFile(atPath: car, contents: nil)
            let export = Process()
            export.executableURL = URL(fileURLWithPath: ChildDaemon.binary)
            export.arguments = ["dag", "export", node]
            export.environment = ChildEnvironment.with(["QSTORE_PATH": repository, "HOME": dir])
            export.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: car))
            try export.run()
            export.waitUntilExit()
            lines.append("export to a file → \(export.terminationStatus), \((try? Data(contentsOf: URL(fileURLWithPath: car)).count) ?? -1) bytes")
            try q(["dag", "import", "--stats", car])
            try q(["dag", "import", "--json", "--stats", "--pin-roots=false", car])
            try q(["dag", "import", files + "/a.txt"])
            // Files.
            let added = try q(["add", "-r", files + "/tree"])
            let tree = word(added, line: -1, 1)
            try q(["add", "-w", "-q", files + "/a.txt", files + "/node.json"])
            try q(["add", "-n", "-r", files + "/tree"])
            try q(["add", "--cid-version", "1", "--pin=false", files + "/a.txt"])
            try q(["add", files + "/tree"])
            try q(["cat", tree + "/b.txt"])
            try q(["cat", "-o", "2", "-l", "2", tree + "/b.txt"])
            try q(["cat", tree])
            try q(["ls", tree])
            try q(["ls", "--json", tree])
            try q(["ls", tree + "/b.txt"])
            try q(["get", "-o", "out", tree])
            try q(["get", "-a", "-o", "out.tar", tree + "/sub"])
            // Pins.
            try q(["pin", "add", "--name", "the tree", tree])
            try q(["pin", "add", "--recursive=false", raw])
            try q(["pin", "add", "--recursive=false", tree])
            try q(["pin", "add", "--resource-type", "no-such-type", raw])
            try q(["pin", "ls"])
            try q(["pin", "ls", "--names", "--type", "recursive"])
            try q(["pin", "ls", "--json", "--names", "--name", "tree"])
            try q(["pin", "ls", tree + "/sub"])
            try q(["pin", "ls", node])
            try q(["pin", "verify", "--verbose"])
            try q(["pin", "update", tree, node])
            try q(["pin", "rm", node])
            try q(["pin", "rm", node])
            try q(["pin", "policies"])
            try q(["pin", "policies", "--json"])
            try q(["block", "rm", raw])
            try q(["pin", "rm", raw])
            try q(["block", "rm", raw])
            try q(["block", "rm", raw])
            // Qindex pointers.
            try q(["index", "put", "docs", "qstore/guide", tree, "--tag", "v1"])
            try q(["index", "put", "--json", "docs", "qstore/guide", node, "--expected-version", "1"])
            try q(["index", "put", "docs", "qstore/guide", tree, "--expected-version", "1"])
            try q(["index", "put", "docs", "other", node, "--expected-version", "0"])
            try q(["index", "put", "docs", "absent", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"])
            try q(["index", "put", "--allow-missing", "docs", "absent", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"])
            try q(["index", "put", "Bad-Type", "k", tree])
            try q(["index", "put", "docs", "k", "not-a-cid"])
            try q(["index", "get", "docs", "qstore/guide"])
            try q(["index", "get", "--json", "docs", "qstore/guide"])
            try q(["index", "get", "-q", "--version", "1", "docs", "qstore/guide"])
            try q(["index", "get", "--at", "2001-01-01T00:00:00Z", "docs", "qstore/guide"])
            try q(["index", "get", "--at", "yesterday", "docs", "qstore/guide"])
            try q(["index", "get", "docs", "no-such-key"])
            try q(["index", "history", "docs", "qstore/guide"])
            try q(["index", "history", "--limit", "1", "docs", "qstore/guide"])
            try q(["index", "history", "--json", "--limit", "1", "--cursor", "2", "docs", "qstore/guide"])
            try q(["index", "history", "--limit", "0", "docs", "qstore/guide"])
            try q(["index", "ls"])
            try q(["index", "ls", "--type", "docs", "--prefix", "qstore/", "--json"])
            try q(["index", "ls", "--limit", "1"])
            try q(["index", "ls", "--tag", "v1"])
            try q(["index", "ls", "--target", node])
            try q(["index", "ls", "--sort", "size"])
            let head = try q(["index", "get", "--json", "docs", "other"])
            let record = (try? JSONSerialization.jsonObject(with: Data(head.utf8)) as? [String: Any])?["record"] as? String ?? ""
            let records = work + "/records.car"
            _ = FileManager.default.createFile(atPath: records, contents: nil)
            let exportRecords = Process()
            exportRecords.executableURL = URL(fileURLWithPath: ChildDaemon.binary)
            exportRecords.arguments = ["dag", "export", record]
            exportRecords.environment = ChildEnvironment.with(["QSTORE_PATH": repository, "HOME": dir])
            exportRecords.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: records))
            try exportRecords.run()
            exportRecords.waitUntilExit()
            try q(["index", "rm", "docs", "other"])
            try q(["index", "rm", "--expected-version", "7", "docs", "qstore/guide"])
            try q(["index", "get", "docs", "other"])
            try q(["index", "import", records])
            try q(["index", "import", "--json", records])
            try q(["index", "import", car])
            // IPNS names and keys.
            try q(["key", "gen", "site"])
            try q(["key", "gen", "site"])
            try q(["key", "gen", "--type", "rsa", "other"])
            try q(["key", "ls", "-l"])
            try q(["name", "publish", "--key", "site", "--ttl", "90s", "/ipfs/" + tree])
            try q(["name", "publish", "-Q", "--key", "site", tree])
            try q(["name", "publish", "--key", "site", "--lifetime", "0s", tree])
            try q(["name", "publish", "--lifetime", "forever", tree])
            try q(["name", "publish", "/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"])
            try q(["name", "publish", "--key", "nope", tree])
            let keyList = try JSONSerialization.jsonObject(with: Data(try q(["key", "ls", "--json"]).utf8)) as? [String: Any]
            let siteName = (keyList?["Keys"] as? [[String: Any]])?.first { $0["Name"] as? String == "site" }?["Id"] as? String ?? ""
            try q(["name", "resolve", siteName])
            try q(["name", "resolve", "--json", "/ipns/" + siteName])
            try q(["name", "resolve", "k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w"])
            try q(["routing", "get", "/ipfs/" + tree])
            try q(["index", "publish", "docs", "qstore/guide", "--key", "site"])
            try q(["index", "publish", "docs", "no-such-key"])
            try q(["key", "rename", "site", "blog"])
            try q(["key", "rm", "self"])
            try q(["key", "rm", "blog"])
            try q(["key", "ls"])
            // Identities, grants and tokens.
            let alice = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", alice2 = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
            try q(["identity", "add", "alice", "--key", alice, "--label", "Alice"])
            try q(["identity", "add", "alice", "--key", alice])
            try q(["identity", "add", "bad id", "--key", alice])
            try q(["identity", "add", "bob", "--key", "c2hvcnQ="])
            try q(["identity", "rotate-key", "alice", "--key", alice2, "--overlap", "1h"])
            try q(["identity", "show", "alice"])
            try q(["identity", "show", "nobody"])
            let grant = word(try q(["grant", "add", "alice", "--scope", "read,index:write:notes", "--expires", "30d"]), 0)
            try q(["grant", "add", "alice", "--scope", "reed"])
            try q(["grant", "add", "nobody", "--scope", "read"])
            try q(["grant", "ls", "--subject", "alice"])
            try q(["grant", "revoke", grant])
            try q(["grant", "ls", "--all"])
            try q(["token", "create", "--scope", "pin", "--identity", "alice", "--label", "ci"])
            try q(["token", "create", "--scope", "pin", "--identity", "nobody"])
            let tokens = try JSONSerialization.jsonObject(with: Data(try q(["token", "ls", "--json"]).utf8)) as? [String: Any]
            let tokenID = (tokens?["tokens"] as? [[String: Any]])?.first?["id"] as? String ?? ""
            try q(["token", "revoke", tokenID])
            try q(["token", "ls", "--all"])
            try q(["identity", "revoke", "alice"])
            try q(["identity", "ls"])
            // The repository.
            try q(["repo", "stat"])
            try q(["repo", "stat", "-H"])
            try q(["repo", "verify"])
            try q(["repo", "verify", "--json"])
            try q(["repo", "gc"])
            // What `get` wrote.
            for path in (FileManager.default.enumerator(atPath: work + "/out")?.allObjects as? [String] ?? []).sorted() {
                let full = work + "/out/" + path
                let content = (try? FileManager.default.destinationOfSymbolicLink(atPath: full)).map { "-> " + $0 }
                    ?? (isDirectory(full) ? "(dir)" : String(decoding: FileManager.default.contents(atPath: full) ?? Data(), as: UTF8.self).prefix(40).description)
                lines.append("wrote out/\(path): \(content)")
            }
            lines.append("tar bytes: \((try? Data(contentsOf: URL(fileURLWithPath: work + "/out.tar")).count) ?? -1)")
            return lines
        }
        func isDirectory(_ p: String) -> Bool { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: p, isDirectory: &d) && d.boolValue }

        let offlineRepo = dir + "/offline/repo"
        #expect(try Self.qstore(["init"], repository: offlineRepo, home: dir).0 == 0)
        let offline = try transcript(repository: offlineRepo, work: dir + "/offline/work")
        let daemon = try ChildDaemon(directory: dir + "/online", environment: ["QSTORE_AUDIT": "off"])
        defer { daemon.stop() }
        let online = try transcript(repository: daemon.repository, work: dir + "/online/work")
        #expect(offline.count == online.count)
        for (a, b) in zip(offline, online) where a != b {
            Issue.record("the CLI differs with a daemon:\n--- without\n\(a)\n--- with\n\(b)")
        }
        // The transcript is worth comparing: commands succeeded and failed where they should.
        let failures = offline.filter { $0.split(separator: "\n")[0].hasSuffix("→ 1") }.map { String($0.split(separator: "\n")[0]) }
        #expect(failures.count >= 34 && failures.count <= 44, "\(failures.joined(separator: "\n"))")
        #expect(offline.contains { $0.hasPrefix("$ qstore token ls --all → 0") && $0.contains("revoked") }, "the token was revoked")
        #expect(offline.contains { $0.hasPrefix("$ qstore index get docs qstore/guide → 0") && $0.contains("version:  2") }, "the CAS update moved the pointer")
        #expect(offline.contains { $0.contains("wrote out/sub/c.txt: gamma") }, "get wrote the tree")
        #expect(offline.contains { $0.hasPrefix("$ qstore name resolve <ipns-name> → 0") }, "the published name resolved")
        #expect(offline.contains { $0.hasPrefix("$ qstore index publish docs qstore/guide --key site → 0") && $0.contains("(sequence 2)") }, "the pointer's version is the sequence")
    }

    /// Output with what differs between two repositories in the same state masked: record CIDs
    /// (signed by each node's own key, at its own time), times, signatures and node identities.
    static func maskRecords(_ text: String) -> String {
        var out = text
        for (pattern, template) in [
            (#""(record|prev|pub|sig|nonce|squidId|root)":"[^"]*""#, #""$1":"<masked>""#), (#""ts":[0-9]+"#, #""ts":0"#),
            (#"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"#, "<time>"),
            (#"(record|prev|merged|author|signed|head is version \d+)(:? *|\s\(?)(ed25519 )?[A-Za-z0-9+/=]{20,}"#, "$1$2$3<masked>"),
            (#"(\t)bafyrei[a-z2-7]+$"#, "$1<record>"),
            (#"k51[a-z0-9]{50,}"#, "<ipns-name>"),
            (#"\bg[0-9a-f]{16}\b"#, "<grant>"), (#"\bt[0-9a-f]{16}\b"#, "<token-id>"), (#"qst_[A-Za-z0-9_-]{43}"#, "<token>"),
        ] {
            out = (try? NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines]))
                .map { $0.stringByReplacingMatches(in: out, range: NSRange(out.startIndex..., in: out), withTemplate: template) } ?? out
        }
        return out
    }

    /// The allocator setting is checked before any command runs: a bad value is named. (The
    /// repository is absent and `--no-init` given, so a daemon that ignored the setting would
    /// still stop, on the missing repository, and fail this test instead of hanging it.)
    @Test func daemonRefusesABadMallocArenaSetting() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for bad in ["lots", "-1", "5000"] {
            let (rc, out) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["daemon", "--no-init", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0"],
                                                          environment: ["QSTORE_PATH": dir + "/repo", "HOME": dir, "QSTORE_MALLOC_ARENAS": bad])
            #expect(rc != 0)
            #expect(out.contains("QSTORE_MALLOC_ARENAS=\(bad)"), "\(out)")
        }
    }

    /// A CARv2 whose index is not a known multicodec index (go-car's legacy ones) is still read
    /// from its data payload, with a warning, as go-car does: inspect and import succeed.
    @Test func carv2WithAnUnknownIndexIsReadFromItsPayload() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let repo = dir + "/repo"
        #expect(try Self.qstore(["init"], repository: repo, home: dir).0 == 0)
        let source = try #require(Fixtures.files(under: "car", suffix: ".car").first { (try? Fixtures.json(URL(fileURLWithPath: $0.path + ".manifest.json")) as? [String: Any])?["blocksError"] is NSNull },
                                  "a CAR fixture that reads whole")
        let v2 = dir + "/v2.car"
        let (rc, out) = try Self.qstore(["car", "convert", source.path, v2], repository: repo, home: dir)
        try #require(rc == 0, "\(out)")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: v2)))
        // The CARv2 header: pragma (11 bytes), characteristics (16), data offset, data size, index offset (u64 LE).
        var offset: UInt64 = 0
        for i in 0..<8 { offset |= UInt64(bytes[43 + i]) << UInt64(8 * i) }
        let indexOffset = Int(offset)
        try #require(indexOffset > 0 && indexOffset + 2 <= bytes.count)
        bytes[indexOffset] = 0x80; bytes[indexOffset + 1] = 0x06  // multicodec 0x0300: not an index format
        try Data(bytes).write(to: URL(fileURLWithPath: v2))
        let (inspectRC, inspect) = try Self.qstore(["car", "inspect", v2], repository: repo, home: dir)
        #expect(inspectRC == 0 && inspect.contains("warning") && inspect.contains("all verified"), "\(inspect)")
        let (importRC, imported) = try Self.qstore(["dag", "import", v2], repository: repo, home: dir)
        #expect(importRC == 0, "\(imported)")
    }
}
