import Crypto
import Foundation
import Locking
import Multiformats
import Pinning
import Signing
import Storage
import Synchronization

/// Identities, grants and tokens, and the decisions made from them: who a request is
/// (`authenticate`), whether it may do what it asks (`Principal.require`), whether it is within
/// its rate (`admit`), and idempotent replays (`beginIdempotent`). Knows nothing of HTTP.
///
/// Kept in key space `U` (JSON values), and in memory: every request is decided from memory,
/// and every change is written (synced) before it takes effect, so a revocation holds from the
/// next request and survives a crash.
/// - `U 01 ‖ squidId` → `Identity`
/// - `U 02 ‖ grant id` → `Grant`
/// - `U 03 ‖ token id` → `Token`
/// - `U 04 ‖ subject ‖ 00 ‖ Idempotency-Key` → `IdempotentResponse`
/// - `U 05 ‖ u64(expires) ‖ subject ‖ 00 ‖ Idempotency-Key` → `""` (expiry order, for collection)
public final class AccessControl: Sendable {
    struct State {
        var identities: [String: Identity] = [:]
        var grants: [String: Grant] = [:]
        /// Grant ids by subject (a request reads only its subject's).
        var grantsBySubject: [String: [String]] = [:]
        var tokens: [String: Token] = [:]
        /// Token ids by the SHA-256 of the token (raw bytes: no hex per request).
        var tokenByHash: [[UInt8]: String] = [:]
    }

    let db: LevelDB
    let store: CountedBlockStore?
    /// Serialises administrative changes (identities, grants, tokens).
    private let changes = NSLock()
    let clock: any WallClock
    public let configuration: AccessConfiguration
    /// The signature window (ms, either way).
    public let window: UInt64
    let idempotencyTTL: UInt64
    let adminToken: [UInt8]
    let nonces: NonceCache
    let limiter = RateLimiter()
    /// When this process started deciding (ms): nonces are kept in memory only, so a request
    /// dated earlier (which an earlier process may have seen) is refused — no replay across a restart.
    let startedAt: UInt64
    private let state: Mutex<State>
    /// Idempotent requests running: `subject ‖ 00 ‖ key` → request fingerprint.
    let running = Mutex([String: String]())

    static let identityPrefix: [UInt8] = [KeySpace.access.rawValue, 0x01]
    static let grantPrefix: [UInt8] = [KeySpace.access.rawValue, 0x02]
    static let tokenPrefix: [UInt8] = [KeySpace.access.rawValue, 0x03]
    static let idempotencyPrefix: [UInt8] = [KeySpace.access.rawValue, 0x04]
    static let expiryPrefix: [UInt8] = [KeySpace.access.rawValue, 0x05]

    /// Loads the records of `db`; `adminToken` (the repository's api-token) has every scope.
    /// `store`: where changes are written (their audit entries ride along); nil: the database alone.
    public init(db: LevelDB, store: CountedBlockStore? = nil, clock: any WallClock, configuration: AccessConfiguration, adminToken: String) throws {
        self.db = db
        self.store = store
        self.clock = clock
        self.configuration = configuration
        let checked = try configuration.checked()
        window = checked.window
        idempotencyTTL = checked.idempotencyTTL
        self.adminToken = Array(adminToken.utf8)
        nonces = NonceCache(capacity: configuration.nonceCapacity)
        startedAt = clock.now
        var s = State()
        let decoder = JSONDecoder()
        let it = db.makeIterator()
        try it.forEach(prefix: Self.identityPrefix) { _, v in
            let i = try decoder.decode(Identity.self, from: Data(v))
            s.identities[i.squidId] = i
            return true
        }
        try it.forEach(prefix: Self.grantPrefix) { _, v in
            let g = try decoder.decode(Grant.self, from: Data(v))
            s.grants[g.id] = g
            s.grantsBySubject[g.subject, default: []].append(g.id)
            return true
        }
        try it.forEach(prefix: Self.tokenPrefix) { _, v in
            let t = try decoder.decode(Token.self, from: Data(v))
            s.tokens[t.id] = t
            s.tokenByHash[(try? Base16.decode(t.hash)) ?? []] = t.id
            return true
        }
        state = Mutex(s)
    }

    public var now: UInt64 { clock.now }

    // MARK: authentication

    /// The caller of a bearer token: the admin token, or a live token made by `createToken`.
    public func authenticate(bearer token: Substring) throws -> Principal {
        if constantTimeEqual(token.utf8, adminToken) { return Principal(credential: .adminToken, identity: nil, scopes: [.admin]) }
        var t = token
        let hash = t.withUTF8 { Array(SignedRequest.sha256(UnsafeRawBufferPointer($0))) }
        let now = clock.now
        return try state.locked { s in
            guard let id = s.tokenByHash[hash], let t = s.tokens[id] else {
                throw AccessError.unauthorized("missing or wrong API token (Authorization: Bearer <token>)")
            }
            guard t.isLive(at: now) else { throw AccessError.unauthorized("token \(t.id) was \(t.revoked != nil ? "revoked" : "expired")") }
            var identity: IdentityRef?
            if let squid = t.identity {
                guard let i = s.identities[squid], i.revoked == nil else { throw AccessError.unauthorized("token \(t.id) acts as \(squid), which was revoked") }
                identity = IdentityRef(squidId: i.squidId)
            }
            return Principal(credential: .token(id: t.id), identity: identity, scopes: Self.union(t.scopes, Self.granted(to: "token:\(t.id)", s, now)))
        }
    }

    /// Checks what a signed request's headers say before its body is read (their shapes, the
    /// time window, an active identity with a key valid then), so a request that cannot verify
    /// is refused without reading (and holding) its body. `bodySHA256` is not used.
    public func precheck(_ request: SignedRequest) throws {
        _ = try keysAndScopes(request)
    }

    private func keysAndScopes(_ request: SignedRequest) throws -> (ts: UInt64, signature: [UInt8], keys: [[UInt8]], scopes: [Scope]) {
        let (ts, signature) = try request.parsed()
        let now = clock.now
        let skew = ts > now ? ts - now : now - ts
        guard skew <= window else {
            throw AccessError.signatureInvalid("x-ts is \(skew / 1000) s away from the node's clock (at most \(window / 1000) s either way)")
        }
        guard ts >= startedAt else {
            throw AccessError.signatureInvalid("x-ts is before the node started (nonces seen before a restart are not remembered): sign the request anew")
        }
        let (keys, scopes) = try state.locked { s -> ([[UInt8]], [Scope]) in
            guard let i = s.identities[request.squidId] else { throw AccessError.signatureInvalid("unknown identity \(request.squidId) (register it: qstore identity add)") }
            guard i.revoked == nil else { throw AccessError.signatureInvalid("identity \(request.squidId) was revoked") }
            return (i.keys(at: ts), Self.granted(to: i.squidId, s, now))
        }
        guard !keys.isEmpty else { throw AccessError.signatureInvalid("\(request.squidId) has no key valid at x-ts \(ts)") }
        return (ts, signature, keys, scopes)
    }

    /// The caller of a signed request, once its timestamp is inside the window and one of its
    /// identity's keys valid at that time made the signature. The nonce is checked and recorded
    /// by `recordNonce`, once the request is admitted (so refused requests take no room).
    public func authenticate(_ request: SignedRequest) throws -> Principal {
        let (ts, signature, keys, scopes) = try keysAndScopes(request)
        let now = clock.now
        let message = Array(request.canonicalString.utf8)
        guard keys.contains(where: { SignedRequest.verify(signature, key: $0, message: message) }) else {
            throw AccessError.signatureInvalid("the signature does not verify with the keys of \(request.squidId) (check the canonical string: Docs/access.md)")
        }
        _ = now
        return Principal(credential: .signature, identity: IdentityRef(squidId: request.squidId, subId: request.subId), scopes: scopes)
    }

    /// Refuses a replayed signed request before it is admitted (so replays of a captured request
    /// cannot spend its identity's rate limit); records nothing.
    public func checkNonce(_ request: SignedRequest) throws {
        if nonces.contains(request.nonce, of: request.squidId, now: clock.now) {
            throw AccessError.signatureInvalid("x-nonce was already used (a replayed request)")
        }
    }

    /// Records the nonce of an authenticated, admitted signed request; a nonce seen within the
    /// window is a replay (401 `SIGNATURE_INVALID`).
    public func recordNonce(_ request: SignedRequest) throws {
        guard let ts = UInt64(request.timestamp) else { throw AccessError.signatureInvalid("x-ts: Unix time in milliseconds") }
        guard try nonces.insert(request.nonce, of: request.squidId, until: ts + window + 1, now: clock.now) else {
            throw AccessError.signatureInvalid("x-nonce was already used (a replayed request)")
        }
    }

    /// Whether `principal` would still be let through for `scope` now: its token or identity not
    /// revoked or expired, the grants it had still in force (for long-lived requests such as the
    /// event stream, which end when this turns false).
    public func stillAllows(_ principal: Principal, _ scope: Scope) -> Bool {
        let now = clock.now
        return state.locked { s in
            switch principal.credential {
            case .adminToken: return true
            case .token(let id):
                guard let t = s.tokens[id], t.isLive(at: now) else { return false }
                if let squid = t.identity, s.identities[squid]?.revoked != nil { return false }
                return Self.union(t.scopes, Self.granted(to: "token:\(id)", s, now)).contains { $0.covers(scope) }
            case .signature:
                guard let squid = principal.identity?.squidId, let i = s.identities[squid], i.revoked == nil else { return false }
                return Self.granted(to: squid, s, now).contains { $0.covers(scope) }
            }
        }
    }

    /// Whether `key` was a key of `squidId` at `ms` (and the identity not revoked by then).
    public func isKey(_ key: [UInt8], of squidId: String, at ms: UInt64) -> Bool {
        state.locked { s in
            guard let i = s.identities[squidId] else { return false }
            if let r = i.revoked, r <= ms { return false }
            return i.keys(at: ms).contains(key)
        }
    }

    static func granted(to subject: String, _ s: State, _ now: UInt64) -> [Scope] {
        var out: [Scope] = []
        for id in s.grantsBySubject[subject] ?? [] {
            if let g = s.grants[id], g.isLive(at: now) { out.append(contentsOf: g.scopes) }
        }
        return out
    }

    static func union(_ a: [Scope], _ b: [Scope]) -> [Scope] { b.isEmpty ? a : Array(Set(a + b)).sorted() }

    private func constantTimeEqual(_ a: Substring.UTF8View, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }

    // MARK: rate limits

    /// Refuses (429) a client address past its failed authentications, before anything is
    /// verified: guessing tokens or sending forged signatures costs the node little.
    public func checkFailures(client: String) throws {
        if let wait = limiter.peek("client:" + client, limit: configuration.failedAuthenticationLimit) {
            throw AccessError.rateLimited("too many failed authentications from \(client.isEmpty ? "this client" : client); try again later", retryAfter: wait)
        }
    }

    /// Counts a failed authentication of a client address.
    public func recordFailure(client: String) {
        _ = try? limiter.admit("client:" + client, limit: configuration.failedAuthenticationLimit, bytes: 0)
    }

    /// The limits of `subject`: its override, else the default (the admin token: none).
    public func rateLimit(of subject: String) -> RateLimit {
        configuration.rateLimitOverrides[subject] ?? (subject == "admin" ? RateLimit() : configuration.rateLimit)
    }

    /// Admits one request of `principal` declaring `bytes` of body, or throws `RATE_LIMIT_EXCEEDED`.
    public func admit(_ principal: Principal, bytes: Int) throws {
        try limiter.admit(principal.subject, limit: rateLimit(of: principal.subject), bytes: bytes)
    }

    /// Charges bytes learnt after admission (a response, a body of undeclared length).
    public func charge(_ principal: Principal, bytes: Int) {
        limiter.charge(principal.subject, limit: rateLimit(of: principal.subject), bytes: bytes)
    }

    /// The storage quota of `subject` in bytes (0: none): its override, else the default (the
    /// admin token: none).
    public func storageQuota(of subject: String) -> UInt64 {
        configuration.storageQuotaOverrides[subject] ?? (subject == "admin" ? 0 : configuration.storageQuota)
    }

    // MARK: records

    /// What an administrative change does, decided under the state lock.
    private enum Plan<R> {
        /// Nothing to write (e.g. revoked already).
        case done(R)
        /// Write `bytes` at `key` with `entry`, then `apply` to the state.
        case write(key: [UInt8], bytes: [UInt8], entry: AuditEntry, apply: (inout State) -> R)

        static func record(_ key: [UInt8], _ value: some Encodable, _ entry: AuditEntry, apply: @escaping (inout State) -> R) throws -> Plan<R> {
            let e = JSONEncoder()
            e.outputFormatting = .sortedKeys
            return .write(key: key, bytes: Array(try e.encode(value)), entry: entry, apply: apply)
        }
    }

    /// Runs an administrative change: `decide` reads the state (under its lock) and plans; the
    /// record is written (synced, with its audit entry) outside that lock — requests are
    /// authenticated meanwhile — and only then applied. Changes are serialised by their own
    /// lock, so what `decide` saw still holds when its plan is applied.
    private func change<R>(_ decide: (State) throws -> Plan<R>) throws -> R {
        try changes.withLock {
            switch try state.locked({ try decide($0) }) {
            case .done(let r): return r
            case .write(let key, let bytes, let entry, let apply):
                if let store {
                    try store.transaction { txn in
                        txn.batch.put(key, bytes)
                        txn.audit(entry)
                    }
                } else {
                    let batch = WriteBatch()
                    batch.put(key, bytes)
                    try db.write(batch, sync: true)
                }
                return state.locked { apply(&$0) }
            }
        }
    }

    static func randomID(_ bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return Base16.encode((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    /// Registers `squidId` with its first key (valid from now).
    public func addIdentity(_ squidId: String, key: String, label: String? = nil) throws -> Identity {
        try Identity.check(squidId: squidId)
        let raw = try IdentityKey.decode(key)
        guard (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else { throw AccessError.invalid("key: not an Ed25519 public key") }
        if let label { try Self.checkLabel(label) }
        let now = clock.now
        return try change { s in
            if let existing = s.identities[squidId] {
                // A revoked identity stays revoked (its grants, tokens and audit trail name it): its
                // name is not given to a new key.
                throw AccessError.exists(existing.revoked == nil ? "identity \(squidId) exists (rotate its key: qstore identity rotate-key)"
                    : "identity \(squidId) was revoked; a revoked name is not used again (register the new key under another name)")
            }
            let i = Identity(squidId: squidId, label: label, keys: [IdentityKey(publicKey: Data(raw).base64EncodedString(), notBefore: now)], created: now)
            return try .record(Self.identityPrefix + Array(squidId.utf8), i, AuditEntry("q.access.identity.add.v1", ref: squidId, details: [
                ("key", .string(i.keys[0].publicKey)), ("label", label.map { .string($0) } ?? .null),
            ])) { s in
                s.identities[squidId] = i
                return i
            }
        }
    }

    public func identities() -> [Identity] { state.locked { $0.identities.values.sorted { $0.squidId < $1.squidId } } }

    public func identity(_ squidId: String) throws -> Identity {
        guard let i = state.locked({ $0.identities[squidId] }) else { throw AccessError.notFound("no identity \(squidId)") }
        return i
    }

    /// Adds `key` (valid from now) and ends every other open key `overlap` ms from now: requests
    /// signed with the old key are accepted until then, and what it signed before stays verifiable.
    public func rotateKey(_ squidId: String, key: String, overlap: UInt64) throws -> Identity {
        let raw = try IdentityKey.decode(key)
        guard (try? Curve25519.Signing.PublicKey(rawRepresentation: raw)) != nil else { throw AccessError.invalid("key: not an Ed25519 public key") }
        let encoded = Data(raw).base64EncodedString()
        let now = clock.now
        return try change { s in
            guard var i = s.identities[squidId] else { throw AccessError.notFound("no identity \(squidId)") }
            guard i.revoked == nil else { throw AccessError.invalid("identity \(squidId) was revoked") }
            guard !i.keys.contains(where: { $0.publicKey == encoded && $0.isValid(at: now) }) else { throw AccessError.exists("that key is already a current key of \(squidId)") }
            for k in i.keys.indices where i.keys[k].notAfter.map({ $0 > now + overlap }) ?? true {
                i.keys[k].notAfter = now + overlap
            }
            i.keys.append(IdentityKey(publicKey: encoded, notBefore: now))
            let rotated = i
            return try .record(Self.identityPrefix + Array(squidId.utf8), rotated, AuditEntry("q.access.identity.rotate.v1", ref: squidId, details: [
                ("key", .string(encoded)), ("overlapMs", .int(overlap)),
            ])) { s in
                s.identities[squidId] = rotated
                return rotated
            }
        }
    }

    /// Revokes `squidId`: no request of it (signed, or by a token acting as it) is accepted from now.
    public func revokeIdentity(_ squidId: String) throws -> Identity {
        try revoke(squidId, in: \.identities, at: \.revoked, prefix: Self.identityPrefix, what: "identity")
    }

    /// Marks the record `id` of `table` revoked from now (kept, written before it takes effect);
    /// revoking it again changes nothing.
    private func revoke<R: Codable & Sendable>(_ id: String, in table: WritableKeyPath<State, [String: R]>, at revoked: WritableKeyPath<R, UInt64?>,
                                    prefix: [UInt8], what: String) throws -> R {
        let now = clock.now
        return try change { s in
            guard var r = s[keyPath: table][id] else { throw AccessError.notFound("no \(what) \(id)") }
            guard r[keyPath: revoked] == nil else { return .done(r) }
            r[keyPath: revoked] = now
            let record = r
            return try .record(prefix + Array(id.utf8), record, AuditEntry("q.access.\(what).revoke.v1", ref: id)) { s in
                s[keyPath: table][id] = record
                return record
            }
        }
    }

    /// Gives `subject` (a registered sQuid id, or `token:ID` of a live token) `scopes` until `expires`.
    public func addGrant(to subject: String, scopes: [Scope], expires: UInt64?, by grantor: String) throws -> Grant {
        guard !scopes.isEmpty else { throw AccessError.invalid("scope: at least one") }
        let now = clock.now
        if let expires, expires <= now { throw AccessError.invalid("expires: in the future") }
        return try change { s in
            if subject.hasPrefix("token:") {
                guard let t = s.tokens[String(subject.dropFirst(6))], t.isLive(at: now) else { throw AccessError.notFound("no live token \(subject.dropFirst(6))") }
            } else {
                guard let i = s.identities[subject] else { throw AccessError.notFound("no identity \(subject) (register it first: qstore identity add)") }
                guard i.revoked == nil else { throw AccessError.invalid("identity \(subject) was revoked") }
            }
            let g = Grant(id: "g" + Self.randomID(8), subject: subject, scopes: scopes, created: now, expires: expires, grantedBy: grantor)
            return try .record(Self.grantPrefix + Array(g.id.utf8), g, AuditEntry("q.access.grant.add.v1", ref: g.id, details: [
                ("subject", .string(subject)), ("scopes", .list(scopes.map { .string($0.value) })),
                ("expires", expires.map { .int($0) } ?? .null), ("grantedBy", .string(grantor)),
            ])) { s in
                s.grants[g.id] = g
                s.grantsBySubject[g.subject, default: []].append(g.id)
                return g
            }
        }
    }

    /// Grants, newest first; only `subject`'s when given; revoked and expired ones too when `all`.
    public func grants(subject: String? = nil, all: Bool = false) -> [Grant] {
        let now = clock.now
        return state.locked { s in
            s.grants.values.filter { (subject == nil || $0.subject == subject) && (all || $0.isLive(at: now)) }
                .sorted { ($0.created, $0.id) > ($1.created, $1.id) }
        }
    }

    public func revokeGrant(_ id: String) throws -> Grant {
        try revoke(id, in: \.grants, at: \.revoked, prefix: Self.grantPrefix, what: "grant")
    }

    /// Makes a token with `scopes`, acting as `identity` when given; returns the token (shown
    /// once: only its hash is kept) and its record.
    public func createToken(scopes: [Scope], identity: String?, expires: UInt64?, label: String?) throws -> (token: String, record: Token) {
        guard !scopes.isEmpty else { throw AccessError.invalid("scope: at least one") }
        if let label { try Self.checkLabel(label) }
        let now = clock.now
        if let expires, expires <= now { throw AccessError.invalid("expires: in the future") }
        var g = SystemRandomNumberGenerator()
        let secret = "qst_" + Multibase.base64url.encodeWithoutPrefix((0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })
        let t = Token(id: "t" + Self.randomID(8), hash: SignedRequest.sha256Hex(Array(secret.utf8)), scopes: scopes, identity: identity,
                      label: label, created: now, expires: expires)
        try change { s in
            if let identity {
                guard let i = s.identities[identity] else { throw AccessError.notFound("no identity \(identity) (register it first: qstore identity add)") }
                guard i.revoked == nil else { throw AccessError.invalid("identity \(identity) was revoked") }
            }
            return try .record(Self.tokenPrefix + Array(t.id.utf8), t, AuditEntry("q.access.token.create.v1", ref: t.id, details: [
                ("scopes", .list(scopes.map { .string($0.value) })), ("identity", identity.map { .string($0) } ?? .null),
                ("expires", expires.map { .int($0) } ?? .null), ("label", label.map { .string($0) } ?? .null),
            ])) { s in
                s.tokens[t.id] = t
                s.tokenByHash[(try? Base16.decode(t.hash)) ?? []] = t.id
            }
        }
        return (secret, t)
    }

    public func tokens(all: Bool = false) -> [Token] {
        let now = clock.now
        return state.locked { s in s.tokens.values.filter { all || $0.isLive(at: now) }.sorted { ($0.created, $0.id) > ($1.created, $1.id) } }
    }

    public func revokeToken(_ id: String) throws -> Token {
        try revoke(id, in: \.tokens, at: \.revoked, prefix: Self.tokenPrefix, what: "token")
    }

    static func checkLabel(_ label: String) throws {
        guard label.utf8.count <= 256, !label.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw AccessError.invalid("label: at most 256 bytes, no control characters")
        }
    }
}

extension AccessControl {
    /// The instant (ms) `duration` (`30d`, `12h`) from now; nil for nil. `field` names it in errors.
    public func expiry(_ duration: String?, field: String = "expires") throws -> UInt64? {
        guard let duration else { return nil }
        guard let ms = parseDuration(duration), ms > 0 else {
            throw AccessError.invalid("\(field) \"\(duration)\": a positive duration such as 30d, 12h, 90m (at most 1000 years)")
        }
        return clock.now + ms
    }

    /// A duration (`24h`) in ms; `fallback` when nil.
    public static func duration(_ text: String?, fallback: UInt64, field: String) throws -> UInt64 {
        guard let text else { return fallback }
        guard let ms = parseDuration(text) else { throw AccessError.invalid("\(field) \"\(text)\": a duration such as 24h, 30m, 0s (at most 1000 years)") }
        return ms
    }
}
