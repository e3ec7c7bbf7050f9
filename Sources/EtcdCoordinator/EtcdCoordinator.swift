import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Replication

/// The cluster's `Coordinator` over etcd's v3 API, through etcd's JSON gateway (`POST /v3/kv/range`,
/// `/v3/kv/txn`, `/v3/lease/*`, `/v3/watch`) with AsyncHTTPClient.
///
/// Why the JSON gateway and not gRPC: it is the same v3 API (same semantics, same server), it
/// needs no generated code and no gRPC stack in the build — AsyncHTTPClient is needed anyway to
/// pull blocks from peers' gateways — and a watch is one long HTTP response of JSON objects. What
/// it costs: base64 keys and values and JSON parsing, measured in Docs/benchmarks.md ("Cluster").
///
/// Several endpoints (an etcd cluster's members) are tried in turn: a request that cannot reach
/// one goes to the next, so losing an etcd member (its leader included) costs one retry.
public final class EtcdCoordinator: Coordinator, @unchecked Sendable {
    // Safe: `current` is touched under `lock`; the rest is immutable.
    let endpoints: [String]
    let client: HTTPClient
    let timeout: TimeAmount
    private let lock = NSLock()
    private var current = 0

    /// Pairs per range request: a large state is read in pages, all at the first page's revision.
    let page: Int

    /// `endpoints`: `http://host:port` of etcd members (client URLs).
    public init(endpoints: [String], timeout: TimeAmount = .seconds(5), client: HTTPClient = .shared, page: Int = 5_000) throws {
        self.page = max(1, page)
        let cleaned = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        guard !cleaned.isEmpty, cleaned.allSatisfy({ $0.hasPrefix("http://") || $0.hasPrefix("https://") }) else {
            throw ClusterError.invalid("etcd endpoints are http(s)://host:port URLs: \(endpoints)")
        }
        self.endpoints = cleaned
        self.timeout = timeout
        self.client = client
    }

    // MARK: requests

    /// POSTs `body` (JSON) to `path` on the first endpoint that answers; the reply's JSON object.
    func call(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        let payload = try JSONSerialization.data(withJSONObject: body)
        var failures: [String] = []
        let start = lock.withLock { current }
        for k in 0..<endpoints.count {
            let i = (start + k) % endpoints.count
            var request = HTTPClientRequest(url: endpoints[i] + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: payload))
            let reply: [String: Any]
            do {
                let response = try await client.execute(request, timeout: timeout)
                let bytes = try await response.body.collect(upTo: 256 << 20)
                guard let object = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any] else {
                    throw ClusterError.unavailable("etcd \(endpoints[i]) answered \(response.status.code) without JSON")
                }
                reply = object
                if let message = object["error"] as? String ?? object["message"] as? String, response.status != .ok {
                    // 14 (unavailable: no leader yet, or this member is cut off): try another.
                    let code = object["code"] as? Int ?? 0
                    if code == 14 || code == 4 { throw ClusterError.unavailable("etcd \(endpoints[i]): \(message)") }
                    throw ClusterError.invalid("etcd: \(message)")
                }
            } catch let e as ClusterError {
                if case .invalid = e { throw e }
                failures.append("\(e)")
                continue
            } catch {
                failures.append("\(endpoints[i]): \(error)")
                continue
            }
            lock.withLock { current = i }
            return reply
        }
        throw ClusterError.unavailable("no etcd endpoint answered (\(failures.joined(separator: "; ")))")
    }

    static func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
    static func b64(_ b: [UInt8]) -> String { Data(b).base64EncodedString() }

    /// The end of the range of keys starting with `prefix` (its last byte plus one).
    static func rangeEnd(_ prefix: String) -> String {
        var b = Array(prefix.utf8)
        while let last = b.last {
            if last < 0xff {
                b[b.count - 1] = last + 1
                return Data(b).base64EncodedString()
            }
            b.removeLast()
        }
        return Data([0]).base64EncodedString()
    }

    static func int(_ v: Any?) -> Int64 {
        if let s = v as? String { return Int64(s) ?? 0 }
        if let n = v as? NSNumber { return n.int64Value }
        return 0
    }

    static func pair(_ kv: [String: Any]) -> KeyValue {
        let key = (kv["key"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let value = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? []
        return KeyValue(key: key, value: value, modRevision: int(kv["mod_revision"]), version: int(kv["version"]), lease: int(kv["lease"]))
    }

    // MARK: Coordinator

    public func list(prefix: String) async throws -> (pairs: [KeyValue], revision: Int64) {
        var pairs: [KeyValue] = []
        var from = Self.b64(prefix)
        var revision: Int64 = 0
        while true {
            var body: [String: Any] = ["key": from, "range_end": Self.rangeEnd(prefix), "limit": String(page)]
            if revision > 0 { body["revision"] = String(revision) }
            let r = try await call("/v3/kv/range", body)
            if revision == 0 { revision = Self.int((r["header"] as? [String: Any])?["revision"]) }
            let kvs = (r["kvs"] as? [[String: Any]] ?? []).map(Self.pair)
            pairs += kvs
            guard r["more"] as? Bool == true, let last = kvs.last else { break }
            // The next page starts just after the last key read.
            from = Self.b64(Array(last.key.utf8) + [0])
        }
        return (pairs, revision)
    }

    public func get(_ key: String) async throws -> KeyValue? {
        let r = try await call("/v3/kv/range", ["key": Self.b64(key)])
        return (r["kvs"] as? [[String: Any]])?.first.map(Self.pair)
    }

    static func json(_ c: Comparison) -> [String: Any] {
        switch c {
        case .version(let k, let v): ["key": b64(k), "target": "VERSION", "result": "EQUAL", "version": String(v)]
        case .modRevision(let k, let v): ["key": b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": String(v)]
        case .value(let k, let v): ["key": b64(k), "target": "VALUE", "result": "EQUAL", "value": b64(v)]
        }
    }

    static func json(_ o: TxnOp) -> [String: Any] {
        switch o {
        case .put(let k, let v, let lease):
            var put: [String: Any] = ["key": b64(k), "value": b64(v)]
            if lease != 0 { put["lease"] = String(lease) }
            return ["request_put": put]
        case .delete(let k): return ["request_delete_range": ["key": b64(k)]]
        case .get(let k): return ["request_range": ["key": b64(k)]]
        }
    }

    public func transaction(_ compares: [Comparison], success: [TxnOp], failure: [TxnOp]) async throws -> TxnResult {
        let r = try await call("/v3/kv/txn", ["compare": compares.map(Self.json), "success": success.map(Self.json), "failure": failure.map(Self.json)])
        let ok = r["succeeded"] as? Bool ?? false
        let responses = r["responses"] as? [[String: Any]] ?? []
        let read = responses.compactMap { ($0["response_range"] as? [String: Any]).map { ($0["kvs"] as? [[String: Any]] ?? []).map(Self.pair) } }
        // A put always changes the store; a delete only when it found something.
        let wrote = responses.contains { $0["response_put"] != nil || Self.int(($0["response_delete_range"] as? [String: Any])?["deleted"]) > 0 }
        return TxnResult(succeeded: ok, read: read, revision: wrote ? Self.int((r["header"] as? [String: Any])?["revision"]) : 0)
    }

    public func grantLease(ttl: Int) async throws -> Int64 {
        let r = try await call("/v3/lease/grant", ["TTL": String(ttl)])
        let id = Self.int(r["ID"])
        guard id != 0 else { throw ClusterError.unavailable("etcd granted no lease: \(r["error"] ?? "")") }
        return id
    }

    public func keepAlive(_ lease: Int64) async throws -> Int {
        let r = try await call("/v3/lease/keepalive", ["ID": String(lease)])
        return Int(Self.int((r["result"] as? [String: Any])?["TTL"]))
    }

    public func revoke(_ lease: Int64) async throws {
        _ = try? await call("/v3/lease/revoke", ["ID": String(lease)])
    }

    public func watch(prefix: String, after revision: Int64) -> AsyncThrowingStream<[WatchEvent], any Error> {
        let (stream, continuation) = AsyncThrowingStream<[WatchEvent], any Error>.makeStream()
        let endpoint = lock.withLock { endpoints[current] }
        let body: [String: Any] = ["create_request": ["key": Self.b64(prefix), "range_end": Self.rangeEnd(prefix), "start_revision": String(revision + 1)]]
        let client = self.client
        let task = Task {
            do {
                var request = HTTPClientRequest(url: endpoint + "/v3/watch")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                // etcd ends the watch when its member loses the leader (else a member cut off from
                // the others would keep it open and silent).
                request.headers.add(name: "Grpc-Metadata-hasleader", value: "true")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
                let response = try await client.execute(request, deadline: .distantFuture)
                guard response.status == .ok else { throw ClusterError.unavailable("etcd watch: \(response.status)") }
                var pending: [UInt8] = []
                for try await chunk in response.body {
                    pending += chunk.readableBytesView
                    // One JSON object per line.
                    while let nl = pending.firstIndex(of: 0x0a) {
                        let line = Array(pending[..<nl])
                        pending.removeSubrange(...nl)
                        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                              let result = object["result"] as? [String: Any] else { continue }
                        if Self.int(result["compact_revision"]) > 0 { throw ClusterError.compacted(Self.int(result["compact_revision"])) }
                        if result["canceled"] as? Bool == true {
                            throw ClusterError.unavailable("etcd ended the watch: \(result["cancel_reason"] as? String ?? "canceled")")
                        }
                        if result["created"] as? Bool == true {
                            // An etcd restored to an older revision: what was seen is not there.
                            let now = Self.int((result["header"] as? [String: Any])?["revision"])
                            if now > 0 && now < revision { throw ClusterError.compacted(now) }
                            continuation.yield([])
                        }
                        let events = (result["events"] as? [[String: Any]] ?? []).map { e in
                            WatchEvent(kind: (e["type"] as? String) == "DELETE" ? .delete : .put, pair: Self.pair(e["kv"] as? [String: Any] ?? [:]))
                        }
                        if !events.isEmpty { continuation.yield(events) }
                    }
                }
                continuation.finish(throwing: ClusterError.unavailable("etcd ended the watch"))
            } catch {
                continuation.finish(throwing: error is ClusterError || error is CancellationError ? error : ClusterError.unavailable("etcd watch: \(error)"))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
