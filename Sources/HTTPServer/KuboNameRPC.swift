import Foundation
import HTTPTypes
import Hummingbird
import KuboAPI
import Multiformats
import Node
import NIOCore
import Signing

/// Kubo's `name/*`, `key/*` and `routing/{get,put}` for IPNS records, with Kubo's parameters
/// and reply shapes. Records are IPNS V2 with V1 fields (Signing's `IPNSRecord`); the node
/// holds its own names' records and imported ones that verified, and resolves only from those
/// (there is no DHT: `allow-offline` is accepted and always true).
extension KuboRPC {
    /// Kubo's defaults for `name publish`.
    static let defaultLifetime = "48h", defaultTTL = "1h"

    func registerNames(on api: RouterGroup<ServerContext>) {
        api.post("name/publish") { request, _ in await rpcAsync { try await self.namePublish(request) } }
        api.post("name/resolve") { request, _ in await rpcAsync { try await self.nameResolve(request) } }
        api.post("key/gen") { request, _ in await rpcAsync { try await self.keyGen(request) } }
        api.post("key/list") { _, _ in await rpcAsync { try await self.keyList() } }
        api.post("key/rename") { request, _ in await rpcAsync { try await self.keyRename(request) } }
        api.post("key/rm") { request, _ in await rpcAsync { try await self.keyRemove(request) } }
        api.post("routing/get") { request, _ in await rpcAsync { try await self.routingGet(request) } }
        api.post("routing/put") { request, _ in await rpcAsync { try await self.routingPut(request) } }
    }

    static func duration(_ q: Request, _ name: String, default fallback: String) throws -> UInt64 {
        do { return try GoDuration.parse(q.uri.queryParameters.get(name) ?? fallback, flag: name) } catch let e as GoDuration.BadDuration {
            throw RequestError(.badRequest, e.message)
        }
    }

    func namePublish(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        guard let arg = q.get("arg") else { throw RequestError(.badRequest, "argument \"ipfs-path\" is required") }
        let key = q.get("key") ?? "self"
        let lifetime = try Self.duration(request, "lifetime", default: Self.defaultLifetime)
        let ttl = try Self.duration(request, "ttl", default: Self.defaultTTL)
        let resolve = q.get("resolve").map { Self.flag($0) } ?? true
        let p = try await io.run { try self.node.publishName(arg, key: key, lifetime: lifetime, ttl: ttl, resolve: resolve) }
        return JSONOutput.reply(NamePublished(name: p.name, value: p.value))
    }

    func nameResolve(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let recursive = q.get("recursive").map { Self.flag($0) } ?? true
        let name = q.get("arg") ?? IPNSName.string(node.identity.peerCID.multihash)
        let path = try await io.run { try self.node.resolveName(name, recursive: recursive) }
        return JSONOutput.reply(NameResolved(path: path))
    }

    func keyGen(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        guard let name = q.get("arg") else { throw RequestError(.badRequest, "argument \"name\" is required") }
        let e = try await io.run { try self.node.generateKey(name, type: q.get("type") ?? "ed25519") }
        return JSONOutput.reply(KeyEntry(name: e.name, id: e.id))
    }

    func keyList() async throws -> Response {
        let keys = try await io.run { try self.node.keys() }
        return JSONOutput.reply(KeyList(keys: keys.map { KeyEntry(name: $0.name, id: $0.id) }))
    }

    func keyRename(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let args = q.getAll("arg").map { String($0) }
        guard args.count == 2 else { throw RequestError(.badRequest, "arguments \"name\" and \"newName\" are required") }
        let force = Self.flag(q.get("force"))
        let r = try await io.run { try self.node.renameKey(args[0], to: args[1], force: force) }
        return JSONOutput.reply(KeyRenamed(was: args[0], now: args[1], id: r.entry.id, overwrite: r.overwrote))
    }

    func keyRemove(_ request: Request) async throws -> Response {
        let args = request.uri.queryParameters.getAll("arg").map { String($0) }
        guard !args.isEmpty else { throw RequestError(.badRequest, "argument \"name\" is required") }
        let removed = try await io.run { try self.node.removeKeys(args) }
        return JSONOutput.reply(KeyList(keys: removed.map { KeyEntry(name: $0.name, id: $0.id) }))
    }

    /// `routing/get /ipns/<name>`: Kubo's query event with the record (base64) in `Extra`.
    func routingGet(_ request: Request) async throws -> Response {
        let name = try Self.ipnsKey(request)
        let record = try await io.run { try self.node.nameRecord(name) }
        var line = JSONOutput.line(RoutingEvent(extra: Data(record.bytes).base64EncodedString(), id: ""))
        var out = ByteBuffer()
        out.writeBuffer(&line)
        return Self.jsonStream(out)
    }

    /// `routing/put /ipns/<name>` with the record as a multipart file: stored once it verifies.
    func routingPut(_ request: Request) async throws -> Response {
        let name = try Self.ipnsKey(request)
        let files = try await multipartFiles(request, limit: IPNSRecord.maximumSize)
        _ = try await io.run { try self.node.importNameRecord(name, files[0]) }
        var line = JSONOutput.line(RoutingEvent(extra: "", id: node.identity.peerID))
        var out = ByteBuffer()
        out.writeBuffer(&line)
        return Self.jsonStream(out)
    }

    /// The `arg` of `routing/*`: `/ipns/<name>` (the only key kind held).
    static func ipnsKey(_ request: Request) throws -> String {
        guard let arg = request.uri.queryParameters.get("arg") else { throw RequestError(.badRequest, "argument \"key\" is required") }
        guard arg.hasPrefix("/ipns/") else { throw RequestError(.badRequest, "\(arg): only /ipns/ keys are held (no DHT here)") }
        return String(arg.dropFirst(6))
    }
}
