import CAR
import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import IPLD
import KuboAPI
import Multiformats
import Node
import Pinning
import Storage
import UnixFS

/// Kubo's RPC API under `/api/v0` (the subset Qstore serves): same paths, query
/// parameters, multipart bodies, response JSON and error shape as Kubo, so
/// existing IPFS RPC clients work unchanged. Every command is POST, as in Kubo.
struct KuboRPC: Sendable {
    let node: Node
    let io: StorageThreads
    let limits: ServerLimits
    /// Uploads being imported at once (each on a thread of its own); more wait for a slot.
    let uploads: ClientSlots
    /// Where `cat`, `get` and `dag/export` are produced.
    let downloads: Downloads

    init(node: Node, io: StorageThreads, downloads: Downloads, limits: ServerLimits) {
        self.node = node
        self.io = io
        self.downloads = downloads
        self.limits = limits
        uploads = ClientSlots(limits.uploads)
    }

    func register(on router: Router<ServerContext>) {
        let api = router.group("/api/v0")
        api.post("version") { request, _ in rpc { try self.version(request) } }
        api.post("id") { _, _ in rpc { self.id() } }
        api.post("block/put") { request, _ in await rpcAsync { try await self.blockPut(request) } }
        api.post("block/get") { request, _ in await rpcAsync { try await self.blockGet(request) } }
        api.post("block/stat") { request, _ in await rpcAsync { try await self.blockStat(request) } }
        api.post("block/rm") { request, _ in await rpcAsync { try await self.blockRemove(request) } }
        api.post("dag/put") { request, _ in await rpcAsync { try await self.dagPut(request) } }
        api.post("dag/get") { request, _ in await rpcAsync { try await self.dagGet(request) } }
        api.post("dag/export") { request, _ in await rpcAsync { try await self.dagExport(request) } }
        api.post("dag/import") { request, context in await rpcAsync { try await self.dagImport(request, context) } }
        api.post("add") { request, context in await rpcAsync { try await self.add(request, context) } }
        api.post("cat") { request, _ in await rpcAsync { try await self.cat(request) } }
        api.post("ls") { request, _ in await rpcAsync { try await self.ls(request) } }
        api.post("get") { request, _ in await rpcAsync { try await self.get(request) } }
        api.post("repo/stat") { request, _ in await rpcAsync { try await self.repoStat(request) } }
        api.post("repo/verify") { request, _ in await rpcAsync { try await self.repoVerify(request) } }
        registerPins(on: api)
        registerNames(on: api)
    }

    // MARK: commands

    func version(_ request: Request) throws -> Response {
        JSONOutput.reply(VersionInfo(version: Node.version, commit: "", repo: String(Repository.currentVersion),
                                     system: "\(Self.architecture)/linux", golang: "swift6", program: "qstore"))
    }

    func id() -> Response {
        JSONOutput.reply(IDInfo(id: node.identity.peerID, publicKey: Data(node.identity.publicKeyProtobuf).base64EncodedString(),
                                agentVersion: "qstore/\(Node.version)"))
    }

    func blockPut(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        var codec = try q.get("cid-codec").map { try Self.multicodec($0) } ?? .raw
        var cidVersion = 1
        if q.get("cid-codec") == nil, let format = q.get("format") {
            // Kubo's deprecated `format`: v0 means a dag-pb CIDv0; other values name a codec.
            if format == "v0" || format == "protobuf" { codec = .dagPB; cidVersion = 0 } else { codec = try Self.multicodec(format == "cbor" ? "dag-cbor" : format) }
        }
        let hash = try Self.multicodec(q.get("mhtype") ?? "sha2-256")
        let mhlen = Int(q.get("mhlen") ?? "-1") ?? -1
        let pin = Self.flag(q.get("pin"))
        let owner = RequestCaller.owner
        let files = try await multipartFiles(request, limit: limits.maximumBlockRequest)
        let chosenCodec = codec
        // Held from put to pin, so a collection in between cannot take the blocks. The request's
        // blocks are one commit (one sync, not one per file), stored all or none.
        let out = try await node.withLease { () async throws -> ByteBuffer in
            var out = ByteBuffer()
            let blocks = try await node.putBlocks(files, codec: chosenCodec, hash: hash, hashLength: mhlen < 0 ? nil : mhlen)
            for (block, data) in zip(blocks, files) {
                if pin {
                    var request = Pinner.Request(cid: block.cid)
                    request.owner = owner
                    let r = request
                    _ = try await io.run { try self.node.pin(r) }
                }
                var cid = block.cid
                if cidVersion == 0 { cid = try block.cid.toV0() }
                var line = JSONOutput.line(BlockStat(key: cid.string, size: data.count))
                out.writeBuffer(&line)
            }
            return out
        }
        return Self.jsonStream(out)
    }

    func blockGet(_ request: Request) async throws -> Response {
        let cid = try Self.argument(request).cid
        let data = try await io.run { try self.node.block(cid) }
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.xStreamOutput] = "1"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func blockStat(_ request: Request) async throws -> Response {
        let cid = try Self.argument(request).cid
        let size = try await io.run { try self.node.blockSize(cid) }
        return JSONOutput.reply(BlockStat(key: cid.string, size: size))
    }

    func blockRemove(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let force = Self.flag(q.get("force")), quiet = Self.flag(q.get("quiet"))
        let cids = try q.getAll("arg").map { try CID($0) }
        guard !cids.isEmpty else { throw RequestError(.badRequest, "argument \"cid\" is required") }
        var out = ByteBuffer()
        for cid in cids {
            var error = ""
            do { try await io.run { try self.node.removeBlock(cid) } } catch let e as NodeError {
                if !force { error = "\(e)" }
            } catch PinningError.pinned(_, let how) {
                error = "pinned: \(how)"
            }
            if quiet && error.isEmpty { continue }
            var line = JSONOutput.line(BlockRemoval(hash: cid.string, error: error))
            out.writeBuffer(&line)
        }
        return Self.jsonStream(out)
    }

    func dagPut(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let store = try Self.multicodec(q.get("store-codec") ?? "dag-cbor")
        let input = try Self.multicodec(q.get("input-codec") ?? "dag-json")
        let hash = try Self.multicodec(q.get("hash") ?? "sha2-256")
        // Kubo's default: not pinned. With `pin=true` a DAG whose children are missing gets a queued pin.
        let pin = Self.flag(q.get("pin"))
        let files = try await multipartFiles(request, limit: limits.maximumBlockRequest)
        let out = try await node.withLease { () async throws -> ByteBuffer in
            var out = ByteBuffer()
            for data in files {
                let cid = try await node.putDAG(data, input: input, store: store, hash: hash)
                if pin {
                    let owner = RequestCaller.owner
                    _ = try await io.run { try self.node.pinPut(cid, owner: owner) }
                }
                var line = JSONOutput.line(DAGPutResult(cid: cid.string))
                out.writeBuffer(&line)
            }
            return out
        }
        return Self.jsonStream(out)
    }

    func dagGet(_ request: Request) async throws -> Response {
        let (cid, path) = try Self.argument(request)
        let output = try Self.multicodec(request.uri.queryParameters.get("output-codec") ?? "dag-json")
        let bytes = try await io.run { try self.node.getDAG(cid, path: path, output: output) }
        var headers = HTTPFields()
        headers[.contentType] = output == .dagJSON ? "application/json" : "application/octet-stream"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func dagExport(_ request: Request) async throws -> Response {
        let cid = try Self.argument(request).cid
        // Fail before the 200 when the root is missing; a block missing deeper ends the stream early.
        _ = try await io.run { try self.node.blockSize(cid) }
        var headers = HTTPFields()
        headers[.contentType] = "application/vnd.ipld.car"
        headers[.xStreamOutput] = "1"
        return Response(status: .ok, headers: headers, body: try await Self.stream(downloads) { channel in
            var sink = try self.node.exportDAG(cid, to: ChannelSink(channel))
            try sink.flush()
        })
    }

    func dagImport(_ request: Request, _ context: ServerContext) async throws -> Response {
        let q = request.uri.queryParameters
        let stats = Self.flag(q.get("stats"))
        let pinRoots = q.get("pin-roots").map { Self.flag($0) } ?? true
        let owner = RequestCaller.owner
        guard let contentType = request.headers[.contentType], let boundary = MultipartReader<BodyPipe>.boundary(of: contentType) else {
            throw RequestError(.badRequest, "expected a multipart/form-data body with CAR files")
        }
        return try await uploadReply(request, context, boundary: boundary) { reader, channel in
            // One lease over every part and the pins: a root's blocks may come in a later part.
            let (imports, pinErrors) = try self.node.withLease { () throws -> ([ImportSummary], [CID: String]) in
                var all: [ImportSummary] = []
                while try reader.nextPart() != nil { all.append(try self.node.importCAR(reader)) }
                return (all, pinRoots ? try self.node.pinRoots(all.flatMap(\.roots), owner: owner) : [:])
            }
            // Kubo reports each root once, after every CAR is read, only when pinning roots.
            var reported = Set<CID>()
            for r in imports.flatMap(\.roots) where pinRoots && reported.insert(r).inserted {
                try channel.sendLine(DAGImportEvent(root: .init(cid: r.string, pinErrorMsg: pinErrors[r] ?? "")))
            }
            if stats {
                let blocks: Int = imports.reduce(0) { $0 + $1.blocks }
                let bytes: UInt64 = imports.reduce(0) { $0 + $1.bytes }
                try channel.sendLine(DAGImportEvent(stats: .init(blockCount: blocks, blockBytesCount: bytes)))
            }
        }
    }

    /// Kubo's `add`: each file part becomes a UnixFS file, trees come from the part names. The
    /// reply streams Kubo's newline-delimited JSON: with `progress=true` a `{"Name","Bytes"}` line
    /// every 256 KiB of each file and at its end, then one `{"Name","Hash","Size"}` line per file
    /// as it is done, then the directories (the root last).
    func add(_ request: Request, _ context: ServerContext) async throws -> Response {
        let q = request.uri.queryParameters
        var options = ImportOptions()
        if let v = q.get("cid-version") {
            guard let n = Int(v), n == 0 || n == 1 else { throw RequestError(.badRequest, "cid-version must be 0 or 1") }
            options.cidVersion = n
        }
        if let r = q.get("raw-leaves") { options.rawLeaves = Self.flag(r) }
        if let h = q.get("hash") {
            options.hash = try Self.multicodec(h)
            if options.hash != .sha2_256 { options.cidVersion = 1 }
        }
        do { try options.chunker(q.get("chunker").map { String($0) }) } catch { throw RequestError(.badRequest, "\(error)") }
        options.onlyHash = Self.flag(q.get("only-hash"))
        options.trickle = Self.flag(q.get("trickle"))
        if Self.flag(q.get("inline")) {
            guard let limit = Int(q.get("inline-limit") ?? "32"), (0...Block.maximumIdentityLength).contains(limit) else {
                throw RequestError(.badRequest, "inline-limit must be an integer from 0 to \(Block.maximumIdentityLength)")
            }
            options.inlineLimit = limit
        }
        guard let contentType = request.headers[.contentType], let boundary = MultipartReader<BodyPipe>.boundary(of: contentType) else {
            throw RequestError(.badRequest, "expected a multipart/form-data body with files")
        }
        var add = AddSession.Options()
        add.importing = options
        add.wrap = Self.flag(q.get("wrap-with-directory"))
        if !options.onlyHash && (q.get("pin").map { Self.flag($0) } ?? true) {
            let name = q.get("pin-name").map { String($0) }
            let owner = RequestCaller.owner
            add.pin = {
                var r = Pinner.Request(cid: $0, name: name)
                r.owner = owner
                return r
            }
        }
        let progress: UInt64? = Self.flag(q.get("progress")) ? 256 << 10 : nil
        let settings = add
        return try await uploadReply(request, context, boundary: boundary) { reader, channel in
            let session = try self.node.add(settings) { event in
                switch event {
                case .progress(let name, let bytes): try channel.sendLine(AddedLine(name: name, bytes: bytes == 0 ? nil : bytes))
                case .added(let name, let cid, let size): try channel.sendLine(AddedLine(name: name, hash: cid.string, size: String(size)))
                }
            }
            do {
                while let headers = try reader.nextPart() {
                    let name = Self.filename(headers["content-disposition"]) ?? "file"
                    if headers["content-type"]?.hasPrefix("application/x-directory") == true {
                        try session.directory(name)
                    } else if headers["content-type"]?.hasPrefix("application/symlink") == true {
                        try session.symlink(name, target: String(decoding: try reader.readBody(limit: 4096), as: UTF8.self))
                    } else {
                        try session.file(name, reader, progressEvery: progress)
                    }
                }
                try session.finish()
            } catch {
                session.cancel()
                throw error
            }
        }
    }

    /// A streamed JSON reply to a multipart upload that `body` imports part by part as it
    /// arrives (`BodyPipe`, at most `maximumImportRequest` bytes), on a thread of its own taken from
    /// `uploads`: a slow client never holds a storage thread, and the bytes are read once.
    func uploadReply(_ request: Request, _ context: ServerContext, boundary: String,
                     _ body: @escaping @Sendable (MultipartReader<BodyPipe>, ChunkChannel) throws -> Void) async throws -> Response {
        let pipe = BodyPipe()
        let maximum = limits.maximumImportRequest
        let feeder = Task { await pipe.feed(request.body, maximum: maximum, stopReading: { context.stopReading() }) }
        return try await Self.streamedReply(.own(uploads, client: context.client), for: request, headers: Self.jsonStreamHeaders, finally: { pipe.close() }, feeder: feeder) { channel in
            try body(MultipartReader(pipe, boundary: boundary), channel)
        }
    }

    /// Kubo's `cat`: the bytes of a UnixFS file, optionally a range (`offset`, `length`), streamed.
    func cat(_ request: Request) async throws -> Response {
        let (cid, path) = try Self.argument(request)
        let q = request.uri.queryParameters
        let offset = UInt64(q.get("offset") ?? "0") ?? 0
        let length = q.get("length").flatMap { UInt64($0) }
        // Check the file is readable before the 200.
        _ = try await io.run { try self.node.fileSize(path.isEmpty ? cid : try self.node.resolve(cid, path: path).terminal) }
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.xStreamOutput] = "1"
        return Response(status: .ok, headers: headers, body: try await Self.stream(downloads) { channel in
            try self.node.cat(cid, path: path, offset: offset, length: length) { try channel.send($0) }
        })
    }

    /// Kubo's `get`: the tree at `arg` as a tar stream (the top entry named after the last path segment or the CID).
    func get(_ request: Request) async throws -> Response {
        let (cid, path) = try Self.argument(request)
        let name = path.last ?? cid.string
        // What would cut the archive short (an unsafe name, a missing node) gets its status first.
        try await io.run { try self.node.checkTar(cid, path: path, name: name) }
        var headers = HTTPFields()
        headers[.contentType] = "application/x-tar"
        headers[.xStreamOutput] = "1"
        return Response(status: .ok, headers: headers, body: try await Self.stream(downloads) { channel in
            try self.node.tar(cid, path: path, name: name) { try channel.send($0) }
        })
    }

    /// Kubo's `ls`: `{"Objects": [{"Hash", "Links": [{"Name","Hash","Size","Type","Target"}]}]}` per argument.
    func ls(_ request: Request) async throws -> Response {
        let args = request.uri.queryParameters.getAll("arg")
        guard !args.isEmpty else { throw RequestError(.badRequest, "argument \"ipfs-path\" is required") }
        var objects: [LsResult.Object] = []
        for arg in args {
            let (cid, path) = try Self.path(arg)
            let entries = try await io.run { try self.node.list(cid, path: path) }
            objects.append(LsResult.Object(hash: arg, links: entries.map {
                LsResult.Link($0)
            }))
        }
        return JSONOutput.reply(LsResult(objects: objects))
    }

    /// The `filename` of a multipart part's Content-Disposition (percent-decoded, as Kubo's clients encode it).
    static func filename(_ disposition: String?) -> String? {
        guard let d = disposition, let r = d.range(of: "filename=") else { return nil }
        var v = String(d[r.upperBound...])
        if v.hasPrefix("\"") { v = String(v.dropFirst().prefix { $0 != "\"" }) } else { v = String(v.prefix { $0 != ";" }) }
        return v.decodingPercentEscapes() ?? v
    }

    func repoStat(_ request: Request) async throws -> Response {
        let s = try await io.run { try self.node.repositoryStat() }
        return JSONOutput.reply(RepoStat(s, path: node.repositoryPath))
    }

    /// Kubo's `repo verify`, plus the reference counts and pin indexes; `repair=true` (Qstore)
    /// rewrites counts and indexes that differ.
    func repoVerify(_ request: Request) async throws -> Response {
        let repair = Self.flag(request.uri.queryParameters.get("repair"))
        let report = try await io.run { try self.node.verifyRepository(repair: repair) }
        var out = ByteBuffer()
        for l in RepoVerifyLine.lines(report) {
            var line = JSONOutput.line(l)
            out.writeBuffer(&line)
        }
        return Self.jsonStream(out, status: report.isClean ? .ok : .internalServerError)
    }

    // MARK: helpers

    /// The file parts of a multipart body, each at most `limit` bytes.
    func multipartFiles(_ request: Request, limit: Int) async throws -> [[UInt8]] {
        guard let contentType = request.headers[.contentType], let boundary = MultipartReader<BytesSource>.boundary(of: contentType) else {
            throw RequestError(.badRequest, "expected a multipart/form-data body")
        }
        let body: ByteBuffer
        do { body = try await RequestBodies.collect(request, limit: limit + 64 << 10, timeout: limits.requestTimeout) } catch is BodyTooLarge {
            throw BodyTooLarge(limit: limit)
        }
        let reader = MultipartReader(BytesSource(Array(buffer: body)), boundary: boundary, readSize: body.readableBytes + 1)
        var files: [[UInt8]] = []
        while try reader.nextPart() != nil { files.append(try reader.readBody(limit: limit)) }
        guard !files.isEmpty else { throw RequestError(.badRequest, "the multipart body holds no file") }
        return files
    }

    /// The `arg` parameter as a CID and a path (`/ipfs/` prefix allowed).
    static func argument(_ request: Request) throws -> (cid: CID, path: [String]) {
        guard let arg = request.uri.queryParameters.get("arg") else { throw RequestError(.badRequest, "argument \"arg\" is required") }
        return try path(arg)
    }

    /// `<cid>[/path]` (an `/ipfs/` prefix allowed) as a CID and path segments.
    static func path(_ arg: String) throws -> (cid: CID, path: [String]) {
        var parts = arg.split(separator: "/").map(String.init)
        if parts.first == "ipfs" { parts.removeFirst() }
        guard let first = parts.first else { throw RequestError(.badRequest, "argument \"arg\" is empty") }
        return (try CID(first), Array(parts.dropFirst()))
    }

    static func multicodec(_ name: String) throws -> Multicodec {
        if name.hasPrefix("0x"), let v = UInt64(name.dropFirst(2), radix: 16) { return Multicodec(v) }
        guard let m = Multicodec(name: name) else { throw RequestError(.badRequest, "unknown codec or hash function \"\(name)\"") }
        return m
    }

    /// A boolean query parameter as Kubo reads it: present without a value, `true` or `1`.
    static func flag(_ value: Substring?) -> Bool { value.map { $0 == "true" || $0 == "1" || $0.isEmpty } ?? false }
    static func flag(_ value: String?) -> Bool { flag(value.map { Substring($0) }) }

    static func jsonStream(_ body: ByteBuffer, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: jsonStreamHeaders, body: .init(byteBuffer: body))
    }

    /// The headers of Kubo's newline-delimited JSON replies.
    static var jsonStreamHeaders: HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.xChunkedOutput] = "1"
        return headers
    }

    /// What a streamed body does when its producer fails after the status was sent.
    enum StreamFailure {
        /// Ends the body early (the client sees a truncated response).
        case abort
        /// Writes Kubo's error object as a last JSON line.
        case errorLine
        /// Writes that line and ends the body with Kubo's `X-Stream-Error` trailer (only for
        /// clients that said `TE: trailers`: some, FoundationNetworking's among them, crash on one).
        case errorLineAndTrailer
        /// Writes the error's message as the last bytes (a gateway TAR: the archive is visibly
        /// broken and its tail says why, as boxo does).
        case appendMessage
    }

    /// A response body produced by `produce` on a download thread through a bounded channel,
    /// started when the body is written. The request's client takes one of the download slots
    /// first (429/503 before any status is sent when it cannot); the slot is given back when the
    /// producer is done or the body is dropped unwritten.
    static func stream(_ downloads: Downloads, onFailure: StreamFailure = .abort,
                       _ produce: @escaping @Sendable (ChunkChannel) throws -> Void) async throws -> ResponseBody {
        let client = RequestClient.address
        try await downloads.slots.acquire(client: client)
        let lease = SlotLease(downloads.slots, client: client)
        return .streamed { writer in
            defer { lease.release() }
            let (channel, producer) = start(.storage(downloads.threads), produce)
            try await drain(channel, producer, first: nil, into: &writer, onFailure: onFailure)
        }
    }

    /// Where a streamed reply's producer runs: a storage thread, or a thread of its own (for a
    /// producer that waits on the client, e.g. reading an upload as it arrives).
    enum ProducerThread: Sendable {
        case storage(StorageThreads)
        /// A new thread, once one of `slots` is free for `client`.
        case own(ClientSlots, client: String)
    }

    /// Kubo's streamed JSON RPC reply: `produce` starts at once and the status waits for its
    /// first chunk, so an error before any output gets its own status and error body; after that
    /// the reply is 200 and a later error arrives as Kubo's error object on a last line and, if the
    /// request accepts trailers, as the `X-Stream-Error` trailer (as Kubo sends both). `finally`
    /// runs when the producer is done; the reply ends only once `feeder` (the task reading the
    /// request body, if any) has.
    static func streamedReply(_ thread: ProducerThread, for request: Request, headers: HTTPFields, finally: @escaping @Sendable () -> Void = {},
                              feeder: Task<Void, Never>? = nil, _ produce: @escaping @Sendable (ChunkChannel) throws -> Void) async throws -> Response {
        let (channel, producer) = start(thread, finally: finally, produce)
        let first: ByteBuffer?
        do { first = try await channel.next() } catch {
            _ = await producer.result
            guard let feeder else { throw error }
            // The error goes out at once (a client whose upload stalls, or that is refused a slot,
            // reads it now); the reply ends once the feeder has read and dropped the rest of the
            // body, or the connection closed (body idle timeout): only one may read the body.
            var response = ErrorMapping.rpcResponse(error)
            let bytes = ErrorMapping.rpcBody(error)
            response.body = .streamed(contentLength: bytes.readableBytes) { writer in
                try await writer.write(bytes)
                _ = await feeder.result
                try await writer.finish(nil)
            }
            return response
        }
        var headers = headers
        let trailers = request.headers[values: .te].contains { $0.lowercased().contains("trailers") }
        if trailers { headers[.trailer] = "X-Stream-Error" }
        let release = ReleaseOnDrop(channel)
        return Response(status: .ok, headers: headers, body: .streamed { writer in
            _ = release
            try await drain(channel, producer, first: first, into: &writer, onFailure: trailers ? .errorLineAndTrailer : .errorLine, feeder: feeder)
        })
    }

    private static func start(_ thread: ProducerThread, finally: @escaping @Sendable () -> Void = {},
                              _ produce: @escaping @Sendable (ChunkChannel) throws -> Void) -> (ChunkChannel, Task<Void, Never>) {
        let channel = ChunkChannel()
        let producer = Task {
            do {
                switch thread {
                case .storage(let io): try await io.run { try produce(channel) }
                case .own(let slots, let client):
                    try await slots.acquire(client: client)
                    defer { slots.release(client: client) }
                    let context = AuditContext.current
                    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                        Thread.detachNewThread { c.resume(with: Result { try AuditContext.$current.withValue(context) { try produce(channel) } }) }
                    }
                }
                channel.finish()
            } catch {
                channel.finish(error)
            }
            finally()
        }
        return (channel, producer)
    }

    private static func drain(_ channel: ChunkChannel, _ producer: Task<Void, Never>, first: ByteBuffer?,
                              into writer: inout any ResponseBodyWriter, onFailure: StreamFailure, feeder: Task<Void, Never>? = nil) async throws {
        do {
            if let first { try await writer.write(first) }
            var failure: (any Error)?
            while true {
                let chunk: ByteBuffer?
                do { chunk = try await channel.next() } catch {
                    failure = error
                    break
                }
                guard let chunk else { break }
                try await writer.write(chunk)
            }
            _ = await feeder?.result
            if let failure {
                guard onFailure != .abort else { throw failure }
                let m = ErrorMapping.map(failure)
                if onFailure == .appendMessage {
                    try await writer.write(ByteBuffer(string: m.message))
                } else {
                    try await writer.write(JSONOutput.line(ErrorReply(message: m.message, code: m.code)))
                }
                var trailers = HTTPFields()
                if onFailure == .errorLineAndTrailer { trailers[.xStreamError] = m.message }
                try await writer.finish(trailers.isEmpty ? nil : trailers)
            } else {
                try await writer.finish(nil)
            }
        } catch {
            channel.cancel()
            _ = await producer.result
            _ = await feeder?.result
            throw error
        }
        _ = await producer.result
    }

    static var architecture: String {
        #if arch(x86_64)
        "amd64"
        #elseif arch(arm64)
        "arm64"
        #else
        "unknown"
        #endif
    }
}

/// Cancels a channel when the last reference to it goes: a streamed reply whose body is never
/// written (the client left before the head was sent) still releases the producer waiting on it.
final class ReleaseOnDrop: Sendable {
    let channel: ChunkChannel
    init(_ channel: ChunkChannel) { self.channel = channel }
    deinit { channel.cancel() }
}

/// Kubo answers RPC paths with 405 for any method but POST.
struct PostOnlyMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/api/v0/") && request.method != .post {
            var r = ErrorMapping.rpcResponse(RequestError(.methodNotAllowed, "RPC commands take POST, not \(request.method)"))
            r.headers[.allow] = "POST"
            return r
        }
        return try await next(request, context)
    }
}

/// Runs a synchronous handler, turning errors into Kubo's error response.
func rpc(_ body: () throws -> Response) -> Response {
    do { return try body() } catch { return ErrorMapping.rpcResponse(error) }
}

/// Runs an async handler, turning errors into Kubo's error response.
func rpcAsync(_ body: () async throws -> Response) async -> Response {
    do { return try await body() } catch { return ErrorMapping.rpcResponse(error) }
}
