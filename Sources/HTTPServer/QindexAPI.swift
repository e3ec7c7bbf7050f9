import CAR
import Foundation
import HTTPTypes
import Hummingbird
import Multiformats
import Node
import NIOCore
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
        router.get(RouterPath(Self.prefix)) { request, _ in try await self.list(request) }
        router.post(RouterPath(Self.prefix + "/import")) { request, _ in try await self.importCAR(request) }
        for method in [HTTPRequest.Method.get, .put, .delete] {
            router.on(RouterPath(Self.prefix + "/**"), method: method) { request, _ in try await self.pointer(request) }
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
        guard let slash = rest.firstIndex(of: "/") else { throw QindexError.invalid("expected /q/v1/index/{type}/{key}") }
        let type = String(rest[..<slash])
        guard let key = String(rest[rest.index(after: slash)...]).removingPercentEncoding else { throw QindexError.invalid("key: bad percent-encoding") }
        let q = request.uri.queryParameters
        switch request.method {
        case .put: return try await put(request, type: type, key: key)
        case .delete:
            var u = Qindex.Update(type: type, key: key, target: nil)
            u.expectedVersion = try q.get("expectedVersion").map { try Self.integer($0, "expectedVersion") }
            u.author = Self.author(request)
            let head = try await node.putPointer(u)
            return Self.ok(try await headData(head), cid: head.record)
        default:
            if history {
                let limit = try q.get("limit").map { try Self.integer($0, "limit") } ?? 100
                guard (1...1000).contains(limit) else { throw QindexError.invalid("limit: 1–1000") }
                let before = try q.get("cursor").map { try Self.integer($0, "cursor") }
                let page = try await io.run { try self.node.pointerHistory(type: type, key: key, limit: Int(limit), before: before) }
                let items: [Any] = page.records.map { Self.recordData($0.record, cid: $0.cid) }
                return Self.ok(["records": items, "next": page.next.map { String($0) } ?? NSNull()] as [String: Any], cid: nil)
            }
            let version = try q.get("version").map { try Self.integer($0, "version") }
            let at = try q.get("at").map { text -> UInt64 in
                if let ms = Timestamps.parse(text) { return ms }
                guard let ms = UInt64(text) else { throw QindexError.invalid("at: an RFC 3339 time or Unix milliseconds") }
                return ms
            }
            if version == nil && at == nil {
                let head = try await io.run { try self.node.pointer(type: type, key: key) }
                return Self.ok(try await headData(head), cid: head.record)
            }
            let found = try await io.run { try self.node.pointerRecord(type: type, key: key, version: version, at: at) }
            return Self.ok(Self.recordData(found.record, cid: found.cid), cid: found.cid)
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
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c", let i = Int64(exactly: n.doubleValue), i >= 0 else {
                throw QindexError.invalid("expectedVersion: an integer ≥ 0")
            }
            u.expectedVersion = i
        }
        if let h = object["expectedHead"] {
            guard let s = h as? String else { throw QindexError.invalid("expectedHead: a CID string") }
            u.expectedHead = try CID(s)
        }
        if let a = object["allowMissing"] {
            guard let b = a as? Bool else { throw QindexError.invalid("allowMissing: a boolean") }
            u.allowMissing = b
        }
        if request.uri.queryParameters.get("allow-missing") == "true" { u.allowMissing = true }
        if let r = object["record"] {
            guard let s = r as? String, let bytes = Data(base64Encoded: s) else { throw QindexError.invalid("record: standard base64 of the record's dag-cbor") }
            u.signed = try IndexRecord(decoding: [UInt8](bytes))
            u.tags = u.signed!.tags
        }
        u.author = Self.author(request)
        let head = try await node.putPointer(u)
        return Self.ok(try await headData(head), cid: head.record, status: head.version == 1 ? .created : .ok)
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
            guard let bytes = try? Multibase.base64url.decodeWithoutPrefix(Substring(c)) else { throw QindexError.invalid("cursor: as a previous page returned it") }
            query.cursor = bytes
        }
        let asked = query
        let page = try await io.run { try self.node.listPointers(asked) }
        var items: [Any] = []
        for h in page.heads { items.append(Self.headFields(h)) }
        return Self.ok(["pointers": items, "next": page.next.map { Multibase.base64url.encodeWithoutPrefix($0) } ?? NSNull()] as [String: Any], cid: nil)
    }

    /// `POST /q/v1/index/import`: a CAR of records (body ≤ 64 MiB) whose roots are heads to merge.
    func importCAR(_ request: Request) async throws -> Response {
        let body = try await RequestBodies.collect(request, limit: 64 << 20, timeout: limits.requestTimeout)
        let outcomes = try await node.importPointers(BytesSource(Array(buffer: body)))
        let items: [Any] = outcomes.map { o in
            var f = Self.headFields(o.head)
            f["action"] = o.action.rawValue
            f["root"] = o.root.string
            return f
        }
        return Self.ok(["merged": items] as [String: Any], cid: nil)
    }

    // MARK: shapes

    func headData(_ h: Head) async throws -> [String: Any] {
        let record = try await io.run { try self.node.indexRecord(h.record) }
        var f = Self.recordData(record, cid: h.record)
        f["updatedAt"] = Timestamps.format(h.updatedAt)
        return f
    }

    static func headFields(_ h: Head) -> [String: Any] {
        ["type": h.type, "key": h.key, "cid": h.target?.string ?? NSNull(), "version": Int(h.version), "record": h.record.string,
         "tags": h.tags, "updatedAt": Timestamps.format(h.updatedAt), "deleted": h.isDeleted]
    }

    static func recordData(_ r: IndexRecord, cid: CID) -> [String: Any] {
        var author: [String: Any] = ["squidId": r.author.squidId]
        if let s = r.author.subId { author["subId"] = s }
        if let d = r.author.daoId { author["daoId"] = d }
        var f: [String: Any] = ["type": r.type, "key": r.key, "cid": r.cid?.string ?? NSNull(), "version": Int(r.version),
                                "record": cid.string, "prev": r.prev?.string ?? NSNull(), "tags": r.tags, "createdAt": r.createdAt,
                                "author": author, "deleted": r.isTombstone]
        if r.isMerge { f["merged"] = r.merged.map(\.string) }
        if let s = r.sig {
            f["sig"] = ["alg": s.alg, "pub": Data(s.pub).base64EncodedString(), "sig": Data(s.sig).base64EncodedString(), "ts": Int(s.ts),
                        "nonce": Data(s.nonce).base64EncodedString()] as [String: Any]
        }
        return f
    }

    static func ok(_ data: Any, cid: CID?, status: HTTPResponse.Status = .ok) -> Response {
        JSONOutput.response(["status": "ok", "code": "OK", "message": "", "data": data, "cid": cid?.string ?? NSNull()] as [String: Any], status: status)
    }

    /// The caller's identity headers (`x-squid-id`, `x-subid`), recorded as the author.
    static func author(_ request: Request) -> IdentityRef? {
        guard let id = request.headers[HTTPField.Name("x-squid-id")!], !id.isEmpty else { return nil }
        let sub = request.headers[HTTPField.Name("x-subid")!]
        return IdentityRef(squidId: id, subId: sub?.isEmpty == false ? sub : nil)
    }

    static func integer(_ text: String, _ name: String) throws -> Int64 {
        guard let v = Int64(text), v >= 0 else { throw QindexError.invalid("\(name): an integer ≥ 0") }
        return v
    }
}
