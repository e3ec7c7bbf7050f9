import Foundation
import HTTPMessages
@testable import HTTPServer
import Storage
import Testing

/// `/q/v1/index` over loopback HTTP against a real daemon: the Q envelope, CAS, history, lists,
/// deletes and imports, and the error codes scripts read.
@Suite struct QindexHTTPTests {
    static func data(_ r: DaemonHarness.Reply) throws -> [String: Any] {
        let o = try r.json()
        #expect(o["status"] as? String == "ok" && o["code"] as? String == "OK", "\(r.text)")
        return try #require(o["data"] as? [String: Any], "\(r.text)")
    }

    static func code(_ r: DaemonHarness.Reply) throws -> String? { try r.json()["code"] as? String }

    func put(_ h: DaemonHarness, _ path: String, _ body: [String: Any], headers: [String: String] = [:]) async throws -> DaemonHarness.Reply {
        try await h.request("/q/v1/index/" + path, method: "PUT", api: true, headers: headers.merging(["Content-Type": "application/json"]) { a, _ in a },
                            body: [UInt8](try JSONSerialization.data(withJSONObject: body)))
    }

    func stored(_ h: DaemonHarness, _ text: String) async throws -> String {
        let (one, type) = DaemonHarness.multipart([Array(text.utf8)])
        let put = try await h.rpc("block/put", body: one, headers: ["Content-Type": type])
        return try #require(try put.json()["Key"] as? String, "\(put.text)")
    }

    /// Keys are decoded exactly: a leading U+FEFF (`%EF%BB%BF`) names another pointer than the
    /// key without it (Foundation's decoding dropped it, so that write landed on `a`); an escape
    /// that is malformed or not UTF-8 is refused.
    @Test func percentEscapesAreDecodedExactly() async throws {
        #expect("%EF%BB%BFa".decodingPercentEscapes() == "\u{FEFF}a")
        #expect("caf%C3%A9/x%2Fy".decodingPercentEscapes() == "café/x/y")
        #expect("plain".decodingPercentEscapes() == "plain")
        for bad in ["a%zz", "%4", "%", "%FF", "%C3"] { #expect(bad.decodingPercentEscapes() == nil, "\(bad)") }
        try await DaemonHarness.run { h in
            let a = try await stored(h, "plain key"), b = try await stored(h, "marked key")
            #expect((200...201).contains(try await put(h, "docs/a", ["cid": a]).status))
            let marked = try await put(h, "docs/%EF%BB%BFa", ["cid": b])
            #expect((200...201).contains(marked.status), "\(marked.text)")
            // (Read from the text: Foundation's JSON parser drops a leading U+FEFF from a string too.)
            #expect(marked.text.contains("\"key\":\"\u{FEFF}a\""), "\(marked.text)")
            #expect(try Self.data(try await h.request("/q/v1/index/docs/a", api: true))["cid"] as? String == a, "the marked key's write landed on a")
            #expect(try await put(h, "docs/%C3", ["cid": a]).status == 400)
        }
    }

    /// A body's fields have their JSON types: 1 is not `true` (Foundation bridges it to a Bool),
    /// `true` and 1.5 are not versions; integers are read exactly.
    @Test func bodyFieldsHaveTheirJSONTypes() async throws {
        #expect(QindexAPI.jsonInteger(NSNumber(value: Int64(9_007_199_254_740_993))) == 9_007_199_254_740_993)
        #expect(QindexAPI.jsonInteger(NSNumber(value: true)) == nil && QindexAPI.jsonInteger(NSNumber(value: 1.5)) == nil)
        try await DaemonHarness.run { h in
            let missing = try Block(data: Array("not stored".utf8)).cid.string
            for body: [String: Any] in [["cid": missing, "allowMissing": 1], ["cid": missing, "expectedVersion": true], ["cid": missing, "expectedVersion": 1.5]] {
                let r = try await put(h, "docs/typed", body)
                #expect(r.status == 400, "\(body): \(r.status) \(r.text)")
            }
            #expect((200...201).contains(try await put(h, "docs/typed", ["cid": missing, "allowMissing": true]).status))
        }
    }

    @Test func pointersThroughTheQAPI() async throws {
        try await DaemonHarness.run { h in
            let a = try await stored(h, "qindex a"), b = try await stored(h, "qindex b")
            // Create (201), with the (signed) caller's identity as author; keys may hold slashes.
            let key = try await h.register("squid-1", scopes: ["index:write:docs"])
            let created = try await h.signed("/q/v1/index/docs/mod/x", method: "PUT", key: key, squid: "squid-1", subId: "sub-2",
                                             body: [UInt8](try JSONSerialization.data(withJSONObject: ["cid": a, "tags": ["stable"], "expectedVersion": 0])),
                                             headers: ["Content-Type": "application/json"])
            #expect(created.status == 201, "\(created.text)")
            let d1 = try Self.data(created)
            #expect(d1["version"] as? Int == 1 && d1["cid"] as? String == a && d1["key"] as? String == "mod/x")
            #expect((d1["author"] as? [String: Any])?["squidId"] as? String == "squid-1" && (d1["author"] as? [String: Any])?["subId"] as? String == "sub-2")
            #expect(try created.json()["cid"] as? String == d1["record"] as? String)
            // CAS: a stale version is 409 VERSION_CONFLICT; the right one moves the head.
            let stale = try await put(h, "docs/mod/x", ["cid": b, "expectedVersion": 0])
            #expect(try stale.status == 409 && (Self.code(stale)) == "VERSION_CONFLICT", "\(stale.text)")
            let conflictHead = try stale.json()["data"] as? [String: Any]
            #expect(conflictHead?["version"] as? Int == 1 && conflictHead?["record"] as? String == d1["record"] as? String, "the conflict carries the current head")
            #expect(stale.text.range(of: #""version":1[,}]"#, options: .regularExpression) != nil, "a version is a number, not a boolean: \(stale.text)")
            let moved = try await put(h, "docs/mod/x", ["cid": b, "expectedVersion": 1])
            #expect(try moved.status == 200 && (Self.data(moved))["prev"] as? String == d1["record"] as? String, "\(moved.text)")
            // Get: current, by version; history newest first with a cursor.
            let current = try Self.data(try await h.request("/q/v1/index/docs/mod/x", api: true))
            #expect(current["cid"] as? String == b && current["version"] as? Int == 2)
            let v1 = try Self.data(try await h.request("/q/v1/index/docs/mod%2Fx?version=1", api: true))
            #expect(v1["cid"] as? String == a)
            let page = try Self.data(try await h.request("/q/v1/index/docs/mod/x/history?limit=1", api: true))
            #expect((page["records"] as? [[String: Any]])?.map { $0["version"] as? Int } == [2] && page["next"] as? String == "2")
            let rest = try Self.data(try await h.request("/q/v1/index/docs/mod/x/history?limit=1&cursor=2", api: true))
            #expect((rest["records"] as? [[String: Any]])?.map { $0["version"] as? Int } == [1] && rest["next"] is NSNull)
            // List by type and by target.
            let listed = try Self.data(try await h.request("/q/v1/index?type=docs", api: true))
            #expect((listed["pointers"] as? [[String: Any]])?.map { $0["key"] as? String } == ["mod/x"])
            let byTarget = try Self.data(try await h.request("/q/v1/index?target=\(a)", api: true))
            #expect((byTarget["pointers"] as? [[String: Any]])?.isEmpty == true)
            // Errors: unknown pointer, bad names, bad bodies, missing target.
            let missing = try await h.request("/q/v1/index/docs/nope", api: true)
            #expect(try missing.status == 404 && (Self.code(missing)) == "QINDEX_NOT_FOUND" && (missing.json()["status"] as? String) == "error")
            for (path, body) in [("Bad/k", ["cid": a]), ("docs/k", ["cid": "not-a-cid"]), ("docs/k", ["cid": a, "extra": 1]),
                                 ("docs/k", ["cid": a, "expectedVersion": true]), ("docs/k", [:])] as [(String, [String: Any])] {
                let r = try await put(h, path, body)
                #expect(r.status == 400, "\(path) \(body) → \(r.status) \(r.text)")
            }
            let absent = try await put(h, "docs/k", ["cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"])
            #expect(try absent.status == 409 && (Self.code(absent)) == "TARGET_MISSING", "\(absent.text)")
            let forged = try await put(h, "docs/k", ["cid": a, "record": "AAAA"])
            #expect(forged.status == 400, "\(forged.text)")
            // Delete: a tombstone; history stays; the pointer is gone from get and lists.
            let deleted = try await h.request("/q/v1/index/docs/mod/x", method: "DELETE", api: true)
            #expect(try deleted.status == 200 && (Self.data(deleted))["deleted"] as? Bool == true, "\(deleted.text)")
            #expect(try await h.request("/q/v1/index/docs/mod/x", api: true).status == 404)
            let after = try Self.data(try await h.request("/q/v1/index/docs/mod/x/history", api: true))
            #expect((after["records"] as? [[String: Any]])?.count == 3)
            // The token is required, as for every API route.
            #expect(try await h.request("/q/v1/index?type=docs", api: true, authorized: false).status == 401)
            // The metrics count each reply by the status the client got: the 404s and 400s above
            // as such, none as a 500.
            let metrics = try await h.request("/metrics", api: true).text
            let qLines = metrics.split(separator: "\n").filter { $0.contains("http_route=\"/q/v1") && $0.hasPrefix("hb_requests{") }
            #expect(qLines.contains { $0.contains("http_response_status_code=\"404\"") }, "\(qLines)")
            #expect(!qLines.contains { $0.contains("http_response_status_code=\"500\"") }, "\(qLines)")
        }
    }
}
