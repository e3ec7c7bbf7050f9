import Audit
import Foundation
import Storage
import Testing
import TestSupport

/// `/q/v1/events` over loopback: Server-Sent Events of Qindex changes, live and resumed with
/// `Last-Event-ID`, filtered by topic; the OpenAPI document served is the one in Docs/, and
/// schemathesis finds nothing against it.
@Suite struct EventsHTTPTests {
    /// The body of a raw HTTP/1.1 response (chunked transfer coding undone), worked on as bytes
    /// ("\r\n" is one Character in Swift).
    static func body(_ raw: [UInt8]) -> String {
        func find(_ needle: [UInt8], from: Int) -> Int? {
            guard raw.count >= needle.count else { return nil }
            return (from...(raw.count - needle.count)).first { raw[$0..<$0 + needle.count].elementsEqual(needle) }
        }
        let crlf: [UInt8] = [13, 10]
        guard let split = find(crlf + crlf, from: 0) else { return "" }
        let head = String(decoding: raw[..<split], as: UTF8.self).lowercased()
        var at = split + 4
        guard head.contains("transfer-encoding: chunked") else { return String(decoding: raw[at...], as: UTF8.self) }
        var out: [UInt8] = []
        while at < raw.count, let eol = find(crlf, from: at), let size = Int(String(decoding: raw[at..<eol], as: UTF8.self), radix: 16), size > 0,
              eol + 2 + size <= raw.count {
            out += raw[(eol + 2)..<(eol + 2 + size)]
            at = eol + 2 + size + 2
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The events of an SSE body: (id, event, data JSON).
    static func events(_ raw: [UInt8]) -> [(id: Int, event: String, data: [String: Any])] {
        body(raw).components(separatedBy: "\n\n").compactMap { block in
            var id: Int?, event: String?, data: [String: Any]?
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = Int(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any] }
            }
            guard let id, let event, let data else { return nil }
            return (id, event, data)
        }
    }

    static func open(_ h: DaemonHarness, _ query: String, lastEventID: Int? = nil) throws -> RawConnection {
        let c = try RawConnection(port: h.apiPort)
        try c.send("GET /q/v1/events\(query) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(h.token)\r\n"
                   + (lastEventID.map { "Last-Event-ID: \($0)\r\n" } ?? "") + "Connection: close\r\n\r\n")
        return c
    }

    func put(_ h: DaemonHarness, _ key: String, _ cid: String?) async throws {
        let r = cid == nil
            ? try await h.request("/q/v1/index/docs/" + key, method: "DELETE", api: true)
            : try await h.request("/q/v1/index/docs/" + key, method: "PUT", api: true, headers: ["Content-Type": "application/json"],
                                  body: [UInt8](try JSONSerialization.data(withJSONObject: ["cid": cid!])))
        #expect(r.status < 300, "\(r.text)")
    }

    @Test func changesStreamLiveAndResume() async throws {
        // The audit log off: the sequence numbers below are those of the pointer events alone (the
        // audit log's own events, q.qerberos.*, share the stream: AuditHTTPTests).
        try await DaemonHarness.run(configure: { c in
            var audit = AuditConfiguration()
            audit.enabled = false
            try c.setSection(audit)
        }) { h in
            let (one, type) = DaemonHarness.multipart([Array("event target".utf8)])
            let cid = try #require(try await h.rpc("block/put", body: one, headers: ["Content-Type": type]).json()["Key"] as? String)
            try await put(h, "before", cid)  // before the stream: not in a stream that starts at the end
            let live = try Self.open(h, "?topics=q.qindex.*&limit=3")
            // The response head and the first lines, kept (the events are parsed from the whole response).
            let start = try await ThirdPartyClientTests.aside { () -> [UInt8] in
                var seen: [UInt8] = []
                for _ in 0..<40 where !String(decoding: seen, as: UTF8.self).contains("retry: 3000") { seen += live.read(upTo: 65536, timeout: 1) }
                return seen
            }
            #expect(String(decoding: start, as: UTF8.self).contains("retry: 3000"), "the stream did not start")
            try await put(h, "a", cid)
            try await put(h, "b", cid)
            try await put(h, "a", nil)
            let (closed, rest) = try await ThirdPartyClientTests.aside { live.readUntilClosed(timeout: 30) }
            let bytes = start + rest
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(closed, "limit=3 should end the stream")
            let got = Self.events(bytes)
            #expect(got.map(\.id) == [2, 3, 4], "\(text)")
            #expect(got.map(\.event) == ["q.qindex.record.created.v1", "q.qindex.record.created.v1", "q.qindex.record.deleted.v1"])
            #expect(got.first?.data["key"] as? String == "a" && got.first?.data["cid"] as? String == cid && got.first?.data["version"] as? Int == 1)
            #expect(got.last?.data["cid"] is NSNull && got.last?.data["seq"] as? Int == 4)

            // Resumed after event 2 with the header, and only deletions from the start.
            let resumed = try Self.open(h, "?follow=false", lastEventID: 2)
            let after = Self.events(try await ThirdPartyClientTests.aside { resumed.readUntilClosed(timeout: 30) }.bytes)
            #expect(after.map(\.id) == [3, 4])
            let everyTopic = try await h.request("/q/v1/events?follow=false&since=0&topics=,", api: true)
            #expect(everyTopic.text.contains("id: 4"), "no topic named: every topic")
            let filtered = try Self.open(h, "?follow=false&since=0&topics=q.qindex.record.deleted.v1")
            let deletions = Self.events(try await ThirdPartyClientTests.aside { filtered.readUntilClosed(timeout: 30) }.bytes)
            #expect(deletions.map(\.id) == [4])

            // Bad parameters are refused before the stream starts, in the Q envelope.
            for bad in ["?since=-1", "?since=x", "?topics=q.*.x", "?topics=Q.INDEX", "?limit=0"] {
                let r = try await h.request("/q/v1/events" + bad, api: true)
                #expect(r.status == 400 && (try? r.json()["code"] as? String) == "INVALID_INPUT", "\(bad): \(r.status) \(r.text)")
            }
            // A stream that does not follow ends at once, whatever the followers.
            let stored = try await h.request("/q/v1/events?follow=false&since=0", api: true)
            #expect(stored.status == 200 && stored.text.contains("id: 4"), "\(stored.text)")
            let noToken = try await h.request("/q/v1/events?follow=false", api: true, authorized: false)
            #expect(noToken.status == 401)
        }
    }

    @Test func theServedOpenAPIDocumentIsTheOneInDocs() async throws {
        let file = try String(contentsOfFile: Fixtures.repositoryRoot + "/Docs/q-v1.openapi.yaml", encoding: .utf8)
        try await DaemonHarness.run { h in
            let r = try await h.request("/q/v1/openapi.yaml", api: true)
            #expect(r.status == 200 && r.header("Content-Type") == "application/yaml")
            #expect(r.text == file, "Sources/HTTPServer/QOpenAPIDocument.swift is stale: run Scripts/generate-openapi.py")
        }
    }

    /// schemathesis generates requests from Docs/q-v1.openapi.yaml and checks every response
    /// against it. Excluded: backup creation and restore (they would write into generated paths),
    /// the event stream (it stays open: a reader of its whole body never
    /// returns), `positive_data_acceptance` (schema-valid strings that are not CIDs or not
    /// stored targets are rightly refused), and the coverage phase (as for /pins).
    @Test func schemathesisFindsNothingInTheQAPI() async throws {
        let python = try await ThirdPartyClientTests.aside { try ThirdPartyClientTests.python() }
        let venv = URL(fileURLWithPath: python).deletingLastPathComponent().path
        let h = try await DaemonHarness()
        let (rc, out) = try await ThirdPartyClientTests.runAside(venv + "/schemathesis", [
            "run", Fixtures.repositoryRoot + "/Docs/q-v1.openapi.yaml", "-u", "http://127.0.0.1:\(h.apiPort)", "-H", "Authorization: Bearer \(h.token)",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance", "--phases", "examples,fuzzing",
            "--exclude-path", "/q/v1/events",
            // They write wherever a generated path points, on this machine.
            "--exclude-path", "/q/v1/backups", "--exclude-path", "/q/v1/backups/restore",
            "--max-examples", "40", "-w", "1", "--seed", "1",
            // A loaded machine (the suite runs beside it) can keep a synced write waiting for seconds.
            "--request-timeout", "60",
            // Speed is measured in benchmarks: here a response time only catches a hang.
            "--max-response-time", "60",
        ], directory: h.directory)
        #expect(rc == 0, "schemathesis:\n\(out.suffix(8000))")
        await h.stop()
    }
}
