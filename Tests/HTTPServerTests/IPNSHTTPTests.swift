import Foundation
import Testing
import TestSupport

/// IPNS over loopback HTTP against a real daemon: Kubo's `key/*`, `name/*` and `routing/*`, the
/// gateway's `/ipns/` and `?format=ipns-record`, a Qindex pointer published as a name, and the
/// records checked by an independent verifier (Python `cryptography`, Tests/E2E/verify_ipns.py).
@Suite struct IPNSHTTPTests {
    static func stored(_ h: DaemonHarness, _ text: String) async throws -> String {
        let (one, type) = DaemonHarness.multipart([Array(text.utf8)])
        let put = try await h.rpc("block/put", body: one, headers: ["Content-Type": type])
        return try #require(try put.json()["Key"] as? String, "\(put.text)")
    }

    @Test func keysNamesAndTheGateway() async throws {
        try await DaemonHarness.run { h in
            let cid = try await Self.stored(h, "hello ipns")
            // Keys: self and a new one; a second key of the same name is refused.
            let gen = try await h.rpc("key/gen?arg=site&type=ed25519")
            #expect(gen.status == 200, "\(gen.text)")
            let siteID = try #require(try gen.json()["Id"] as? String)
            #expect(siteID.hasPrefix("k51"))
            #expect(try await h.rpc("key/gen?arg=site").status == 409)
            #expect(try await h.rpc("key/gen?arg=other&type=rsa").status == 501)
            #expect(try await h.rpc("key/gen?arg=.hidden").status == 400)
            let list = try await h.rpc("key/list")
            let names = try (list.json()["Keys"] as? [[String: Any]] ?? []).compactMap { $0["Name"] as? String }
            #expect(names == ["self", "site"], "\(list.text)")

            // Publish and resolve.
            let pub = try await h.rpc("name/publish?arg=/ipfs/\(cid)&key=site&lifetime=2h&ttl=90s")
            #expect(try pub.json()["Name"] as? String == siteID && pub.json()["Value"] as? String == "/ipfs/\(cid)", "\(pub.text)")
            let resolved = try await h.rpc("name/resolve?arg=/ipns/\(siteID)")
            #expect(try resolved.json()["Path"] as? String == "/ipfs/\(cid)", "\(resolved.text)")
            // Bad input: a duration, an absent block (resolve=true by default), an unknown key, a bad path.
            #expect(try await h.rpc("name/publish?arg=/ipfs/\(cid)&lifetime=forever").status == 400)
            #expect(try await h.rpc("name/publish?arg=/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").status == 500, "a missing block is 500 on the RPC, as Kubo")
            #expect(try await h.rpc("name/publish?arg=/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy&resolve=false").status == 200)
            #expect(try await h.rpc("name/publish?arg=/ipfs/\(cid)&key=nope").status == 404)
            #expect(try await h.rpc("name/publish?arg=/nope/\(cid)").status == 400)
            #expect(try await h.rpc("name/publish?arg=/ipfs/\(cid)&lifetime=0s").status == 400)
            #expect(try await h.rpc("name/resolve?arg=k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w").status == 404)
            #expect(try await h.rpc("name/resolve?arg=not-a-name").status == 400)

            // The gateway serves the content under the name, cached for the record's TTL.
            let raw = try await h.request("/ipns/\(siteID)?format=raw")
            #expect(raw.status == 200 && raw.text == "hello ipns", "\(raw.status) \(raw.text)")
            #expect(raw.header("Cache-Control") == "public, max-age=90")
            #expect(raw.header("X-Ipfs-Path") == "/ipns/\(siteID)")
            let missing = try await h.request("/ipns/k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w")
            #expect(missing.status == 404, "\(missing.status) \(missing.text)")
            let notAName = try await h.request("/ipns/not-a-name")
            #expect(notAName.status == 400, "\(notAName.status) \(notAName.text)")

            // The signed record, by format and by Accept; checked independently.
            let record = try await h.request("/ipns/\(siteID)?format=ipns-record")
            #expect(record.status == 200 && record.header("Content-Type") == "application/vnd.ipfs.ipns-record")
            let byAccept = try await h.request("/ipns/\(siteID)", headers: ["Accept": "application/vnd.ipfs.ipns-record"])
            #expect(byAccept.body == record.body)
            let unchanged = try await h.request("/ipns/\(siteID)?format=ipns-record", headers: ["If-None-Match": record.header("ETag") ?? "none"])
            #expect(unchanged.status == 304)
            let verdict = try Self.verify(name: siteID, record: record.body)
            #expect(verdict["valid"] as? Bool == true && verdict["validV1"] as? Bool == true, "\(verdict)")
            #expect(verdict["value"] as? String == "/ipfs/\(cid)" && verdict["sequence"] as? Int == 0)
            #expect((verdict["size"] as? Int ?? .max) <= 10 * 1024)

            // A directory under a name: its redirect and listing are cached for the TTL, never as immutable.
            let (dirBody, dirType) = DaemonHarness.multipart([Array("in a directory".utf8)])
            let added = try await h.rpc("add?wrap-with-directory=true&cid-version=1", body: dirBody, headers: ["Content-Type": dirType])
            let dirCID = try #require(added.jsonLines().last?["Hash"] as? String, "\(added.text)")
            _ = try await h.rpc("name/publish?arg=/ipfs/\(dirCID)&key=site&ttl=120s")
            let redirect = try await h.request("/ipns/\(siteID)")
            #expect(redirect.status == 301 && redirect.header("Cache-Control") == "public, max-age=120", "\(redirect.status) \(redirect.header("Cache-Control") ?? "")")
            let listing = try await h.request("/ipns/\(siteID)/")
            #expect(listing.status == 200 && listing.header("Cache-Control") == "public, max-age=120", "\(listing.status) \(listing.header("Cache-Control") ?? "")")
            _ = try await h.rpc("name/publish?arg=/ipfs/\(cid)&key=site")

            // Publishing again counts the sequence up.
            _ = try await h.rpc("name/publish?arg=\(cid)&key=site")
            let again = try await h.request("/ipns/\(siteID)?format=ipns-record")
            #expect(try Self.verify(name: siteID, record: again.body)["sequence"] as? Int == 3)

            // Rename and remove keys; self stays.
            let renamed = try await h.rpc("key/rename?arg=site&arg=blog")
            #expect(try renamed.json()["Now"] as? String == "blog" && renamed.json()["Id"] as? String == siteID, "\(renamed.text)")
            #expect(try await h.rpc("key/rm?arg=self").status == 400)
            let removed = try await h.rpc("key/rm?arg=blog")
            #expect(try (removed.json()["Keys"] as? [[String: Any]])?.first?["Id"] as? String == siteID)
            // The name's record stays resolvable after its key is gone (like any imported record).
            #expect(try await h.rpc("name/resolve?arg=\(siteID)").status == 200)
        }
    }

    /// Every fixture record is accepted by `routing/put` exactly when its manifest says it is
    /// valid, and then resolves to its manifest's value.
    @Test func fixtureRecordsThroughRoutingPut() async throws {
        let files = Fixtures.files(under: "gateway-conformance", suffix: ".ipns-record")
        #expect(!files.isEmpty)
        try await DaemonHarness.run { h in
            for file in files {
                let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file.path + ".manifest.json"))) as? [String: Any])
                let name = try #require(manifest["name"] as? String)
                let (body, type) = DaemonHarness.multipart([[UInt8](try Data(contentsOf: file))])
                let put = try await h.rpc("routing/put?arg=/ipns/\(name)", body: body, headers: ["Content-Type": type])
                if manifest["expectedValid"] as? Bool == true {
                    #expect(put.status == 200, "\(file.lastPathComponent): \(put.text)")
                    let value = (manifest["data"] as? [String: Any])?["Value"] as? String
                    let resolved = try await h.rpc("name/resolve?arg=\(name)&recursive=false")
                    #expect(try resolved.json()["Path"] as? String == value, "\(resolved.text)")
                    let back = try await h.rpc("routing/get?arg=/ipns/\(name)")
                    let event = try back.json()
                    #expect(event["Type"] as? Int == 5 && event["Responses"] is NSNull, "\(back.text)")
                    #expect(Data(base64Encoded: event["Extra"] as? String ?? "") == (try Data(contentsOf: file)), "Kubo's shape: the record in Extra")
                } else {
                    #expect(put.status == 400, "\(file.lastPathComponent) was accepted: \(put.status) \(put.text)")
                    #expect(try await h.rpc("name/resolve?arg=\(name)").status == 404)
                }
            }
        }
    }

    /// A Qindex pointer published as a name: its target is the value and its version the sequence.
    @Test func aPointerPublishedAsAName() async throws {
        try await DaemonHarness.run { h in
            let a = try await Self.stored(h, "pointer a"), b = try await Self.stored(h, "pointer b")
            func put(_ cid: String) async throws {
                let r = try await h.request("/q/v1/index/site/home", method: "PUT", api: true, headers: ["Content-Type": "application/json"],
                                            body: [UInt8](try JSONSerialization.data(withJSONObject: ["cid": cid])))
                #expect(r.status < 300, "\(r.text)")
            }
            try await put(a)
            try await put(b)
            let pub = try await h.request("/q/v1/index/site/home/publish?ttl=5m", method: "POST", api: true)
            #expect(pub.status == 200, "\(pub.text)")
            let data = try #require(try pub.json()["data"] as? [String: Any])
            let name = try #require(data["name"] as? String)
            #expect(data["value"] as? String == "/ipfs/\(b)" && data["sequence"] as? Int == 2)
            let served = try await h.request("/ipns/\(name)?format=raw")
            #expect(served.text == "pointer b" && served.header("Cache-Control") == "public, max-age=300")
            // Unknown pointer: 404 QINDEX_NOT_FOUND; bad duration: 400.
            let unknown = try await h.request("/q/v1/index/site/nothing/publish", method: "POST", api: true)
            let unknownCode = try unknown.json()["code"] as? String
            #expect(unknown.status == 404 && unknownCode == "QINDEX_NOT_FOUND", "\(unknown.text)")
            let bad = try await h.request("/q/v1/index/site/home/publish?lifetime=soon", method: "POST", api: true)
            #expect(bad.status == 400, "\(bad.text)")
        }
    }

    static func verify(name: String, record: [UInt8]) throws -> [String: Any] {
        let python = try ThirdPartyClientTests.python()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ipns-\(UUID().uuidString).record")
        try Data(record).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = Fixtures.repositoryRoot + "/Tests/E2E/verify_ipns.py"
        let (rc, out) = try ThirdPartyClientTests.run(python, [script, name, file.path])
        try #require(rc == 0, "verify_ipns.py failed: \(out)")
        return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
    }
}
