import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import HummingbirdCore
import IPLD
import Multiformats
import Node
import Signing
import Storage

/// The read-only gateway: `GET`/`HEAD /ipfs/{cid}[/path]` per the trustless gateway
/// spec (raw blocks and CARs, IPIP-402 `dag-scope`, IPIP-412 order/dups, IPIP-523
/// `format` precedence, IPIP-524 no codec conversion). Deserialised UnixFS
/// responses (files, directory listings, ranges) come with the UnixFS layer.
struct Gateway: Sendable {
    let node: Node
    let io: StorageThreads
    /// Where files, CARs and TARs are produced (a pool of the gateway's own).
    let downloads: Downloads
    let limits: ServerLimits

    static let immutableCache = "public, max-age=29030400, immutable"
    /// A module name's docs: the name may move to a new release at any time.
    static let moduleCache = "public, max-age=60"

    func register(on router: Router<ServerContext>) {
        for namespace in ["/ipfs/**", "/ipns/**", "/modules/**"] {
            router.get(RouterPath(namespace)) { request, _ in await self.handle(request, head: false) }
            router.head(RouterPath(namespace)) { request, _ in await self.handle(request, head: true) }
            router.on(RouterPath(namespace), method: .options) { _, _ in Response(status: .ok) }
            for method in [HTTPRequest.Method.post, .put, .delete, .patch] {
                router.on(RouterPath(namespace), method: method) { _, _ in
                    var r = ErrorMapping.gatewayResponse(RequestError(.methodNotAllowed, "the gateway is read-only"))
                    r.headers[.allow] = "GET, HEAD"
                    return r
                }
            }
        }
    }

    /// What the client asked for.
    /// `entity-bytes=from:to` (IPIP-402).
    struct EntityBytes: Equatable {
        var from: Int64
        var to: Int64?
    }

    enum Representation: Equatable {
        case raw
        case car(scope: DAGScope, duplicates: Bool, entityBytes: EntityBytes?)
        /// The block's own bytes under its codec's media type (dag-json, dag-cbor, json, cbor).
        case codec(Multicodec)
        /// A UnixFS tree as a TAR stream (IPIP-288).
        case tar
        /// No explicit format: the deserialised response.
        case deserialized
    }

    func handle(_ request: Request, head: Bool) async -> Response {
        do {
            return try await respond(request, head: head)
        } catch NodeError.notFound(let c) where (request.headers[.cacheControl] ?? "").contains("only-if-cached") {
            // The client asked for local data only: 412, not 404 (path gateway spec).
            return ErrorMapping.gatewayResponse(RequestError(.preconditionFailed, "\(c) is not in this node (only-if-cached)"))
        } catch {
            return ErrorMapping.gatewayResponse(error)
        }
    }

    func respond(_ request: Request, head: Bool) async throws -> Response {
        // The URI makes a new string for each read of its path and parses its query each time:
        // both are read once here.
        let requestPath = request.uri.path
        let query = request.uri.queryParameters
        guard requestPath.utf8.count <= limits.maximumPathLength else {
            throw RequestError(.uriTooLong, "request path longer than \(limits.maximumPathLength) bytes")
        }
        // Split as bytes: "/" is one byte in UTF-8, and splitting on Characters costs grapheme breaking.
        let segments = requestPath.utf8.split(separator: UInt8(ascii: "/")).dropFirst().map { Self.percentDecoded(String(Substring($0))) }
        let ipns = requestPath.hasPrefix("/ipns/")
        let module = requestPath.hasPrefix("/modules/")
        guard let first = segments.first else {
            throw RequestError(.badRequest, ipns ? "expected /ipns/{name}" : module ? "expected /modules/{name}[@range]/docs/{path}" : "expected /ipfs/{cid}")
        }
        let root: CID
        let path: [String]
        /// `/ipns/` responses may be cached for the record's TTL, not forever.
        var cacheControl = Self.immutableCache
        /// What the content is at (the request's path, or the immutable one a module name resolved to).
        var contentPath = requestPath
        var preResolved: ResolvedPath?
        if module {
            // A module's docs: the name moves with each release, so the answer is cached briefly;
            // X-Ipfs-Path names the immutable path it resolved to.
            guard segments.count >= 2, segments[1] == "docs" else { throw RequestError(.notFound, "expected /modules/{name}[@range]/docs/{path}") }
            let (name, range) = try Node.moduleReference(first)
            let rest = Array(segments.dropFirst(2))
            // One trip to the storage threads: the name, then the path in its docs.
            let (docs, r) = try await io.run { () throws -> (CID, ResolvedPath) in
                let docs = try self.node.moduleDocs(name, range: range, count: false).metadata.documentation
                let resolved = try self.node.resolve(docs, path: rest)
                // A fetch is a GET of something there.
                if !head { self.node.countDocsFetch(name) }
                return (docs, resolved)
            }
            root = docs
            path = rest
            preResolved = r
            cacheControl = Self.moduleCache
            contentPath = Self.percentEncodedPath("/ipfs/" + ([root.string] + path).joined(separator: "/"))
                + (requestPath.hasSuffix("/") && !path.isEmpty ? "/" : "")
        } else if ipns {
            if Self.wantsIPNSRecord(request, query) { return try await ipnsRecord(request, first, extraPath: segments.count > 1, head: head) }
            // One read and verification of the name's record: its value is followed from there.
            let (record, r, p) = try await io.run { () throws -> (IPNSRecord, CID, [String]) in
                let record = try self.node.nameRecord(first)
                let (root, path) = try self.node.contentPath(record.value)
                return (record, root, path)
            }
            root = r
            path = p + segments.dropFirst()
            cacheControl = ipnsCacheControl(record)
        } else {
            do { root = try CID(first) } catch { throw RequestError(.badRequest, "invalid CID \"\(first)\": \(error)") }
            path = Array(segments.dropFirst())
        }
        let representation = try Self.negotiate(request, query)
        let resolved: ResolvedPath
        if let preResolved {
            resolved = preResolved
        } else if path.allSatisfy(\.isEmpty) {
            // No segment to follow: nothing to read, so no trip to the storage threads (a request
            // for a block by CID makes one, for the block).
            resolved = try node.resolve(root, path: path)
        } else {
            resolved = try await io.run { try self.node.resolve(root, path: path) }
        }
        let terminal = resolved.terminal
        let terminalString = terminal.string
        // Appended, not set: a set first looks for the name among the fields already there.
        var headers = HTTPFields()
        headers.reserveCapacity(16)
        headers.append(HTTPField(name: .cacheControl, value: cacheControl))
        headers.append(HTTPField(name: .xIpfsPath, value: contentPath))
        headers.append(HTTPField(name: .xIpfsRoots, value: resolved.crossed.isEmpty ? terminalString : (resolved.crossed.map(\.string) + [terminalString]).joined(separator: ",")))
        headers.append(HTTPField(name: .vary, value: "Accept"))
        headers.append(HTTPField(name: .xContentTypeOptions, value: "nosniff"))
        let filename = query.get("filename")

        switch representation {
        case .raw, .codec:
            let mediaType: String
            if case .codec(let c) = representation {
                guard c == terminal.codec else {
                    throw RequestError(.notAcceptable, "\(terminal) is \(terminal.codec.name); the gateway does not convert it to \(c.name)")
                }
                mediaType = Self.mediaType(of: c)
                headers[.eTag] = "\"\(terminalString).\(c.name)\""
                headers[.contentDisposition] = Self.codecDisposition(query, terminal: terminal, codec: c)
            } else {
                mediaType = "application/vnd.ipld.raw"
                headers.append(HTTPField(name: .eTag, value: "\"\(terminalString).raw\""))
                headers.append(HTTPField(name: .contentDisposition, value: Self.disposition("attachment", filename: filename, default: terminalString + ".bin")))
            }
            headers.append(HTTPField(name: .contentType, value: mediaType))
            return try await blockBody(request, terminal: terminal, head: head, headers: headers)

        case .car(let scope, let duplicates, let entityBytes):
            headers[.contentType] = "application/vnd.ipld.car; version=1; order=dfs; dups=\(duplicates ? "y" : "n")"
            headers[.eTag] = Self.carETag(root: root, path: path, scope: scope, duplicates: duplicates, entityBytes: entityBytes)
            headers[.contentDisposition] = Self.disposition("attachment", filename: filename, default: terminalString + ".car")
            headers[.acceptRanges] = "none"
            if Self.matches(request, etag: headers[.eTag]!) { return Response(status: .notModified, headers: headers) }
            // The terminal block must exist before a 200 is promised.
            _ = try await io.run { try self.node.blockSize(terminal) }
            if head { return Self.headOfStream(.ok, headers) }
            let node = self.node
            return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
                let range = entityBytes.map { (from: $0.from, to: $0.to) }
                var sink = try node.exportCAR(root: root, path: path, scope: scope, duplicates: duplicates, entityBytes: range, to: ChannelSink(channel))
                try sink.flush()
            })

        case .tar:
            guard terminal.codec == .dagPB || terminal.codec == .raw else {
                throw RequestError(.notAcceptable, "\(terminal) is \(terminal.codec.name), not UnixFS: TAR is for UnixFS files and directories")
            }
            headers[.contentType] = "application/x-tar"
            headers[.eTag] = "W/\"\(terminal.string).x-tar\""
            headers[.contentDisposition] = Self.disposition("attachment", filename: filename, default: terminalString + ".tar")
            if Self.matches(request, etag: headers[.eTag]!) { return Response(status: .notModified, headers: headers) }
            _ = try await io.run { try self.node.blockSize(terminal) }
            if head { return Self.headOfStream(.ok, headers) }
            // The top entry is named after the last path segment (else the CID). An entry whose
            // name would leave the archive ends the stream with the reason as its last bytes (a
            // browser cannot read a trailer), as boxo does.
            let name = path.last ?? terminal.string
            let node = self.node
            return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads, onFailure: .appendMessage) { channel in
                var sink = ChannelSink(channel)
                do {
                    try node.tar(terminal, name: name) { bytes in try bytes.withUnsafeBytes { try sink.write($0) } }
                } catch {
                    try sink.flush()  // what was written, then the reason
                    throw error
                }
                try sink.flush()
            })

        case .deserialized:
            switch terminal.codec {
            case .dagPB, .raw:
                return try await deserializedUnixFS(request, terminal: terminal, head: head, headers: headers)
            case .dagJSON, .dagCBOR, .json, .cbor:
                if (request.headers[.accept] ?? "").contains("text/html") {
                    let data = try await io.run { try self.node.block(terminal) }
                    let html = Self.dagPreview(terminal, data)
                    headers[.contentType] = "text/html; charset=utf-8"
                    headers[.eTag] = "\"DagIndex-qstore1_CID-\(terminal.string)\""
                    if !Self.isMutable(request) { headers[.cacheControl] = "public, max-age=604800, stale-while-revalidate=2678400" }
                    headers[.contentLength] = String(html.utf8.count)
                    return Response(status: .ok, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(string: html)))
                }
                headers[.contentType] = Self.mediaType(of: terminal.codec)
                headers[.eTag] = "\"\(terminal.string).\(terminal.codec.name)\""
                headers[.contentDisposition] = Self.codecDisposition(query, terminal: terminal, codec: terminal.codec)
                return try await blockBody(request, terminal: terminal, head: head, headers: headers)
            default:
                throw RequestError(.notAcceptable, "\(terminal.codec.name) blocks are served as application/vnd.ipld.raw or in a CAR")
            }
        }
    }

    /// Whether the request names content through a name that may move (IPNS, a module).
    static func isMutable(_ request: Request) -> Bool {
        let path = request.uri.path
        return path.hasPrefix("/ipns/") || path.hasPrefix("/modules/")
    }

    /// How long a response under an IPNS name may be cached: the record's TTL, but never past the
    /// record's end of validity (at least a second).
    func ipnsCacheControl(_ record: IPNSRecord) -> String {
        var seconds = record.ttl / 1_000_000_000
        if let end = record.validUntil {
            // The node's clock, as the record's validity was checked by it.
            let left = end.seconds - Int64(node.clock.now / 1000)
            seconds = min(seconds, UInt64(max(0, left)))
        }
        return "public, max-age=\(max(1, seconds))"
    }

    /// `?format=ipns-record` or `Accept: application/vnd.ipfs.ipns-record`.
    static func wantsIPNSRecord(_ request: Request, _ query: FlatDictionary<Substring, Substring>) -> Bool {
        if let f = query.get("format") { return f == "ipns-record" }
        return (request.headers[.accept] ?? "").lowercased().contains("application/vnd.ipfs.ipns-record")
    }

    /// The signed record of an IPNS name held here (verified before it is served).
    func ipnsRecord(_ request: Request, _ name: String, extraPath: Bool, head: Bool) async throws -> Response {
        guard !extraPath else { throw RequestError(.badRequest, "an IPNS record is served for /ipns/{name} alone, without a path") }
        let record = try await io.run { try self.node.nameRecord(name) }
        var headers = HTTPFields()
        headers[.contentType] = "application/vnd.ipfs.ipns-record"
        headers[.contentDisposition] = "attachment; filename=\"\(name).ipns-record\""
        headers[.cacheControl] = ipnsCacheControl(record)
        headers[.eTag] = "\"\(name).ipns-record.\(record.sequence)\""
        if Self.matches(request, etag: headers[.eTag]!) { return Response(status: .notModified, headers: headers) }
        headers[.contentLength] = String(record.bytes.count)
        headers[.xIpfsPath] = "/ipns/" + name
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: .ok, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(bytes: record.bytes)))
    }

    /// The answer to `HEAD` for a representation `GET` streams: no `Content-Length` (the length
    /// is not known ahead, and `0` would be a lie), so it advertises the chunked coding `GET` uses;
    /// NIO's encoder sends no body for a `HEAD`.
    static func headOfStream(_ status: HTTPResponse.Status, _ headers: HTTPFields) -> Response {
        Response(status: status, headers: headers, body: ResponseBody { writer in try await writer.finish(nil) })
    }

    /// One block's bytes as the whole body (or, with `Range`, the first range asked: `206`), after
    /// the `If-None-Match` check against the ETag already in `headers`.
    func blockBody(_ request: Request, terminal: CID, head: Bool, headers baseHeaders: HTTPFields) async throws -> Response {
        var headers = baseHeaders
        if Self.matches(request, etag: headers[.eTag]!) { return Response(status: .notModified, headers: headers) }
        // A small block read recently is answered in place; else it is read on the storage threads.
        let data: [UInt8]
        if let hot = node.hotBlock(terminal) { data = hot } else { data = try await io.run { try self.node.blockKeepingHot(terminal) } }
        // Appended: no caller has set these (a set searches the fields first).
        headers.append(HTTPField(name: .acceptRanges, value: "bytes"))
        if let range = try Self.byteRanges(request, size: UInt64(data.count), maximum: limits.maximumRanges)?.first {
            let r = Int(range.lowerBound)...Int(range.upperBound)
            headers.append(HTTPField(name: .contentRange, value: "bytes \(r.lowerBound)-\(r.upperBound)/\(data.count)"))
            headers.append(HTTPField(name: .contentLength, value: String(r.count)))
            return Response(status: .partialContent, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(bytes: data[r])))
        }
        headers.append(HTTPField(name: .contentLength, value: String(data.count)))
        return Response(status: .ok, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// JSON is shown inline, CBOR downloaded (`?download=true` forces attachment); `?filename=` names it.
    static func codecDisposition(_ query: FlatDictionary<Substring, Substring>, terminal: CID, codec: Multicodec) -> String {
        let json = codec == .dagJSON || codec == .json
        let download = KuboRPC.flag(query.get("download")) || !json
        return disposition(download ? "attachment" : "inline", filename: query.get("filename"), default: terminal.string + (json ? ".json" : ".cbor"))
    }

    /// An HTML preview of a DAG-JSON/DAG-CBOR block: its DAG-JSON form.
    static func dagPreview(_ cid: CID, _ data: [UInt8]) -> String {
        let json = (try? Codecs.codec(for: cid.codec).decode(data)).flatMap { try? DAGJSON().encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? "(not decodable)"
        return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>\(cid.string)</title></head><body><h1>\(cid.string)</h1><p>\(cid.codec.name)</p><pre>\(DirectoryListing.escape(json))</pre></body></html>\n"
    }

    /// Picks the representation: `?format=` wins over `Accept` (IPIP-523).
    static func negotiate(_ request: Request, _ q: FlatDictionary<Substring, Substring>) throws -> Representation {
        let scope: DAGScope
        if let s = q.get("dag-scope") {
            guard let v = DAGScope(rawValue: s) else { throw RequestError(.badRequest, "dag-scope must be all, entity or block") }
            scope = v
        } else {
            scope = .all
        }
        var entityBytes: EntityBytes?
        if let e = q.get("entity-bytes") {
            let parts = e.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let from = Int64(parts[0]), parts[1] == "*" || Int64(parts[1]) != nil else {
                throw RequestError(.badRequest, "entity-bytes must be from:to (integers, to may be *)")
            }
            let to = parts[1] == "*" ? nil : Int64(parts[1])
            if let to, to >= 0, from >= 0, to < from { throw RequestError(.badRequest, "entity-bytes: to is before from") }
            entityBytes = EntityBytes(from: from, to: to)
        }
        // URL parameters win over the Accept header's CAR parameters (IPIP-412).
        var queryDuplicates: Bool?
        if let d = q.get("car-dups") {
            guard d == "y" || d == "n" else { throw RequestError(.badRequest, "car-dups must be y or n") }
            queryDuplicates = d == "y"
        }
        let duplicates = queryDuplicates ?? Self.acceptedDuplicates(request) ?? false
        if let o = q.get("car-order"), o != "dfs" && o != "unk" { throw RequestError(.badRequest, "car-order must be dfs or unk") }
        if let v = q.get("car-version"), v != "1" { throw RequestError(.badRequest, "car-version must be 1 (CARv1 is served)") }

        if let format = q.get("format") {
            switch format {
            case "raw": return .raw
            case "car": return .car(scope: scope, duplicates: duplicates, entityBytes: entityBytes)
            case "dag-json": return .codec(.dagJSON)
            case "dag-cbor": return .codec(.dagCBOR)
            case "json": return .codec(.json)
            case "cbor": return .codec(.cbor)
            case "tar": return .tar
            default: throw RequestError(.badRequest, "unsupported format \"\(format)\" (raw, car, tar, dag-json, dag-cbor, json, cbor)")
            }
        }
        guard let accept = request.headers[.accept], !accept.isEmpty else { return .deserialized }
        var best: (q: Double, representation: Representation)?
        var sawUnsupported = false
        for entry in MediaRange.list(accept) {
            let (params, weight) = (entry.parameters, entry.weight)
            guard weight > 0 else { continue }
            let r: Representation?
            switch entry.type {
            case "application/vnd.ipld.raw": r = .raw
            case "application/vnd.ipld.car":
                if let v = params["version"], v != "1" { r = nil }
                else if let o = params["order"], o != "dfs" && o != "unk" { r = nil }
                else if let d = params["dups"], d != "y" && d != "n" { r = nil }
                else { r = .car(scope: scope, duplicates: duplicates, entityBytes: entityBytes) }
            case "application/vnd.ipld.dag-json": r = .codec(.dagJSON)
            case "application/vnd.ipld.dag-cbor": r = .codec(.dagCBOR)
            case "application/json": r = .codec(.json)
            case "application/cbor": r = .codec(.cbor)
            case "application/x-tar": r = .tar
            case "*/*", "application/*", "text/html", "text/*": r = .deserialized
            default: r = nil
            }
            guard let r else { sawUnsupported = true; continue }
            if best == nil || weight > best!.q { best = (weight, r) }
        }
        if let best { return best.representation }
        if sawUnsupported { throw RequestError(.notAcceptable, "none of the accepted media types can be served: \(accept)") }
        return .deserialized
    }

    /// The `dups` parameter of an `application/vnd.ipld.car` Accept entry, if any.
    static func acceptedDuplicates(_ request: Request) -> Bool? {
        guard let accept = request.headers[.accept] else { return nil }
        for entry in MediaRange.list(accept) where entry.type.contains("application/vnd.ipld.car") {
            if let dups = entry.parameters["dups"] { return dups.lowercased() == "y" }
        }
        return nil
    }

    static func mediaType(of codec: Multicodec) -> String {
        switch codec {
        case .dagJSON: "application/vnd.ipld.dag-json"
        case .dagCBOR: "application/vnd.ipld.dag-cbor"
        case .json: "application/json"
        case .cbor: "application/cbor"
        default: "application/octet-stream"
        }
    }

    /// A CAR's entity tag: the request's root, path and CAR parameters, hashed.
    static func carETag(root: CID, path: [String], scope: DAGScope, duplicates: Bool, entityBytes: EntityBytes?) -> String {
        let range = entityBytes.map { "\($0.from):\($0.to.map(String.init) ?? "*")" } ?? ""
        let identity = "\(root.string)/\(path.joined(separator: "/"))|\(scope.rawValue)|dfs|\(duplicates ? "y" : "n")|\(range)"
        let digest = (try! Multihash.compute(Array(identity.utf8))).digest.prefix(8)
        return "W/\"\(root.string).car.\(Base16.encode(Array(digest)))\""
    }

    /// The `filename` query parameter (quotes and path separators removed), else `default`.
    static func filename(_ requested: String?, default name: String) -> String {
        guard let f = requested, !f.isEmpty else { return name }
        return String(f.filter { $0 != "\"" && $0 != "/" && $0 != "\\" && !$0.isNewline })
    }

    /// `text` with its percent-escapes decoded (as it is when it has none, or a malformed one).
    static func percentDecoded(_ text: String) -> String { text.decodingPercentEscapes() ?? text }

    /// A `Content-Disposition` value for the requested `?filename=` (else `name`): an ASCII
    /// `filename` (other characters as `_`) and, when the name is not ASCII, RFC 5987's
    /// `filename*=UTF-8''…` with the exact name, as the path gateway spec shows.
    static func disposition(_ kind: String, filename requested: String?, default name: String) -> String {
        let f = filename(requested, default: name)
        if f.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x80 }) { return "\(kind); filename=\"\(f)\"" }
        let ascii = String(f.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? Character($0) : "_" })
        guard ascii != f else { return "\(kind); filename=\"\(f)\"" }
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(0x80)))
        allowed.insert(charactersIn: "!#$&+-.^_`|~")
        let encoded = f.addingPercentEncoding(withAllowedCharacters: allowed) ?? ascii
        return "\(kind); filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }

    /// `If-None-Match` names this entity (or `*`).
    static func matches(_ request: Request, etag: @autoclosure () -> String) -> Bool {
        guard let header = request.headers[.ifNoneMatch] else { return false }
        return EntityTags.matches(header, etag: etag())
    }
}

import CAR
