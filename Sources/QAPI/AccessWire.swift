import Access
import Foundation
import Qindex

// The wire types of /q/v1/identities, /q/v1/grants, /q/v1/tokens and /q/v1/whoami. Times are
// RFC 3339 (UTC, milliseconds); `status` says whether a record is in force now.

/// One key of an identity and its validity window.
public struct IdentityKeyInfo: Codable, Sendable, Equatable {
    public var publicKey: String
    public var notBefore: String
    public var notAfter: String?
    /// Whether it signs now.
    public var current: Bool
}

public struct IdentityInfo: Codable, Sendable, Equatable {
    public var squidId: String
    public var label: String?
    public var keys: [IdentityKeyInfo]
    public var created: String
    public var revoked: String?
    /// `active` or `revoked`.
    public var status: String

    public init(_ i: Identity, now: UInt64) {
        squidId = i.squidId
        label = i.label
        keys = i.keys.map { IdentityKeyInfo(publicKey: $0.publicKey, notBefore: Timestamps.format($0.notBefore),
                                            notAfter: $0.notAfter.map(Timestamps.format), current: $0.isValid(at: now) && i.revoked == nil) }
        created = Timestamps.format(i.created)
        revoked = i.revoked.map(Timestamps.format)
        status = i.revoked == nil ? "active" : "revoked"
    }
}

public struct GrantInfo: Codable, Sendable, Equatable {
    public var id: String
    public var subject: String
    public var scopes: [String]
    public var created: String
    public var expires: String?
    public var revoked: String?
    public var grantedBy: String?
    /// `active`, `expired` or `revoked`.
    public var status: String

    public init(_ g: Grant, now: UInt64) {
        id = g.id
        subject = g.subject
        scopes = g.scopes.map(\.value)
        created = Timestamps.format(g.created)
        expires = g.expires.map(Timestamps.format)
        revoked = g.revoked.map(Timestamps.format)
        grantedBy = g.grantedBy
        status = g.revoked != nil ? "revoked" : g.isLive(at: now) ? "active" : "expired"
    }
}

public struct TokenInfo: Codable, Sendable, Equatable {
    public var id: String
    public var scopes: [String]
    public var identity: String?
    public var label: String?
    public var created: String
    public var expires: String?
    public var revoked: String?
    /// `active`, `expired` or `revoked`.
    public var status: String

    public init(_ t: Token, now: UInt64) {
        id = t.id
        scopes = t.scopes.map(\.value)
        identity = t.identity
        label = t.label
        created = Timestamps.format(t.created)
        expires = t.expires.map(Timestamps.format)
        revoked = t.revoked.map(Timestamps.format)
        status = t.revoked != nil ? "revoked" : t.isLive(at: now) ? "active" : "expired"
    }
}

/// `POST /q/v1/tokens`'s reply: the token (shown this once) and its record.
public struct TokenCreated: Codable, Sendable {
    /// The token; null in an idempotent replay (a secret is shown once and never stored).
    public var token: String?
    public var record: TokenInfo
    public init(token: String?, record: TokenInfo) { (self.token, self.record) = (token, record) }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(token, forKey: .token)
        try c.encode(record, forKey: .record)
    }
}

public struct IdentityList: Codable, Sendable { public var identities: [IdentityInfo]; public init(_ i: [IdentityInfo]) { identities = i } }
public struct GrantList: Codable, Sendable { public var grants: [GrantInfo]; public init(_ g: [GrantInfo]) { grants = g } }
public struct TokenList: Codable, Sendable { public var tokens: [TokenInfo]; public init(_ t: [TokenInfo]) { tokens = t } }

/// `GET /q/v1/whoami`: how the node sees the caller.
public struct CallerInfo: Codable, Sendable, Equatable {
    /// The key limits and idempotency records are kept under.
    public var subject: String
    /// `admin-token`, `token` or `signature`.
    public var credential: String
    public var tokenId: String?
    public var identity: AuthorInfo?
    public var scopes: [String]
    /// Bytes the caller's pins hold, and its storage quota (0: none); absent for the admin token.
    public var storageUsed: UInt64?
    public var storageQuota: UInt64?

    public init(_ p: Principal, storage: (used: UInt64, quota: UInt64)? = nil) {
        storageUsed = storage?.used
        storageQuota = storage?.quota
        subject = p.subject
        switch p.credential {
        case .adminToken: credential = "admin-token"
        case .token(let id): credential = "token"; tokenId = id
        case .signature: credential = "signature"
        }
        identity = p.identity.map(AuthorInfo.init)
        scopes = p.scopes.map(\.value)
    }
}

// Requests.

/// `POST /q/v1/identities`.
public struct IdentityCreate: Codable, Sendable {
    public var squidId: String
    /// Standard base64 of the raw 32-byte Ed25519 public key.
    public var key: String
    public var label: String?
    public init(squidId: String, key: String, label: String?) { (self.squidId, self.key, self.label) = (squidId, key, label) }
}

/// `POST /q/v1/identities/{id}/keys`: rotate to `key`; the keys it replaces sign for `overlap` more (default 24h).
public struct KeyRotation: Codable, Sendable {
    public var key: String
    public var overlap: String?
    public init(key: String, overlap: String?) { (self.key, self.overlap) = (key, overlap) }
}

/// `POST /q/v1/grants`: `expires` a duration from now (`30d`), or absent (no end).
public struct GrantCreate: Codable, Sendable {
    public var subject: String
    public var scopes: [String]
    public var expires: String?
    public init(subject: String, scopes: [String], expires: String?) { (self.subject, self.scopes, self.expires) = (subject, scopes, expires) }
}

/// `POST /q/v1/tokens`.
public struct TokenCreate: Codable, Sendable {
    public var scopes: [String]
    public var identity: String?
    public var expires: String?
    public var label: String?
    public init(scopes: [String], identity: String?, expires: String?, label: String?) {
        (self.scopes, self.identity, self.expires, self.label) = (scopes, identity, expires, label)
    }
}
