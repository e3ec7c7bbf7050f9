import Crypto
import Foundation
import Signing

/// A C2SP tlog checkpoint (c2sp.org/tlog-checkpoint): the origin line, the tree size in decimal,
/// the root hash in standard base64, then optional extension lines — each line ending in "\n".
/// Signed as a C2SP signed note (c2sp.org/signed-note): the text, a blank line, then one line
/// per signature, "— <key name> <base64(key ID ‖ signature)>", the key ID being the first four
/// bytes of SHA-256(key name ‖ "\n" ‖ 0x01 ‖ Ed25519 public key).
public struct Checkpoint: Sendable, Equatable {
    public var origin: String
    public var size: UInt64
    public var rootHash: [UInt8]
    public var extensions: [String]

    public init(origin: String, size: UInt64, rootHash: [UInt8], extensions: [String] = []) {
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
        self.extensions = extensions
    }

    /// The checkpoint's text: the note body that is signed.
    public var text: String {
        ([origin, String(size), Data(rootHash).base64EncodedString()] + extensions).map { $0 + "\n" }.joined()
    }

    /// Reads a checkpoint's text (strict: every line ends in "\n", no empty line, a decimal size
    /// without leading zeros, a 32-byte root).
    public init(text: String) throws {
        guard text.hasSuffix("\n") else { throw CheckpointError.malformed("the text must end in a newline") }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3, !lines.contains("") else { throw CheckpointError.malformed("origin, size and root hash lines, none empty") }
        guard let size = UInt64(lines[1]), String(size) == lines[1] else { throw CheckpointError.malformed("the size is not a decimal number") }
        guard let root = Data(base64Encoded: lines[2]), root.count == 32 else { throw CheckpointError.malformed("the root hash is not 32 bytes of base64") }
        self.init(origin: lines[0], size: size, rootHash: [UInt8](root), extensions: Array(lines[3...]))
    }

    /// The signed note of the checkpoint, by `key` named `name`.
    public func signed(by key: SigningKey, name: String) -> String { SignedNote.sign(text, by: key, name: name) }

    /// Reads a signed note and checks the signature of the key `name`/`publicKey` on it; returns
    /// the checkpoint.
    public static func verify(note: String, name: String, publicKey: [UInt8]) throws -> Checkpoint {
        try Checkpoint(text: try SignedNote.open(note, name: name, publicKey: publicKey))
    }

    /// The signed-note key ID of an Ed25519 key named `name`.
    public static func keyID(name: String, publicKey: [UInt8]) -> [UInt8] { SignedNote.keyID(name: name, publicKey: publicKey) }
}

/// C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: a text ending in a newline, a
/// blank line, then signature lines "— <key name> <base64(key ID ‖ signature)>"; the key ID is
/// the first four bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key), the signature covers the
/// text with its final newline.
public enum SignedNote {
    public static func keyID(name: String, publicKey: [UInt8]) -> [UInt8] {
        Array(MerkleHash.sha256(Array(name.utf8) + [0x0a, 0x01] + publicKey).prefix(4))
    }

    /// `text` (ending in a newline) signed by `key` named `name`.
    public static func sign(_ text: String, by key: SigningKey, name: String) -> String {
        let signature = key.sign(Array(text.utf8))
        return text + "\n" + "— \(name) " + Data(keyID(name: name, publicKey: key.publicKey) + signature).base64EncodedString() + "\n"
    }

    /// The text of `note` once the signature of the key `name`/`publicKey` on it verifies
    /// (signatures of other keys are ignored; a failing one of this key refuses the note).
    public static func open(_ note: String, name: String, publicKey: [UInt8]) throws -> String {
        guard let split = note.range(of: "\n\n", options: .backwards) else { throw CheckpointError.malformed("no blank line before the signatures") }
        let text = String(note[..<split.lowerBound]) + "\n"
        let wantedID = keyID(name: name, publicKey: publicKey)
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { throw CheckpointError.malformed("not an Ed25519 key") }
        for line in note[split.upperBound...].split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "—", parts[1] == name, let blob = Data(base64Encoded: String(parts[2])), blob.count == 68,
                  Array(blob.prefix(4)) == wantedID else { continue }
            guard key.isValidSignature(blob.dropFirst(4), for: Array(text.utf8)) else { throw CheckpointError.badSignature(name) }
            return text
        }
        throw CheckpointError.unsigned(name)
    }
}

public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case badSignature(String)
    case unsigned(String)

    public var description: String {
        switch self {
        case .malformed(let m): "malformed checkpoint: \(m)"
        case .badSignature(let n): "the signature of \(n) on the checkpoint does not verify"
        case .unsigned(let n): "the checkpoint has no signature of \(n)"
        }
    }
}
