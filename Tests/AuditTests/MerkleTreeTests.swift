import Crypto
import Foundation
import Signing
import Testing
@testable import Audit

/// RFC 9162 Merkle trees: roots against a direct transcription of the RFC's recursive MTH
/// definition over the leaves, the CT reference vectors, every inclusion and consistency proof of
/// small trees verified, and tampering caught.
@Suite struct MerkleTreeTests {
    /// MTH as RFC 9162 §2.1.1 defines it, over leaf data: the reference the subtree-hash
    /// implementation is checked against.
    static func mth(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        if leaves.isEmpty { return MerkleHash.empty }
        if leaves.count == 1 { return MerkleHash.leaf(leaves.first!) }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        return MerkleHash.node(mth(leaves.prefix(k)), mth(leaves.dropFirst(k)))
    }

    static func tree(_ leaves: [[UInt8]]) -> MemoryHashes {
        var t = MemoryHashes()
        for l in leaves { t.append(leafHash: MerkleHash.leaf(l)) }
        return t
    }

    static let leaves: [[UInt8]] = (0..<70).map { i in Array("event \(i)".utf8) }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    /// The RFC 6962 / certificate-transparency reference inputs and roots.
    @Test func referenceVectors() throws {
        let inputs: [[UInt8]] = [[], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
                                 [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57], Array(0x60...0x6f)]
        let t = Self.tree(inputs)
        #expect(Self.hex(try MerkleTree.root(of: 1, t)) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        #expect(Self.hex(try MerkleTree.root(of: 8, t)) == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
        #expect(Self.hex(try MerkleTree.root(of: 0, t)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func rootsMatchTheDefinition() throws {
        let t = Self.tree(Self.leaves)
        for n in 0...Self.leaves.count {
            #expect(try MerkleTree.root(of: UInt64(n), t) == Self.mth(Self.leaves.prefix(n)), "size \(n)")
        }
    }

    @Test func everyInclusionProofVerifiesAndTamperingFails() throws {
        let t = Self.tree(Self.leaves)
        for n in 1...40 {
            let root = try MerkleTree.root(of: UInt64(n), t)
            for i in 0..<n {
                let proof = try MerkleTree.inclusionProof(index: UInt64(i), size: UInt64(n), t)
                let leaf = MerkleHash.leaf(Self.leaves[i])
                #expect(MerkleTree.verifyInclusion(leafHash: leaf, index: UInt64(i), size: UInt64(n), proof: proof, root: root), "\(i) in \(n)")
                #expect(proof.count <= 64 - UInt64(n).leadingZeroBitCount + 1)
                // Another leaf, another index, a changed or shortened proof: refused.
                #expect(!MerkleTree.verifyInclusion(leafHash: MerkleHash.leaf(Self.leaves[(i + 1) % 70]), index: UInt64(i), size: UInt64(n), proof: proof, root: root))
                if n > 1 {
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: UInt64((i + 1) % n), size: UInt64(n), proof: proof, root: root))
                    var bad = proof
                    bad[bad.count - 1][0] ^= 1
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: UInt64(i), size: UInt64(n), proof: bad, root: root))
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: UInt64(i), size: UInt64(n), proof: Array(proof.dropLast()), root: root))
                }
                // (The size only shapes the path: the root, which the signed checkpoint binds to
                // its size, is what a proof is checked against.)
            }
        }
        #expect(throws: MerkleError.self) { try MerkleTree.inclusionProof(index: 5, size: 5, t) }
    }

    @Test func everyConsistencyProofVerifiesAndForksFail() throws {
        let t = Self.tree(Self.leaves)
        // A history that differs from the first at leaf 3.
        var forkLeaves = Self.leaves
        forkLeaves[3] = Array("forged".utf8)
        let fork = Self.tree(forkLeaves)
        for n in 1...40 {
            let newRoot = try MerkleTree.root(of: UInt64(n), t)
            for m in 1...n {
                let oldRoot = try MerkleTree.root(of: UInt64(m), t)
                let proof = try MerkleTree.consistencyProof(from: UInt64(m), to: UInt64(n), t)
                #expect(MerkleTree.verifyConsistency(from: UInt64(m), to: UInt64(n), proof: proof, oldRoot: oldRoot, newRoot: newRoot), "\(m) → \(n)")
                if m > 3 {
                    // The old tree of the forked history is not a prefix of this one.
                    let forkedOld = try MerkleTree.root(of: UInt64(m), fork)
                    #expect(!MerkleTree.verifyConsistency(from: UInt64(m), to: UInt64(n), proof: proof, oldRoot: forkedOld, newRoot: newRoot))
                }
                if !proof.isEmpty {
                    var bad = proof
                    bad[0][31] ^= 0x80
                    #expect(!MerkleTree.verifyConsistency(from: UInt64(m), to: UInt64(n), proof: bad, oldRoot: oldRoot, newRoot: newRoot))
                }
            }
        }
        #expect(throws: MerkleError.self) { try MerkleTree.consistencyProof(from: 5, to: 4, t) }
    }
}

@Suite struct CheckpointTests {
    @Test func signedNotesRoundTripAndRefuseTampering() throws {
        let key = try SigningKey(rawRepresentation: Array(0..<32))
        let root = Array(SHA256.hash(data: Array("root".utf8)))
        let c = Checkpoint(origin: "qstore.example/audit", size: 1234, rootHash: root, extensions: ["x-extra"])
        #expect(c.text == "qstore.example/audit\n1234\n\(Data(root).base64EncodedString())\nx-extra\n")
        let note = c.signed(by: key, name: "qstore.example/audit")
        #expect(note.hasPrefix(c.text + "\n— qstore.example/audit "))
        #expect(try Checkpoint.verify(note: note, name: "qstore.example/audit", publicKey: key.publicKey) == c)
        // The key ID is the signed-note one: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key), four bytes.
        let id = Array(SHA256.hash(data: Array("qstore.example/audit\n".utf8) + [0x01] + key.publicKey).prefix(4))
        #expect(Checkpoint.keyID(name: "qstore.example/audit", publicKey: key.publicKey) == id)
        let tampered = note.replacingOccurrences(of: "\n1234\n", with: "\n1235\n")
        #expect(throws: CheckpointError.badSignature("qstore.example/audit")) {
            try Checkpoint.verify(note: tampered, name: "qstore.example/audit", publicKey: key.publicKey)
        }
        let other = SigningKey()
        #expect(throws: CheckpointError.unsigned("qstore.example/audit")) {
            try Checkpoint.verify(note: note, name: "qstore.example/audit", publicKey: other.publicKey)
        }
        for bad in ["a\n01\n\(Data(root).base64EncodedString())\n", "a\n1\nAAAA\n", "a\n1\n", "a\n\n1\n\(Data(root).base64EncodedString())\n"] {
            #expect(throws: CheckpointError.self, "\(bad)") { try Checkpoint(text: bad) }
        }
    }
}

/// The signed-note example of Go's golang.org/x/mod/sumdb/note (its package documentation and
/// note_test.go: the PeterNeumann key pair and note), an independent implementation's vector.
@Suite struct SignedNoteVectorTests {
    static let seed = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  // 0x01 ‖ Ed25519 seed (the signer key's last field)
    static let verifier = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"  // 0x01 ‖ public key
    static let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    static let note = text + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"

    @Test func goReferenceNote() throws {
        let seed = [UInt8](Data(base64Encoded: Self.seed)!), verifier = [UInt8](Data(base64Encoded: Self.verifier)!)
        #expect(seed[0] == 0x01 && verifier[0] == 0x01)
        let key = try SigningKey(rawRepresentation: Array(seed.dropFirst()))
        #expect(key.publicKey == Array(verifier.dropFirst()))
        #expect(SignedNote.keyID(name: "PeterNeumann", publicKey: key.publicKey) == [0xc7, 0x4f, 0x20, 0xa3])
        // Ed25519 is deterministic: the same note, byte for byte.
        #expect(SignedNote.sign(Self.text, by: key, name: "PeterNeumann") == Self.note)
        #expect(try SignedNote.open(Self.note, name: "PeterNeumann", publicKey: key.publicKey) == Self.text)
        #expect(throws: CheckpointError.badSignature("PeterNeumann")) {
            try SignedNote.open(Self.note.replacingOccurrences(of: "cryptography", with: "cryptographY"), name: "PeterNeumann", publicKey: key.publicKey)
        }
    }
}
