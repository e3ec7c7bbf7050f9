import Audit
import Foundation
import Signing
import Storage
import Testing
import TestSupport

/// The audit log's proofs and checkpoints checked by an independent implementation
/// (Tests/E2E/verify_tlog.py: RFC 9162 and C2SP signed-note in Python, hashlib + `cryptography`).
@Suite struct AuditVerifierTests {
    @Test func pythonVerifiesProofsAndCheckpoints() async throws {
        let python = try ThirdPartyClientTests.python()
        let leaves: [[UInt8]] = (0..<300).map { Array("audit event \($0)".utf8) }
        var tree = MemoryHashes()
        for l in leaves { tree.append(leafHash: MerkleHash.leaf(l)) }
        let sizes: [UInt64] = [1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300]
        var roots: [String: String] = [:]
        for s in sizes { roots[String(s)] = try MerkleTree.root(of: s, tree).map { String(format: "%02x", $0) }.joined() }
        var inclusion: [[String: Any]] = []
        for s in sizes {
            for i in Set([0, s / 2, s - 1]) {
                let proof = try MerkleTree.inclusionProof(index: i, size: s, tree)
                inclusion.append(["index": i, "size": s, "hashes": proof.map { Data($0).base64EncodedString() }])
            }
        }
        var consistency: [[String: Any]] = []
        for (a, b) in zip(sizes, sizes.dropFirst()) + [(1, 300), (8, 300), (100, 257)] {
            let proof = try MerkleTree.consistencyProof(from: a, to: b, tree)
            consistency.append(["from": a, "to": b, "hashes": proof.map { Data($0).base64EncodedString() }])
        }
        let key = SigningKey()
        let name = "qstore.test/audit"
        let note = Checkpoint(origin: name, size: 300, rootHash: try MerkleTree.root(of: 300, tree)).signed(by: key, name: name)
        let spec: [String: Any] = [
            "leaves": leaves.map { $0.map { String(format: "%02x", $0) }.joined() }, "root": roots,
            "inclusion": inclusion, "consistency": consistency,
            "checkpoint": ["note": note, "name": name, "publicKey": Data(key.publicKey).base64EncodedString()],
        ]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tlog-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try JSONSerialization.data(withJSONObject: spec).write(to: file)
        let (rc, out) = try await ThirdPartyClientTests.runAside(python, [Fixtures.repositoryRoot + "/Tests/E2E/verify_tlog.py", file.path])
        #expect(rc == 0 && out.contains("ok:"), "\(out)")
    }
}

/// The audit log as a running daemon serves it.
@Suite struct AuditHTTPTests {
    /// 400 puts (so full tiles and several checkpoints), refusals of three kinds: the independent
    /// Python verifier checks every checkpoint signature (with the key `/api/v0/id` reports), every
    /// event block against its CID, the roots, inclusion and consistency proofs and the tiles.
    @Test func pythonVerifiesTheDaemonsLog() async throws {
        let python = try ThirdPartyClientTests.python()
        try await DaemonHarness.run(configure: { c in
            var a = AuditConfiguration()
            a.checkpointEvery = 97
            try c.setSection(a)
        }) { h in
            for i in 0..<400 {
                let (one, type) = DaemonHarness.multipart([Array("audit http \(i)".utf8)])
                let r = try await h.rpc("block/put?pin=\(i % 50 == 0)", body: one, headers: ["Content-Type": type, "X-Request-Id": "put-\(i)"])
                try #require(r.status == 200, "\(r.text)")
                #expect(r.header("X-Request-Id") == "put-\(i)")
            }
            // Refusals: no credentials (DENY), a wrong token (WARN), a token without the scope (DENY).
            #expect(try await h.request("/q/v1/audit/events", api: true, authorized: false).status == 401)
            #expect(try await h.request("/q/v1/audit/events", api: true, headers: ["Authorization": "Bearer qst_wrong"], authorized: false).status == 401)
            let reader = try await h.token(["read"])
            #expect(try await h.request("/q/v1/audit/events", api: true, headers: ["Authorization": "Bearer \(reader.secret)"], authorized: false).status == 403)
            // An export signs a checkpoint covering everything first.
            let car = try await h.request("/q/v1/audit/export", api: true)
            #expect(car.status == 200 && car.header("Content-Type")?.hasPrefix("application/vnd.ipld.car") == true)

            let (rc, out) = try await ThirdPartyClientTests.runAside(python, [Fixtures.repositoryRoot + "/Tests/E2E/verify_tlog.py", "daemon", "http://127.0.0.1:\(h.apiPort)", h.token])
            #expect(rc == 0 && out.contains("ok:"), "\(out)")

            func events(_ query: String) async throws -> [[String: Any]] {
                let r = try await h.request("/q/v1/audit/events?" + query, api: true)
                try #require(r.status == 200, "\(r.text)")
                return try #require((try r.json()["data"] as? [String: Any])?["events"] as? [[String: Any]])
            }
            let puts = try await events("type=q.block.put.v1&limit=1000")
            #expect(puts.count == 400)
            #expect((puts[7]["event"] as? [String: Any])?["requestId"] as? String == "put-7")
            let denied = try await events("verdict=DENY")
            #expect(denied.compactMap { (($0["event"] as? [String: Any])?["actor"] as? [String: Any])?["squidId"] as? String } == ["anonymous", "token:\(reader.id)"])
            let warned = try await events("verdict=WARN")
            #expect(warned.count == 1 && (warned[0]["event"] as? [String: Any])?["type"] as? String == "q.access.credential.invalid.v1")
            #expect(try await events("type=q.pin.*").count == 8)
            // Bad queries are refused, named.
            let bad = try await h.request("/q/v1/audit/events?verdict=MAYBE", api: true)
            #expect(bad.status == 400 && bad.text.contains("verdict"))
            let past = try await h.request("/q/v1/audit/proof/inclusion?index=0&size=99999", api: true)
            #expect(past.status == 400)
            #expect(try await h.request("/q/v1/audit/tile/0/x1/000", api: true).status == 400)
            #expect(try await h.request("/q/v1/audit/tile/0/999", api: true).status == 404)
            // Numbers are decimal digits only.
            for path in ["tile/+0/000", "tile/00/000", "tile/0/+01", "tile/0/000.p/01", "proof/inclusion?index=%2B5"] {
                #expect(try await h.request("/q/v1/audit/" + path, api: true).status == 400, "\(path)")
            }
            // The node's own request id prefixes are not a client's to use.
            let (one, type) = DaemonHarness.multipart([Array("prefixed".utf8)])
            let forged = try await h.rpc("block/put", body: one, headers: ["Content-Type": type, "X-Request-Id": "req-0000000000000001"])
            #expect(forged.status == 200 && forged.header("X-Request-Id") != "req-0000000000000001")
            // The log's head: not shown to a reader, not removable, named as the log's.
            // (the only direct pin here: the puts above pinned recursively)
            let pins = try await h.rpc("pin/ls?type=direct")
            let headCID = try #require((try pins.json()["Keys"] as? [String: Any])?.keys.first { $0.hasPrefix("bafyrei") }, "\(pins.text)")
            let asReader = try await h.request("/api/v0/pin/ls?arg=" + headCID, method: "POST", api: true,
                                               headers: ["Authorization": "Bearer \(reader.secret)"], authorized: false)
            #expect(asReader.status != 200, "\(asReader.text)")
            for path in ["pin/ls?type=direct", "pin/verify?verbose=true"] {
                let listing = try await h.request("/api/v0/" + path, method: "POST", api: true,
                                                  headers: ["Authorization": "Bearer \(reader.secret)"], authorized: false)
                #expect(listing.status == 200 && !listing.text.contains(headCID), "reader: \(path): \(listing.text)")
                #expect(try await h.rpc(path).text.contains(headCID), "admin: \(path)")
            }
            let rm = try await h.rpc("block/rm?arg=" + headCID)
            #expect(rm.text.contains("audit log"), "\(rm.text)")
            // An index past 2^64 is a malformed path, not a crash.
            #expect(try await h.request("/q/v1/audit/tile/0/x999/x999/x999/x999/x999/x999/999", api: true).status == 400)
            for query in ["after=18446744073709551615", "limit=0"] {
                let none = try await h.request("/q/v1/audit/checkpoints?" + query, api: true)
                let data = try none.json()["data"] as? [Any]
                #expect(none.status == 200 && data?.isEmpty == true, "\(query): \(none.text)")
            }
            // The log's events share the event stream, for callers that may read the log only.
            let streamed = try await h.request("/q/v1/events?follow=false&since=0&topics=q.qerberos.*&limit=5", api: true)
            #expect(streamed.status == 200 && streamed.text.contains("event: q.qerberos.block.put.v1"), "\(streamed.text)")
            let hidden = try await h.request("/q/v1/events?follow=false&since=0&topics=q.qerberos.*&limit=5", api: true,
                                             headers: ["Authorization": "Bearer \(reader.secret)"], authorized: false)
            #expect(hidden.status == 200 && !hidden.text.contains("q.qerberos."), "\(hidden.text)")
            // The checkpoint as C2SP clients read it, and as JSON.
            let note = try await h.request("/q/v1/audit/checkpoint", api: true)
            #expect(note.status == 200 && note.text.hasPrefix("qstore.audit/") && note.text.contains("\n\n— "))
            let json = try await h.request("/q/v1/audit/checkpoint", api: true, headers: ["Accept": "application/json"])
            #expect((try json.json()["data"] as? [String: Any])?["verifierKey"] as? String != nil)
        }
    }
}
