import Foundation
import Multiformats
import Qdrive

// The wire types of `/q/v1/drive` (daemon and CLI share them).

/// A file's metadata as the API shows it.
public struct DriveFileWire: Codable, Sendable, Equatable {
    public struct Encryption: Codable, Sendable, Equatable {
        public var alg: String
        public var segmentSize: Int
        public var id: String
        /// The 16-byte nonce the payload key is derived with (base64url, no padding).
        public var nonce: String
        public var recipients: [DriveFile.Recipient]
    }
    public var path: String
    /// The metadata block.
    public var cid: String
    /// The drive's version it was read at (or made by).
    public var version: Int64
    public var name: String
    public var mediaType: String
    public var size: UInt64
    public var owner: String
    public var createdAt: UInt64
    public var modifiedAt: UInt64
    public var tags: [String]
    /// When the file ends (Unix ms), if it has a TTL.
    public var expiresAt: UInt64?
    public var privacyProfile: String?
    public var encryption: Encryption?
    /// The content DAG (ciphertext segments when encrypted).
    public var content: String

    public init(path: String, cid: String, version: Int64, file f: DriveFile) {
        (self.path, self.cid, self.version) = (path, cid, version)
        (name, mediaType, size, owner, createdAt, modifiedAt, tags, privacyProfile) = (f.name, f.mediaType, f.size, f.owner.squidId, f.createdAt, f.modifiedAt, f.tags, f.privacyProfile)
        expiresAt = f.expiresAt
        encryption = f.encryption.map { Encryption(alg: $0.alg, segmentSize: $0.segmentSize, id: $0.id, nonce: DriveKeyWire.encode($0.nonce), recipients: $0.recipients) }
        content = f.content.string
    }
}

/// A directory's entries.
public struct DriveListingWire: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        /// `file` or `directory`.
        public var kind: String
        public var size: UInt64
        public var cid: String
        public var mediaType: String?
        public var modifiedAt: UInt64?
        public var encrypted: Bool?
        public init(name: String, kind: String, size: UInt64, cid: String, mediaType: String?, modifiedAt: UInt64?, encrypted: Bool?) {
            (self.name, self.kind, self.size, self.cid, self.mediaType, self.modifiedAt, self.encrypted) = (name, kind, size, cid, mediaType, modifiedAt, encrypted)
        }
    }
    public var owner: String
    public var path: String
    public var entries: [Entry]
    public init(owner: String, path: String, entries: [Entry]) { (self.owner, self.path, self.entries) = (owner, path, entries) }
}

/// What a change made: the drive's new version (and, for an erase, the CIDs whose keys went).
public struct DriveChangeWire: Codable, Sendable, Equatable {
    public var version: Int64
    public var erased: [String]?
    public init(version: Int64, erased: [String]? = nil) { (self.version, self.erased) = (version, erased) }
}

/// An owner's public key (files shared with it are wrapped for this key), or a wrapped file key.
public struct DriveKeyWire: Codable, Sendable, Equatable {
    public var owner: String?
    public var keyId: String
    /// X25519 public key, base64url without padding.
    public var publicKey: String?
    /// `enc ‖ ciphertext` of the file key (HPKE), base64url without padding.
    public var wrappedKey: String?
    public init(owner: String?, keyId: String, publicKey: String?, wrappedKey: String?) {
        (self.owner, self.keyId, self.publicKey, self.wrappedKey) = (owner, keyId, publicKey, wrappedKey)
    }

    public static func encode(_ b: [UInt8]) -> String {
        Data(b).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ s: String) -> [UInt8]? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).map { Array($0) }
    }
}

/// `POST /q/v1/drive/{owner}/{path}?action=move|share|revoke|restore`: `{to?, identity?,
/// publicKey?, who?, rotate?, version?}` (`action` is the query's).
public struct DriveActionWire: Codable, Sendable, Equatable {
    public var action: String = ""
    public var to: String?
    public var identity: String?
    public var publicKey: String?
    public var who: String?
    public var rotate: Bool?
    public var version: Int64?
    enum CodingKeys: String, CodingKey { case to, identity, publicKey, who, rotate, version }
    public init(action: String, to: String? = nil, identity: String? = nil, publicKey: String? = nil, who: String? = nil, rotate: Bool? = nil, version: Int64? = nil) {
        (self.action, self.to, self.identity, self.publicKey, self.who, self.rotate, self.version) = (action, to, identity, publicKey, who, rotate, version)
    }
}
