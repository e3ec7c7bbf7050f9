import Audit
import CAR
import HTTPServer
import Foundation
import IPLD
import Multiformats
import Storage
import Testing
import TestSupport

@Suite(.serialized) struct KuboRPCTests {
    @Test func authIsRequiredExceptForHealth() async throws {
        let d = try await DaemonHarness()
        let missing = try await d.rpc("version", authorized: false)
        #expect(missing.status == 401)
        #expect(try missing.json()["Type"] as? String == "error")
        let wrong = try await d.rpc("version", headers: ["Authorization": "Bearer nope"], authorized: false)
        #expect(wrong.status == 401)
        #expect(try await d.request("/health", api: true, authorized: false).status == 200)
        let health = try await d.request("/health").json()
        #expect(health["status"] as? String == "ok")
        #expect((health["repository"] as? [String: Any])?["store"] as? String == "ok")
        // The gateway may face the public: its /health does not tell where the repository is.
        #expect((health["repository"] as? [String: Any])?["path"] == nil)
        let apiHealth = try await d.request("/health", api: true, authorized: false).json()
        #expect((apiHealth["repository"] as? [String: Any])?["path"] as? String == d.repository.path)
        // The open OpenAPI document answers HEAD as GET, without credentials.
        let yaml = try await d.request("/q/v1/openapi.yaml", method: "HEAD", api: true, authorized: false)
        #expect(yaml.status == 200 && yaml.header("Content-Type") == "application/yaml", "\(yaml.status)")
        await d.stop()
    }

    @Test func versionAndIdHaveKuboShapes() async throws {
        let d = try await DaemonHarness()
        let v = try await d.rpc("version").json()
        #expect(v["Version"] as? String != nil && v["Repo"] as? String == String(Repository.currentVersion))
        let id = try await d.rpc("id").json()
        #expect(id["ID"] as? String == d.repository.identity.peerID)
        #expect(try await d.request("/api/v0/version", api: true).status == 405)
        await d.stop()
    }

    @Test func blockPutGetStatRemove() async throws {
        let d = try await DaemonHarness()
        let data = Array("hello block".utf8)
        let (body, type) = DaemonHarness.multipart([data, Array("second".utf8)])
        let put = try await d.rpc("block/put?cid-codec=raw&mhtype=sha2-256", body: body, headers: ["Content-Type": type])
        #expect(put.status == 200)
        let lines = try put.jsonLines()
        #expect(lines.count == 2)
        let cid = try #require(lines[0]["Key"] as? String)
        #expect(lines[0]["Size"] as? Int == data.count)
        let expected = try Block(data: data).cid.string
        #expect(cid == expected)
        #expect(try await d.rpc("block/get?arg=\(cid)").body == data)
        #expect(try await d.rpc("block/stat?arg=\(cid)").json()["Size"] as? Int == data.count)
        let rm = try await d.rpc("block/rm?arg=\(cid)").json()
        #expect(rm["Hash"] as? String == cid && rm["Error"] as? String == "")
        let gone = try await d.rpc("block/stat?arg=\(cid)")
        #expect(gone.status == 500, "Kubo's status for a missing block")
        #expect(try gone.json()["Type"] as? String == "error")
        // Kubo's deprecated format=v0: a dag-pb CIDv0.
        let pb = try DAGPB.encodeNode(PBNode(data: [8, 1]))
        let (b2, t2) = DaemonHarness.multipart([pb])
        let v0 = try Block(data: pb, codec: .dagPB).cid.toV0().string
        #expect(try await d.rpc("block/put?format=v0", body: b2, headers: ["Content-Type": t2]).jsonLines().first?["Key"] as? String == v0)
        await d.stop()
    }

    /// `Expect: 100-continue`: an admitted upload gets `100 Continue` before it sends its body
    /// (curl waits a second for it), then its answer; a refused one gets its final status instead.
    @Test func anUploadThatExpectsContinueGetsIt() async throws {
        let d = try await DaemonHarness()
        let (body, type) = DaemonHarness.multipart([Array("continued".utf8)])
        for authorized in [true, false] {
            let c = try RawConnection(port: d.apiPort)
            try c.send("POST /api/v0/block/put HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (authorized ? "Authorization: Bearer \(d.token)\r\n" : "")
                       + "Content-Type: \(type)\r\nContent-Length: \(body.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            // What comes before the body is sent (curl would wait a second, then send it anyway).
            let first = try await ThirdPartyClientTests.aside { () -> String in
                var seen: [UInt8] = []
                let deadline = Date().addingTimeInterval(5)
                while Date() < deadline, !String(decoding: seen, as: UTF8.self).contains("\r\n\r\n") {
                    let (got, end) = c.receive(upTo: 4096, timeout: 1)
                    seen += got
                    if end == .end || end == .failed { break }
                }
                return String(decoding: seen, as: UTF8.self)
            }
            if authorized {
                #expect(first.hasPrefix("HTTP/1.1 100 Continue\r\n"), "\(first)")
                try c.send(body)
                let (_, rest) = try await ThirdPartyClientTests.aside { c.readUntilClosed(timeout: 30) }
                let text = first + String(decoding: rest, as: UTF8.self)
                let cid = try Block(data: Array("continued".utf8)).cid.string
                #expect(text.contains("HTTP/1.1 200") && text.contains(cid), "\(text)")
            } else {
                #expect(first.hasPrefix("HTTP/1.1 401"), "\(first)")
            }
            c.close()
        }
        await d.stop()
    }

    /// `get` of a tree whose tar would stop on its way (an entry name that would escape the
    /// archive, a node missing) answers with an error status and Kubo's message before any byte,
    /// instead of a 200 cut short, which the command line could only report as "ended early".
    @Test func getChecksTheTreeBeforeItStreams() async throws {
        let d = try await DaemonHarness()
        let (file, type) = DaemonHarness.multipart([Array("inside".utf8)])
        let leaf = try #require(try await d.rpc("block/put", body: file, headers: ["Content-Type": type]).jsonLines().first?["Key"] as? String)
        func directory(_ name: String, _ target: CID) async throws -> String {
            let node = try DAGPB.encodeNode(PBNode(links: [PBLink(hash: target, name: name, tsize: 6)], data: [8, 1]))
            let (body, t) = DaemonHarness.multipart([node])
            return try #require(try await d.rpc("block/put?cid-codec=dag-pb", body: body, headers: ["Content-Type": t]).jsonLines().first?["Key"] as? String)
        }
        let evil = try await directory("../evil", try CID(leaf))
        let unsafe = try await d.rpc("get?arg=\(evil)")
        #expect(unsafe.status == 400 && unsafe.text.contains("unsafe entry name"), "\(unsafe.status) \(unsafe.text)")
        let missing = try await directory("gone", try Block(data: Array("never stored".utf8)).cid)
        let absent = try await d.rpc("get?arg=\(missing)")
        #expect(absent.status != 200 && absent.text.contains("Message"), "\(absent.status) \(absent.text)")
        let fine = try await directory("ok", try CID(leaf))
        #expect(try await d.rpc("get?arg=\(fine)").status == 200)
        await d.stop()
    }

    /// A request's file parts are one commit: a part that does not parse as its codec refuses
    /// the request and stores none of them, the one before it included (Kubo keeps those).
    @Test func aRequestsBlocksAreStoredTogetherOrNotAtAll() async throws {
        let d = try await DaemonHarness()
        let good = try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: [("a", .int(1))])))
        let other = try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: [("b", .int(2))])))
        let (bad, type) = DaemonHarness.multipart([good, [0xFF, 0x00]])
        let refused = try await d.rpc("block/put?cid-codec=dag-cbor", body: bad, headers: ["Content-Type": type])
        #expect(refused.status == 400)
        let cid = try Block(data: good, codec: .dagCBOR).cid
        #expect(try !d.repository.blocks.has(cid), "the part before the bad one was stored")
        let (both, t) = DaemonHarness.multipart([good, other])
        let lines = try await d.rpc("block/put?cid-codec=dag-cbor", body: both, headers: ["Content-Type": t]).jsonLines()
        #expect(lines.compactMap { $0["Key"] as? String } == [cid.string, try Block(data: other, codec: .dagCBOR).cid.string])
        #expect(try d.repository.blocks.has(cid))
        await d.stop()
    }

    @Test func badInputGetsAClearErrorAndChangesNothing() async throws {
        var limits = ServerLimits()
        limits.maximumBlockRequest = 1000
        let d = try await DaemonHarness(limits: limits)
        let bad = try await d.rpc("block/stat?arg=notacid")
        #expect(bad.status == 400)
        #expect(try bad.json()["Message"] as? String != nil)
        let (big, type) = DaemonHarness.multipart([[UInt8](repeating: 1, count: 200_000)])
        #expect(try await d.rpc("block/put", body: big, headers: ["Content-Type": type]).status == 413)
        let (ok, t) = DaemonHarness.multipart([[1, 2, 3]])
        #expect(try await d.rpc("block/put", body: Array(ok.prefix(ok.count - 30)), headers: ["Content-Type": t]).status == 400, "truncated multipart")
        #expect(try await d.rpc("block/put", body: [1, 2, 3], headers: ["Content-Type": "application/octet-stream"]).status == 400)
        #expect(try await d.rpc("dag/put", body: DaemonHarness.multipart([Array("{not json".utf8)]).body, headers: ["Content-Type": t]).status == 400)
        #expect(try await d.rpc("nonexistent").status == 404)
        var count = 0
        try d.repository.blocks.forEach { _ in count += 1; return true }
        #expect(count == 0, "refused requests stored nothing")
        // Still serving.
        #expect(try await d.rpc("version").status == 200)
        await d.stop()
    }

    @Test func dagPutGetExportImport() async throws {
        // The audit log off: `repo stat` below counts the DAGs' blocks alone.
        var configuration = Configuration()
        var audit = AuditConfiguration()
        audit.enabled = false
        try configuration.setSection(audit)
        let d = try await DaemonHarness(configuration: configuration)
        let (leafBody, type) = DaemonHarness.multipart([Array(#"{"leaf": true}"#.utf8)])
        let leaf = try #require(try await d.rpc("dag/put", body: leafBody, headers: ["Content-Type": type]).json()["Cid"] as? [String: Any])["/"] as! String
        let doc = #"{"name": "q-docs", "child": {"/": "\#(leaf)"}, "n": [1, 2]}"#
        let (docBody, _) = DaemonHarness.multipart([Array(doc.utf8)])
        let root = try #require(try await d.rpc("dag/put?store-codec=dag-cbor&input-codec=dag-json", body: docBody, headers: ["Content-Type": type]).json()["Cid"] as? [String: Any])["/"] as! String
        #expect(try await d.rpc("dag/get?arg=\(root)/n/1").text == "2")
        #expect(try await d.rpc("dag/get?arg=\(root)/child/leaf").text == "true")
        let car = try await d.rpc("dag/export?arg=\(root)")
        #expect(car.status == 200)
        var reader = try CARReader(BytesSource(car.body))
        var cids: [String] = []
        while let b = try reader.next() { cids.append(b.cid.string) }
        #expect(cids == [root, leaf])
        // Import a fixture CAR through the API.
        let fixture = Fixtures.url("car/carv1-basic.car")
        let (importBody, importType) = DaemonHarness.multipart([try Fixtures.bytes(fixture)])
        let imported = try await d.rpc("dag/import?stats=true", body: importBody, headers: ["Content-Type": importType]).jsonLines()
        #expect(imported.compactMap { (($0["Root"] as? [String: Any])?["Cid"] as? [String: Any])?["/"] as? String }.count == 2)
        #expect((imported.last?["Stats"] as? [String: Any])?["BlockCount"] as? Int == 8)
        let stat = try await d.rpc("repo/stat").json()
        #expect(stat["NumObjects"] as? Int == 10)
        #expect(try await d.rpc("repo/verify").status == 200)
        // A truncated CAR is refused.
        let (truncated, tt) = DaemonHarness.multipart([Array(try Fixtures.bytes(fixture).prefix(300))])
        #expect(try await d.rpc("dag/import", body: truncated, headers: ["Content-Type": tt]).status == 400)
        await d.stop()
    }

    @Test func metricsArePrometheusText() async throws {
        let d = try await DaemonHarness()
        _ = try await d.rpc("version")
        let m = try await d.request("/metrics", api: true)
        #expect(m.status == 200)
        #expect(m.text.contains("hb_requests"))
        #expect(m.text.contains("qstore_blocks_stored"))
        // The bounded caches are reported (the soak judges the daemon's memory net of them).
        func value(_ name: String) -> Double? {
            m.text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        #expect((value("qstore_leveldb_memory_bytes") ?? 0) > 0, "LevelDB's memory is reported")
        #expect(value("qstore_hot_block_bytes") != nil && value("qstore_hot_block_hits") != nil)
        #expect(try await d.request("/metrics", api: true, authorized: false).status == 401)
        await d.stop()
    }
}

@Suite(.serialized) struct FileRPCTests {
    @Test func addCatLsGet() async throws {
        let d = try await DaemonHarness()
        let (body, type) = DaemonHarness.multipart([Array("hello world\n".utf8)])
        let added = try await d.rpc("add", body: body, headers: ["Content-Type": type]).jsonLines()
        #expect(added.first?["Hash"] as? String == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", "Kubo's CID for hello world")
        #expect(added.first?["Name"] as? String == "f0")
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let (b2, t2) = DaemonHarness.multipart([big])
        let v1 = try #require(try await d.rpc("add?cid-version=1", body: b2, headers: ["Content-Type": t2]).jsonLines().first?["Hash"] as? String)
        #expect(v1.hasPrefix("bafybei"))
        #expect(try await d.rpc("cat?arg=\(v1)").body == big)
        #expect(try await d.rpc("cat?arg=\(v1)&offset=262140&length=10").body == Array(big[262140..<262150]))
        #expect(try await d.rpc("cat?arg=bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").status == 500, "missing block")
        let onlyHash = try await d.rpc("add?only-hash=true&cid-version=1", body: DaemonHarness.multipart([[9, 9, 9]]).body, headers: ["Content-Type": t2]).jsonLines()
        let hashed = try CID(try #require(onlyHash.first?["Hash"] as? String))
        #expect(try !d.repository.blocks.has(hashed), "--only-hash stores nothing")
        // A directory from a fixture CAR: ls and get.
        let (car, ct) = DaemonHarness.multipart([try Fixtures.bytes(Fixtures.url("gateway-conformance/fixtures/path_gateway_unixfs/dir-with-files.car"))])
        let root = try #require((try await d.rpc("dag/import", body: car, headers: ["Content-Type": ct]).jsonLines().first?["Root"] as? [String: Any]).flatMap { ($0["Cid"] as? [String: Any])?["/"] as? String })
        let ls = try await d.rpc("ls?arg=\(root)").json()
        let links = try #require((ls["Objects"] as? [[String: Any]])?.first?["Links"] as? [[String: Any]])
        #expect(links.compactMap { $0["Name"] as? String }.sorted() == ["ascii-copy.txt", "ascii.txt", "hello.txt", "multiblock.txt"])
        #expect(links.allSatisfy { $0["Type"] as? Int == 2 })
        let tar = try await d.rpc("get?arg=\(root)")
        #expect(tar.status == 200 && tar.body.count % 512 == 0)
        #expect(String(decoding: tar.body, as: UTF8.self).contains("\(root)/multiblock.txt"))
        await d.stop()
    }
}

@Suite(.serialized) struct AddProgressRPCTests {
    /// `progress=true`: Kubo's `{"Name","Bytes"}` lines every 256 KiB and at the end of each file,
    /// then its `{"Name","Hash","Size"}` line; an error after the 200 comes as Kubo's error object
    /// on the last line (and the X-Stream-Error trailer when the client sends `TE: trailers`; this
    /// client, FoundationNetworking, cannot read trailers); one before any output keeps its status.
    @Test func progressLinesAndLateErrors() async throws {
        let d = try await DaemonHarness()
        let big = (0..<1_100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let (body, type) = DaemonHarness.multipart([big, Array("small".utf8)])
        let reply = try await d.rpc("add?progress=true&cid-version=1", body: body, headers: ["Content-Type": type])
        #expect(reply.status == 200 && reply.header("X-Chunked-Output") == "1")
        #expect(reply.header("Trailer") == nil, "the X-Stream-Error trailer only for clients that send TE: trailers")
        let lines = try reply.jsonLines()
        let first = lines.filter { $0["Name"] as? String == "f0" }
        let progress = first.compactMap { $0["Bytes"] as? Int }
        #expect(progress == [262_144, 524_288, 786_432, 1_048_576, 1_100_000], "every 256 KiB, then the end")
        #expect(first.last?["Hash"] as? String != nil && first.last?["Bytes"] == nil, "the file's line follows its progress")
        let small = lines.filter { $0["Name"] as? String == "f1" }
        #expect(small.compactMap { $0["Bytes"] as? Int } == [5] && small.last?["Hash"] != nil)
        // Without progress, only the result lines.
        let quiet = try await d.rpc("add?cid-version=1", body: body, headers: ["Content-Type": type]).jsonLines()
        #expect(quiet.count == 2 && quiet.allSatisfy { $0["Hash"] != nil })
        #expect(quiet.map { $0["Hash"] as? String } == lines.filter { $0["Hash"] != nil }.map { $0["Hash"] as? String })
        // A bad second part: the first file was reported, so the error is the last line of a 200.
        let bad = String(decoding: body, as: UTF8.self).replacingOccurrences(of: "filename=\"f1\"", with: "filename=\"..%2Fout\"")
        let late = try await d.rpc("add", body: Array(bad.utf8), headers: ["Content-Type": type])
        #expect(late.status == 200)
        let lateLines = try late.jsonLines()
        #expect(lateLines.first?["Hash"] != nil)
        #expect(lateLines.last?["Type"] as? String == "error" && (lateLines.last?["Message"] as? String)?.contains("unsafe path") == true)
        // curl says TE: trailers and dumps the header block, then the trailer after a blank line.
        let bodyFile = d.directory + "/late-body"
        try Data(bad.utf8).write(to: URL(fileURLWithPath: bodyFile))
        let (rc, raw) = try await ThirdPartyClientTests.runAside("/usr/bin/env", [
            "curl", "-s", "-D", "-", "-o", "/dev/null", "-X", "POST", "-H", "TE: trailers", "-H", "Authorization: Bearer \(d.token)", "-H", "Content-Type: \(type)",
            "--data-binary", "@" + bodyFile, "http://127.0.0.1:\(d.apiPort)/api/v0/add",
        ])
        #expect(rc == 0 && raw.lowercased().contains("trailer: x-stream-error") && raw.lowercased().contains("\r\n\r\nx-stream-error: invalid unixfs: unsafe path"), "curl: \(raw.suffix(400))")
        // A truncated upload and one over the import limit: errors before any output, so 400 and 413.
        #expect(try await d.rpc("add?pin=false", body: Array(body.prefix(400_000)), headers: ["Content-Type": type]).status == 400)
        let limited = try await DaemonHarness(limits: { var l = ServerLimits(); l.maximumImportRequest = 500_000; return l }())
        let over = try await limited.rpc("add", body: body, headers: ["Content-Type": type])
        #expect(over.status == 413 && (try? over.json()["Message"] as? String)?.contains("limit") == true)
        await limited.stop()
        // A client that gives up half way through its upload: the import ends, nothing is pinned,
        // the daemon goes on serving and the repository verifies.
        let slowFile = d.directory + "/slow-upload"
        try Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }).write(to: URL(fileURLWithPath: slowFile))
        let pinsBefore = try await d.rpc("pin/ls?type=recursive").text
        let (abortRC, _) = try await ThirdPartyClientTests.runAside("/usr/bin/env", [
            "curl", "-s", "--max-time", "1", "--limit-rate", "500K", "-X", "POST", "-H", "Authorization: Bearer \(d.token)",
            "-F", "file=@\(slowFile)", "http://127.0.0.1:\(d.apiPort)/api/v0/add",
        ])
        #expect(abortRC == 28, "curl gave up after 1 s (exit 28)")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await d.rpc("version").status == 200)
        #expect(try await d.rpc("pin/ls?type=recursive").text == pinsBefore, "the unfinished add pinned nothing")
        #expect(try await d.rpc("repo/verify").status == 200)
        // No part at all: an error before any output keeps its 400.
        let none = try await d.rpc("add", body: Array("--qstore-test-boundary--\r\n".utf8), headers: ["Content-Type": type])
        #expect(none.status == 400)
        await d.stop()
    }
}

@Suite(.serialized) struct DirectoryAddRPCTests {
    /// Kubo's clients send `ipfs add -r` as parts named by path, directories as application/x-directory.
    @Test func addingATreeOverTheRPCGivesKubosRoot() async throws {
        let d = try await DaemonHarness()
        let source = Fixtures.url("gateway-conformance/tooling-extra/dag-source")
        let expected = try #require((try Fixtures.json(Fixtures.url("gateway-conformance/tooling-extra/dag.car.manifest.json")) as? [String: Any])?["roots"] as? [String]).first
        let boundary = "tree-boundary"
        var body: [UInt8] = []
        func part(_ name: String, _ type: String, _ data: [UInt8]) {
            let encoded = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(encoded)\"\r\nContent-Type: \(type)\r\n\r\n".utf8)
            body += data + Array("\r\n".utf8)
        }
        part("dag-source", "application/x-directory", [])
        part("dag-source/a-file.txt", "application/octet-stream", try Fixtures.bytes(source.appendingPathComponent("a-file.txt")))
        part("dag-source/b-file.txt", "application/octet-stream", try Fixtures.bytes(source.appendingPathComponent("b-file.txt")))
        part("dag-source/subdir", "application/x-directory", [])
        part("dag-source/subdir/leaf.txt", "application/octet-stream", try Fixtures.bytes(source.appendingPathComponent("subdir/leaf.txt")))
        body += Array("--\(boundary)--\r\n".utf8)
        let reply = try await d.rpc("add?cid-version=1", body: body, headers: ["Content-Type": "multipart/form-data; boundary=\(boundary)"])
        let lines = try reply.jsonLines()
        #expect(lines.last?["Name"] as? String == "dag-source")
        #expect(lines.last?["Hash"] as? String == expected)
        #expect(lines.contains { $0["Name"] as? String == "dag-source/subdir" })
        // Wrapped, and a path escaping the root refused.
        let wrapped = try await d.rpc("add?cid-version=1&wrap-with-directory=true", body: body, headers: ["Content-Type": "multipart/form-data; boundary=\(boundary)"]).jsonLines()
        #expect(wrapped.last?["Name"] as? String == "")
        let (evil, _) = DaemonHarness.multipart([[1]])
        let evilBody = String(decoding: evil, as: UTF8.self).replacingOccurrences(of: "filename=\"f0\"", with: "filename=\"..%2Fescape\"")
        let refused = try await d.rpc("add", body: Array(evilBody.utf8) , headers: ["Content-Type": "multipart/form-data; boundary=qstore-test-boundary"])
        #expect(refused.status == 400)
        await d.stop()
    }
}
