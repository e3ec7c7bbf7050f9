import Crypto
import Foundation
import IPLD
import Multiformats
import Storage

/// An Ed25519 key pair. The swift-crypto key is made once (making it derives the public key, as
/// costly as a signature) and kept for every signature.
public struct SigningKey: Sendable, Equatable {
    /// The 32-byte private key.
    public let rawRepresentation: [UInt8]
    /// The 32-byte public key.
    public let publicKey: [UInt8]
    private let box: KeyBox
    private var key: Curve25519.Signing.PrivateKey { box.key }

    /// Holds the swift-crypto key, which is not declared `Sendable`. Sharing it is safe: it is
    /// an immutable value (its bytes are never changed after it is made), and signing only reads
    /// them (BoringSSL's ED25519_sign is a function of its arguments, with no shared state).
    private final class KeyBox: @unchecked Sendable {
        let key: Curve25519.Signing.PrivateKey
        init(_ key: Curve25519.Signing.PrivateKey) { self.key = key }
    }

    /// A new random key.
    public init() {
        let k = Curve25519.Signing.PrivateKey()
        box = KeyBox(k)
        rawRepresentation = Array(k.rawRepresentation)
        publicKey = Array(k.publicKey.rawRepresentation)
    }

    /// The key of these 32 private-key bytes.
    public init(rawRepresentation: [UInt8]) throws {
        let k: Curve25519.Signing.PrivateKey
        do { k = try Curve25519.Signing.PrivateKey(rawRepresentation: rawRepresentation) } catch {
            throw SigningError.invalid("an Ed25519 private key is 32 bytes")
        }
        box = KeyBox(k)
        self.rawRepresentation = rawRepresentation
        publicKey = Array(k.publicKey.rawRepresentation)
    }

    /// The node's own key.
    public init(_ identity: NodeIdentity) {
        box = KeyBox(identity.privateKey)
        rawRepresentation = identity.rawRepresentation
        publicKey = identity.publicKey
    }

    public static func == (a: SigningKey, b: SigningKey) -> Bool { a.rawRepresentation == b.rawRepresentation }

    /// The 64-byte signature of `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        // Ed25519 signing with a valid key does not fail.
        Array(try! key.signature(for: message))
    }

    /// The libp2p public-key protobuf of the key (`KeyType Ed25519 = 1`, `Data`), as peer IDs and
    /// IPNS records carry it.
    public var publicKeyProtobuf: [UInt8] { Libp2pKey.protobuf(publicKey) }
}

/// Ed25519 signatures over a domain string followed by the signed object's bytes: the domain
/// (`qindex-record:`, `qmodule-metadata:`, …) makes a signature of one kind of object worthless
/// as a signature of any other.
public enum Signatures {
    /// The bytes a signature covers.
    public static func message(domain: String, _ payload: [UInt8]) -> [UInt8] { Array(domain.utf8) + payload }

    /// Whether `signature` is `publicKey`'s signature of `domain ‖ payload`.
    public static func isValid(_ signature: [UInt8], of payload: [UInt8], domain: String, publicKey: [UInt8]) -> Bool {
        guard signature.count == 64, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        return key.isValidSignature(signature, for: message(domain: domain, payload))
    }
}

/// Who made an object: a sQuid identity, optionally a sub-identity and a DAO.
public struct IdentityRef: Sendable, Hashable {
    public var squidId: String
    public var subId: String?
    public var daoId: String?

    public init(squidId: String, subId: String? = nil, daoId: String? = nil) {
        self.squidId = squidId
        self.subId = subId
        self.daoId = daoId
    }

    /// As an IPLD map (absent optionals left out).
    public var node: IPLDNode {
        var pairs: [(String, IPLDNode)] = [("squidId", .string(squidId))]
        if let subId { pairs.append(("subId", .string(subId))) }
        if let daoId { pairs.append(("daoId", .string(daoId))) }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    /// Reads the map `node`; `field` names it in errors.
    public init(_ node: IPLDNode?, field: String) throws {
        let m = try IPLDFields(node, field: field, allowed: ["squidId", "subId", "daoId"])
        squidId = try m.string("squidId")
        subId = try m.optionalString("subId")
        daoId = try m.optionalString("daoId")
        try check(field: field)
    }

    /// Refuses what a reader would refuse: a squidId that is empty or over 256 bytes, a subId or
    /// daoId over 256 bytes (checked before an object is signed and stored, not only when read).
    public func check(field: String) throws {
        guard !squidId.isEmpty, squidId.utf8.count <= 256 else { throw SigningError.malformed("\(field).squidId: 1–256 bytes") }
        for (name, value) in [("squidId", squidId), ("subId", subId), ("daoId", daoId)] {
            if let value, value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw SigningError.malformed("\(field).\(name): no control characters")
            }
        }
        guard (subId?.utf8.count ?? 0) <= 256 else { throw SigningError.malformed("\(field).subId: at most 256 bytes") }
        guard (daoId?.utf8.count ?? 0) <= 256 else { throw SigningError.malformed("\(field).daoId: at most 256 bytes") }
    }
}

/// A Qlock signature of an object: `sig` is the Ed25519 signature by `pub` of the object's bytes
/// behind its domain; `ts` (Unix milliseconds) and `nonce` say when and which signing it was.
public struct LockSig: Sendable, Hashable {
    public var alg: String
    public var pub: [UInt8]
    public var sig: [UInt8]
    public var ts: Int64
    public var nonce: [UInt8]

    /// A signature by `key` at `ts` with a fresh 16-byte nonce, its bytes still empty: objects whose
    /// signed bytes cover the key, time and nonce (`unsignedNode`) compute them, then set `sig`.
    public init(unsignedBy key: SigningKey, ts: Int64) {
        var nonce = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in nonce.indices { nonce[i] = rng.next() }
        self.init(alg: "ed25519", pub: key.publicKey, sig: [], ts: ts, nonce: nonce)
    }

    /// The map without the signature bytes (what signed objects cover of their own signature).
    public var unsignedNode: IPLDNode {
        .map(IPLDMap(uniqueKeysWithValues: [("alg", .string(alg)), ("pub", .bytes(pub)), ("ts", .int(ts)), ("nonce", .bytes(nonce))]))
    }

    public init(alg: String, pub: [UInt8], sig: [UInt8], ts: Int64, nonce: [UInt8]) {
        self.alg = alg
        self.pub = pub
        self.sig = sig
        self.ts = ts
        self.nonce = nonce
    }

    /// Refuses a signature that is not `pub`'s of `domain ‖ payload` (`SigningError.invalid`).
    public func verify(_ payload: [UInt8], domain: String) throws {
        guard alg == "ed25519" else { throw SigningError.invalid("unsupported signature algorithm \"\(alg)\" (ed25519 only)") }
        guard pub.count == 32 else { throw SigningError.invalid("sig.pub: an Ed25519 public key is 32 bytes") }
        guard Signatures.isValid(sig, of: payload, domain: domain, publicKey: pub) else {
            throw SigningError.invalid("the signature does not verify against sig.pub")
        }
    }

    public var node: IPLDNode {
        .map(IPLDMap(uniqueKeysWithValues: [("alg", .string(alg)), ("pub", .bytes(pub)), ("sig", .bytes(sig)), ("ts", .int(ts)), ("nonce", .bytes(nonce))]))
    }

    public init(_ node: IPLDNode?, field: String) throws {
        let m = try IPLDFields(node, field: field, allowed: ["alg", "pub", "sig", "ts", "nonce"])
        alg = try m.string("alg")
        pub = try m.bytes("pub")
        sig = try m.bytes("sig")
        ts = try m.integer("ts")
        nonce = try m.bytes("nonce")
        guard nonce.count <= 64 else { throw SigningError.malformed("\(field).nonce: at most 64 bytes") }
    }
}

/// Failures of signing and of reading signed objects.
public enum SigningError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A signature that does not verify, or a signer that may not sign this.
    case invalid(String)
    /// An object of the wrong shape (a field missing, of the wrong kind, or unknown).
    case malformed(String)

    public var description: String {
        switch self {
        case .invalid(let m): "signature invalid: \(m)"
        case .malformed(let m): m
        }
    }
}

extension SigningError: KindedError {
    public var kind: ErrorKind { .invalidInput }
    public var code: String? {
        switch self {
        case .invalid: "SIGNATURE_INVALID"
        case .malformed: nil
        }
    }
}

/// libp2p's key encodings for Ed25519 keys: the public-key protobuf, the peer ID and the
/// `libp2p-key` CID IPNS names are written as.
public enum Libp2pKey {
    /// `PublicKey { KeyType Type = 1 [Ed25519 = 1]; bytes Data = 2 }`.
    public static func protobuf(_ publicKey: [UInt8]) -> [UInt8] { [0x08, 0x01, 0x12, 0x20] + publicKey }

    /// The Ed25519 public key in a libp2p public-key protobuf; nil for other key types.
    public static func ed25519Key(fromProtobuf bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count == 36, bytes.starts(with: [0x08, 0x01, 0x12, 0x20]) else { return nil }
        return Array(bytes.suffix(32))
    }

    /// The name (`libp2p-key` CIDv1 with an identity multihash of the protobuf) of a public key.
    public static func name(_ publicKey: [UInt8]) -> CID {
        CID(codec: .libp2pKey, multihash: Multihash(code: .identity, digest: protobuf(publicKey)))
    }

    /// The Ed25519 public key a name is made of (a `libp2p-key` CID or a base58btc peer ID whose
    /// multihash inlines it); nil when the name does not inline an Ed25519 key.
    public static func publicKey(ofName name: String) -> [UInt8]? {
        let mh: Multihash
        if let c = try? CID(name), c.codec == .libp2pKey { mh = c.multihash } else if let bytes = try? Multibase.base58btc.decodeWithoutPrefix(Substring(name)),
            let m = try? Multihash(bytes: bytes) { mh = m } else { return nil }
        guard mh.code == .identity else { return nil }
        return ed25519Key(fromProtobuf: Array(mh.digest))
    }
}

/// Reads the fields of an IPLD map for a decoder, naming the field of every error and refusing
/// fields it does not know.
public struct IPLDFields {
    public let map: IPLDMap
    public let field: String

    public init(_ node: IPLDNode?, field: String, allowed: Set<String>) throws {
        guard case .map(let m)? = node else { throw SigningError.malformed("\(field): expected a map") }
        for e in m.entries where !allowed.contains(e.key) { throw SigningError.malformed("\(field).\(e.key): unknown field") }
        map = m
        self.field = field
    }

    private func name(_ key: String) -> String { field.isEmpty ? key : "\(field).\(key)" }

    public func has(_ key: String) -> Bool { map[key] != nil }

    public func string(_ key: String) throws -> String {
        guard case .string(let s)? = map[key] else { throw SigningError.malformed("\(name(key)): expected a string") }
        return s
    }

    public func optionalString(_ key: String) throws -> String? {
        switch map[key] {
        case nil, .null?: nil
        case .string(let s)?: s
        default: throw SigningError.malformed("\(name(key)): expected a string")
        }
    }

    public func bytes(_ key: String) throws -> [UInt8] {
        guard case .bytes(let b)? = map[key] else { throw SigningError.malformed("\(name(key)): expected bytes") }
        return b
    }

    public func integer(_ key: String) throws -> Int64 {
        guard case .integer(let i)? = map[key], let v = i.int64 else { throw SigningError.malformed("\(name(key)): expected an integer") }
        return v
    }

    public func link(_ key: String) throws -> CID {
        guard case .link(let c)? = map[key] else { throw SigningError.malformed("\(name(key)): expected a link") }
        return c
    }

    public func optionalLink(_ key: String) throws -> CID? {
        switch map[key] {
        case nil, .null?: nil
        case .link(let c)?: c
        default: throw SigningError.malformed("\(name(key)): expected a link or null")
        }
    }

    public func strings(_ key: String) throws -> [String] {
        guard case .list(let items)? = map[key] else { throw SigningError.malformed("\(name(key)): expected a list of strings") }
        return try items.map {
            guard case .string(let s) = $0 else { throw SigningError.malformed("\(name(key)): expected a list of strings") }
            return s
        }
    }

    public func links(_ key: String) throws -> [CID] {
        guard case .list(let items)? = map[key] else { throw SigningError.malformed("\(name(key)): expected a list of links") }
        return try items.map {
            guard case .link(let c) = $0 else { throw SigningError.malformed("\(name(key)): expected a list of links") }
            return c
        }
    }
}
