import Foundation
import Hummingbird
import KuboAPI
import Multiformats
import Node
import Pinning

/// Kubo's `pin/*` and `repo/gc` commands, with Kubo's parameters and outputs, plus Qstore's
/// pin extensions (`resource-type`, `expires-in`, `replication`) and `pin/policies`.
extension KuboRPC {
    func registerPins(on api: RouterGroup<ServerContext>) {
        api.post("pin/add") { request, _ in await rpcAsync { try await self.pinAdd(request) } }
        api.post("pin/rm") { request, _ in await rpcAsync { try await self.pinRemove(request) } }
        api.post("pin/ls") { request, _ in await rpcAsync { try await self.pinList(request) } }
        api.post("pin/verify") { request, _ in await rpcAsync { try await self.pinVerify(request) } }
        api.post("pin/update") { request, _ in await rpcAsync { try await self.pinUpdate(request) } }
        api.post("pin/policies") { _, _ in rpc { self.pinPolicies() } }
        api.post("repo/gc") { request, _ in await rpcAsync { try await self.repoGC(request) } }
    }

    /// The CIDs named by every `arg` (paths resolved to their last block).
    func resolvedArguments(_ request: Request) async throws -> [CID] {
        let args = request.uri.queryParameters.getAll("arg")
        guard !args.isEmpty else { throw RequestError(.badRequest, "argument \"ipfs-path\" is required") }
        var out: [CID] = []
        for a in args {
            let (cid, path) = try Self.path(String(a))
            out.append(path.isEmpty ? cid : try await io.run { try self.node.resolve(cid, path: path).terminal })
        }
        return out
    }

    func pinAdd(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let recursive = q.get("recursive").map { Self.flag($0) } ?? true
        let cids = try await resolvedArguments(request)
        var template = Pinner.Request(cid: cids[0], type: recursive ? .recursive : .direct)
        template.owner = RequestCaller.owner
        template.name = q.get("name")
        template.resourceType = q.get("resource-type")
        if let e = q.get("expires-in") {
            guard let ms = parseDuration(String(e)) else { throw RequestError(.badRequest, "expires-in \"\(e)\" is not a duration (e.g. 90s, 1h30m, 7d)") }
            template.expiresIn = ms
        }
        if let r = q.get("replication") {
            guard let n = Int(r), (1...64).contains(n) else { throw RequestError(.badRequest, "replication must be 1 to 64") }
            template.replicationFactor = n
        }
        let pinRequest = template
        guard Self.flag(q.get("progress")) else {
            try await io.run {
                for c in cids {
                    var r = pinRequest
                    r.cid = c
                    try self.node.pin(r)
                }
            }
            return JSONOutput.reply(PinsResult(pins: cids.map(\.string)))
        }
        // Kubo's progress: `{"Progress": blocks walked}` at most every 500 ms, then `{"Pins"}`.
        return try await KuboRPC.streamedReply(.storage(io), for: request, headers: KuboRPC.jsonStreamHeaders) { channel in
            var walked = 0
            var last = DispatchTime.now().uptimeNanoseconds
            for c in cids {
                var r = pinRequest
                r.cid = c
                let before = walked
                try self.node.pin(r) { n in
                    walked = before + n
                    let now = DispatchTime.now().uptimeNanoseconds
                    if now - last >= 500_000_000 {
                        last = now
                        try channel.sendLine(PinsResult(progress: walked))
                    }
                }
            }
            try channel.sendLine(PinsResult(pins: cids.map(\.string)))
        }
    }

    func pinRemove(_ request: Request) async throws -> Response {
        let recursive = request.uri.queryParameters.get("recursive").map { Self.flag($0) } ?? true
        let cids = try await resolvedArguments(request)
        let owner = RequestCaller.owner
        try await io.run { for c in cids { try self.node.unpin(c, recursive: recursive, owner: owner) } }
        return JSONOutput.reply(PinsResult(pins: cids.map(\.string)))
    }

    func pinList(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let type = String(q.get("type") ?? "all")
        let stream = Self.flag(q.get("stream")), names = Self.flag(q.get("names"))
        let nameFilter = q.get("name")
        let visibility = RequestCaller.visibility
        let rows: [PinListing]
        if q.getAll("arg").isEmpty {
            rows = try await io.run {
                var out: [PinListing] = []
                try self.node.listPins(type: type, nameContains: nameFilter, visibility: visibility) { out.append($0) }
                return out
            }
        } else {
            let cids = try await resolvedArguments(request)
            rows = try await io.run {
                try cids.map { c in
                    guard let l = try self.node.pinListing(of: c, type: type, visibility: visibility) else { throw RequestError(.notFound, "path '\(c)' is not pinned") }
                    return l
                }
            }
        }
        if stream {
            var out = ByteBuffer()
            for r in rows {
                var line = JSONOutput.line(PinLsEntry(cid: r.cid.string, type: r.type, name: names && !r.name.isEmpty ? r.name : nil))
                out.writeBuffer(&line)
            }
            return Self.jsonStream(out)
        }
        var keys: [String: PinLsResult.Key] = [:]
        for r in rows { keys[r.cid.string] = PinLsResult.Key(type: r.type, name: names && !r.name.isEmpty ? r.name : nil) }
        return JSONOutput.reply(PinLsResult(keys: keys))
    }

    func pinVerify(_ request: Request) async throws -> Response {
        let verbose = Self.flag(request.uri.queryParameters.get("verbose"))
        let quiet = Self.flag(request.uri.queryParameters.get("quiet"))
        let visibility = RequestCaller.visibility
        let out = try await io.run { () throws -> ByteBuffer in
            var out = ByteBuffer()
            try self.node.verifyPins(visibility: visibility) { v in
                guard !v.ok || verbose else { return }
                var line = JSONOutput.line(PinVerifyResult(v, quiet: quiet))
                out.writeBuffer(&line)
            }
            return out
        }
        return Self.jsonStream(out)
    }

    func pinUpdate(_ request: Request) async throws -> Response {
        let cids = try await resolvedArguments(request)
        guard cids.count == 2 else { throw RequestError(.badRequest, "pin update takes two arguments: from-path and to-path") }
        let unpin = request.uri.queryParameters.get("unpin").map { Self.flag($0) } ?? true
        let owner = RequestCaller.owner
        _ = try await io.run { try self.node.updatePin(from: cids[0], to: cids[1], unpin: unpin, owner: owner) }
        return JSONOutput.reply(PinsResult(pins: cids.map(\.string)))
    }

    func pinPolicies() -> Response {
        JSONOutput.reply(PolicyListing(node.pinningPolicies))
    }

    /// Kubo's `repo gc`: one `{"Key":{"/":cid}}` line per block removed (none with `quiet`).
    func repoGC(_ request: Request) async throws -> Response {
        let quiet = Self.flag(request.uri.queryParameters.get("quiet"))
        let out = try await io.run { () throws -> ByteBuffer in
            var out = ByteBuffer()
            try self.node.collectGarbage { cid, _ in
                if !quiet {
                    var line = JSONOutput.line(RepoGCLine(key: cid.string))
                    out.writeBuffer(&line)
                }
                return true
            }
            return out
        }
        return Self.jsonStream(out)
    }
}
