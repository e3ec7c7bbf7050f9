import Foundation
import IPLD
import Multiformats
import Signing

/// A file in a drive: its metadata (dag-cbor) and a link to its content DAG (UnixFS; ciphertext
/// segments as raw leaves when encrypted).
///
/// `{type: "qdrive.file", name, mediaType, size, owner: IdentityRef, createdAt, modifiedAt, tags,
/// expiresAt? (TTL: the file ends then), privacyProfile?, encryption?: {alg, segmentSize, id, nonce, recipients: [{identity, keyId}]},
/// content: Link}`. The wrapped file keys are not in the block: they live in the node's keyring
/// under `encryption.id`, so erasing them reaches every copy of the metadata (history, replicas,
/// backups) at once — a block, once copied, cannot be erased.
public struct DriveFile: Sendable, Equatable {
    public struct Recipient: Sendable, Equatable, Codable {
        /// Who: an identity's squidId, `admin`, or `key:<keyId>` for a key given by a client.
        public var identity: String
        /// The recipient key's id (`KeyWrap.keyID`).
        public var keyId: String
        public init(identity: String, keyId: String) { (self.identity, self.keyId) = (identity, keyId) }
    }

    public struct Encryption: Sendable, Equatable {
        public var alg: String
        public var segmentSize: Int
        /// The file key's id (32 hex digits): where its wraps are in the keyring.
        public var id: String
        public var nonce: [UInt8]
        public var recipients: [Recipient]
        public init(alg: String = SegmentCipher.algorithm, segmentSize: Int, id: String, nonce: [UInt8], recipients: [Recipient]) {
            (self.alg, self.segmentSize, self.id, self.nonce, self.recipients) = (alg, segmentSize, id, nonce, recipients)
        }
    }

    public var name: String
    public var mediaType: String
    /// Plaintext bytes.
    public var size: UInt64
    public var owner: IdentityRef
    /// Unix milliseconds.
    public var createdAt: UInt64
    public var modifiedAt: UInt64
    public var tags: [String]
    /// When the file ends (Unix ms; the `qdrive-files` policy's TTL, or the put's own).
    public var expiresAt: UInt64?
    public var privacyProfile: String?
    public var encryption: Encryption?
    public var content: CID

    public init(name: String, mediaType: String, size: UInt64, owner: IdentityRef, createdAt: UInt64, modifiedAt: UInt64, tags: [String] = [],
                privacyProfile: String? = nil, encryption: Encryption?, content: CID) {
        (self.name, self.mediaType, self.size, self.owner, self.createdAt, self.modifiedAt) = (name, mediaType, size, owner, createdAt, modifiedAt)
        (self.tags, self.privacyProfile, self.encryption, self.content) = (tags, privacyProfile, encryption, content)
    }

    public var node: IPLDNode {
        var pairs: [(String, IPLDNode)] = [
            ("type", .string("qdrive.file")), ("name", .string(name)), ("mediaType", .string(mediaType)), ("size", .int(size)),
            ("owner", owner.node), ("createdAt", .int(createdAt)), ("modifiedAt", .int(modifiedAt)),
            ("tags", .list(tags.map { .string($0) })), ("content", .link(content)),
        ]
        if let privacyProfile { pairs.append(("privacyProfile", .string(privacyProfile))) }
        if let expiresAt { pairs.append(("expiresAt", .int(expiresAt))) }
        if let e = encryption {
            pairs.append(("encryption", .map(IPLDMap(uniqueKeysWithValues: [
                ("alg", .string(e.alg)), ("segmentSize", .int(e.segmentSize)), ("id", .string(e.id)), ("nonce", .bytes(e.nonce)),
                ("recipients", .list(e.recipients.map { r in .map(IPLDMap(uniqueKeysWithValues: [("identity", .string(r.identity)), ("keyId", .string(r.keyId))])) })),
            ]))))
        }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    public func encoded() throws -> [UInt8] { try DAGCBOR().encode(node) }

    public init(_ node: IPLDNode) throws {
        let f = try IPLDFields(node, field: "file", allowed: ["type", "name", "mediaType", "size", "owner", "createdAt", "modifiedAt", "tags", "expiresAt", "privacyProfile", "encryption", "content"])
        guard try f.string("type") == "qdrive.file" else { throw DriveError.invalid("not a qdrive.file") }
        name = try f.string("name")
        mediaType = try f.string("mediaType")
        size = UInt64(max(0, try f.integer("size")))
        owner = try IdentityRef(f.map["owner"], field: "owner")
        createdAt = UInt64(max(0, try f.integer("createdAt")))
        modifiedAt = UInt64(max(0, try f.integer("modifiedAt")))
        tags = try f.strings("tags")
        privacyProfile = try f.optionalString("privacyProfile")
        expiresAt = f.has("expiresAt") ? UInt64(max(0, try f.integer("expiresAt"))) : nil
        content = try f.link("content")
        if f.has("encryption") {
            let e = try IPLDFields(f.map["encryption"], field: "encryption", allowed: ["alg", "segmentSize", "id", "nonce", "recipients"])
            guard case .list(let rs)? = e.map["recipients"] else { throw DriveError.invalid("encryption.recipients: a list") }
            encryption = Encryption(alg: try e.string("alg"), segmentSize: Int(try e.integer("segmentSize")), id: try e.string("id"), nonce: try e.bytes("nonce"),
                                    recipients: try rs.map { n in
                                        let r = try IPLDFields(n, field: "recipient", allowed: ["identity", "keyId"])
                                        return Recipient(identity: try r.string("identity"), keyId: try r.string("keyId"))
                                    })
        }
    }
}

/// A directory of a drive: `{type: "qdrive.dir", entries: {name: Link (a file or a directory)},
/// size (the plaintext bytes below)}`.
public struct DriveDirectory: Sendable, Equatable {
    public var entries: [String: CID]
    public var size: UInt64
    public init(entries: [String: CID] = [:], size: UInt64 = 0) { (self.entries, self.size) = (entries, size) }

    public var node: IPLDNode {
        .map(IPLDMap(uniqueKeysWithValues: [
            ("type", .string("qdrive.dir")), ("size", .int(size)),
            ("entries", .map(IPLDMap(uniqueKeysWithValues: entries.sorted { $0.key < $1.key }.map { ($0.key, IPLDNode.link($0.value)) }))),
        ]))
    }

    public func encoded() throws -> [UInt8] { try DAGCBOR().encode(node) }

    public init(_ node: IPLDNode) throws {
        let f = try IPLDFields(node, field: "directory", allowed: ["type", "entries", "size"])
        guard try f.string("type") == "qdrive.dir" else { throw DriveError.invalid("not a qdrive.dir") }
        size = UInt64(max(0, try f.integer("size")))
        guard case .map(let m)? = f.map["entries"] else { throw DriveError.invalid("entries: a map") }
        var e: [String: CID] = [:]
        for entry in m {
            let (k, v) = (entry.key, entry.value)
            guard case .link(let c) = v else { throw DriveError.invalid("entries.\(k): a link") }
            e[k] = c
        }
        entries = e
    }
}

/// A path in a drive: `/`-separated names of 1 to 255 bytes, no `.`, `..`, NUL or control
/// characters; leading and doubled slashes ignored.
public enum DrivePath {
    public static func parse(_ text: String) throws -> [String] {
        guard text.utf8.count <= 4096 else { throw DriveError.invalid("a path is at most 4096 bytes") }
        let names = text.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        for n in names {
            guard n != ".", n != "..", n.utf8.count <= 255, !n.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw DriveError.invalid("\"\(n.prefix(80))\": a path's names are 1 to 255 bytes, not . or .., no control characters")
            }
        }
        return names
    }
}
