import Crypto
import Foundation
import Multiformats

/// The node's Ed25519 key pair and its libp2p peer ID (what Kubo shows as `ID`).
public struct NodeIdentity: Sendable {
    /// The 32-byte private key (kept as bytes: swift-crypto's key type is not `Sendable`).
    public let rawRepresentation: [UInt8]
    /// The public key, 32 bytes.
    public let publicKey: [UInt8]

    /// A new random identity.
    public init() {
        let k = Curve25519.Signing.PrivateKey()
        rawRepresentation = Array(k.rawRepresentation)
        publicKey = Array(k.publicKey.rawRepresentation)
    }

    /// The identity of a stored 32-byte key.
    public init(rawRepresentation: [UInt8]) throws {
        let k = try Curve25519.Signing.PrivateKey(rawRepresentation: rawRepresentation)
        self.rawRepresentation = rawRepresentation
        publicKey = Array(k.publicKey.rawRepresentation)
    }

    /// The signing key.
    public var privateKey: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: rawRepresentation) }

    /// The public key's libp2p protobuf (`KeyType Ed25519 = 1`, `Data = key`), as peer IDs hash it.
    public var publicKeyProtobuf: [UInt8] { [0x08, 0x01, 0x12, 0x20] + publicKey }

    /// The peer ID: the identity multihash of the public key protobuf, in base58btc (`12D3KooW…`).
    public var peerID: String { Self.peerID(ofPublicKey: publicKey) }

    /// The peer ID of an Ed25519 public key.
    public static func peerID(ofPublicKey key: [UInt8]) -> String {
        Multibase.base58btc.encodeWithoutPrefix(Multihash(code: .identity, digest: [0x08, 0x01, 0x12, 0x20] + key).bytes)
    }

    /// The peer ID as a CIDv1 with the libp2p-key codec, in base36 (the form IPNS names use).
    public var peerCID: CID { CID(codec: .libp2pKey, multihash: Multihash(code: .identity, digest: publicKeyProtobuf)) }

    /// Signs `data`.
    public func sign(_ data: [UInt8]) throws -> [UInt8] { Array(try privateKey.signature(for: data)) }
}
