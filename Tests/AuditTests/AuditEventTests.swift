import IPLD
import Multiformats
import Signing
import Testing
@testable import Audit

@Suite struct AuditEventTests {
    static func event(_ type: String = "q.pinning.pin.added.v1", verdict: AuditEvent.Verdict = .allow) throws -> AuditEvent {
        try AuditEvent(type: type, ref: "pin/0123", actor: IdentityRef(squidId: "alice", subId: "phone"), verdict: verdict,
                       details: IPLDMap(uniqueKeysWithValues: [("blocks", .int(3)), ("name", .string("docs"))]),
                       cid: try CID("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"), ts: 1_767_225_600_000, requestId: "req-1")
    }

    /// The block decodes to the same event and re-encodes to the same bytes (the leaf is stable).
    @Test func roundTripIsByteExact() throws {
        for verdict in AuditEvent.Verdict.allCases {
            let e = try Self.event(verdict: verdict)
            let decoded = try AuditEvent(decoding: try e.encoded())
            #expect(try decoded == e && decoded.encoded() == e.encoded() && decoded.layer == "pinning")
            #expect(try e.leafHash() == MerkleHash.leaf(try e.encoded()))
        }
        var noCID = try Self.event()
        noCID.cid = nil
        #expect(try AuditEvent(decoding: try noCID.encoded()) == noCID)
    }

    @Test func typesNameTheirLayer() throws {
        for bad in ["pinning.pin.added.v1", "q.pinning.v1", "q.Pinning.pin.v1", "q.pinning.pin.added", "q.pinning.pin.vx", "q..pin.v1"] {
            #expect(throws: SigningError.self, "\(bad)") { try Self.event(bad) }
        }
        #expect(try Self.event("q.access.grant.revoked.v2").layer == "access")
    }

    /// A block with an unknown field, another layer than its type's, or a bad verdict is refused.
    @Test func strictDecoding() throws {
        let e = try Self.event()
        guard case .map(var m) = e.node else { Issue.record("a map"); return }
        for (key, value) in [("extra", IPLDNode.string("x")), ("layer", .string("qindex")), ("verdict", .string("MAYBE")), ("ts", .int(-1))] {
            var changed = m
            changed = IPLDMap(uniqueKeysWithValues: changed.entries.filter { $0.key != key }.map { ($0.key, $0.value) } + [(key, value)])
            let bytes = try DAGCBOR().encode(.map(changed))
            #expect(throws: SigningError.self, "\(key)") { try AuditEvent(decoding: bytes) }
        }
        m = IPLDMap()
        #expect(throws: (any Error).self) { try AuditEvent(decoding: try DAGCBOR().encode(.map(m))) }
    }
}
