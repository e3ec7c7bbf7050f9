import Access
import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import NIOCore
import Node
import QAPI

/// `/q/v1/identities`, `/q/v1/grants`, `/q/v1/tokens` (scope `admin`) and `/q/v1/whoami` (any
/// caller), in the Q envelope (Docs/access.md).
struct AccessAPI {
    let node: Node
    let io: StorageThreads
    let limits: ServerLimits

    /// The `{id}` path parameter, percent-decoded (sQuid ids may hold `:` and `@`).
    static func id(_ context: ServerContext) -> String {
        let raw = context.parameters.get("id") ?? ""
        return raw.decodingPercentEscapes() ?? raw
    }

    func register(on router: Router<ServerContext>) {
        router.get("/q/v1/whoami") { _, _ in await qAsync {
            guard let p = RequestCaller.principal else { throw AccessError.unauthorized("no caller") }
            let owner = RequestCaller.owner
            let storage = try await owner.asyncMap { o in try await io.run { try node.storageUsage(of: o) } }
            return QindexAPI.ok(CallerInfo(p, storage: storage))
        } }
        router.get("/q/v1/identities") { _, _ in await qAsync {
            let now = node.access.now
            return QindexAPI.ok(IdentityList(node.identities().map { IdentityInfo($0, now: now) }))
        } }
        router.post("/q/v1/identities") { request, _ in await qAsync {
            let body = try await decode(IdentityCreate.self, request)
            let i = try await io.run { try node.addIdentity(body.squidId, key: body.key, label: body.label) }
            return QindexAPI.ok(IdentityInfo(i, now: node.access.now), status: .created)
        } }
        router.get("/q/v1/identities/{id}") { _, context in await qAsync {
            let i = try node.identity(Self.id(context))
            return QindexAPI.ok(IdentityInfo(i, now: node.access.now))
        } }
        router.post("/q/v1/identities/{id}/keys") { request, context in await qAsync {
            let body = try await decode(KeyRotation.self, request)
            let overlap = try AccessControl.duration(body.overlap, fallback: 86_400_000, field: "overlap")
            let i = try await io.run { try node.rotateIdentityKey(Self.id(context), key: body.key, overlap: overlap) }
            return QindexAPI.ok(IdentityInfo(i, now: node.access.now))
        } }
        router.delete("/q/v1/identities/{id}") { _, context in await qAsync {
            let i = try await io.run { try node.revokeIdentity(Self.id(context)) }
            return QindexAPI.ok(IdentityInfo(i, now: node.access.now))
        } }
        router.get("/q/v1/grants") { request, _ in await qAsync {
            let q = request.uri.queryParameters
            let now = node.access.now
            let all = ["true", "1"].contains(q.get("all") ?? "")
            return QindexAPI.ok(GrantList(node.grants(subject: q.get("subject"), all: all).map { GrantInfo($0, now: now) }))
        } }
        router.post("/q/v1/grants") { request, _ in await qAsync {
            let body = try await decode(GrantCreate.self, request)
            let scopes = try Array(Set(body.scopes.map { try Scope($0) })).sorted()
            let expires = try node.access.expiry(body.expires)
            let g = try await io.run { try node.addGrant(to: body.subject, scopes: scopes, expires: expires, by: Self.caller) }
            return QindexAPI.ok(GrantInfo(g, now: node.access.now), status: .created)
        } }
        router.delete("/q/v1/grants/{id}") { _, context in await qAsync {
            let g = try await io.run { try node.revokeGrant(Self.id(context)) }
            return QindexAPI.ok(GrantInfo(g, now: node.access.now))
        } }
        router.get("/q/v1/tokens") { request, _ in await qAsync {
            let now = node.access.now
            let all = ["true", "1"].contains(request.uri.queryParameters.get("all") ?? "")
            return QindexAPI.ok(TokenList(node.tokens(all: all).map { TokenInfo($0, now: now) }))
        } }
        router.post("/q/v1/tokens") { request, _ in await qAsync {
            let body = try await decode(TokenCreate.self, request)
            let scopes = try Array(Set(body.scopes.map { try Scope($0) })).sorted()
            let expires = try node.access.expiry(body.expires)
            let made = try await io.run { try node.createToken(scopes: scopes, identity: body.identity, expires: expires, label: body.label) }
            let info = TokenInfo(made.record, now: node.access.now)
            var r = QindexAPI.ok(TokenCreated(token: made.token, record: info), status: .created)
            // A retry under the same Idempotency-Key gets the record, not the secret (never stored).
            RequestCaller.keptBody?.bytes = QJSON.encode(QEnvelope(ok: TokenCreated(token: nil, record: info)))
            r.headers[.cacheControl] = "no-store"
            return r
        } }
        router.delete("/q/v1/tokens/{id}") { _, context in await qAsync {
            let t = try await io.run { try node.revokeToken(Self.id(context)) }
            return QindexAPI.ok(TokenInfo(t, now: node.access.now))
        } }
    }

    /// Who made a grant: the caller's subject.
    static var caller: String { RequestCaller.principal?.subject ?? "admin" }

    /// A JSON request body of `T` (at most 64 KiB); a missing or mistyped field is named.
    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let body = try await RequestBodies.collect(request, limit: 64 << 10, timeout: limits.requestTimeout)
        do { return try JSONDecoder().decode(T.self, from: Data(buffer: body)) } catch let e as DecodingError {
            switch e {
            case .keyNotFound(let k, _): throw AccessError.invalid("the body lacks \"\(k.stringValue)\"")
            case .typeMismatch(_, let c), .valueNotFound(_, let c):
                throw AccessError.invalid("\"\(c.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
            default: throw AccessError.invalid("the body is not a JSON object of the expected shape")
            }
        }
    }
}

extension Optional {
    /// `transform` of the wrapped value, awaited; nil for nil.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let v = self else { return nil }
        return try await transform(v)
    }
}
