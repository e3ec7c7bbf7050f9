import Locking
import Synchronization
import Access
import Foundation
import HTTPTypes
import Hummingbird
import Multiformats
import NIOCore
import Node
import Pinning
import IPLD
import Signing

/// The caller of the request being handled, for handlers that record who acted (a Qindex
/// record's author) without every function passing the context along.
enum RequestCaller {
    @TaskLocal static var principal: Principal?
    /// Set while an idempotent request runs: what its handler wants kept instead of its answer.
    @TaskLocal static var keptBody: KeptBody?

    /// The owner recorded on pins the caller makes (quotas count them): its subject, except for
    /// the admin token (the node's own pins).
    static var owner: String? {
        guard let p = principal, p.credential != .adminToken else { return nil }
        return p.subject
    }

    /// What listings and the event stream show the caller (`Visibility`): everything when there
    /// is no caller (the node's own work).
    static var visibility: Visibility {
        guard let p = principal else { return .everything }
        return Visibility(auditLog: p.allows(.auditRead), everyOwner: p.allows(.admin), owner: owner)
    }
}

/// The one place identity, grants, limits and idempotency are applied (Docs/access.md), in order:
/// 1. the route's rule (`AccessRules`): public routes go straight on;
/// 2. authentication: `Authorization: Bearer <token>` (the admin token or a made one), or a
///    signed request (`x-squid-id`, `x-subid`, `x-ts`, `x-nonce`, `x-sig`; its body is read and
///    hashed first, up to `access.maximumSignedBody`) — 401 `UNAUTHORIZED` / `SIGNATURE_INVALID`;
/// 3. the caller's rate limit — 429 `RATE_LIMIT_EXCEEDED` with `Retry-After`;
/// 4. the route's scopes — 403 `QONSENT_DENIED` naming the missing one;
/// 5. `Idempotency-Key` on POST/PUT/DELETE of `/q/v1` and `/pins`: a retry gets the first
///    response back; the same key for another request 422, while the first runs 409.
/// Refusals are rendered in the shape of the surface the path belongs to.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let access: AccessControl
    /// Where refusals are recorded (the audit log: DENY, and WARN for a credential that failed).
    let recordRefusal: @Sendable (AuditEntry) async -> Void
    let rules: RuleTable
    let limits: ServerLimits
    /// Bodies of signed requests held before their signature is checked, in bytes.
    let unverified: BodyBudget
    /// Whether a response of more than 64 KiB to an authenticated caller is marked for the
    /// connection's longer send timeout (`ConnectionTimeoutHandler.CallerResponse`; the API's
    /// `apiSendTimeout`).
    let marksCallerResponses: Bool

    init(access: AccessControl, rules: [RouteRule], limits: ServerLimits, marksCallerResponses: Bool = false,
         recordRefusal: @escaping @Sendable (AuditEntry) async -> Void = { _ in }) {
        self.marksCallerResponses = marksCallerResponses
        self.access = access
        self.recordRefusal = recordRefusal
        self.rules = RuleTable(rules)
        self.limits = limits
        let most = access.configuration.maximumSignedBody
        unverified = BodyBudget(total: max(most, access.configuration.unverifiedBodyBudget), perClient: most)
    }

    static let signatureHeaders = (
        squidId: HTTPField.Name("x-squid-id")!, subId: HTTPField.Name("x-subid")!, ts: HTTPField.Name("x-ts")!,
        nonce: HTTPField.Name("x-nonce")!, sig: HTTPField.Name("x-sig")!
    )
    /// Their names, in the order a signed request carries them.
    static let signatureHeaderNames = [signatureHeaders.squidId, signatureHeaders.subId, signatureHeaders.ts, signatureHeaders.nonce, signatureHeaders.sig].map(\.rawName)
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let replayed = HTTPField.Name("Idempotent-Replayed")!
    static let requestID = HTTPField.Name("X-Request-Id")!

    /// The request's id: the client's `X-Request-Id` when it is 1–128 printable ASCII characters,
    /// else a new one. Audit events of the request carry it; the response names it.
    static func requestID(_ request: Request) -> String {
        if let v = request.headers[requestID], !v.isEmpty, v.utf8.count <= 128, v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }),
           !AuditContext.reservedPrefixes.contains(where: v.hasPrefix) { return v }
        return AuditContext.newRequestID(prefix: "req-")
    }

    /// At most `n` bytes of `text` (whole characters).
    static func bytes(_ text: String, _ n: Int) -> String {
        var out = ""
        var used = 0
        for c in text {
            used += c.utf8.count
            if used > n { break }
            out.append(c)
        }
        return out
    }

    /// Who acts, as the audit log names them: the identity, else the subject (`admin`, `token:ID`).
    static func actor(_ p: Principal) -> IdentityRef { p.identity ?? IdentityRef(squidId: p.subject) }

    /// The audit event of a refusal, if it is one the log keeps: a credential that failed (WARN)
    /// or a caller without credentials or the scope (DENY). Rate limits and size limits are not
    /// kept (they are how the log's own growth is bounded under attack).
    func refusalEntry(_ error: any Error, request: Request, context: Context, principal: Principal?, claimed: String?, requestId: String) -> AuditEntry? {
        guard let e = error as? AccessError else { return nil }
        let verdict: AuditVerdict
        switch e.kind {
        case .unauthenticated:
            let presented = request.headers[.authorization] != nil || request.headers[Self.signatureHeaders.sig] != nil
            verdict = presented ? .warn : .deny
        case .forbidden:
            // A caller refused a scope spends its rate like any request: past it, nothing is logged.
            if let principal, (try? access.admit(principal, bytes: 0)) == nil { return nil }
            verdict = .deny
        default: return nil
        }
        // What a caller controls is kept short (the log keeps it for the policy's retention).
        var details: [(String, IPLDNode)] = [("method", .string(request.method.rawValue)), ("client", .string(context.client)),
                                             ("reason", .string(Self.bytes(e.description, 256))), ("status", .int(e.kind == .forbidden ? 403 : 401))]
        if principal == nil, let claimed { details.append(("claimedSquidId", .string(Self.bytes(claimed, 128)))) }
        let type = verdict == .warn ? (request.headers[Self.signatureHeaders.sig] != nil ? "q.access.signature.invalid.v1" : "q.access.credential.invalid.v1")
            : "q.access.denied.v1"
        return AuditEntry(type, ref: String(request.uri.path.prefix(1024)), verdict: verdict, details: details,
                          actor: principal.map(Self.actor) ?? IdentityRef(squidId: "anonymous"), requestId: requestId)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let rule = rules.rule(method: request.method, path: request.uri.path)
        if rule?.isPublic == true {
            ExpectContinueHandler.sendIfExpected(request.headers, on: context.channel)
            return try await next(request, context)
        }
        var request = request
        let requestId = Self.requestID(request)
        let principal: Principal
        var bodyHash: String?
        var signedRequest: SignedRequest?
        var authenticated: Principal?
        do {
            try access.checkFailures(client: context.client)
        } catch {
            return Self.refusal(error, request: request, context: context, bodyRead: false)
        }
        do {
            let h = request.headers
            if let sig = h[Self.signatureHeaders.sig] {
                guard let squid = h[Self.signatureHeaders.squidId], let ts = h[Self.signatureHeaders.ts], let nonce = h[Self.signatureHeaders.nonce] else {
                    throw AccessError.signatureInvalid("a signed request needs x-squid-id, x-ts, x-nonce and x-sig")
                }
                let sub = h[Self.signatureHeaders.subId]
                var signed = SignedRequest(method: request.method.rawValue, path: request.uri.path, query: request.uri.query, squidId: squid,
                                           subId: sub?.isEmpty == false ? sub : nil, timestamp: ts, nonce: nonce, signature: sig, bodySHA256: "")
                // Nothing is read (or held) for a request that cannot verify, nor for one over the limit.
                try access.precheck(signed)
                let limit = access.configuration.maximumSignedBody
                if let n = h[.contentLength].flatMap(Int.init), n > limit {
                    throw RequestError(.contentTooLarge, "a signed request's body is hashed before the request runs, so it is at most \(limit) bytes (access.maximumSignedBody); send larger uploads with a token")
                }
                // Anyone who knows an identity's name can send such a body: what is held before the
                // signature is checked is bounded, in all and per client address (else 503).
                let declared = Self.bytesToHold(h, limit: limit)
                ExpectContinueHandler.sendIfExpected(h, on: context.channel)
                let body = try await unverified.holding(declared, client: context.client) {
                    try await RequestBodies.collect(request, limit: limit, timeout: limits.requestTimeout)
                }
                request.body = RequestBody(buffer: body)
                bodyHash = body.withUnsafeReadableBytes { SignedRequest.sha256Hex($0) }
                signed.bodySHA256 = bodyHash!
                principal = try access.authenticate(signed)
                try access.checkNonce(signed)
                signedRequest = signed
            } else if let token = BearerToken.parse(h[.authorization]) {
                principal = try access.authenticate(bearer: token)
            } else {
                throw AccessError.unauthorized("missing credentials: Authorization: Bearer <token> (the repository's api-token, or one from `qstore token create`), or a signed request (Docs/access.md)")
            }
            authenticated = principal
            // Deny by default: a route the table does not know needs `admin`. Scopes before the
            // rate limit, so a caller cannot spend another's budget on a route it may not use.
            for scope in rule?.scopes(request) ?? [.admin] { try principal.require(scope) }
            try access.admit(principal, bytes: max(0, request.headers[.contentLength].flatMap(Int.init) ?? 0))
            // The nonce last: a refused request takes no room among the nonces.
            if let signedRequest { try access.recordNonce(signedRequest) } else {
                ExpectContinueHandler.sendIfExpected(h, on: context.channel)
            }
        } catch {
            if (error as? AccessError)?.kind == .unauthenticated { access.recordFailure(client: context.client) }
            if let entry = refusalEntry(error, request: request, context: context, principal: authenticated,
                                        claimed: request.headers[Self.signatureHeaders.squidId], requestId: requestId) {
                await recordRefusal(entry)
            }
            var refused = Self.refusal(error, request: request, context: context, bodyRead: bodyHash != nil)
            refused.headers[Self.requestID] = requestId
            return refused
        }
        let who = AuditContext(actor: Self.actor(principal), requestId: requestId)
        var response = try await RequestCaller.$principal.withValue(principal) {
            try await AuditContext.$current.withValue(who) {
                try await idempotent(request, context: context, principal: principal, bodyHash: bodyHash, next: next)
            }
        }
        response.headers[Self.requestID] = requestId
        if marksCallerResponses && (response.body.contentLength ?? .max) > 64 << 10 {
            // Queued on the connection's event loop before the response's head is.
            context.channel.triggerUserOutboundEvent(ConnectionTimeoutHandler.CallerResponse(), promise: nil)
        }
        if let n = response.body.contentLength {
            access.charge(principal, bytes: n)
        } else if access.rateLimit(of: principal.subject).bytesPerSecond > 0 {
            // A streamed answer (a file, a CAR, an event stream) is charged as it goes.
            var counted = response
            let access = self.access
            counted.body = response.body.map { buffer in
                access.charge(principal, bytes: buffer.readableBytes)
                return buffer
            }
            return counted
        }
        return response
    }

    /// Runs the request once per `Idempotency-Key` (when it carries one and is a write of /q/v1 or /pins).
    func idempotent(_ request: Request, context: Context, principal: Principal, bodyHash: String?,
                    next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key = request.headers[Self.idempotencyKey], [.post, .put, .delete, .patch].contains(request.method) else {
            return try await next(request, context)
        }
        let path = request.uri.path
        guard path.hasPrefix("/q/v1/") || path == "/pins" || path.hasPrefix("/pins/") else { return try await next(request, context) }
        var request = request
        let ticket: AccessControl.IdempotencyTicket
        var hash = bodyHash
        do {
            if hash == nil {
                let body = try await RequestBodies.collect(request, limit: access.configuration.maximumSignedBody, timeout: limits.requestTimeout)
                request.body = RequestBody(buffer: body)
                hash = body.withUnsafeReadableBytes { SignedRequest.sha256Hex($0) }
            }
            let fingerprint = AccessControl.fingerprint(method: request.method.rawValue, path: path, query: request.uri.query, bodySHA256: hash!)
            switch try access.beginIdempotent(subject: principal.subject, key: key, fingerprint: fingerprint) {
            case .replay(let kept):
                var headers = HTTPFields()
                for (name, value) in kept.headers { if let n = HTTPField.Name(name) { headers[n] = value } }
                headers[Self.replayed] = "true"
                return Response(status: .init(code: kept.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: kept.body)))
            case .run(let t): ticket = t
            }
        } catch {
            return Self.refusal(error, request: request, context: context, bodyRead: hash != nil)
        }
        let response: Response
        let kept = KeptBody()
        do { response = try await RequestCaller.$keptBody.withValue(kept) { try await next(request, context) } } catch {
            access.finishIdempotent(ticket, status: nil)
            throw error
        }
        // Keep the whole response (write responses of /q/v1 and /pins are small JSON).
        let box = CollectedBody()
        let body = response.body
        do { try await body.write(CollectingWriter(box: box)) } catch {
            access.finishIdempotent(ticket, status: nil)
            throw error
        }
        let bytes = box.buffer
        // A handler may keep something else than what it answered (a secret shown once).
        let keptBody = kept.bytes ?? Array(bytes.readableBytesView)
        var keptHeaders: [String: String] = [:]
        for field in response.headers where field.name != .contentLength && field.name != .transferEncoding { keptHeaders[field.name.canonicalName] = field.value }
        // Answers worth retrying (a timeout, a rate limit, the node's faults) are not kept.
        let retryable = response.status.code >= 500 || response.status.code == 408 || response.status.code == 429
        access.finishIdempotent(ticket, status: retryable ? nil : response.status.code, headers: keptHeaders,
                                body: keptBody)
        return Response(status: response.status, headers: response.headers, body: .init(byteBuffer: bytes))
    }

    /// What reading a request's body may hold: its declared length; a chunked body, up to the
    /// limit; no body (neither header), nothing.
    static func bytesToHold(_ headers: HTTPFields, limit: Int) -> Int {
        headers[.contentLength].flatMap(Int.init) ?? (headers[.transferEncoding] != nil ? limit : 0)
    }

    /// A refusal in the shape of the path's surface; the rest of a refused upload (one not read
    /// already to hash it) is not read.
    static func refusal(_ error: any Error, request: Request, context: Context, bodyRead: Bool) -> Response {
        var response = ErrorMapping.response(error, path: request.uri.path)
        if !bodyRead, request.headers[.contentLength].map({ $0 != "0" }) ?? (request.headers[.transferEncoding] != nil) {
            context.stopReading()
            // The connection ends after the reply: said, so a client does not send its next request on it.
            response.headers[.connection] = "close"
        }
        return response
    }
}

/// A response body read into memory.
final class CollectedBody: @unchecked Sendable {
    var buffer = ByteBuffer()
}

struct CollectingWriter: ResponseBodyWriter {
    let box: CollectedBody
    mutating func write(_ buffer: ByteBuffer) async throws {
        var b = buffer
        box.buffer.writeBuffer(&b)
    }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

enum BearerToken {
    /// The credentials of an `Authorization: Bearer <token>` header. The scheme is
    /// case-insensitive and may be followed by more than one space (RFC 9110 §11.1, §11.4).
    static func parse(_ header: String?) -> Substring? {
        guard let header, let space = header.firstIndex(of: " ") else { return nil }
        guard header[..<space].utf8.elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }) else { return nil }
        let token = header[space...].drop { $0 == " " }
        return token.isEmpty ? nil : token
    }
}

/// What an idempotent request's handler wants kept for replays instead of the body it answers
/// (`POST /q/v1/tokens` keeps its answer without the token: a secret is shown once, never stored).
final class KeptBody: @unchecked Sendable {
    // Set once by the handler, read by the middleware after the handler returned.
    var bytes: [UInt8]?
}

/// Bytes of request bodies held at once, in all and per client address: `holding` reserves a
/// body's declared size while it is read, or refuses (503 with Retry-After) past either bound.
final class BodyBudget: Sendable {
    private struct State {
        var held = 0
        var byClient: [String: Int] = [:]
    }
    private let state = Mutex(State())
    let total: Int
    let perClient: Int

    init(total: Int, perClient: Int) {
        self.total = total
        self.perClient = perClient
    }

    func holding<T>(_ bytes: Int, client: String, _ body: () async throws -> T) async throws -> T {
        let n = max(0, bytes)
        try state.locked { s in
            let mine = s.byClient[client, default: 0]
            guard s.held + n <= total, mine + n <= perClient else {
                throw Overloaded(status: .serviceUnavailable, retryAfter: 1,
                                 message: "too many signed request bodies are being read at once (access.unverifiedBodyBudget); try again")
            }
            s.held += n
            s.byClient[client] = mine + n
        }
        defer {
            state.locked { s in
                s.held -= n
                let left = s.byClient[client, default: n] - n
                s.byClient[client] = left > 0 ? left : nil
            }
        }
        return try await body()
    }
}
