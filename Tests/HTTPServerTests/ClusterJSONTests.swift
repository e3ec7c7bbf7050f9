import Foundation
@testable import HTTPServer
import QAPI
import Replication
import Testing

/// The cluster listing is written by hand for speed: it must be the very bytes JSONEncoder
/// writes (a client comparing replies, or the OpenAPI schema, sees no difference), and the CLI's
/// pass-through of a reply's `data` must hand back exactly what was wrapped, or the error.
@Suite struct ClusterJSONTests {
    static let states: [ClusterPinState] = [
        ClusterPinState(cid: "bafyA", name: nil, rmin: 1, rmax: 3, allocations: [], status: [:], errors: nil),
        ClusterPinState(cid: "bafyB", name: "docs \"v2\"\n\t/\\ é 😀 \u{01}\u{7f}", rmin: 2, rmax: 2, allocations: ["node-b", "Node-A", "n/1"],
                        status: ["node-b": "pinned", "Node-A": "failed", "n/1": "queued"],
                        errors: ["Node-A": "no source: \"gone\"\r\n", "n/1": "waiting \u{1f}"]),
        ClusterPinState(cid: "bafyC", name: "", rmin: 64, rmax: 64, allocations: ["z"], status: ["z": "pinning"], errors: [:]),
        // Node ids whose order by bytes (JSONEncoder's) is not String's (normalized text).
        ClusterPinState(cid: "bafyD", name: nil, rmin: 1, rmax: 5, allocations: ["\u{212B}", "\u{00D0}", "e\u{301}", "f"],
                        status: ["\u{212B}": "pinned", "\u{00D0}": "queued", "e\u{301}": "failed", "f": "pinned"],
                        errors: ["e\u{301}": "x", "f": "y", "\u{212B}": "z", "\u{00D0}": "w"]),
    ]

    @Test func theHandWrittenListingIsWhatJSONEncoderWrites() {
        for n in [0, 1, 3, 4] {
            let states = Array(Self.states.prefix(n))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let expected = [UInt8](try! encoder.encode(states))
            #expect(ClusterAPI.json(states) == expected, "\(n) states")
            // And in its envelope, as the route sends it.
            #expect(QJSON.envelope(rawData: ClusterAPI.json(states)) == QJSON.encode(QEnvelope(ok: states)))
            #expect(QJSON.envelope(rawData: ClusterAPI.json(states), cid: "bafy\"x") == QJSON.encode(QEnvelope(ok: states, cid: "bafy\"x")))
        }
    }

    @Test func rawDataHandsBackTheDataOrTheError() throws {
        let data = ClusterAPI.json(Self.states)
        #expect(try QJSON.rawData(from: Data(QJSON.envelope(rawData: data))) == Data(data))
        // Any key order, whitespace, nested braces and quotes inside strings.
        let other = #"{ "status" : "ok", "data" : {"a": ["}", "\"]"], "b": {}}, "message": "", "code": "OK", "cid": null }"#
        #expect(try QJSON.rawData(from: Data(other.utf8)) == Data(#"{"a": ["}", "\"]"], "b": {}}"#.utf8))
        let error = QJSON.encode(QEnvelope<[String]>(error: "CLUSTER_NOT_FOUND", message: "bafy is not a cluster pin"))
        #expect(throws: QErrorReply.self) { try QJSON.rawData(from: Data(error)) }
        do {
            _ = try QJSON.rawData(from: Data(error))
        } catch let e as QErrorReply {
            #expect(e.code == "CLUSTER_NOT_FOUND" && e.message == "bafy is not a cluster pin")
        }
        for broken in ["", "[1]", #"{"data": [1, 2"#, #"{"status": "ok"}"#, #"{"status":"ok","data":"unterminated}"#] {
            #expect(throws: (any Error).self, "\(broken)") { try QJSON.rawData(from: Data(broken.utf8)) }
        }
    }

    @Test func dataIsReadFromOneParseAndErrorsStillThrow() throws {
        #expect(try QJSON.data([ClusterPinState].self, from: Data(QJSON.encode(QEnvelope(ok: Self.states)))) == Self.states)
        let error = QJSON.encode(QEnvelope<[ClusterPinState]>(error: "SERVICE_UNAVAILABLE", message: "etcd away"))
        #expect(throws: QErrorReply.self) { try QJSON.data([ClusterPinState].self, from: Data(error)) }
        #expect(throws: (any Error).self) { try QJSON.data([ClusterPinState].self, from: Data(#"{"status":"ok","data":[{"cid":1}]}"#.utf8)) }
    }
}
