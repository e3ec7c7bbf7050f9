@preconcurrency import Crypto
import Foundation

/// File keys wrapped for their recipients with HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256),
/// HKDF-SHA256, ChaCha20-Poly1305, base mode), and the node's sealing of the private keys it
/// holds for identities (server-held mode).
public enum KeyWrap {
    static var suite: HPKE.Ciphersuite { .Curve25519_SHA256_ChachaPoly }
    static let info = Data("qdrive/v1 file key".utf8)

    /// A recipient key's id: the first 8 bytes of SHA-256 of the public key, hex.
    public static func keyID(_ publicKey: [UInt8]) -> String {
        SHA256.hash(data: publicKey).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// `enc ‖ ciphertext` of `fileKey` for `recipient` (a raw X25519 public key), bound to the
    /// file's encryption id.
    public static func wrap(_ fileKey: [UInt8], for recipient: [UInt8], id: String) throws -> [UInt8] {
        let pub: Curve25519.KeyAgreement.PublicKey
        do { pub = try .init(rawRepresentation: recipient) } catch { throw DriveError.invalid("a recipient is a 32-byte X25519 public key") }
        // A small-order point gives every sender the same (all-zero) shared secret (RFC 9180 §7.1.4).
        let probe = try Curve25519.KeyAgreement.PrivateKey().sharedSecretFromKeyAgreement(with: pub)
        guard probe.withUnsafeBytes({ $0.contains { $0 != 0 } }) else { throw DriveError.invalid("the recipient key is a small-order point: no key at all") }
        var sender = try HPKE.Sender(recipientKey: pub, ciphersuite: suite, info: info)
        let sealed = try sender.seal(fileKey, authenticating: Data(id.utf8))
        return Array(sender.encapsulatedKey) + Array(sealed)
    }

    public static func unwrap(_ wrapped: [UInt8], with privateKey: Curve25519.KeyAgreement.PrivateKey, id: String) throws -> [UInt8] {
        guard wrapped.count > 32 else { throw DriveError.corrupt("a wrapped key is too short") }
        do {
            var r = try HPKE.Recipient(privateKey: privateKey, ciphersuite: suite, info: info, encapsulatedKey: Data(wrapped.prefix(32)))
            return Array(try r.open(wrapped.dropFirst(32), authenticating: Data(id.utf8)))
        } catch {
            throw DriveError.noKey("the wrapped file key does not open with this key")
        }
    }

    /// A private key sealed under the node's master key, bound to its owner's name.
    public static func seal(_ privateKey: Curve25519.KeyAgreement.PrivateKey, owner: String, master: SymmetricKey) throws -> [UInt8] {
        Array(try ChaChaPoly.seal(privateKey.rawRepresentation, using: master, authenticating: Data(owner.utf8)).combined)
    }

    public static func unseal(_ sealed: [UInt8], owner: String, master: SymmetricKey) throws -> Curve25519.KeyAgreement.PrivateKey {
        do {
            let raw = try ChaChaPoly.open(try ChaChaPoly.SealedBox(combined: sealed), using: master, authenticating: Data(owner.utf8))
            return try .init(rawRepresentation: raw)
        } catch {
            throw DriveError.noKey("the key held for \(owner) does not open with this node's master key")
        }
    }

    /// 32 random bytes.
    public static func randomKey() -> [UInt8] { SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) } }
}

/// A new file key and the encryption it makes, where the plaintext is: on the node (server-held
/// mode) or on a client that must not trust the node (client-held: the node gets the ciphertext,
/// `encryption` and the wraps, never a key that opens them).
public struct FileSealing: Sendable {
    public let fileKey: [UInt8]
    public let cipher: SegmentCipher
    public private(set) var encryption: DriveFile.Encryption
    /// Each recipient key id's wrap of `fileKey`.
    public private(set) var wraps: [String: [UInt8]] = [:]

    public init(segmentSize: Int = SegmentCipher.defaultSegment) throws {
        fileKey = KeyWrap.randomKey()
        let nonce = Array(KeyWrap.randomKey().prefix(16))
        let id = KeyWrap.randomKey().prefix(16).map { String(format: "%02x", $0) }.joined()
        cipher = try SegmentCipher(fileKey: fileKey, nonce: nonce, segmentSize: segmentSize)
        encryption = DriveFile.Encryption(segmentSize: segmentSize, id: id, nonce: nonce, recipients: [])
    }

    /// Wraps the file key for `publicKey`, naming it `identity` (`key:<keyId>` for a client's key).
    public mutating func wrap(for publicKey: [UInt8], identity: String? = nil) throws {
        let keyID = KeyWrap.keyID(publicKey)
        wraps[keyID] = try KeyWrap.wrap(fileKey, for: publicKey, id: encryption.id)
        encryption.recipients.append(.init(identity: identity ?? "key:" + keyID, keyId: keyID))
    }

    /// Checks what a client sent for a sealed upload: the form of `encryption`, only client keys
    /// as recipients, and one wrap of the right size for each of them (the node cannot open a
    /// wrap, so it cannot check more).
    public static func check(_ e: DriveFile.Encryption, wraps: [String: [UInt8]]) throws {
        guard e.alg == SegmentCipher.algorithm else { throw DriveError.invalid("sealed: alg is \(SegmentCipher.algorithm)") }
        guard e.segmentSize >= SegmentCipher.minimumSegment, e.segmentSize <= SegmentCipher.maximumSegment else {
            throw DriveError.invalid("sealed: segmentSize \(SegmentCipher.minimumSegment) to \(SegmentCipher.maximumSegment)")
        }
        guard e.nonce.count == 16 else { throw DriveError.invalid("sealed: the nonce is 16 bytes") }
        guard e.id.count == 32, e.id.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { throw DriveError.invalid("sealed: the key id is 32 lowercase hex digits") }
        guard !e.recipients.isEmpty else { throw DriveError.invalid("sealed: at least one recipient (wrap=KEYID:WRAP)") }
        for r in e.recipients {
            guard r.identity == "key:" + r.keyId, r.keyId.count == 16 else { throw DriveError.invalid("sealed: a recipient is a client key (key:<keyId>)") }
            // HPKE: the 32-byte encapsulated key, then the 32-byte file key sealed (16-byte tag).
            guard wraps[r.keyId]?.count == 80 else { throw DriveError.invalid("sealed: the wrap for \(r.keyId) is missing or not 80 bytes") }
        }
        guard wraps.count == e.recipients.count else { throw DriveError.invalid("sealed: a wrap for a key that is not a recipient") }
    }
}
