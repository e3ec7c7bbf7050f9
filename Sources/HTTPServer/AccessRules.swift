import Access
import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird

/// What a route needs: nothing (public), or an authenticated caller holding every scope of
/// `scopes(request)` (none: any authenticated caller).
struct RouteRule: Sendable {
    let method: HTTPRequest.Method
    /// The route's path as the router describes it (`/pins/{requestid}`, `/q/v1/index/**`).
    let path: String
    let isPublic: Bool
    /// The scope as the docs show it (`index:write:{type}/{key}`, `write (+pin when pin=true)`).
    let summary: String
    let scopes: @Sendable (Request) -> [Scope]
    /// The pattern's segments, split once.
    let segments: [Substring]
    /// Whether it ends in `**` (literal routes are matched first).
    var isWildcard: Bool { segments.last == "**" }

    init(_ method: HTTPRequest.Method, _ path: String, _ scope: Scope) {
        self.method = method
        self.path = path
        segments = path.split(separator: "/")
        isPublic = false
        summary = scope.value
        scopes = { _ in [scope] }
    }

    init(_ method: HTTPRequest.Method, _ path: String, summary: String, isPublic: Bool = false, scopes: @escaping @Sendable (Request) -> [Scope]) {
        self.method = method
        self.path = path
        segments = path.split(separator: "/")
        self.isPublic = isPublic
        self.summary = summary
        self.scopes = scopes
    }

    static func open(_ method: HTTPRequest.Method, _ path: String) -> RouteRule {
        RouteRule(method, path, summary: "public", isPublic: true) { _ in [] }
    }

    /// `write`, plus `pin` when the request's `flag` (default `pinByDefault`) is true.
    static func writing(_ path: String, pinFlag flag: String, pinByDefault: Bool) -> RouteRule {
        RouteRule(.post, path, summary: "write (+pin when \(flag)=true\(pinByDefault ? ", the default" : ""))") { request in
            // Read as the handlers read it (KuboRPC.flag).
            let v = request.uri.queryParameters.get(flag).map { KuboRPC.flag($0) } ?? pinByDefault
            return v ? [.write, .pin] : [.write]
        }
    }

    /// Whether the requested path, split at "/", matches the route's pattern.
    func matches(_ requestSegments: ArraySlice<Substring>) -> Bool {
        var p = segments[...]
        var r = requestSegments
        while let head = p.first {
            if head == "**" { return !r.isEmpty }
            guard let part = r.first else { return false }
            if !(head.hasPrefix("{") && head.hasSuffix("}")) && head != part { return false }
            p = p.dropFirst()
            r = r.dropFirst()
        }
        return r.isEmpty
    }
}

/// The scope every route of each listener needs: the one table the middleware applies, the docs
/// render (Docs/access.md, `qstore daemon --help`) and the tests walk (a route without a rule
/// fails them).
enum AccessRules {
    static let api: [RouteRule] = {
        var rules: [RouteRule] = [
            .open(.get, "/health"), .open(.head, "/health"),
            RouteRule(.get, "/metrics", .metrics),
            .open(.get, "/q/v1/openapi.yaml"), .open(.head, "/q/v1/openapi.yaml"),
            RouteRule(.get, "/q/v1/whoami", summary: "any authenticated caller") { _ in [] },
            RouteRule(.put, "/ipfs/{cid}", .write),
            .writing("/api/v0/block/put", pinFlag: "pin", pinByDefault: false),
            .writing("/api/v0/dag/put", pinFlag: "pin", pinByDefault: false),
            .writing("/api/v0/dag/import", pinFlag: "pin-roots", pinByDefault: true),
            .writing("/api/v0/add", pinFlag: "pin", pinByDefault: true),
            RouteRule(.post, "/api/v0/block/rm", .write),
            RouteRule(.post, "/api/v0/repo/gc", .gc),
            RouteRule(.post, "/api/v0/repo/verify", .admin),
            RouteRule(.post, "/api/v0/key/gen", .admin),
            RouteRule(.post, "/api/v0/key/rename", .admin),
            RouteRule(.post, "/api/v0/key/rm", .admin),
            RouteRule(.post, "/api/v0/name/publish", summary: "name:publish:{key} (the key parameter, default self)") { request in
                [Scope.namePublish(key: request.uri.queryParameters.get("key") ?? "self")]
            },
            RouteRule(.post, "/api/v0/routing/put", .write),
            RouteRule(.get, "/q/v1/index", .read),
            RouteRule(.post, "/q/v1/index/import", .indexWrite),
            RouteRule(.get, "/q/v1/events", .read),
            RouteRule(.get, "/q/v1/audit/checkpoint", .auditRead), RouteRule(.get, "/q/v1/audit/checkpoints", .auditRead),
            RouteRule(.get, "/q/v1/audit/proof/inclusion", .auditRead), RouteRule(.get, "/q/v1/audit/proof/consistency", .auditRead),
            RouteRule(.get, "/q/v1/audit/tile/**", .auditRead), RouteRule(.get, "/q/v1/audit/events", .auditRead),
            RouteRule(.get, "/q/v1/audit/export", .auditRead),
            RouteRule(.get, "/pins", .read), RouteRule(.get, "/pins/{requestid}", .read),
            RouteRule(.post, "/pins", .pin), RouteRule(.post, "/pins/{requestid}", .pin), RouteRule(.delete, "/pins/{requestid}", .pin),
            // 405 answers (the Pinning Service API has no such operations).
            RouteRule(.put, "/pins", .pin), RouteRule(.patch, "/pins", .pin), RouteRule(.delete, "/pins", .pin),
            RouteRule(.put, "/pins/{requestid}", .pin), RouteRule(.patch, "/pins/{requestid}", .pin),
            RouteRule(.get, "/q/v1/index/**", .read),
            RouteRule(.get, "/q/v1/drive/**", Self.driveRead), RouteRule(.get, "/q/v1/drive-keys/{owner}", Self.driveRead),
            RouteRule(.post, "/q/v1/media", Self.driveWrite), RouteRule(.get, "/q/v1/media/{id}", Self.driveRead),
            RouteRule(.put, "/q/v1/drive/**", Self.driveWrite), RouteRule(.delete, "/q/v1/drive/**", Self.driveWrite),
            RouteRule(.post, "/q/v1/drive/**", summary: "drive:write (?action=share|revoke: drive:share)") { request in
                ["share", "revoke"].contains(request.uri.queryParameters.get("action") ?? "") ? [Self.driveShare] : [Self.driveWrite]
            },
            RouteRule(.get, "/q/v1/modules", .read), RouteRule(.get, "/q/v1/modules/**", .read),
            RouteRule(.post, "/q/v1/modules/**", summary: "registry:publish:{name} (…/promote: registry:promote)") { request in
                request.uri.path.hasSuffix("/promote") ? [.registryPromote] : [registryScope(request.uri.path)]
            },
        ]
        for method in [HTTPRequest.Method.patch, .delete] {
            rules.append(RouteRule(method, "/q/v1/modules/**", summary: "registry:publish:{name}") { request in [registryScope(request.uri.path)] })
        }
        for command in ["pin/add", "pin/rm", "pin/update"] { rules.append(RouteRule(.post, "/api/v0/" + command, .pin)) }
        for command in ["version", "id", "block/get", "block/stat", "dag/get", "dag/export", "cat", "ls", "get", "repo/stat",
                        "pin/ls", "pin/verify", "pin/policies", "name/resolve", "routing/get", "key/list"] {
            rules.append(RouteRule(.post, "/api/v0/" + command, .read))
        }
        for method in [HTTPRequest.Method.put, .delete] {
            rules.append(RouteRule(method, "/q/v1/index/**", summary: "index:write:{type}/{key}") { request in [indexScope(request.uri.path)] })
        }
        // …/{type}/{key}/publish: the pointer, and the name it is published under.
        rules.append(RouteRule(.post, "/q/v1/index/**", summary: "index:write:{type}/{key} and name:publish:{key parameter, default self}") { request in
            [indexScope(request.uri.path), .namePublish(key: request.uri.queryParameters.get("key") ?? "self")]
        })
        for (method, path) in [(HTTPRequest.Method.get, "/q/v1/identities"), (.post, "/q/v1/identities"), (.get, "/q/v1/identities/{id}"),
                               (.delete, "/q/v1/identities/{id}"), (.post, "/q/v1/identities/{id}/keys"),
                               (.get, "/q/v1/grants"), (.post, "/q/v1/grants"), (.delete, "/q/v1/grants/{id}"),
                               (.get, "/q/v1/tokens"), (.post, "/q/v1/tokens"), (.delete, "/q/v1/tokens/{id}"),
                               (.get, "/q/v1/backups"), (.post, "/q/v1/backups"), (.post, "/q/v1/backups/restore"), (.post, "/q/v1/backups/stream"),
                               (.get, "/q/v1/backups/jobs"), (.get, "/q/v1/backups/jobs/{id}"),
                               (.post, "/q/v1/cluster/pins"), (.delete, "/q/v1/cluster/pins/{cid}"), (.post, "/q/v1/cluster/pins/{cid}/recover"),
                               (.post, "/q/v1/cluster/drain/{node}")] {
            rules.append(RouteRule(method, path, .admin))
        }
        for path in ["/q/v1/cluster", "/q/v1/cluster/peers", "/q/v1/cluster/pins", "/q/v1/cluster/pins/{cid}"] { rules.append(RouteRule(.get, path, .read)) }
        return rules
    }()

    /// The gateway's routes: public, or `read` when `access.gatewayRequiresRead`.
    static func gateway(requiresRead: Bool) -> [RouteRule] {
        var rules: [RouteRule] = [.open(.get, "/health"), .open(.head, "/health")]
        for namespace in ["/ipfs/**", "/ipns/**", "/modules/**"] {
            for method in [HTTPRequest.Method.get, .head, .options, .post, .put, .delete, .patch] {
                rules.append(requiresRead && method != .options ? RouteRule(method, namespace, .read) : .open(method, namespace))
            }
        }
        return rules
    }

    /// `registry:publish:{name}` of `/q/v1/modules/{name}[@…][/…]`.
    static func registryScope(_ path: String) -> Scope {
        let ref = path.dropFirst("/q/v1/modules/".count).prefix { $0 != "/" }
        let decoded = String(ref).decodingPercentEscapes() ?? String(ref)
        return .registryPublish(module: String(decoded.prefix { $0 != "@" }))
    }

    /// `index:write:{type}/{key}` of `/q/v1/index/{type}/{key}[/publish]` (the key percent-decoded,
    /// as the handler reads it).
    static let driveRead = try! Scope("drive:read")
    static let driveWrite = try! Scope("drive:write")
    static let driveShare = try! Scope("drive:share")

    static func indexScope(_ path: String) -> Scope {
        var rest = Substring(path.dropFirst(QindexAPI.prefix.count + 1))
        if rest.hasSuffix("/publish") { rest = rest.dropLast("/publish".count) }
        guard let slash = rest.firstIndex(of: "/") else { return .indexWrite(type: String(rest), key: "") }
        let key = String(rest[rest.index(after: slash)...])
        return .indexWrite(type: String(rest[..<slash]), key: key.decodingPercentEscapes() ?? key)
    }
}

/// Rules by method, literal patterns before wildcards: what the middleware looks up per request
/// (the first whose pattern matches; a literal route wins over a `**` one that also matches).
struct RuleTable: Sendable {
    private let byMethod: [HTTPRequest.Method: [RouteRule]]
    /// The rule a literal path (no `{…}`, no `**`) takes, by method and path: what the scan of
    /// `byMethod` answers for it, found at once (a request by the path as written).
    private let exact: [HTTPRequest.Method: [String: Int]]

    init(_ rules: [RouteRule]) {
        var m: [HTTPRequest.Method: [RouteRule]] = [:]
        for r in rules where !r.isWildcard { m[r.method, default: []].append(r) }
        for r in rules where r.isWildcard { m[r.method, default: []].append(r) }
        byMethod = m
        var e: [HTTPRequest.Method: [String: Int]] = [:]
        for (method, list) in m {
            for (i, r) in list.enumerated() where !r.segments.contains(where: { $0 == "**" || $0.hasPrefix("{") }) {
                // Only where no rule before it takes the path too: the scan's own answer.
                guard list.firstIndex(where: { $0.matches(r.segments[...]) }) == i else { continue }
                e[method, default: [:]]["/" + r.segments.joined(separator: "/")] = i
            }
        }
        exact = e
    }

    func rule(method: HTTPRequest.Method, path: String) -> RouteRule? {
        guard let candidates = byMethod[method] else { return nil }
        if let i = exact[method]?[path] { return candidates[i] }
        let p = path.split(separator: "/")[...]
        return candidates.first { $0.matches(p) }
    }
}
