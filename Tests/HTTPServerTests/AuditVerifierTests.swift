import Audit
import Foundation
import Signing
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
