@testable import HTTPServer
import Testing

/// The listener limits of `http` (Docs/http.md, "Limits"): one connection past
/// `maximumConnections` is answered 503 with Retry-After and closed, and a place freed by a
/// closing connection is taken again; a request with too many header fields, or too many bytes
/// of them, is 431 and its connection closes; requests within the limits are served.
@Suite struct ConnectionLimitTests {
    @Test func connectionsAndHeadersAreLimited() async throws {
        var limits = ServerLimits()
        limits.maximumConnections = 4
        limits.maximumHeaderCount = 20
        limits.maximumHeaderBytes = 2048
        try await DaemonHarness.run(limits: limits) { d in
            let port = d.gatewayPort
            func get(_ c: RawConnection, headers: String = "") throws -> RawConnection.Response {
                try c.send("GET /health HTTP/1.1\r\nHost: x\r\n\(headers)\r\n")
                return try c.response(timeout: 60)
            }
            // Four held open (each has been served once, so the server counts them).
            let held = try (0..<4).map { _ in try RawConnection(port: port) }
            for c in held { #expect(try get(c).status == 200) }
            let fifth = try RawConnection(port: port)
            let refused = try get(fifth)
            #expect(refused.status == 503 && refused.header("retry-after") == "1", "\(refused.status)")
            #expect(fifth.closedByServer(within: 30))
            // One closes: a new connection is served again.
            held[0].close()
            var served = false
            for _ in 0..<50 where !served {
                let c = try RawConnection(port: port)
                served = (try? get(c))?.status == 200
                c.close()
                if !served { try await Task.sleep(nanoseconds: 100_000_000) }
            }
            #expect(served)
            for c in held.dropFirst() { c.close() }
            try await Task.sleep(nanoseconds: 200_000_000)

            // Headers: within the limits served, past them 431 and closed.
            let many = (0..<25).map { "X-H\($0): v\r\n" }.joined()
            let c1 = try RawConnection(port: port)
            #expect(try get(c1, headers: many).status == 431)
            #expect(c1.closedByServer(within: 30))
            let big = "X-Big: " + String(repeating: "a", count: 3000) + "\r\n"
            let c2 = try RawConnection(port: port)
            #expect(try get(c2, headers: big).status == 431)
            let c3 = try RawConnection(port: port)
            #expect(try get(c3, headers: (0..<10).map { "X-H\($0): v\r\n" }.joined()).status == 200)
        }
    }
}
