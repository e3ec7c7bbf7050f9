import Foundation
import HTTPTypes
import Hummingbird
import IPLD
import Node
import NIOCore
import Qindex
import ServiceLifecycle
import Storage

/// `GET /q/v1/events`: the node's event stream as Server-Sent Events.
///
/// `topics` (comma-separated; a pattern ending in `*` matches a prefix, e.g. `q.qindex.*`;
/// default all) filters; the stream starts after `Last-Event-ID` (header, as browsers resend
/// it on reconnect) or `since` (query), else at the current end (only new events). Each event is
/// `id: <sequence>`, `event: <topic>`, `data: {seq, topic, ts, …fields}`; a `: keep-alive`
/// comment goes out after 5 s of quiet so proxies and clients see a live connection (and a
/// departed client is found out, its place among the followers freed).
/// `follow=false` sends what is stored and ends; `limit=N` ends after N events.
struct EventsAPI {
    let node: Node
    let io: StorageThreads
    /// A keep-alive goes out once the stream has been quiet this long (a departed client is
    /// noticed at the next write: its place is free again within about this long)…
    static let heartbeat: Duration = .seconds(5)
    /// …checked this often (so the quiet never lasts much longer than `heartbeat`).
    static let heartbeatCheck: Duration = .seconds(2)

    /// The OpenAPI document's bytes, made once (it is public: a request for it costs no copy).
    static let openAPIDocument = ByteBuffer(string: QOpenAPIDocument.yaml)

    func register(on router: Router<ServerContext>) {
        router.get("/q/v1/events") { request, _ in await qAsync { try await self.stream(request) } }
        let document: @Sendable (Request, ServerContext) -> Response = { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/yaml"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: Self.openAPIDocument))
        }
        router.get("/q/v1/openapi.yaml", use: document)
        router.head("/q/v1/openapi.yaml", use: document)
    }

    /// A topic filter: exact topics and prefixes.
    struct Topics: Sendable {
        var exact: Set<String> = []
        var prefixes: [String] = []
        var all = true

        init(_ text: String?) throws {
            guard let text, text.contains(where: { $0 != "," && $0 != " " }) else { return }  // none named: all
            all = false
            for p in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !p.isEmpty {
                guard p.utf8.count <= 128, p.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x2d || $0 == 0x5f || $0 == 0x2a }),
                      p.firstIndex(of: "*").map({ $0 == p.index(before: p.endIndex) }) ?? true
                else { throw QindexError.invalid("topics: comma-separated topics like q.qindex.record.created.v1, or prefixes ending in * (q.qindex.*)") }
                if p == "*" { all = true } else if p.hasSuffix("*") { prefixes.append(String(p.dropLast())) } else { exact.insert(p) }
            }
        }

        func matches(_ topic: String) -> Bool { all || exact.contains(topic) || prefixes.contains { topic.hasPrefix($0) } }
    }

    func stream(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let topics = try Topics(q.get("topics"))
        func sequence(_ text: String, _ name: String) throws -> UInt64 {
            guard let v = UInt64(text.trimmingCharacters(in: .whitespaces)) else { throw QindexError.invalid("\(name): an event sequence number (an integer ≥ 0)") }
            return v
        }
        let start: UInt64
        if let id = request.headers[.lastEventID] {
            start = try sequence(id, "Last-Event-ID")
        } else if let since = q.get("since") {
            start = try sequence(since, "since")
        } else {
            start = node.lastEventSequence
        }
        let follow: Bool
        switch q.get("follow") {
        case nil, "true"?, "1"?: follow = true
        case "false"?, "0"?: follow = false
        default: throw QindexError.invalid("follow: true or false")
        }
        let limit = try q.get("limit").map { text -> Int in
            guard let n = Int(text), n >= 1 else { throw QindexError.invalid("limit: an integer ≥ 1") }
            return n
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[.xAccelBuffering] = "no"
        let node = self.node
        let io = self.io
        // Checked before the 200, so a full house is a 503 the client can read (the follower itself
        // is registered in the body, which ends it whatever way the body ends). A stream that does
        // not follow takes no place.
        if follow {
            do { try node.checkEventFollowerRoom() } catch let e as EventLogError {
                throw Overloaded(status: .serviceUnavailable, retryAfter: 5, message: e.description)
            }
        }
        // The caller as of now: a stream that follows ends when its token or grant goes.
        let caller = RequestCaller.principal
        // The audit log's events (who did what) only for callers that may read the log; media
        // events (owners, ids, CIDs) and other owners' drive pointers not at all (`Visibility`).
        let visibility = RequestCaller.visibility
        return Response(status: .ok, headers: headers, body: .streamed { writer in
            let (signals, poke) = follow ? try node.followEvents() : AsyncStream<Void>.makeStream()
            let beat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.heartbeatCheck)
                    poke.yield()
                }
            }
            defer {
                beat.cancel()
                poke.finish()
            }
            var cursor = start
            var sent = 0
            var lastWrite = ContinuousClock.now
            try await writer.write(ByteBuffer(string: "retry: 3000\n: events after \(start)\n\n"))
            // A daemon that stops ends the stream (its follower signal finishes).
            try await withGracefulShutdownHandler {
                var waiting = signals.makeAsyncIterator()
                while true {
                    // Drain what is stored, then wait for the next commit (or a heartbeat).
                    while true {
                        let want = min(256, (limit ?? .max) - sent)
                        let after = cursor
                        let page = try await io.run { try node.events(after: after, limit: want, matching: { topics.matches($0.topic) && node.shows($0, to: visibility) }) }
                        var out = ByteBuffer()
                        for e in page.events { out.writeString(Self.render(e)) }
                        if out.readableBytes > 0 {
                            try await writer.write(out)
                            lastWrite = .now
                        }
                        sent += page.events.count
                        cursor = page.through
                        if let limit, sent >= limit { return }
                        if page.through == after { break }
                    }
                    if !follow { return }
                    guard await waiting.next() != nil else { return }
                    if let caller, !node.access.stillAllows(caller, .read) { return }
                    if ContinuousClock.now - lastWrite >= Self.heartbeat {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        lastWrite = .now
                    }
                }
            } onGracefulShutdown: {
                poke.finish()
            }
            try await writer.finish(nil)
        })
    }

    /// One event in SSE form.
    static func render(_ e: EventLog.Event) -> String {
        var object: [String: Any] = ["seq": e.sequence, "topic": e.topic, "ts": e.timestamp]
        for entry in e.data.entries { object[entry.key] = json(entry.value) }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return "id: \(e.sequence)\nevent: \(e.topic)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
    }

    static func json(_ node: IPLDNode) -> Any {
        switch node {
        case .null: NSNull()
        case .bool(let b): b
        case .integer(let i): i.int64.map { $0 as Any } ?? i.description
        case .float(let f): f
        case .string(let s): s
        case .bytes(let b): Data(b).base64EncodedString()
        case .list(let items): items.map(json)
        case .map(let m): Dictionary(uniqueKeysWithValues: m.entries.map { ($0.key, json($0.value)) })
        case .link(let c): c.string
        }
    }
}
