import CAR
import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import KuboAPI
import Multiformats
import Node
import NIOCore
import QAPI
import Qindex
import Signing

/// The Qindex routes of the Q API (`/q/v1/index`), answered in the Q envelope
/// (`{"status": "ok", "code": "OK", "message", "data", "cid"}`; errors from `ErrorMapping.qResponse`).
///
/// Keys may hold `/`: the path after `/q/v1/index/{type}/` is the key (percent-decoded), and a
/// path ending in `/history` (not percent-encoded) asks for the history.
struct QindexAPI {
    let node: Node
    let io: StorageThreads
    let limits: ServerLimits

    static let prefix = "/q/v1/index"

    func register(on router: Router<ServerContext>) {
        router.get(RouterPath(Self.prefix)) { request, _ in await qAsync { try await self.list(request) } }
        router.post(RouterPath(Self.prefix + "/import")) { request, _ in await qAsync { try await self.importCAR(request) } }
        for method in [HTTPRequest.Method.get, .put, .delete, .post] {
            router.on(RouterPath(Self.prefix + "/**"), method: method) { request, _ in await qAsync { try await self.pointer(request) } }
        }
    }

    /// `/q/v1/index/{type}/{key}[/history]` by method.
    func pointer(_ request: Request) async throws -> Response {
        var rest = String(request.uri.path.dropFirst(Self.prefix.count + 1))
        var history = false
        if request.method == .get, rest.hasSuffix("/history") {
            history = true
            rest.removeLast("/history".count)
        }
        if request.method == .post {
            guard rest.hasSuffix("/publish") else { throw HTTPError(.methodNotAllowed, message: "POST is for /q/v1/index/{type}/{key}/publish and /q/v1/index/import") }
            rest.removeLast("/publish".count)
        }
        guard let slash = rest.firstIndex(of: "/") else { throw QindexError.invalid("expected /q/v1/index/{type}/{key}") }
        let type = String(rest[..<slash])
        guard let key = String(rest[rest.index(after: slash)...]).decodingPercentEscapes() else { throw QindexError.invalid("key: bad percent-encoding") }
        try Self.hideDrives(type)
        let q = request.uri.queryParameters
        switch request.method {
        case .post: return try await publish(request, type: type, key: key)
        case .put: return try await put(request, type: type, key: key)
        case .delete:
            var u = Qindex.Update(type: type, key: key, target: nil)
            u.expectedVersion = try q.get("expectedVersion").map { try Self.integer($0, "expectedVersion") }
            u.author = Self.author(request)
            let head = try await node.putPointer(try await charged(u))
            return try await headReply(head)
        default:
            // In a cluster, what the cluster agreed on (best effort: with etcd away, this node's copy).
            if let c = node.cluster { _ = try? await node.syncPointer(type: type, key: key, in: c) }
            if history {
                let limit = try q.get("limit").map { try Self.integer($0, "limit") } ?? 100
                let before = try q.get("cursor").map { try Self.integer($0, "cursor") }
                let page = try await io.run { try self.node.pointerHistory(type: type, key: key, limit: Int(limit), before: before) }
                return Self.ok(PointerHistory(records: page.records.map { PointerRecord($0.record, cid: $0.cid) }, next: page.next.map { String($0) }))
            }
            let version = try q.get("version").map { try Self.integer($0, "version") }
            let at = try q.get("at").map { try Timestamps.instant($0, field: "at") }
            if version == nil && at == nil {
                let head = try await io.run { try self.node.pointer(type: type, key: key) }
                return try await headReply(head)
            }
            let found = try await io.run { try self.node.pointerRecord(type: type, key: key, version: version, at: at) }
            return Self.ok(PointerRecord(found.record, cid: found.cid), cid: found.cid)
        }
    }

    /// A JSON number that is an integer, exactly (not a boolean, not a float rounded to one: a
    /// version past 2^53 given as a double would become its neighbour).
    static func jsonInteger(_ v: Any) -> Int64? {
        guard let n = v as? NSNumber else { return nil }
        switch String(cString: n.objCType) {
        case "c": return nil
        case "q", "l", "i", "s": return n.int64Value
        case "Q", "L", "I", "S": return n.uint64Value <= UInt64(Int64.max) ? Int64(n.uint64Value) : nil
        default:
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) <= 9_007_199_254_740_992 else { return nil }
            return Int64(exactly: d)
        }
    }

    /// `PUT …/{type}/{key}` `{cid, tags?, expectedVersion?, expectedHead?, allowMissing?, record?}`;
    /// `record` is a client-signed record (dag-cbor, standard base64) to store instead of one the node signs.
    func put(_ request: Request, type: String, key: String) async throws -> Response {
        let body = try await RequestBodies.collect(request, limit: 64 << 10, timeout: limits.requestTimeout)
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            throw QindexError.invalid("the body is a JSON object {cid, tags?, expectedVersion?, expectedHead?, allowMissing?, record?}")
        }
        for k in object.keys where !["cid", "tags", "expectedVersion", "expectedHead", "allowMissing", "record"].contains(k) {
            throw QindexError.invalid("\(k): unknown field")
        }
        guard let cidText = object["cid"] as? String else { throw QindexError.invalid("cid: required, a CID string") }
        var u = Qindex.Update(type: type, key: key, target: try CID(cidText))
        if let t = object["tags"] {
            guard let tags = t as? [String] else { throw QindexError.invalid("tags: a list of strings") }
            u.tags = tags
        }
        if let v = object["expectedVersion"] {
            guard let i = Self.jsonInteger(v), i >= 0 else { throw QindexError.invalid("expectedVersion: an integer ≥ 0") }
            u.expectedVersion = i
        }
        if let h = object["expectedHead"] {
            guard let s = h as? String else { throw QindexError.invalid("expectedHead: a CID string") }
            u.expectedHead = try CID(s)
        }
        if let a = object["allowMissing"] {
            // JSON's true or false, not a number Foundation would also bridge to a Bool.
            guard let n = a as? NSNumber, String(cString: n.objCType) == "c" else { throw QindexError.invalid("allowMissing: true or false") }
            u.allowMissing = n.boolValue
        }
        if request.uri.queryParameters.get("allow-missing") == "true" { u.allowMissing = true }
        if let r = object["record"] {
            guard let s = r as? String, let bytes = Data(base64Encoded: s) else { throw QindexError.invalid("record: standard base64 of the record's dag-cbor") }
            u.signed = try IndexRecord(decoding: [UInt8](bytes))
            u.tags = u.signed!.tags
        }
        u.author = Self.author(request)
        let head = try await node.putPointer(try await charged(u))
        return try await headReply(head, status: head.version == 1 ? .created : .ok)
    }

    /// `u` counted for the caller's storage (its head pin owned, its target measured, its quota
    /// checked) when the caller is not the admin.
    func charged(_ u: Qindex.Update) async throws -> Qindex.Update {
        guard let owner = RequestCaller.owner else { return u }
        return try await io.run {
            var v = u
            try self.node.chargePointer(&v, to: owner)
            return v
        }
    }

    /// `GET /q/v1/index?type=&prefix=&tag=&target=&sort=key|updatedAt&limit=&cursor=`.
    func list(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        var query = Qindex.Query()
        query.type = q.get("type")
        query.prefix = q.get("prefix")
        query.tag = q.get("tag")
        query.target = try q.get("target").map { try CID($0) }
        if let s = q.get("sort") {
            guard let sort = Qindex.Query.Sort(rawValue: s) else { throw QindexError.invalid("sort: key or updatedAt") }
            query.sort = sort
        }
        query.limit = try Int(q.get("limit").map { try Self.integer($0, "limit") } ?? 100)
        if let c = q.get("cursor") {
            guard let bytes = QCursor.decode(c) else { throw QindexError.invalid("cursor: as a previous page returned it") }
            query.cursor = bytes
        }
        if let t = query.type { try Self.hideDrives(t) }
        let asked = query
        let page = try await io.run { try self.node.listPointers(asked) }
        // Drive trees are their owners' business (Docs/drive.md): left out for others.
        let shown = Self.isAdmin ? page.heads : page.heads.filter { $0.type != Node.drivePointerType }
        return Self.ok(PointerList(pointers: shown.map(PointerSummary.init), next: page.next.map(QCursor.encode)))
    }

    static var isAdmin: Bool { RequestCaller.principal?.scopes.contains(.admin) ?? false }

    /// The per-owner drive trees (`drive/<owner>`) are read through `/q/v1/drive` only, except by the admin.
    static func hideDrives(_ type: String) throws {
        guard type != Node.drivePointerType || isAdmin else { throw QindexError.invalid("drive pointers are read through /q/v1/drive") }
    }

    /// `POST /q/v1/index/import`: a CAR of records (body ≤ 64 MiB) whose roots are heads to merge.
    func importCAR(_ request: Request) async throws -> Response {
        let body = try await RequestBodies.collect(request, limit: 64 << 20, timeout: limits.requestTimeout)
        let admin = RequestCaller.principal?.scopes.contains(.admin) ?? false
        let outcomes = try await node.importPointers(BytesSource(Array(buffer: body)), registryAllowed: admin)
        return Self.ok(PointerMerge(merged: outcomes.map(PointerSummary.init)))
    }

    /// `POST /q/v1/index/{type}/{key}/publish?key=&lifetime=&ttl=`: the head's target as an IPNS
    /// record of a keystore key, its version the sequence.
    func publish(_ request: Request, type: String, key: String) async throws -> Response {
        let q = request.uri.queryParameters
        let keyName = q.get("key") ?? "self"
        func duration(_ name: String, _ fallback: String) throws -> UInt64 {
            do { return try GoDuration.parse(q.get(name) ?? fallback, flag: name) } catch let e as GoDuration.BadDuration { throw QindexError.invalid(e.message) }
        }
        let lifetime = try duration("lifetime", KuboRPC.defaultLifetime), ttl = try duration("ttl", KuboRPC.defaultTTL)
        let p = try await io.run { try self.node.publishPointer(type: type, key: key, key: keyName, lifetime: lifetime, ttl: ttl) }
        return Self.ok(NamePublication(name: p.name, value: p.value, sequence: p.sequence))
    }

    // MARK: shapes

    func headReply(_ h: Head, status: HTTPResponse.Status = .ok) async throws -> Response {
        let record = try await io.run { try self.node.indexRecord(h.record) }
        return Self.ok(PointerRecord(record, cid: h.record, head: h), cid: h.record, status: status)
    }

    static func ok<T: Codable & Sendable>(_ data: T, cid: CID? = nil, status: HTTPResponse.Status = .ok) -> Response {
        ok(bytes: QJSON.encode(QEnvelope(ok: data, cid: cid?.string)), status: status)
    }

    /// An ok reply whose JSON (the whole envelope) is already written.
    static func ok(bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The authenticated caller's identity (with its subidentity), recorded as the author; nil
    /// (the node) for the admin token and tokens without an identity.
    static func author(_ request: Request) -> IdentityRef? { RequestCaller.principal?.identity }

    static func integer(_ text: String, _ name: String) throws -> Int64 {
        guard let v = Int64(text), v >= 0 else { throw QindexError.invalid("\(name): an integer ≥ 0") }
        return v
    }
}

/// A Q API handler whose errors are answered here, in the Q envelope, so the metrics middleware
/// sees the status the client gets (a thrown error reaches it as a 500).
func qAsync(_ body: () async throws -> Response) async -> Response {
    do { return try await body() } catch { return ErrorMapping.qResponse(error) }
}
