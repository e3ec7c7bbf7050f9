import Audit
import Foundation
import HTTPTypes
import Hummingbird
import IPLD
import Multiformats
import Node
import NIOCore
import Pinning
import QAPI

/// The Qerberos audit log on the Q API (`/q/v1/audit`, Docs/audit.md). The log is also served
/// the way C2SP tlog-tiles clients read one, with `/q/v1/audit` as its prefix: `checkpoint` (the
/// signed note, as text) and `tile/<L>/<N>[.p/<W>]` (raw hashes).
struct AuditAPI {
    let node: Node
    let io: StorageThreads
    let downloads: Downloads

    static let prefix = "/q/v1/audit"

    func register(on router: Router<ServerContext>) {
        router.get(RouterPath(Self.prefix + "/checkpoint")) { request, _ in await qAsync { try await self.checkpoint(request) } }
        router.get(RouterPath(Self.prefix + "/checkpoints")) { request, _ in await qAsync { try await self.checkpoints(request) } }
        router.get(RouterPath(Self.prefix + "/proof/inclusion")) { request, _ in await qAsync { try await self.inclusion(request) } }
        router.get(RouterPath(Self.prefix + "/proof/consistency")) { request, _ in await qAsync { try await self.consistency(request) } }
        router.get(RouterPath(Self.prefix + "/tile/**")) { request, _ in await qAsync { try await self.tile(request) } }
        router.get(RouterPath(Self.prefix + "/events")) { request, _ in await qAsync { try await self.events(request) } }
        router.get(RouterPath(Self.prefix + "/export")) { request, _ in await qAsync { try await self.export(request) } }
    }

    static func number(_ text: String?, _ name: String) throws -> UInt64? { try AuditQuery.number(text, name) }

    /// The note as text (C2SP), or its fields in the envelope with `Accept: application/json`.
    func checkpoint(_ request: Request) async throws -> Response {
        let c = try await io.run { try self.node.auditCheckpoint() }
        if (request.headers[.accept] ?? "").contains("application/json") {
            var reply = QindexAPI.ok(AuditCheckpointInfo(c, origin: node.auditOrigin, verifierKey: node.auditVerifierKey))
            reply.headers[.cacheControl] = "no-cache"
            return reply
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: c.note)))
    }

    func checkpoints(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let after = try Self.number(q.get("after"), "after") ?? 0
        let limit = Int(min(try Self.number(q.get("limit"), "limit") ?? 100, 1000))
        let list = try await io.run { try self.node.auditCheckpoints(after: after, limit: limit) }
        return QindexAPI.ok(list.map { AuditCheckpointInfo($0, origin: node.auditOrigin, verifierKey: node.auditVerifierKey) })
    }

    func inclusion(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        guard let index = try Self.number(q.get("index"), "index") else { throw AuditError.invalid("index: required") }
        let size = try Self.number(q.get("size"), "size")
        let p = try await io.run { try self.node.auditInclusionProof(index: index, size: size) }
        return QindexAPI.ok(AuditInclusionProof(index: index, size: p.size, leafHash: p.leafHash, hashes: p.hashes))
    }

    func consistency(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        guard let from = try Self.number(q.get("from"), "from") else { throw AuditError.invalid("from: required") }
        let to = try Self.number(q.get("to"), "to")
        let p = try await io.run { try self.node.auditConsistencyProof(from: from, to: to) }
        return QindexAPI.ok(AuditConsistencyProof(from: from, to: p.to, hashes: p.hashes))
    }

    /// `tile/<L>/<N>[.p/<W>]`, N written as tlog-tiles does (`x001/x234/067`).
    func tile(_ request: Request) async throws -> Response {
        let path = String(request.uri.path.dropFirst(Self.prefix.count + "/tile/".count))
        let (coordinate, width) = try Self.parseTile(path)
        let bytes = try await io.run { try self.node.auditTile(coordinate, width: width) }
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        // A full tile never changes; a partial one does.
        headers[.cacheControl] = width == nil ? "public, max-age=31536000, immutable" : "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func parseTile(_ path: String) throws -> (TileCoordinate, Int?) {
        let bad = AuditError.invalid("tile path \"\(path)\": <L>/<N>[.p/<W>], N in groups of three digits (x001/x234/067)")
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let isDigits = { (t: String) in !t.isEmpty && t.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard parts.count >= 2, parts[0].count == 1, isDigits(parts[0]), let level = Int(parts[0]), (0..<8).contains(level) else { throw bad }
        parts.removeFirst()
        var width: Int?
        if parts.count >= 2, parts[parts.count - 2].hasSuffix(".p") {
            let text = parts.removeLast()
            guard isDigits(text), !text.hasPrefix("0"), let w = Int(text), (1..<256).contains(w) else { throw bad }
            width = w
            parts[parts.count - 1].removeLast(2)
        }
        var index: UInt64 = 0
        for (i, g) in parts.enumerated() {
            let digits = i < parts.count - 1 ? (g.hasPrefix("x") ? String(g.dropFirst()) : "") : g
            guard digits.count == 3, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt64(digits), parts.count <= 7 else { throw bad }
            let (shifted, o1) = index.multipliedReportingOverflow(by: 1000)
            let (sum, o2) = shifted.addingReportingOverflow(v)
            guard !o1, !o2 else { throw bad }
            index = sum
        }
        return (TileCoordinate(level: level, index: index), width)
    }

    func events(_ request: Request) async throws -> Response {
        let query = try Self.query(request)
        let page = try await io.run { try self.node.auditEvents(query) }
        return QindexAPI.ok(AuditEventPage(events: page.events.map { AuditEntryInfo(index: $0.index, cid: $0.cid, event: $0.event) }, cursor: page.cursor))
    }

    static func query(_ request: Request) throws -> AuditQuery {
        let q = request.uri.queryParameters
        return try AuditQuery(parameters: { q.get($0) })
    }

    /// The log as a CAR (events, tiles, checkpoints; `format=car`, the default) or as JSON lines
    /// (`format=jsonl`: one `{index, cid, event}` per line), streamed.
    func export(_ request: Request) async throws -> Response {
        let format = request.uri.queryParameters.get("format") ?? "car"
        var headers = HTTPFields()
        let node = self.node
        switch format {
        case "car":
            _ = try await io.run { try node.auditCheckpoint(fresh: true) }
            headers[.contentType] = "application/vnd.ipld.car; version=1"
            headers[.contentDisposition] = "attachment; filename=\"audit-log.car\""
            return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
                var sink = try node.exportAudit(to: ChannelSink(channel))
                try sink.flush()
            })
        case "jsonl":
            // The filters of `events`; every matching event is written (no page: no limit or cursor).
            let q = request.uri.queryParameters
            let query = try AuditQuery(parameters: { ["limit", "cursor"].contains($0) ? nil : q.get($0) })
            headers[.contentType] = "application/jsonl"
            return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
                var sink = ChannelSink(channel)
                var q = query
                q.limit = 1000
                while true {
                    let page = try node.auditEvents(q)
                    for e in page.events {
                        let line = QJSON.encode(AuditEntryInfo(index: e.index, cid: e.cid, event: e.event))
                        try line.withUnsafeBytes { try sink.write($0) }
                    }
                    guard let next = page.cursor else { break }
                    q.cursor = next
                }
                try sink.flush()
            })
        default:
            throw AuditError.invalid("format: car or jsonl")
        }
    }
}
