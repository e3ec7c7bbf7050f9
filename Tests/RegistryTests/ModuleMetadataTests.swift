import IPLD
import Multiformats
import Registry
import Signing
import Testing

/// Module metadata: the dag-cbor round trip, every field checked (errors naming the field), the
/// status moves allowed, and the publisher's signature over the metadata block.
@Suite struct ModuleMetadataTests {
    static func sample(_ change: (inout ModuleMetadata) -> Void = { _ in }) throws -> ModuleMetadata {
        var m = ModuleMetadata(
            module: "q-docs", version: try SemVer("1.2.3-rc.1+build.7"), description: "Docs of the Q ecosystem",
            identity: IdentityRef(squidId: "alice"), type: "library", capabilities: ["render"], identitiesSupported: ["squid"],
            integrations: ["qindex"], dependencies: [.init(module: "q-core", range: "^2.1.0"), .init(module: "q-ui", range: "~1", kind: .integration, optional: true)],
            status: .testing, package: try CID("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
            checksum: Multihash(code: .sha2_256, digest: [UInt8](repeating: 7, count: 32)),
            documentation: try CID("bafybeibml5uieyxa5tufngvg7fgwbkwvlsuntwbxgtskoqynbt7wlchmfm"),
            repository: "https://example.org/q-docs.git", auditHash: "qstore.audit/x 12 abc=", createdAt: "2026-12-05T10:00:00Z",
            updatedAt: "2026-12-05T10:00:00.250Z")
        change(&m)
        return m
    }

    @Test func roundTripsThroughDagCBOR() throws {
        let m = try Self.sample()
        try m.check()
        let bytes = try m.encoded()
        let back = try ModuleMetadata(decoding: bytes)
        #expect(back == m)
        #expect(try back.encoded() == bytes, "the encoding is deterministic")
        #expect(back.version.build == ["build", "7"])
        #expect(try back.dependencies[0].dependency().range.contains("2.9.0"))
    }

    @Test func everyFieldIsCheckedByName() throws {
        let cases: [(String, (inout ModuleMetadata) -> Void)] = [
            ("module", { $0.module = "Q-Docs" }), ("module", { $0.module = "q" }), ("module", { $0.module = String(repeating: "a", count: 65) }),
            ("dependencies[0].range", { $0.dependencies[0].range = "^^2" }),
            ("dependencies[1].module", { $0.dependencies[1].module = "q-core" }),
            ("dependencies[0].module", { $0.dependencies[0].module = "q-docs" }),
            ("createdAt", { $0.createdAt = "yesterday" }), ("type", { $0.type = "" }),
            ("capabilities[0]", { $0.capabilities = [""] }), ("identity", { $0.identity = IdentityRef(squidId: "") }),
        ]
        for (field, change) in cases {
            #expect {
                try Self.sample(change).check()
            } throws: { e in "\(e)".hasPrefix(field + ":") || "\(e)".hasPrefix(field + ".") }
        }
        // What a reader refuses: an unknown field, a bad status, a version that is not one.
        var node = try Self.sample().node
        guard case .map(var map) = node else { return }
        map = IPLDMap(uniqueKeysWithValues: map.entries.map { ($0.key, $0.key == "status" ? IPLDNode.string("LIVE") : $0.value) })
        node = .map(map)
        #expect { try ModuleMetadata(decoding: try DAGCBOR().encode(node)) } throws: { e in "\(e)".hasPrefix("status:") }
    }

    @Test func statusMoves() {
        typealias S = ModuleMetadata.Status
        #expect(S.development.canMove(to: .testing) && S.testing.canMove(to: .production) && S.production.canMove(to: .deprecated))
        #expect(S.deprecated.canMove(to: .production) && S.production.canMove(to: .suspended) && S.suspended.canMove(to: .production))
        #expect(!S.production.canMove(to: .development) && !S.deprecated.canMove(to: .testing) && !S.suspended.canMove(to: .suspended))
    }

    @Test func theSignatureCoversTheMetadataBytes() throws {
        let key = SigningKey()
        let bytes = try Self.sample().encoded()
        let block = CID(codec: .dagCBOR, multihash: try Multihash.compute(bytes, function: .sha2_256))
        let signed = SignedModuleMetadata(metadata: block, bytes: bytes, key: key, ts: 1_796_000_000_000)
        try signed.verify(metadataBytes: bytes)
        let back = try SignedModuleMetadata(decoding: try signed.encoded())
        try back.verify(metadataBytes: bytes)
        var changed = bytes
        changed[changed.count / 2] ^= 1
        #expect(throws: SigningError.self) { try back.verify(metadataBytes: changed) }
        var forged = back
        forged.sig.pub = SigningKey().publicKey
        #expect(throws: SigningError.self) { try forged.verify(metadataBytes: bytes) }
        // Another domain's signature of the same bytes does not verify as metadata.
        var other = back
        other.sig.sig = key.sign(Signatures.message(domain: "qindex-record:", bytes))
        #expect(throws: SigningError.self) { try other.verify(metadataBytes: bytes) }
    }
}
