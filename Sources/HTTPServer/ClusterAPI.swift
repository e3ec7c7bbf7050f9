import Foundation
import HTTPTypes
import Hummingbird
import IPLD
import Multiformats
import Node
import QAPI
import Replication

/// The cluster on the Q API (`/q/v1/cluster`, Docs/cluster.md): reading needs `read`, changing
/// `admin`. A node whose etcd is unreachable answers 503
/// `SERVICE_UNAVAILABLE` with the reason (its own reads and writes go on); one without a cluster 409 `CLUSTER_DISABLED`.
struct ClusterAPI {
    let node: Node
    let limits: ServerLimits

    static let prefix = "/q/v1/cluster"

    /// `POST /q/v1/cluster/pins`.
    struct PinRequest: Codable, Sendable {
        var cid: String
        var name: String?
        var rmin: Int?
        var rmax: Int?
        var policy: String?
    }

    /// `GET /q/v1/cluster`: this node's view.
    struct Overview: Codable, Sendable {
        var cluster: String
        var node: String
        var allocator: Bool
        var reachable: Bool
        var reason: String?
        var member: Bool
    }

    func register(on router: Router<ServerContext>) {
        router.get(RouterPath(Self.prefix)) { _, _ in
            await qAsync {
                let c = try self.node.joinedCluster()
                let h = await c.health
                let allocator = await c.isAllocator
                return QindexAPI.ok(Overview(cluster: c.config.name, node: c.config.nodeId, allocator: allocator, reachable: h.reachable,
                                             reason: h.reason, member: h.member))
            }
        }
        router.get(RouterPath(Self.prefix + "/peers")) { _, _ in await qAsync { QindexAPI.ok(try await self.node.joinedCluster().peers()) } }
        router.get(RouterPath(Self.prefix + "/pins")) { _, _ in
            await qAsync { QindexAPI.ok(bytes: QJSON.envelope(rawData: Self.json(try await self.node.joinedCluster().status()))) }
        }
        router.get(RouterPath(Self.prefix + "/pins/{cid}")) { _, context in
            await qAsync { QindexAPI.ok(try await self.node.joinedCluster().status(try Self.cid(context))[0]) }
        }
        router.post(RouterPath(Self.prefix + "/pins")) { request, _ in
            await qAsync {
                let body = try await RequestBodies.collect(request, limit: 16 << 10, timeout: self.limits.requestTimeout)
                let r: PinRequest
                do { r = try JSONDecoder().decode(PinRequest.self, from: Data(buffer: body)) } catch {
                    throw ClusterError.invalid("the body is a JSON object {cid, name?, rmin?, rmax?, policy?}")
                }
                guard let cid = try? CID(r.cid) else { throw ClusterError.invalid("cid: \(r.cid.prefix(100)) is not a CID") }
                let pin = try await self.node.clusterPinAdd(cid, name: r.name, rmin: r.rmin, rmax: r.rmax, policy: r.policy)
                return QindexAPI.ok(pin, cid: cid, status: .created)
            }
        }
        router.delete(RouterPath(Self.prefix + "/pins/{cid}")) { _, context in
            await qAsync {
                let cid = try Self.cid(context)
                try await self.node.joinedCluster().pinRemove(cid)
                return QindexAPI.ok(["removed": cid.description])
            }
        }
        router.post(RouterPath(Self.prefix + "/pins/{cid}/recover")) { _, context in
            await qAsync { QindexAPI.ok(try await self.node.joinedCluster().recover(try Self.cid(context))) }
        }
        router.post(RouterPath(Self.prefix + "/drain/{node}")) { request, context in
            await qAsync {
                let id = context.parameters.get("node") ?? ""
                guard !id.isEmpty, id.count <= 128 else { throw ClusterError.invalid("a node id") }
                let cancel = request.uri.queryParameters.get("cancel") == "true"
                try await self.node.joinedCluster().drain(id, cancel: cancel)
                return QindexAPI.ok(["node": id, "draining": cancel ? "false" : "true"])
            }
        }
    }

    static func cid(_ context: ServerContext) throws -> CID {
        let text = context.parameters.get("cid") ?? ""
        guard let cid = try? CID(text) else { throw ClusterError.invalid("\(text.prefix(100)) is not a CID") }
        return cid
    }
}

extension ClusterAPI {
    /// `states` as JSON: the bytes `QJSON.encode` writes (keys sorted, fields absent when nil;
    /// ClusterAPITests holds them equal) without JSONEncoder's cost — 100k pins are 11 MB, which
    /// it takes 0.65 s to write on this machine.
    static func json(_ states: [ClusterPinState]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(states.count * 128 + 2)
        func raw(_ s: StaticString) { out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)) }
        func map(_ m: [String: String]) {
            raw("{")
            // JSONEncoder's order: by UTF-8 bytes (String's < compares normalized text).
            for (k, key) in m.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if k > 0 { raw(",") }
                DAGJSON.writeString(key, to: &out)
                raw(":")
                DAGJSON.writeString(m[key]!, to: &out)
            }
            raw("}")
        }
        raw("[")
        for (k, s) in states.enumerated() {
            raw(k == 0 ? "{\"allocations\":[" : ",{\"allocations\":[")
            for (j, n) in s.allocations.enumerated() {
                if j > 0 { raw(",") }
                DAGJSON.writeString(n, to: &out)
            }
            raw("],\"cid\":")
            DAGJSON.writeString(s.cid, to: &out)
            if let e = s.errors {
                raw(",\"errors\":")
                map(e)
            }
            if let n = s.name {
                raw(",\"name\":")
                DAGJSON.writeString(n, to: &out)
            }
            raw(",\"rmax\":")
            out += Array(String(s.rmax).utf8)
            raw(",\"rmin\":")
            out += Array(String(s.rmin).utf8)
            raw(",\"status\":")
            map(s.status)
            raw("}")
        }
        raw("]")
        return out
    }
}
