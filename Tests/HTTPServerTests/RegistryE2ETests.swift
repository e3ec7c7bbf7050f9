import CAR
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Multiformats
import Node
import Qindex
import Registry
import Signing
import Storage
import Testing
import TestSupport

/// The module registry end to end: the `qstore` binary publishing through a running daemon
/// (another process), the Q API and the gateway's docs route over loopback, a forged history
/// imported through the pointer API caught by verify, and a batch publication killed with
/// SIGKILL and run again.
@Suite(.serialized) struct RegistryE2ETests {
    /// A module directory under `root`: module.json, package/index.js, docs/index.html, docs/guide/start.md.
    static func module(_ root: String, _ name: String, _ version: String, deps: [(String, String)] = [], status: String? = nil) throws -> String {
        let dir = root + "/\(name)-\(version)"
        try FileManager.default.createDirectory(atPath: dir + "/package/lib", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/docs/guide", withIntermediateDirectories: true)
        try Data("export default '\(name)@\(version)'\n".utf8).write(to: URL(fileURLWithPath: dir + "/package/lib/index.js"))
        try Data("<!doctype html><h1>\(name)</h1>\n".utf8).write(to: URL(fileURLWithPath: dir + "/docs/index.html"))
        try Data((0..<2000).map { "line \($0) of the \(name) \(version) guide\n" }.joined().utf8).write(to: URL(fileURLWithPath: dir + "/docs/guide/start.md"))
        var m: [String: Any] = ["module": name, "version": version, "type": "library", "description": "\(name), for tests",
                                "dependencies": deps.map { ["module": $0.0, "range": $0.1] }]
        if let status { m["status"] = status }
        try JSONSerialization.data(withJSONObject: m).write(to: URL(fileURLWithPath: dir + "/module.json"))
        return dir
    }

    static func qstore(_ args: [String], _ repository: String, home: String) async throws -> (Int32, String) {
        try await ThirdPartyClientTests.runAside(ChildDaemon.binary, args, environment: ["QSTORE_PATH": repository, "HOME": home])
    }

    static func http(_ url: String, method: String = "GET", token: String? = nil, headers: [String: String] = [:], body: Data? = nil) async throws -> (Int, [String: String], Data) {
        var r = URLRequest(url: URL(string: url)!)
        r.httpMethod = method
        if let token { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
        r.httpBody = body
        let (data, response) = try await DaemonHarness.session.data(for: r)
        let h = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (k, v) in h.allHeaderFields { fields[String(describing: k).lowercased()] = String(describing: v) }
        return (h.statusCode, fields, data)
    }

    static func json(_ data: Data) throws -> [String: Any] { try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]) }

    @Test func publishPromoteYankAndDocsThroughADaemon() async throws {
        let daemon = try ChildDaemon()
        defer {
            daemon.stop()
            daemon.removeDirectory()
        }
        let src = daemon.directory + "/src"
        let repo = daemon.repository, home = daemon.directory
        let api = "http://127.0.0.1:\(daemon.apiPort)", gateway = "http://127.0.0.1:\(daemon.gatewayPort)"
        for dir in [try Self.module(src, "q-core", "1.0.0", status: "PRODUCTION"), try Self.module(src, "q-core", "1.1.0", status: "PRODUCTION"),
                    try Self.module(src, "q-ui", "0.1.0", deps: [("q-core", "^1")])] {
            let (rc, out) = try await Self.qstore(["module", "publish", dir], repo, home: home)
            #expect(rc == 0 && out.hasPrefix("published"), "\(out)")
        }
        let app = try Self.module(src, "q-app", "1.0.0", deps: [("q-ui", "~0.1"), ("q-core", "^1.0")])
        var (rc, out) = try await Self.qstore(["module", "publish", "--sandbox", app], repo, home: home)
        #expect(rc == 0, "\(out)")
        // The sandbox resolves against itself and production; production does not see it.
        (rc, out) = try await Self.qstore(["module", "deps", "--sandbox", "--json", "q-app@^1"], repo, home: home)
        let graph = try Self.json(Data(out.utf8))
        let nodes = (graph["nodes"] as? [[String: String]] ?? []).map { "\($0["module"]!)@\($0["version"]!)" }
        #expect(nodes == ["q-app@1.0.0", "q-core@1.1.0", "q-ui@0.1.0"])
        (rc, out) = try await Self.qstore(["module", "show", "q-app"], repo, home: home)
        #expect(rc != 0 && out.contains("no module q-app"))
        var (status, _, body) = try await Self.http(api + "/q/v1/modules/q-app", token: daemon.token)
        #expect(try status == 404 && Self.json(body)["code"] as? String == "MODULE_NOT_FOUND")
        // Promotion needs registry:promote: a publisher's token is refused.
        (rc, out) = try await Self.qstore(["token", "create", "--scope", "read,registry:publish:q-app", "--json"], repo, home: home)
        let publisherToken = try #require((try Self.json(Data(out.utf8)))["token"] as? String)
        (status, _, body) = try await Self.http(api + "/q/v1/modules/q-app@1.0.0/promote", method: "POST", token: publisherToken)
        #expect(status == 403)
        (rc, out) = try await Self.qstore(["module", "promote", "q-app@1.0.0"], repo, home: home)
        #expect(rc == 0 && out.hasPrefix("promoted"), "\(out)")
        (rc, out) = try await Self.qstore(["module", "verify", "q-app"], repo, home: home)
        #expect(rc == 0, "\(out)")
        // A publication that would close a cycle is refused, naming it.
        (rc, out) = try await Self.qstore(["module", "publish", try Self.module(src, "q-core", "1.2.0", deps: [("q-app", "^1")])], repo, home: home)
        #expect(rc != 0 && out.contains("dependency cycle: q-core@1.2.0 → q-app@1.0.0 → q-"), "\(out)")
        // A yanked version is skipped by resolution, still there when asked for exactly.
        (rc, out) = try await Self.qstore(["module", "yank", "q-core@1.1.0", "--reason", "broken build"], repo, home: home)
        #expect(rc == 0 && out.contains("yanked"), "\(out)")
        (status, _, body) = try await Self.http(api + "/q/v1/modules/q-app/graph", token: daemon.token)
        let resolved = ((try Self.json(body))["data"] as? [String: Any])?["nodes"] as? [[String: String]] ?? []
        #expect(resolved.first { $0["module"] == "q-core" }?["version"] == "1.0.0")
        (status, _, body) = try await Self.http(api + "/q/v1/modules/q-core@1.1.0", token: daemon.token)
        #expect(status == 200)
        // Docs: the gateway route serves exactly what /ipfs/ serves for the path it names.
        (rc, out) = try await Self.qstore(["module", "docs", "q-app"], repo, home: home)
        let docs = out.trimmingCharacters(in: .whitespacesAndNewlines)
        let file = try Data(contentsOf: URL(fileURLWithPath: app + "/docs/guide/start.md"))
        let (s1, h1, viaName) = try await Self.http(gateway + "/modules/q-app@%5E1/docs/guide/start.md")
        let (s2, h2, viaCID) = try await Self.http(gateway + "/ipfs/\(docs)/guide/start.md")
        #expect(s1 == 200 && s2 == 200 && viaName == file && viaCID == file)
        #expect(h1["x-ipfs-path"] == "/ipfs/\(docs)/guide/start.md" && h1["cache-control"] == "public, max-age=60")
        #expect(h1["content-type"] == h2["content-type"] && h1["etag"] == h2["etag"] && h2["cache-control"]?.contains("immutable") == true)
        let (s3, _, part) = try await Self.http(gateway + "/modules/q-app/docs/guide/start.md", headers: ["Range": "bytes=100-199"])
        #expect(s3 == 206 && part == file[100..<200])
        let (s4, _, index) = try await Self.http(gateway + "/modules/q-app/docs/")
        let indexFile = try Data(contentsOf: URL(fileURLWithPath: app + "/docs/index.html"))
        #expect(s4 == 200 && index == indexFile)
        #expect(try await Self.http(gateway + "/modules/q-nothing/docs/").0 == 404)
        // The docs fetches are counted.
        (status, _, body) = try await Self.http(api + "/q/v1/modules?q=q-app", token: daemon.token)
        let found = ((try Self.json(body))["data"] as? [String: Any])?["modules"] as? [[String: Any]] ?? []
        #expect((found.first?["fetches"] as? [String: Any])?["docs"] as? Int == 4)
        // The package as a tar stream hashes to the checksum.
        let (s5, h5, tar) = try await Self.http(api + "/q/v1/modules/q-app/package", token: daemon.token)
        let sum = "f1220" + SHA256Hex.of([UInt8](tar))
        #expect(s5 == 200 && h5["x-module-checksum"] == sum)
    }

    /// A history forged elsewhere (another node's signed record naming metadata the publisher
    /// never signed) merges through the pointer import, and verify says so.
    @Test func aForgedHistoryImportedIsCaughtByVerify() async throws {
        let daemon = try ChildDaemon()
        defer {
            daemon.stop()
            daemon.removeDirectory()
        }
        let repo = daemon.repository, home = daemon.directory
        let api = "http://127.0.0.1:\(daemon.apiPort)"
        var (rc, out) = try await Self.qstore(["module", "publish", "--json", try Self.module(home + "/src", "q-core", "1.0.0")], repo, home: home)
        #expect(rc == 0, "\(out)")
        let published = try #require((try Self.json(Data(out.utf8)))["module"] as? [String: Any])
        let (_, _, headBody) = try await Self.http(api + "/q/v1/index/module-version/q-core@1.0.0", token: daemon.token)
        let head = try #require((try Self.json(headBody))["data"] as? [String: Any])
        // The attacker's metadata: another package, signed by the attacker's key.
        let attacker = SigningKey()
        let signedBytes = try await Self.block(api, daemon.token, try CID(published["signed"] as! String))
        let original = try ModuleMetadata(decoding: try await Self.block(api, daemon.token, try SignedModuleMetadata(decoding: signedBytes).metadata))
        var forged = original
        forged.package = try CID("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        let metaBytes = try forged.encoded()
        let metaBlock = try Block(data: metaBytes, codec: .dagCBOR)
        let signedBlock = try Block(data: try SignedModuleMetadata(metadata: metaBlock.cid, bytes: metaBytes, key: attacker, ts: 1).encoded(), codec: .dagCBOR)
        var record = IndexRecord(type: "module-version", key: "q-core@1.0.0", cid: signedBlock.cid, version: (head["version"] as! Int64) + 1,
                                 prev: try CID(head["record"] as! String), tags: ["status:DEVELOPMENT"], createdAt: Timestamps.format(UInt64(Date().timeIntervalSince1970 * 1000)),
                                 author: IdentityRef(squidId: NodeIdentity.peerID(ofPublicKey: attacker.publicKey)))
        record.sign(with: attacker, ts: Int64(Date().timeIntervalSince1970 * 1000))
        var car = try CARWriter(roots: [record.block.cid], sink: ArraySink())
        for b in [record.block, signedBlock, metaBlock] { try car.write(cid: b.cid, data: b.data) }
        let carBytes = Data(try car.finish().bytes)
        // A caller with index:write alone cannot move the registry's pointers this way.
        (rc, out) = try await Self.qstore(["token", "create", "--scope", "index:write", "--json"], repo, home: home)
        let writer = try #require((try Self.json(Data(out.utf8)))["token"] as? String)
        let (refused, _, _) = try await Self.http(api + "/q/v1/index/import", method: "POST", token: writer, body: carBytes)
        #expect(refused == 400)
        // An admin's import merges it (replication will): verify is where a forgery shows.
        let (status, _, merged) = try await Self.http(api + "/q/v1/index/import", method: "POST", token: daemon.token, body: carBytes)
        #expect(status == 200, "\(String(decoding: merged, as: UTF8.self))")
        (rc, out) = try await Self.qstore(["module", "verify", "--json", "q-core"], repo, home: home)
        #expect(rc == 1, "\(out)")
        let report = try Self.json(Data(out.utf8))
        let checks = ((report["versions"] as? [[String: Any]])?.first?["checks"] as? [[String: Any]]) ?? []
        let signature = checks.first { $0["name"] as? String == "signature" }
        #expect(signature?["ok"] as? Bool == false && (signature?["detail"] as? String)?.contains("neither the publisher nor this node") == true, "\(out)")
    }

    static func block(_ api: String, _ token: String, _ cid: CID) async throws -> [UInt8] {
        let (status, _, data) = try await http(api + "/api/v0/block/get?arg=\(cid)", method: "POST", token: token)
        #expect(status == 200)
        return [UInt8](data)
    }

    /// 1,000 module versions published by one `--batch`, killed with SIGKILL part way: every
    /// version that got its pointer verifies (a rerun completes one cut between its pointer and
    /// its pins), the repository verifies clean, and running the batch again publishes the rest.
    @Test func aBatchKilledPartWayLeavesAConsistentRegistry() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-batch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repo = dir + "/repo"
        var lines: [String] = []
        for i in 0..<1000 {
            let name = "q-mod\(i % 250)", version = "1.\(i / 250).0"
            let deps = i % 250 == 0 ? [] : [("q-mod\((i % 250) / 2)", "^1")]
            lines.append(try Self.module(dir + "/src", name, version, deps: deps).replacingOccurrences(of: dir + "/", with: ""))
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/batch.txt"))
        #expect(try await Self.qstore(["init"], repo, home: dir).0 == 0)
        // Killed once some have been published.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ChildDaemon.binary)
        p.arguments = ["module", "publish", "--batch", dir + "/batch.txt"]
        p.environment = ChildEnvironment.with(["QSTORE_PATH": repo, "HOME": dir])
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let reader = pipe.fileHandleForReading
        let seen = try await ThirdPartyClientTests.aside { () -> String in
            var seen = ""
            while seen.components(separatedBy: "published").count < 300 {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                seen += String(decoding: chunk, as: UTF8.self)
            }
            return seen
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        // What was acknowledged is there and verifies; the repository verifies clean.
        let acknowledged = seen.split(separator: "\n").filter { $0.hasPrefix("published\t") }.map { String($0.split(separator: "\t")[1]) }
        #expect(acknowledged.count >= 299)
        do {
            let repository = try Repository(path: repo, purpose: "batch check")
            defer { repository.close() }
            let node = try Node(repository: repository)
            for ref in acknowledged {
                let (name, version) = try Node.moduleVersion(ref)
                let report = try node.verifyModule(name, range: try SemVerRange(version.description))
                #expect(report.count == 1 && report[0].ok, "\(ref): \(report)")
            }
            #expect(try node.verifyRepository().isClean)
        }
        // The batch again: the rest published, what was there found so, nothing failed.
        let (rc, out) = try await Self.qstore(["module", "publish", "--batch", dir + "/batch.txt", "--json"], repo, home: dir)
        #expect(rc == 0, "\(out.prefix(3000))")
        let summary = try Self.json(Data(out.split(separator: "\n").last!.utf8))
        #expect(summary["failed"] as? Int == 0)
        #expect((summary["published"] as? Int ?? 0) + (summary["exists"] as? Int ?? 0) == 1000)
        #expect((summary["exists"] as? Int ?? 0) >= acknowledged.count)
        let repository = try Repository(path: repo, purpose: "batch check")
        defer { repository.close() }
        let node = try Node(repository: repository)
        var search = ModuleSearch()
        search.limit = 1000
        let modules = try node.searchModules(search).modules
        #expect(modules.count == 250 && modules.allSatisfy { $0.versions == 4 && $0.latest.description == "1.3.0" })
        for name in ["q-mod0", "q-mod77", "q-mod249"] { #expect(try node.verifyModule(name).allSatisfy(\.ok)) }
        #expect(try node.verifyRepository().isClean)
    }
}

enum SHA256Hex {
    static func of(_ bytes: [UInt8]) -> String {
        (try! Multihash.compute(bytes, function: .sha2_256)).digest.map { String(format: "%02x", $0) }.joined()
    }
}
