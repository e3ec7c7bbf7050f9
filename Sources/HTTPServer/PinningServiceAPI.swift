import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import Multiformats
import Node
import Pinning

/// The IPFS Pinning Service API (specs/pinning/ipfs-pinning-service.yaml) at `/pins` on the
/// API listener, behind the same bearer token. Pins made here are ordinary pins (they show in
/// `pin ls`, hold references, follow policies): a pin whose blocks are all present is `pinned`
/// at once; otherwise it is `queued`, holding its root, until the blocks arrive (block put, dag
/// import, replication) or `pinning.queuedTimeout` passes (`failed`). `meta.resourceType`
/// selects the pinning policy.
struct PinningServiceAPI: Sendable {
    let node: Node
    let io: StorageThreads
    /// The multiaddrs returned as `delegates` (the node's gateway, with its peer ID).
    let delegates: [String]
    let limits: ServerLimits

    func register(on router: Router<ServerContext>) {
        router.get("/pins") { request, _ in await handle { try await self.list(request) } }
        router.post("/pins") { request, _ in await handle { try await self.add(request) } }
        router.get("/pins/:requestid") { _, context in await handle { try await self.get(context.parameters.get("requestid") ?? "") } }
        router.post("/pins/:requestid") { request, context in await handle { try await self.replace(context.parameters.get("requestid") ?? "", request) } }
        router.delete("/pins/:requestid") { _, context in await handle { try await self.delete(context.parameters.get("requestid") ?? "") } }
        // The API has no other methods on its paths: 405 with the ones it has.
        for (path, allowed) in [("/pins", "GET, POST"), ("/pins/:requestid", "GET, POST, DELETE")] {
            for method in [HTTPRequest.Method.put, .patch] + (path == "/pins" ? [.delete] : []) {
                router.on(RouterPath(path), method: method) { request, _ in
                    var r = Failure(.methodNotAllowed, "METHOD_NOT_ALLOWED", "\(request.method) is not an operation of \(path); it takes \(allowed)").response
                    r.headers[.allow] = allowed
                    return r
                }
            }
        }
    }

    // MARK: handlers

    func list(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let limit = try q.get("limit").map { v -> Int in
            guard let n = Int(v), (1...1000).contains(n) else { throw Failure(.badRequest, "BAD_REQUEST", "limit must be an integer from 1 to 1000") }
            return n
        } ?? 10
        var cids: [CID]?
        if let c = q.get("cid") {
            let parts = c.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard (1...10).contains(parts.count) else { throw Failure(.badRequest, "BAD_REQUEST", "cid takes 1 to 10 CIDs") }
            cids = try parts.map { p in
                do { return try CID(p) } catch { throw Failure(.badRequest, "BAD_REQUEST", "invalid CID \(p): \(error)") }
            }
        }
        let name = q.get("name")
        if let name { try Self.checkName(name) }
        let match = q.get("match") ?? "exact"
        guard ["exact", "iexact", "partial", "ipartial"].contains(match) else { throw Failure(.badRequest, "BAD_REQUEST", "match must be exact, iexact, partial or ipartial") }
        var statuses: Set<PinStatus> = [.pinned]
        if let s = q.get("status") {
            statuses = Set(try s.split(separator: ",", omittingEmptySubsequences: false).map { v in
                guard let st = PinStatus(rawValue: String(v)) else { throw Failure(.badRequest, "BAD_REQUEST", "unknown status \(v)") }
                return st
            })
        }
        let before = try q.get("before").map { try Self.date($0, "before") }
        let after = try q.get("after").map { try Self.date($0, "after") }
        var meta: [String: String] = [:]
        if let m = q.get("meta") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(m.utf8)) as? [String: Any] else {
                throw Failure(.badRequest, "BAD_REQUEST", "meta must be a JSON object of strings")
            }
            for (k, v) in o {
                guard let s = v as? String else { throw Failure(.badRequest, "BAD_REQUEST", "meta values must be strings") }
                meta[k] = s
            }
        }
        let (statusSet, cidList, metaFilter) = (statuses, cids, meta)
        let owner = RequestCaller.owner
        let (count, results) = try await io.run { () throws -> (Int, [Pin]) in
            let (statuses, cids, meta) = (statusSet, cidList, metaFilter)
            var count = 0
            var results: [Pin] = []
            let test: (Pin) -> Bool = { p in
                guard statuses.contains(p.status) else { return false }
                if let after, p.created <= after { return false }
                if let cids, !cids.contains(where: { $0.multihash == p.cid.multihash }) { return false }
                if let name {
                    let have = p.name ?? ""
                    switch match {
                    case "iexact": if have.lowercased() != name.lowercased() { return false }
                    case "partial": if !have.contains(name) { return false }
                    case "ipartial": if !have.lowercased().contains(name.lowercased()) { return false }
                    default: if have != name { return false }
                    }
                }
                for (k, v) in meta where p.meta[k] != v { return false }
                return true
            }
            let visit: (Pin) -> Bool = { p in
                // A caller other than the admin sees its own pins: the API is per user.
                guard owner == nil || p.owner == owner, test(p) else { return true }
                count += 1
                if results.count < limit { results.append(p) }
                return true
            }
            if let cids {
                // The index answers by CID: no scan of every pin.
                var seen = Set<PinID>()
                var found: [Pin] = []
                for c in cids { for p in try self.node.pinObjects(of: c) where seen.insert(p.id).inserted { found.append(p) } }
                for p in found.sorted(by: { $0.id > $1.id }) where before.map({ p.created < $0 }) ?? true { _ = visit(p) }
            } else {
                try self.node.forEachPinObject(newestFirst: true, before: before, visit)
            }
            return (count, results)
        }
        return Self.json(["count": count, "results": results.map(status)])
    }

    func add(_ request: Request) async throws -> Response {
        let r = try await pinRequest(request)
        let pin = try await io.run { try self.node.addPinObject(r) }
        return Self.json(status(pin), status: .accepted)
    }

    func get(_ id: String) async throws -> Response {
        let pinID = try Self.pinID(id)
        let owner = RequestCaller.owner
        guard let pin = try await io.run({ try self.node.pinObject(pinID) }), owner == nil || pin.owner == owner else {
            throw Failure(.notFound, "NOT_FOUND", "no pin with request id \(id)")
        }
        return Self.json(status(pin))
    }

    func replace(_ id: String, _ request: Request) async throws -> Response {
        let pinID = try Self.pinID(id)
        let r = try await pinRequest(request)
        let pin = try await io.run { try self.node.replacePinObject(pinID, with: r) }
        return Self.json(status(pin), status: .accepted)
    }

    func delete(_ id: String) async throws -> Response {
        let pinID = try Self.pinID(id)
        let owner = RequestCaller.owner
        _ = try await io.run { try self.node.removePinObject(pinID, owner: owner) }
        return Response(status: .accepted)
    }

    // MARK: bodies

    /// A `Pin` object from the body, checked against the schema.
    func pinRequest(_ request: Request) async throws -> Pinner.Request {
        let req = request
        let body: ByteBuffer
        do { body = try await RequestBodies.collect(req, limit: 1 << 20, timeout: limits.requestTimeout) } catch is BodyTooLarge {
            throw Failure(.contentTooLarge, "CONTENT_TOO_LARGE", "the body is larger than 1 MiB")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            throw Failure(.badRequest, "BAD_REQUEST", "the body must be a JSON Pin object")
        }
        guard let cidText = object["cid"] as? String else { throw Failure(.badRequest, "BAD_REQUEST", "cid is required and must be a string") }
        let cid: CID
        do { cid = try CID(cidText) } catch { throw Failure(.badRequest, "BAD_REQUEST", "invalid CID \(cidText): \(error)") }
        var r = Pinner.Request(cid: cid)
        r.owner = RequestCaller.owner
        if let n = object["name"], !(n is NSNull) {
            guard let name = n as? String else { throw Failure(.badRequest, "BAD_REQUEST", "name must be a string") }
            try Self.checkName(name)
            r.name = name
        }
        if let o = object["origins"], !(o is NSNull) {
            guard let origins = o as? [String], origins.count <= 20, Set(origins).count == origins.count else {
                throw Failure(.badRequest, "BAD_REQUEST", "origins must be at most 20 distinct multiaddr strings")
            }
            r.origins = origins
        }
        if let m = object["meta"], !(m is NSNull) {
            guard let meta = m as? [String: Any] else { throw Failure(.badRequest, "BAD_REQUEST", "meta must be an object of strings") }
            guard meta.count <= 1000 else { throw Failure(.badRequest, "BAD_REQUEST", "meta has \(meta.count) keys; at most 1000 are allowed") }
            for (k, v) in meta {
                guard let s = v as? String else { throw Failure(.badRequest, "BAD_REQUEST", "meta values must be strings") }
                r.meta[k] = s
            }
            r.resourceType = r.meta["resourceType"]
        }
        return r
    }

    /// A pin name as the API allows it: at most 255 characters, no control characters (a NUL
    /// or a line break in a name would break every listing that prints it).
    static func checkName(_ name: String) throws {
        guard name.count <= 255 else { throw Failure(.badRequest, "BAD_REQUEST", "name has \(name.count) characters; at most 255 are allowed") }
        if let c = name.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            throw Failure(.badRequest, "BAD_REQUEST", "name contains a control character (U+\(String(format: "%04X", c.value)))")
        }
    }

    /// A pin as a `PinStatus` object.
    func status(_ p: Pin) -> [String: Any] {
        var pin: [String: Any] = ["cid": p.cid.string, "origins": p.origins, "meta": p.meta]
        if let n = p.name { pin["name"] = n }
        var info = p.info
        info["resourceType"] = p.resourceType
        if let e = p.expires { info["expires"] = Self.format(e) }
        return ["requestid": p.id.description, "status": p.status.rawValue, "created": Self.format(p.created), "pin": pin,
                "delegates": delegates, "info": info]
    }

    static func format(_ ms: UInt64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func date(_ text: String, _ field: String) throws -> UInt64 {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        guard let d = f.date(from: text) ?? plain.date(from: text), d.timeIntervalSince1970 >= 0 else {
            throw Failure(.badRequest, "BAD_REQUEST", "\(field) must be an RFC 3339 date-time")
        }
        return UInt64(d.timeIntervalSince1970 * 1000)
    }

    static func pinID(_ text: String) throws -> PinID {
        guard let id = PinID(text) else { throw Failure(.notFound, "NOT_FOUND", "no pin with request id \(text)") }
        return id
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response { JSONOutput.response(object, status: status) }

    /// The API's `Failure` object: `{"error": {"reason", "details"}}`.
    struct Failure: Error {
        let status: HTTPResponse.Status
        let reason: String
        let details: String
        init(_ status: HTTPResponse.Status, _ reason: String, _ details: String) {
            self.status = status
            self.reason = reason
            self.details = details
        }

        var response: Response { PinningServiceAPI.json(["error": ["reason": reason, "details": details]], status: status) }
    }

    /// Runs a handler; errors become `Failure` responses with the status the error maps to.
    func handle(_ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch let f as Failure { return f.response } catch { return ErrorMapping.pinsResponse(error) }
    }
}
