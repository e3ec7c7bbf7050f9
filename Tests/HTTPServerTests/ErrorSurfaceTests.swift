import Foundation
import Testing
import TestSupport

/// Every kind of bad input sent to each API surface: the status the error's kind maps to, in that
/// surface's shape — Kubo's `{"Message","Code","Type"}` on /api/v0, the Pinning Service API's
/// Failure on /pins, plain text on the gateway, the Q envelope on /q/v1.
@Suite(.serialized) struct ErrorSurfaceTests {
    enum Surface { case kubo, pins, gateway, q }

    struct Case {
        let surface: Surface
        let what: String
        let method: String
        let path: String
        var api = true
        var body: [UInt8]? = nil
        var headers: [String: String] = [:]
        var authorized = true
        let status: Int
    }

    /// Checks `r` has `surface`'s error shape with `status`.
    static func check(_ r: DaemonHarness.Reply, _ c: Case) throws {
        let label = "\(c.what): \(c.method) \(c.path) → \(r.status) \(r.text)"
        #expect(r.status == c.status, "\(label)")
        switch c.surface {
        case .kubo:
            #expect(r.header("Content-Type")?.hasPrefix("application/json") == true, "\(label)")
            let o = try r.json()
            #expect(o["Type"] as? String == "error" && (o["Message"] as? String)?.isEmpty == false && o["Code"] is Int, "\(label)")
            #expect(Set(o.keys) == ["Message", "Code", "Type"], "\(label)")
        case .pins:
            let o = try r.json()
            let e = try #require(o["error"] as? [String: Any], "\(label)")
            let reason = try #require(e["reason"] as? String, "\(label)")
            #expect(!reason.isEmpty && reason == reason.uppercased() && (e["details"] as? String)?.isEmpty == false, "\(label)")
            #expect(Set(o.keys) == ["error"], "\(label)")
        case .gateway:
            #expect(r.header("Content-Type")?.hasPrefix("text/plain") == true, "\(label)")
            #expect(!r.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(label)")
        case .q:
            let o = try r.json()
            #expect(Set(o.keys) == ["status", "code", "message", "data", "cid"], "\(label)")
            #expect(r.status == c.status && o["status"] as? String == "error" && o["data"] is NSNull && o["cid"] is NSNull, "\(label)")
            let code = try #require(o["code"] as? String, "\(label)")
            #expect(!code.isEmpty && code == code.uppercased() && (o["message"] as? String)?.isEmpty == false, "\(label)")
        }
    }

    @Test func everyKindOfBadInputOnEverySurface() async throws {
        try await DaemonHarness.run { h in
            // State to be wrong about: a stored, pinned block, and a block that is not stored.
            let (one, type) = DaemonHarness.multipart([Array("error surfaces".utf8)])
            let put = try await h.rpc("block/put?pin=true", body: one, headers: ["Content-Type": type])
            let stored = try #require(try put.json()["Key"] as? String, "\(put.text)")
            let absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            let big = DaemonHarness.multipart([[UInt8](repeating: 7, count: 3 << 20)])
            let cases: [Case] = [
                // Kubo RPC
                Case(surface: .kubo, what: "invalid CID", method: "POST", path: "/api/v0/block/get?arg=not-a-cid", status: 400),
                Case(surface: .kubo, what: "missing argument", method: "POST", path: "/api/v0/block/stat", status: 400),
                Case(surface: .kubo, what: "unknown codec", method: "POST", path: "/api/v0/block/put?cid-codec=no-such-codec", body: one, headers: ["Content-Type": type], status: 400),
                Case(surface: .kubo, what: "not multipart", method: "POST", path: "/api/v0/block/put", body: Array("x".utf8), headers: ["Content-Type": "text/plain"], status: 400),
                Case(surface: .kubo, what: "undecodable dag-json", method: "POST", path: "/api/v0/dag/put", body: DaemonHarness.multipart([Array("{nope".utf8)]).body, headers: ["Content-Type": type], status: 400),
                Case(surface: .kubo, what: "no such path", method: "POST", path: "/api/v0/dag/get?arg=\(stored)/no/such", status: 404),
                Case(surface: .kubo, what: "not pinned", method: "POST", path: "/api/v0/pin/rm?arg=\(absent)", status: 404),
                Case(surface: .kubo, what: "already pinned recursively", method: "POST", path: "/api/v0/pin/add?arg=\(stored)&recursive=false", status: 409),
                Case(surface: .kubo, what: "unknown resource type", method: "POST", path: "/api/v0/pin/add?arg=\(stored)&resource-type=no-such-type", status: 400),
                Case(surface: .kubo, what: "too large", method: "POST", path: "/api/v0/block/put", body: big.body, headers: ["Content-Type": big.contentType], status: 413),
                Case(surface: .kubo, what: "unknown command", method: "POST", path: "/api/v0/no/such/command", status: 404),
                Case(surface: .kubo, what: "not POST", method: "GET", path: "/api/v0/version", status: 405),
                Case(surface: .kubo, what: "no token", method: "POST", path: "/api/v0/version", authorized: false, status: 401),
                // Kubo answers a block that is not stored with 500 and code 0 (its clients read a 404 on
                // /api/v0 as "no such command"): the one domain error kept at 500, for Kubo's clients.
                Case(surface: .kubo, what: "block not stored (Kubo's 500)", method: "POST", path: "/api/v0/block/stat?arg=\(absent)", status: 500),
                // Pinning Service API
                Case(surface: .pins, what: "bad limit", method: "GET", path: "/pins?limit=0", status: 400),
                Case(surface: .pins, what: "bad status filter", method: "GET", path: "/pins?status=sideways", status: 400),
                Case(surface: .pins, what: "no such pin", method: "GET", path: "/pins/no-such-request-id", status: 404),
                Case(surface: .pins, what: "body not JSON", method: "POST", path: "/pins", body: Array("{".utf8), headers: ["Content-Type": "application/json"], status: 400),
                Case(surface: .pins, what: "invalid CID", method: "POST", path: "/pins", body: Array(#"{"cid":"nope"}"#.utf8), headers: ["Content-Type": "application/json"], status: 400),
                Case(surface: .pins, what: "body too large", method: "POST", path: "/pins", body: [UInt8](repeating: 0x20, count: 2 << 20), headers: ["Content-Type": "application/json"], status: 413),
                Case(surface: .pins, what: "method not allowed", method: "PUT", path: "/pins", status: 405),
                Case(surface: .pins, what: "no token", method: "GET", path: "/pins", authorized: false, status: 401),
                // Gateway
                Case(surface: .gateway, what: "invalid CID", method: "GET", path: "/ipfs/not-a-cid", api: false, status: 400),
                Case(surface: .gateway, what: "not stored", method: "GET", path: "/ipfs/\(absent)", api: false, status: 404),
                Case(surface: .gateway, what: "no such path", method: "GET", path: "/ipfs/\(stored)/no/such", api: false, status: 404),
                Case(surface: .gateway, what: "unsatisfiable range", method: "GET", path: "/ipfs/\(stored)", api: false, headers: ["Range": "bytes=999-"], status: 416),
                Case(surface: .gateway, what: "unknown route", method: "GET", path: "/no/such/route", api: false, status: 404),
                // Q API
                Case(surface: .q, what: "unknown Q route", method: "GET", path: "/q/v1/no/such/thing", status: 404),
                Case(surface: .q, what: "no token", method: "GET", path: "/q/v1/no/such/thing", authorized: false, status: 401),
            ]
            for c in cases {
                let r = try await h.request(c.path, method: c.method, api: c.api, headers: c.headers, body: c.body, authorized: c.authorized)
                try Self.check(r, c)
            }
            // Every kind a domain error can be is reached by some case above, on some surface.
            let statuses = Set(cases.map(\.status))
            for s in [400, 404, 409, 413] { #expect(statuses.contains(s)) }
        }
    }
}
