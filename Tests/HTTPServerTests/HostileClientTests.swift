import CAR
import Foundation
@testable import HTTPServer
import Multiformats
import Storage
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What an attacker or a careless client does to a real daemon over real sockets: downloads
/// abandoned half way, amplifying ranges, broken and stalled uploads, odd headers. Each test
/// guards one defect found by probing (issue "A client that stops reading a large download
/// crashes the daemon").
@Suite(.serialized) struct HostileClientTests {
    static func aside<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await ThirdPartyClientTests.aside(body)
    }

    /// A multipart upload of one file named `name`, sent whole with a Content-Length.
    static func addRequest(token: String, name: String = "f", data: [UInt8], query: String = "", declaredLength: Int? = nil) -> [UInt8] {
        let boundary = "hostile-boundary"
        var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        body += data
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        let head = "POST /api/v0/add\(query) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n"
            + "Content-Type: multipart/form-data; boundary=\(boundary)\r\nContent-Length: \(declaredLength ?? body.count)\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// The root CID of an add reply (its last JSON line). Throws a plain error (not `#require`):
    /// it is called on threads where Swift Testing cannot tell which test is running.
    static func addedCID(_ r: RawConnection.Response) throws -> String {
        guard let line = r.text.split(separator: "\n").last,
              let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let hash = object["Hash"] as? String
        else { throw RawConnection.Failure(description: "no CID in the add reply: \(r.status) \(r.text)") }
        return hash
    }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    // MARK: 1. downloads abandoned at any point

    /// 200 downloads of large responses (a file through the gateway, a CAR, `cat`, a multi-range
    /// response), each read for a random while through a small receive buffer and then closed or
    /// reset: the daemon (a process of its own) keeps serving, and serves the whole file after.
    /// Then after a kill -9 the stale `api` file is gone at the next open of the repository.
    @Test func abortedDownloadsLeaveTheDaemonServing() async throws {
        let checks = Checks()
        try await Self.aside {
            let daemon = try ChildDaemon()
            defer { daemon.discard() }
            let size = 8 << 20
            let data = Self.randomBytes(size, seed: 10)
            let add = try RawConnection(port: daemon.apiPort)
            try add.send(Self.addRequest(token: daemon.token, data: data, query: "?cid-version=1"))
            let cid = try Self.addedCID(try add.response())
            let targets: [(api: Bool, method: String, path: String, headers: [String: String])] = [
                (false, "GET", "/ipfs/\(cid)", [:]),
                (false, "GET", "/ipfs/\(cid)?format=car", [:]),
                (true, "POST", "/api/v0/cat?arg=\(cid)", [:]),
                (false, "GET", "/ipfs/\(cid)", ["Range": "bytes=0-99,1000000-3999999,5000000-"]),
            ]
            var rng = SeededGenerator(seed: 11)
            for i in 0..<200 {
                let t = targets[i % targets.count]
                let c = try RawConnection(port: t.api ? daemon.apiPort : daemon.gatewayPort, receiveBuffer: 4096)
                var head = "\(t.method) \(t.path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                if t.api { head += "Authorization: Bearer \(daemon.token)\r\n" }
                for (k, v) in t.headers { head += "\(k): \(v)\r\n" }
                try c.send(head + "\r\n")
                var want = Int.random(in: 0...(512 << 10), using: &rng)
                while want > 0 {
                    let got = c.read(upTo: min(want, 16 << 10), timeout: 5)
                    if got.isEmpty { break }
                    want -= got.count
                }
                // Sometimes let the server fill every buffer (its producer then waits) before going.
                if Bool.random(using: &rng) { usleep(UInt32.random(in: 0...20_000, using: &rng)) }
                if Bool.random(using: &rng) { c.reset() }
                guard daemon.isRunning else { throw RawConnection.Failure(description: "the daemon died after \(i + 1) aborted downloads") }
            }
            let whole = try daemon.request("GET", "/ipfs/\(cid)", api: false)
            checks.expect(whole.status == 200 && whole.body == data, "after the aborts: \(whole.status), \(whole.body.count) bytes")
            checks.expect(daemon.isRunning, "the daemon stopped")

            // A crash leaves `<repo>/api` behind; the next open of the repository removes it.
            daemon.kill9()
            checks.expect(FileManager.default.fileExists(atPath: daemon.repository + "/api"), "a daemon killed with -9 leaves its api file")
            let (rc, out) = try ThirdPartyClientTests.run(ChildDaemon.binary, ["repo", "verify"], environment: ["QSTORE_PATH": daemon.repository, "HOME": daemon.directory])
            checks.expect(rc == 0, "repo verify after kill -9: \(out)")
            checks.expect(!FileManager.default.fileExists(atPath: daemon.repository + "/api"), "stale api file left after the repository was opened")
        }
        checks.verify()
    }

    /// Identity CIDs are blocks anyone can make up in a URL without storing anything: UnixFS nodes
    /// that declare sizes near 2^64 (found by probing; each crashed the daemon through an integer
    /// overflow) are refused, identity CIDs over 128 bytes are not resolved, and the daemon keeps
    /// serving.
    @Test func craftedIdentityNodesNeverCrashTheGateway() async throws {
        let checks = Checks()
        try await Self.aside {
            let daemon = try ChildDaemon()
            defer { daemon.discard() }
            let hugeFile = "bafyaakqsbyfaqakvaacgcytdmqjaagaebimaqaqy77777777777777ybed77777777777777ae"
            let hugeBlockSizes = "bafyaarisbyfaqakvaacgcytdmqjaagaecihaucabkuaaiylcmnsbeaayaqfcgcacdd77777777777777aeqibaeaqcaibaeaqaasbaeaqcaibaeaqcaac"
            let longIdentity = try CID(codec: .raw, multihash: Multihash(code: .identity, digest: [UInt8](repeating: 0x61, count: 200))).string
            let requests: [(api: Bool, method: String, target: String, headers: [String: String])] = [
                (false, "GET", "/ipfs/\(hugeFile)?format=car&dag-scope=entity&entity-bytes=0:*", [:]),
                (false, "GET", "/ipfs/\(hugeFile)?format=car&dag-scope=entity&entity-bytes=-3:*", [:]),
                (false, "GET", "/ipfs/bafyaaeqkcaeaeeqbpamp77777777777774aq?format=car&dag-scope=entity&entity-bytes=0:*", [:]),
                (false, "GET", "/ipfs/\(hugeBlockSizes)", [:]),
                (false, "GET", "/ipfs/\(hugeBlockSizes)", ["Range": "bytes=-5"]),
                (true, "POST", "/api/v0/cat?arg=\(hugeBlockSizes)", [:]),
                (false, "GET", "/ipfs/\(longIdentity)?format=raw", [:]),
            ]
            for r in requests {
                let c = try RawConnection(port: r.api ? daemon.apiPort : daemon.gatewayPort)
                var head = "\(r.method) \(r.target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n"
                if r.api { head += "Authorization: Bearer \(daemon.token)\r\n" }
                for (k, v) in r.headers { head += "\(k): \(v)\r\n" }
                try c.send(head + "\r\n")
                _ = c.readUntilClosed(timeout: 20)
                guard daemon.isRunning else { throw RawConnection.Failure(description: "the daemon died on \(r.method) \(r.target)") }
            }
            let long = try daemon.request("GET", "/ipfs/\(longIdentity)?format=raw", api: false)
            checks.expect(long.status == 400, "an identity CID of 200 bytes: \(long.status) \(long.text)")
            let health = try daemon.request("GET", "/health", api: false)
            checks.expect(health.status == 200 && daemon.isRunning, "the daemon serves after the crafted requests")
        }
        checks.verify()
    }

    // MARK: 2. ranges

    /// Ranges cannot multiply a response: many overlapping ranges get the whole body once (200),
    /// overlapping and adjacent ones are merged, invalid headers are ignored, an end past the file
    /// is cut at its last byte.
    @Test func rangesNeverAmplify() async throws {
        try await DaemonHarness.run() { d in
            let size = 1 << 20
            let data = Self.randomBytes(size, seed: 12)
            let (body, type) = DaemonHarness.multipart([data])
            let cid = try #require(try await d.rpc("add?cid-version=1", body: body, headers: ["Content-Type": type]).jsonLines().last?["Hash"] as? String)
            let small = try #require(try await d.rpc("add?cid-version=1", body: DaemonHarness.multipart([Array(repeating: 0x61, count: 31)]).body,
                                               headers: ["Content-Type": type]).jsonLines().last?["Hash"] as? String)

            let thousand = "bytes=" + Array(repeating: "0-", count: 1000).joined(separator: ",")
            let many = try await d.request("/ipfs/\(cid)", headers: ["Range": thousand])
            #expect(many.status == 200 && many.body.count == size, "1000 full ranges: \(many.status), \(many.body.count) bytes")

            // 11 ranges over 100 bytes each overlap into far less than the file: served, merged.
            let overlapping = "bytes=" + (0..<11).map { "\($0 * 50)-\($0 * 50 + 99)" }.joined(separator: ",")
            let merged = try await d.request("/ipfs/\(cid)", headers: ["Range": overlapping])
            #expect(merged.status == 206 && merged.header("Content-Range") == "bytes 0-599/\(size)" && merged.body == Array(data[0...599]),
                    "overlapping ranges: \(merged.status) \(merged.header("Content-Range") ?? "-")")
            let adjacent = try await d.request("/ipfs/\(cid)", headers: ["Range": "bytes=100-199,200-299"])
            #expect(adjacent.status == 206 && adjacent.header("Content-Range") == "bytes 100-299/\(size)")

            // Few enough ranges, but more bytes in all than the file: the whole body once.
            let sum = "bytes=" + Array(repeating: "0-", count: 50).joined(separator: ",")
            let summed = try await d.request("/ipfs/\(cid)", headers: ["Range": sum])
            #expect(summed.status == 200 && summed.body.count == size, "50 full ranges: \(summed.status), \(summed.body.count) bytes")
            // Parts come in the header's order (RFC 9110 §14.6), a merged one where its first range was.
            let ordered = try await d.request("/ipfs/\(cid)", headers: ["Range": "bytes=5000-5009,0-9,5005-5019"])
            let firstPart = ordered.text.range(of: "Content-Range: bytes 5000-5019/").map { ordered.text.distance(from: ordered.text.startIndex, to: $0.lowerBound) }
            let secondPart = ordered.text.range(of: "Content-Range: bytes 0-9/").map { ordered.text.distance(from: ordered.text.startIndex, to: $0.lowerBound) }
            #expect(ordered.status == 206 && firstPart != nil && secondPart != nil && firstPart! < secondPart!, "part order: \(ordered.status)")

            // Past the cap of ranges in one header: the whole body.
            let capped = "bytes=" + (0..<101).map { "\($0 * 10)-\($0 * 10 + 1)" }.joined(separator: ",")
            let tooMany = try await d.request("/ipfs/\(cid)", headers: ["Range": capped])
            #expect(tooMany.status == 200 && tooMany.body.count == size)
            let two = try await d.request("/ipfs/\(cid)", headers: ["Range": "bytes=0-9,100-109"])
            #expect(two.status == 206 && two.header("Content-Type")?.hasPrefix("multipart/byteranges") == true && two.body.count < 1000)

            for invalid in ["bytes=abc", "bytes=5-2", "bytes=-", "bytes=1-2-3", "items=0-1"] {
                let r = try await d.request("/ipfs/\(small)", headers: ["Range": invalid])
                #expect(r.status == 200 && r.body.count == 31, "\(invalid) must be ignored: \(r.status)")
            }
            let end = try await d.request("/ipfs/\(small)", headers: ["Range": "bytes=20-999"])
            #expect(end.status == 206 && end.header("Content-Range") == "bytes 20-30/31" && end.body.count == 11)
            let unsatisfiable = try await d.request("/ipfs/\(small)", headers: ["Range": "bytes=31-"])
            #expect(unsatisfiable.status == 416 && unsatisfiable.header("Content-Range") == "bytes */31")
        }
    }

    // MARK: 3–4. broken request bodies

    /// A body cut short or badly framed is the client's error (400, saying so), on every route that
    /// reads one; only size gives 413; other transfer codings are refused before anything is read.
    @Test func brokenBodiesAreTheClientsError() async throws {
        try await DaemonHarness.run() { d in
            let token = d.token, port = d.apiPort
            @Sendable func send(_ raw: [UInt8], finish: Bool = true) async throws -> RawConnection.Response {
                try await Self.aside {
                    let c = try RawConnection(port: port)
                    try c.send(raw)
                    if finish { c.finishSending() }
                    return try c.response()
                }
            }
            func head(_ path: String, _ extra: String) -> String {
                "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Type: multipart/form-data; boundary=b\r\n\(extra)\r\n"
            }
            // dag/import gets the start of a real CAR, so what fails is the body, not the CAR.
            let block = try Block(data: Self.randomBytes(50_000, seed: 13), codec: .raw)
            var car = try CARWriter(roots: [block.cid], sink: ArraySink())
            try car.write(cid: block.cid, data: block.data)
            let carBytes = try car.finish().bytes
            func part(_ content: [UInt8]) -> [UInt8] {
                Array("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n".utf8) + content.prefix(3000)
            }

            for path in ["/api/v0/add", "/api/v0/dag/import", "/api/v0/block/put", "/api/v0/dag/put"] {
                let part = part(path.hasSuffix("import") ? carBytes : block.data)
                // Content-Length larger than what arrives, then the client's end of the stream.
                let truncated = try await send(Array(head(path, "Content-Length: 100000\r\n").utf8) + part)
                #expect(truncated.status == 400 && truncated.text.contains("truncated"), "\(path) truncated: \(truncated.status) \(truncated.text)")
                // A chunk size that is not hexadecimal.
                let badChunk = try await send(Array(head(path, "Transfer-Encoding: chunked\r\n").utf8) + Array("10\r\n".utf8) + part.prefix(16) + Array("\r\nzz\r\n".utf8))
                #expect(badChunk.status == 400 && badChunk.text.contains("malformed"), "\(path) bad chunk: \(badChunk.status) \(badChunk.text)")
                // A transfer coding the daemon does not decode: refused, never stored as if plain.
                // One response, then the connection closes (nothing more of the body is read).
                for (coding, status) in [("gzip, chunked", 415), ("xyz, chunked", 501), ("xyz", 400), ("chunked, gzip", 400)] {
                    let raw = Array(head(path, "Transfer-Encoding: \(coding)\r\n").utf8) + Array("5\r\nhello\r\n0\r\n\r\n".utf8)
                    let (closed, bytes) = try await Self.aside {
                        let c = try RawConnection(port: port)
                        try c.send(raw)
                        return c.readUntilClosed(timeout: 10)
                    }
                    let text = String(decoding: bytes, as: UTF8.self)
                    #expect(closed && text.hasPrefix("HTTP/1.1 \(status) ") && text.components(separatedBy: "HTTP/1.1 ").count == 2,
                            "\(path) Transfer-Encoding \(coding): \(text.prefix(300))")
                }
            }
            let verifiedPut = try await send(Array("PUT /ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 50\r\n\r\nhello".utf8))
            #expect(verifiedPut.status == 400 && verifiedPut.text.contains("truncated"), "PUT truncated: \(verifiedPut.status) \(verifiedPut.text)")
            // Size alone is 413.
            let big = try await send(Array(head("/api/v0/block/put", "Content-Length: \(4 << 20)\r\n").utf8) + part(block.data) + [UInt8](repeating: 1, count: 4 << 20))
            #expect(big.status == 413)

            // Nothing of the broken uploads was pinned.
            let pins = try await d.rpc("pin/ls?type=recursive").json()["Keys"] as? [String: Any]
            #expect(pins?.isEmpty ?? true, "pins after broken uploads: \(pins ?? [:])")
            #expect(try d.repository.verify().isClean)
        }
    }

    // MARK: 5. stalled clients

    /// Uploads that send a little and go quiet take at most the client's share of the import
    /// slots (more: 429), a wait for a slot ends with 503 and Retry-After, another client's add
    /// still goes through, and the quiet connections are closed after the body idle timeout,
    /// giving their slots back.
    @Test func stalledUploadsDoNotBlockOthers() async throws {
        var limits = ServerLimits()
        limits.uploads = SlotLimits(total: 4, perClient: 2, wait: .seconds(1))
        limits.bodyIdleTimeout = .seconds(5)
        try await DaemonHarness.run(limits: limits) { d in
            let token = d.token, port = d.apiPort
            let declared = 100 << 20
            // An upload that sends 300 KiB of a declared 100 MiB and goes quiet, returned once the
            // daemon has said (a progress line) that it is importing it: it holds a slot.
            @Sendable func stall(from source: String) throws -> RawConnection {
                let c = try RawConnection(port: port, source: source)
                try c.send(Array(Self.addRequest(token: token, data: [UInt8](repeating: 7, count: 300 << 10), query: "?progress=true",
                                                  declaredLength: declared).dropLast(20)))
                return c
            }
            @Sendable func add(from source: String, seed: UInt64) throws -> RawConnection.Response {
                let c = try RawConnection(port: port, source: source)
                try c.send(Self.addRequest(token: token, data: Self.randomBytes(1000, seed: seed)))
                return try c.response(timeout: 20)
            }
            let checks = Checks()
            try await Self.aside {
                let held = try (0..<2).map { _ in try stall(from: "127.0.0.2") }
                for c in held { checks.expect(c.read(until: "\"Bytes\"", timeout: 10), "a stalled upload was not started") }
                // The same client's third and fourth are refused at once.
                for _ in 0..<2 {
                    let r = try stall(from: "127.0.0.2").response(timeout: 10)
                    checks.expect(r.status == 429 && r.header("Retry-After") != nil, "over the client's share: \(r.status) \(r.text)")
                }
                // Another client is served.
                let ok = try add(from: "127.0.0.1", seed: 1)
                checks.expect(ok.status == 200 && (try? Self.addedCID(ok)) != nil, "another client's add: \(ok.status) \(ok.text)")
                // A second quiet client takes the last two slots: the next upload waits 1 s, then 503.
                let more = try (0..<2).map { _ in try stall(from: "127.0.0.3") }
                for c in more { checks.expect(c.read(until: "\"Bytes\"", timeout: 10), "a stalled upload was not started") }
                let busy = try add(from: "127.0.0.4", seed: 2)
                checks.expect(busy.status == 503 && busy.header("Retry-After") != nil, "all slots busy: \(busy.status) \(busy.text)")
                // The quiet uploads are closed after the idle timeout, and their slots are free again.
                for c in held + more { checks.expect(c.closedByServer(within: 10), "a stalled upload was not closed") }
                let after = try add(from: "127.0.0.4", seed: 3)
                checks.expect(after.status == 200, "after the stalled uploads were closed: \(after.status) \(after.text)")
            }
            checks.verify()
        }
    }

    /// Downloads whose clients stop reading hold download slots (their own pool), never the
    /// storage threads: past a client's share 429, a full house 503 after the wait, while requests
    /// that need storage but no download slot (a raw block, a put) are served; a slot comes back
    /// when its client goes.
    @Test func stalledDownloadsHoldOnlyTheirSlots() async throws {
        var limits = ServerLimits()
        limits.downloads = SlotLimits(total: 2, perClient: 1, wait: .seconds(1))
        try await DaemonHarness.run(limits: limits) { d in
            // Larger than what loopback socket buffers can absorb, so a stalled download stays stalled.
            let data = Self.randomBytes(32 << 20, seed: 15)
            let (body, type) = DaemonHarness.multipart([data])
            let cid = try #require(try await d.rpc("add?cid-version=1", body: body, headers: ["Content-Type": type]).jsonLines().last?["Hash"] as? String)
            let leaf = try #require(try await d.rpc("add?cid-version=1", body: DaemonHarness.multipart([Array("leaf".utf8)]).body,
                                              headers: ["Content-Type": type]).jsonLines().last?["Hash"] as? String)
            let gateway = d.gatewayPort
            @Sendable func download(from source: String) throws -> RawConnection {
                let c = try RawConnection(port: gateway, source: source, receiveBuffer: 4096)
                try c.send("GET /ipfs/\(cid) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                return c
            }
            let checks = Checks()
            let held = try await Self.aside { () throws -> [RawConnection] in
                let first = try download(from: "127.0.0.2")
                checks.expect(first.read(until: "HTTP/1.1 200", timeout: 10), "the first download did not start")
                let over = try download(from: "127.0.0.2").response(timeout: 10)
                checks.expect(over.status == 429 && over.header("Retry-After") != nil, "over the client's share: \(over.status)")
                let second = try download(from: "127.0.0.3")
                checks.expect(second.read(until: "HTTP/1.1 200", timeout: 10), "the second download did not start")
                let busy = try download(from: "127.0.0.4").response(timeout: 10)
                checks.expect(busy.status == 503 && busy.header("Retry-After") != nil, "all download slots busy: \(busy.status)")
                return [first, second]
            }
            checks.verify()
            // Storage is not held: a raw block and a put are served meanwhile.
            let raw = try await d.request("/ipfs/\(leaf)?format=raw")
            #expect(raw.status == 200 && raw.text == "leaf")
            let put = try await d.rpc("block/put", body: DaemonHarness.multipart([Array("more".utf8)]).body, headers: ["Content-Type": type])
            #expect(put.status == 200)
            // A client that goes gives its slot back.
            held[0].close(reset: true)
            let after = try await Self.aside { () throws -> RawConnection.Response in
                let deadline = Date().addingTimeInterval(10)
                while true {
                    let r = try download(from: "127.0.0.4").response(timeout: 30)
                    if r.status != 503 || Date() > deadline { return r }
                }
            }
            #expect(after.status == 200 && after.body.count == data.count, "after a stalled client left: \(after.status), \(after.body.count) bytes")
            withExtendedLifetime(held) {}
        }
    }

    /// A client that trickles its headers is closed after the header timeout; one that sends a
    /// small body too slowly gets 408; one that stops reading a download is closed after the
    /// send timeout (the storage thread producing it is freed); a caller of the API listener
    /// pausing as long is not (`apiSendTimeout`), but one without a token is.
    @Test func slowClientsAreTimedOut() async throws {
        var limits = ServerLimits()
        limits.headerTimeout = .seconds(1)
        limits.requestTimeout = .seconds(1)
        limits.sendTimeout = .seconds(1)
        try await DaemonHarness.run(limits: limits) { d in
            let data = Self.randomBytes(8 << 20, seed: 14)
            let (body, type) = DaemonHarness.multipart([data])
            let cid = try #require(try await d.rpc("add?cid-version=1", body: body, headers: ["Content-Type": type]).jsonLines().last?["Hash"] as? String)
            let token = d.token, api = d.apiPort, gateway = d.gatewayPort
            let checks = Checks()
            try await Self.aside {
                let trickle = try RawConnection(port: gateway)
                try trickle.send("GET /ipfs/\(cid) HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                checks.expect(trickle.closedByServer(within: 5), "unfinished headers were not timed out")

                // A small body trickled a byte at a time, each within the idle timeout, past the whole-request one.
                let slow = try RawConnection(port: api)
                try slow.send("POST /api/v0/block/put HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100\r\n\r\n--b\r\n")
                for _ in 0..<8 {
                    usleep(300_000)
                    try? slow.send("x")
                }
                let r = try slow.response(timeout: 10)
                checks.expect(r.status == 408, "a body slower than http.requestTimeout: \(r.status) \(r.text)")

                // A response sent before the request's body ended: once the body is in, the connection
                // waits for the next request's headers, and is closed when they do not come.
                let early = try RawConnection(port: gateway)
                try early.send("GET /ipfs/\(cid)?format=raw HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")
                let answered = early.read(until: "\r\n\r\n", timeout: 10)
                try early.send("hello")
                checks.expect(answered && early.closedByServer(within: 5), "a connection whose response came before its body stayed open")

                let reader = try RawConnection(port: gateway, receiveBuffer: 4096)
                try reader.send("GET /ipfs/\(cid) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                let started = reader.read(until: "HTTP/1.1 200", timeout: 10)
                sleep(4)  // reads nothing for longer than the send timeout
                let (closed, rest) = reader.readUntilClosed(timeout: 20)
                checks.expect(started && closed && rest.count < data.count,
                              "a client that stopped reading was not cut off: started \(started), closed \(closed), \(rest.count) bytes")

                // The API listener has its own, longer send timeout (a pager over `qstore cat`).
                let pager = try RawConnection(port: api, receiveBuffer: 4096)
                try pager.send("POST /api/v0/cat?arg=\(cid) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
                // (Counting what came with the status line too: under load the first read holds
                // more than the head, which the count once left out.)
                let first = pager.arrived(until: "HTTP/1.1 200", timeout: 10)
                sleep(4)
                let (ended, tail) = pager.readUntilClosed(timeout: 30)
                let all = (first ?? []).count + tail.count
                checks.expect(first != nil && ended && all > data.count,
                              "an API reader paused past http.sendTimeout was cut off: started \(first != nil), ended \(ended), \(all) bytes")

                // Not for anyone without a token: public replies there keep the short timeout.
                let anonymous = try RawConnection(port: api, receiveBuffer: 4096)
                // 40 replies of ~200 KB: more than the kernel's socket buffers take (up to 4 MiB).
                try anonymous.send(String(repeating: "GET /q/v1/openapi.yaml HTTP/1.1\r\nHost: x\r\n\r\n", count: 40))
                let replied = anonymous.read(until: "HTTP/1.1 200", timeout: 10)
                sleep(4)
                let (cut, got) = anonymous.readUntilClosed(timeout: 30)
                let replies = String(decoding: got, as: UTF8.self).components(separatedBy: "HTTP/1.1 200").count - 1
                checks.expect(replied && cut && replies + 1 < 40,
                              "an anonymous API reader paused past http.sendTimeout was not cut off: \(replies + 1) replies, \(got.count) bytes")
            }
            checks.verify()
            // The daemon still serves.
            let again = try await d.request("/ipfs/\(cid)", headers: ["Range": "bytes=0-9"])
            #expect(again.status == 206 && again.body == Array(data[0...9]))
        }
    }

    // MARK: 6 and the smaller ones

    /// Errors that say what is wrong, methods the API lacks, the auth scheme in any case, and
    /// names a TAR cannot carry.
    @Test func clearAnswersToOddRequests() async throws {
        try await DaemonHarness.run() { d in
            let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
            let meta = Dictionary(uniqueKeysWithValues: (0..<1001).map { ("k\($0)", "v") })
            let tooMany = try await d.request("/pins", method: "POST", api: true, headers: ["Content-Type": "application/json"],
                                              body: Array(try JSONSerialization.data(withJSONObject: ["cid": cid, "meta": meta])))
            #expect(tooMany.status == 400 && tooMany.text.contains("1001 keys") && tooMany.text.contains("at most 1000"), "\(tooMany.text)")
            let nul = try await d.request("/pins", method: "POST", api: true, headers: ["Content-Type": "application/json"],
                                          body: Array("{\"cid\":\"\(cid)\",\"name\":\"a\\u0000b\"}".utf8))
            #expect(nul.status == 400 && nul.text.contains("control character"), "\(nul.text)")
            let long = try await d.request("/pins", method: "POST", api: true, headers: ["Content-Type": "application/json"],
                                           body: Array(try JSONSerialization.data(withJSONObject: ["cid": cid, "name": String(repeating: "n", count: 256)])))
            #expect(long.status == 400 && long.text.contains("at most 255"), "\(long.text)")
            for method in ["PUT", "PATCH"] {
                for path in ["/pins", "/pins/123"] {
                    let r = try await d.request(path, method: method, api: true, headers: ["Content-Type": "application/json"], body: Array("{}".utf8))
                    #expect(r.status == 405 && r.header("Allow") != nil && r.text.contains("METHOD_NOT_ALLOWED"), "\(method) \(path): \(r.status) \(r.text)")
                }
            }

            for scheme in ["bearer", "BEARER", "Bearer "] {
                let r = try await d.request("/api/v0/version", method: "POST", api: true, headers: ["Authorization": "\(scheme) \(d.token)"], authorized: false)
                #expect(r.status == 200, "scheme \"\(scheme)\": \(r.status)")
            }
            let wrong = try await d.request("/api/v0/version", method: "POST", api: true, headers: ["Authorization": "Basic \(d.token)"], authorized: false)
            #expect(wrong.status == 401)

            let (body, type) = DaemonHarness.multipart([Array("x".utf8)])
            let named = Array(String(decoding: body, as: UTF8.self).replacingOccurrences(of: "filename=\"f0\"", with: "filename=\"a%00b\"").utf8)
            let refused = try await d.rpc("add", body: named, headers: ["Content-Type": type])
            #expect(refused.status == 400 && refused.text.contains("NUL"), "a name with NUL: \(refused.status) \(refused.text)")
            let pins = try await d.rpc("pin/ls?type=recursive").json()["Keys"] as? [String: Any]
            #expect(pins?.isEmpty ?? true)

            // Digests too short to identify anything, and identity CIDs past 128 bytes, are refused.
            let shortDigest = try await d.rpc("block/put?mhlen=1", body: body, headers: ["Content-Type": type])
            #expect(shortDigest.status == 400 && shortDigest.text.contains("too short"), "mhlen=1: \(shortDigest.status) \(shortDigest.text)")
            let bigInline = try await d.rpc("add?inline=true&inline-limit=999999", body: body, headers: ["Content-Type": type])
            #expect(bigInline.status == 400, "inline-limit 999999: \(bigInline.status) \(bigInline.text)")
        }
    }
}
