@testable import HTTPServer
import Foundation
import Testing

/// The listener limits of `http` (Docs/http.md, "Limits"): one connection past
/// `maximumConnections` is answered 503 with Retry-After and closed, and a place freed by a
/// closing connection is taken again; a request with too many header fields, or too many bytes
/// of them, is 431 and its connection closes; requests within the limits are served. (On a loaded
/// machine a closed connection is counted out a moment later: each step is tried again for a
/// while, and fails only if the answer never comes.) The daemon is a child process: its waits are
/// blocking reads, which in the test's own process would hold the cooperative threads an
/// in-process daemon's handlers need — on two cores, a request left unanswered for a minute.
@Suite struct ConnectionLimitTests {
    @Test func connectionsAndHeadersAreLimited() async throws {
        let defaults = ServerLimits()
        let d = try ChildDaemon(environment: ["QSTORE_MAX_CONNECTIONS": "4"], logLevel: "debug")
        defer { d.discard() }
        do {
            let port = d.gatewayPort
            func get(_ c: RawConnection, headers: String = "") throws -> RawConnection.Response {
                try c.send("GET /health HTTP/1.1\r\nHost: x\r\n\(headers)\r\n")
                return try c.response(timeout: 60)
            }
            /// A new connection's answer to one request (nil: none), the connection closed after.
            func once(headers: String = "") -> RawConnection.Response? {
                guard let c = try? RawConnection(port: port) else { return nil }
                defer { c.close() }
                return try? get(c, headers: headers)
            }
            /// The first answer `status` within 60 s; nil if none (what came instead, and the
            /// daemon's log, are recorded as the failure).
            func eventually(_ status: Int, headers: String = "", _ step: String) async -> RawConnection.Response? {
                let deadline = Date().addingTimeInterval(60)
                var seen: [String: Int] = [:]
                while Date() < deadline {
                    let started = Date()
                    let r = once(headers: headers)
                    if let r, r.status == status { return r }
                    let what = r.map { "\($0.status)" } ?? "no answer"
                    seen[Date().timeIntervalSince(started) > 5 ? what + " after > 5 s" : what, default: 0] += 1
                    try? await Task.sleep(nanoseconds: 100_000_000)
                }
                Issue.record("\(step): no \(status) within 60 s; answers instead: \(seen); daemon running: \(d.isRunning); its log:\n\(d.log())")
                return nil
            }
            // Four held open (each has been served once, so the server counts them).
            let held = try (0..<4).map { _ in try RawConnection(port: port) }
            for c in held { #expect(try get(c).status == 200) }
            let refused = await eventually(503, "a fifth connection")
            #expect(refused?.header("retry-after") == "1", "\(String(describing: refused?.status))")
            // One closes: a new connection is served again.
            held[0].close()
            _ = await eventually(200, "a connection after one of four closed")
            for c in held.dropFirst() { c.close() }

            // Headers: within the (default) limits served, past them 431.
            let many = (0..<defaults.maximumHeaderCount + 5).map { "X-H\($0): v\r\n" }.joined()
            _ = await eventually(431, headers: many, "too many header fields")
            _ = await eventually(431, headers: "X-Big: " + String(repeating: "a", count: defaults.maximumHeaderBytes + 100) + "\r\n", "too many header bytes")
            _ = await eventually(200, headers: (0..<defaults.maximumHeaderCount - 10).map { "X-H\($0): v\r\n" }.joined(), "header fields within the limits")
            // The connection of a 431 is closed by the server.
            let c = try RawConnection(port: port)
            if (try? get(c, headers: many))?.status == 431 { #expect(c.closedByServer(within: 30)) }
        }
    }
}
