import Foundation
import Multiformats
import Signing

/// Why access was refused or an access record is unusable; each names its ecosystem code.
public enum AccessError: Error, KindedError, CustomStringConvertible, Equatable {
    /// Malformed input (a scope, an id, a key, a duration): 400.
    case invalid(String)
    /// No such identity, grant or token: 404.
    case notFound(String)
    /// Already exists: 409.
    case exists(String)
    /// No credential, or a wrong or revoked bearer token: 401 `UNAUTHORIZED`.
    case unauthorized(String)
    /// A signed request that does not verify (signature, key, clock window, replay, revoked
    /// identity): 401 `SIGNATURE_INVALID`.
    case signatureInvalid(String)
    /// The caller lacks the scope: 403 `QONSENT_DENIED`, naming it.
    case denied(required: Scope, subject: String, grantTo: String)
    /// Over the rate limit: 429 `RATE_LIMIT_EXCEEDED`, with the seconds until it would pass.
    case rateLimited(String, retryAfter: Int)
    /// Over the storage quota: 507 `QDRIVE_STORAGE_FULL`.
    case quotaExceeded(String)
    /// Same Idempotency-Key, different request: 422 `IDEMPOTENCY_KEY_REUSED`.
    case idempotencyMismatch(String)
    /// Same Idempotency-Key while the first request still runs: 409 `IDEMPOTENCY_KEY_IN_USE`.
    case idempotencyInProgress(String)

    public var kind: ErrorKind {
        switch self {
        case .invalid, .idempotencyMismatch: .invalidInput
        case .notFound: .notFound
        case .exists, .idempotencyInProgress: .conflict
        case .unauthorized, .signatureInvalid: .unauthenticated
        case .denied: .forbidden
        case .rateLimited: .rateLimited
        case .quotaExceeded: .storageFull
        }
    }

    public var code: String? {
        switch self {
        case .invalid: "INVALID_INPUT"
        case .notFound: "NOT_FOUND"
        case .exists: "CONFLICT"
        case .unauthorized: "UNAUTHORIZED"
        case .signatureInvalid: "SIGNATURE_INVALID"
        case .denied: "QONSENT_DENIED"
        case .rateLimited: "RATE_LIMIT_EXCEEDED"
        case .quotaExceeded: "QDRIVE_STORAGE_FULL"
        case .idempotencyMismatch: "IDEMPOTENCY_KEY_REUSED"
        case .idempotencyInProgress: "IDEMPOTENCY_KEY_IN_USE"
        }
    }

    public var description: String {
        switch self {
        case .invalid(let m), .notFound(let m), .exists(let m), .unauthorized(let m), .signatureInvalid(let m),
             .quotaExceeded(let m), .idempotencyMismatch(let m), .idempotencyInProgress(let m): m
        case .denied(let required, let subject, let grantTo): "\(subject) lacks the scope \(required) (grant it: qstore grant add \(grantTo) --scope \(required))"
        case .rateLimited(let m, _): m
        }
    }
}

/// One Ed25519 public key of an identity and when it may sign: from `notBefore` (ms) until
/// `notAfter` (exclusive; nil: no end). A rotated-out key keeps verifying what it signed inside
/// its window.
public struct IdentityKey: Codable, Sendable, Equatable {
    /// The raw 32 bytes, standard base64.
    public var publicKey: String
    public var notBefore: UInt64
    public var notAfter: UInt64?

    public init(publicKey: String, notBefore: UInt64, notAfter: UInt64? = nil) {
        self.publicKey = publicKey
        self.notBefore = notBefore
        self.notAfter = notAfter
    }

    /// Whether the key may sign at `ms`.
    public func isValid(at ms: UInt64) -> Bool { ms >= notBefore && (notAfter.map { ms < $0 } ?? true) }

    /// The raw key bytes (checked when the key was added).
    public var rawKey: [UInt8] { [UInt8](Data(base64Encoded: publicKey) ?? Data()) }

    /// Checks a key as given by a client: standard base64 of exactly 32 bytes.
    public static func decode(_ base64: String) throws -> [UInt8] {
        guard let d = Data(base64Encoded: base64.trimmingCharacters(in: .whitespaces)), d.count == 32 else {
            throw AccessError.invalid("key: standard base64 of the raw 32-byte Ed25519 public key")
        }
        return [UInt8](d)
    }
}

/// A sQuid identity the node knows: its keys over time, and whether it was revoked.
public struct Identity: Codable, Sendable, Equatable {
    public var squidId: String
    public var label: String?
    public var keys: [IdentityKey]
    /// Created (ms).
    public var created: UInt64
    /// Revoked (ms): no request of it is accepted after this.
    public var revoked: UInt64?

    /// Checks a sQuid id: 1–128 characters of `[A-Za-z0-9._:@-]`, not starting with `token:`
    /// (grants name tokens as `token:ID`) and not `admin`.
    public static func check(squidId: String) throws {
        let ok = !squidId.isEmpty && squidId.utf8.count <= 128 && squidId.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "._:@-".unicodeScalars.contains($0)
        }
        guard ok else { throw AccessError.invalid("squidId \"\(squidId)\": 1 to 128 characters of A-Z a-z 0-9 . _ : @ -") }
        guard !squidId.hasPrefix("token:"), squidId != "admin" else { throw AccessError.invalid("squidId \"\(squidId)\" is reserved") }
    }

    /// The keys valid at `ms`.
    public func keys(at ms: UInt64) -> [[UInt8]] { keys.filter { $0.isValid(at: ms) }.map(\.rawKey) }
}

/// Scopes given to a subject (a sQuid id, or `token:ID`) until `expires`, unless revoked.
public struct Grant: Codable, Sendable, Equatable {
    public var id: String
    public var subject: String
    public var scopes: [Scope]
    public var created: UInt64
    public var expires: UInt64?
    public var revoked: UInt64?
    /// Who made it (`admin`, a sQuid id, `token:ID`).
    public var grantedBy: String?

    /// In force at `ms`.
    public func isLive(at ms: UInt64) -> Bool { revoked == nil && (expires.map { ms < $0 } ?? true) }
}

/// A bearer token made by `token create`: only the SHA-256 of its secret is kept.
public struct Token: Codable, Sendable, Equatable {
    public var id: String
    /// Lowercase hex SHA-256 of the token string.
    public var hash: String
    public var scopes: [Scope]
    /// The identity the token acts as (recorded as author/actor); nil: itself, `token:ID`.
    public var identity: String?
    public var label: String?
    public var created: UInt64
    public var expires: UInt64?
    public var revoked: UInt64?

    public func isLive(at ms: UInt64) -> Bool { revoked == nil && (expires.map { ms < $0 } ?? true) }
}

/// The authenticated caller of one request.
public struct Principal: Sendable, Equatable {
    public enum Credential: Sendable, Equatable {
        /// The repository's api-token file: every scope.
        case adminToken
        /// A token made by `token create`.
        case token(id: String)
        /// A request signed by a key of the identity.
        case signature
    }

    public let credential: Credential
    /// Who acts, as every layer records it (author, actor); nil for the admin token and for
    /// tokens without an identity.
    public let identity: IdentityRef?
    /// The scopes in force for this request (grants and token scopes as of its arrival).
    public let scopes: [Scope]

    public init(credential: Credential, identity: IdentityRef?, scopes: [Scope]) {
        self.credential = credential
        self.identity = identity
        self.scopes = scopes
    }

    /// The key rate limits, quotas and idempotency records are kept under: `admin`, the sQuid
    /// id (signed requests, and tokens acting as an identity), or `token:ID`.
    public var subject: String {
        switch credential {
        case .adminToken: return "admin"
        case .signature: return identity?.squidId ?? "anonymous"
        case .token(let id): return identity?.squidId ?? "token:\(id)"
        }
    }

    /// Whom a grant must name to reach this caller: the sQuid id of a signed request, `token:ID`
    /// of a token (a token's identity's grants do not reach it: least privilege).
    public var grantSubject: String {
        switch credential {
        case .adminToken: "admin"
        case .token(let id): "token:\(id)"
        case .signature: identity?.squidId ?? "anonymous"
        }
    }

    /// How the caller is named in refusals and records.
    public var name: String {
        switch credential {
        case .adminToken: "the admin token"
        case .token(let id): identity.map { "token \(id) (\($0.squidId))" } ?? "token \(id)"
        case .signature: identity?.squidId ?? "anonymous"
        }
    }

    /// Whether one of the scopes covers `required`.
    public func allows(_ required: Scope) -> Bool { scopes.contains { $0.covers(required) } }

    /// Throws `QONSENT_DENIED` unless `allows(required)`.
    public func require(_ required: Scope) throws {
        guard allows(required) else { throw AccessError.denied(required: required, subject: name, grantTo: grantSubject) }
    }
}
