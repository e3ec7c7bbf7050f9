import Foundation
import Testing
@testable import HTTPServer

/// The per-request series of /metrics: bodies in memory are counted when handed over, streamed
/// bodies once written, and every request leaves the active gauge as it found it.
@Suite struct RequestMetricsTests {
    /// The value of the series line that starts with `prefix` (route, method and status labels).
    static func value(_ metrics: String, _ prefix: String) -> Double? {
        metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last!) }
    }

    /// On a daemon process of its own: the metrics are process-wide, and the test runner's other
    /// daemons count into the same series. Its blocking requests run aside, off the few
    /// cooperative threads the in-process daemons of other tests need.
    @Test func inMemoryAndStreamedRepliesAreCountedOnceAndEnd() async throws {
        let (gets, cats, m) = try await ThirdPartyClientTests.aside { () throws -> ([Int], [String], String) in
            let d = try ChildDaemon()
            defer { d.discard() }
            let (body, type) = DaemonHarness.multipart([Array("metrics".utf8)])
            let put = try d.request("POST", "/api/v0/block/put", api: true, headers: ["Content-Type": type], body: body)
            let cid = (try JSONSerialization.jsonObject(with: Data(put.body)) as? [String: Any])?["Key"] as? String ?? "?"
            let gets = try (0..<3).map { _ in try d.request("GET", "/ipfs/\(cid)?format=raw", api: false).status }
            // A streamed reply (Kubo's cat) is counted once its body has been written.
            let cats = try (0..<2).map { _ in try d.request("POST", "/api/v0/cat?arg=\(cid)", api: true).text }
            // The client may have read a streamed reply before the server's writer returned:
            // wait (bounded) until both replies are counted.
            var m = ""
            for _ in 0..<100 {
                m = try d.request("GET", "/metrics", api: true).text
                if Self.value(m, #"hb_requests{http_route="/api/v0/cat",http_request_method="POST",http_response_status_code="200"}"#) == 2 { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return (gets, cats, m)
        }
        #expect(gets == [200, 200, 200])
        #expect(cats == ["metrics", "metrics"])
        let route = #"{http_route="/ipfs/**",http_request_method="GET",http_response_status_code="200"}"#
        #expect(Self.value(m, "hb_requests" + route) == 3)
        #expect(Self.value(m, "http_server_request_duration_count" + route) == 3)
        let cat = #"{http_route="/api/v0/cat",http_request_method="POST",http_response_status_code="200"}"#
        #expect(Self.value(m, "hb_requests" + cat) == 2)
        #expect(Self.value(m, "http_server_request_duration_count" + cat) == 2)
        // Nothing is left active but this very /metrics request (a streamed reply that never
        // settled would leave POST above 0).
        #expect(Self.value(m, #"http_server_active_requests{http_request_method="POST"}"#) == 0)
        #expect(Self.value(m, #"http_server_active_requests{http_request_method="GET"}"#) == 1)
    }

    @Test func aCompletionRecordsOnceWhateverTheOrder() {
        final class Count: @unchecked Sendable { var n = 0 }
        // Not claimed: recorded at settle.
        let plain = Count()
        let a = RequestCompletion()
        a.settle { plain.n += 1 }
        a.finish()
        #expect(plain.n == 1)
        // Claimed: recorded when the body finishes, not before.
        let streamed = Count()
        let b = RequestCompletion()
        let claimed = b.claim()
        #expect(claimed != nil && b.claim() == nil, "one body claims a completion")
        b.settle { streamed.n += 1 }
        #expect(streamed.n == 0)
        claimed?.finish()
        claimed?.finish()
        #expect(streamed.n == 1)
        // Written before the handler returned (collected by an inner middleware): at settle.
        let early = Count()
        let c = RequestCompletion()
        c.claim()?.finish()
        c.settle { early.n += 1 }
        #expect(early.n == 1)
        // Claimed, then dropped unwritten: recorded when the last reference goes.
        let dropped = Count()
        do {
            let e = RequestCompletion()
            withExtendedLifetime(e) {
                _ = e.claim()
                e.settle { dropped.n += 1 }
                #expect(dropped.n == 0)
            }
        }
        #expect(dropped.n == 1)
    }
}
