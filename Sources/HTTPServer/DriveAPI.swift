import Access
import CAR
import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import Multiformats
import Node
import NIOCore
import Pinning
import QAPI
import Qdrive

/// Qdrive on the Q API (Docs/drive.md): `/q/v1/drive/{owner}/{path}` — `PUT` a file (the body,
/// streamed), `GET` a file (decrypted; `Range`), a directory's listing, or metadata (`?info`),
/// `DELETE` (`?erase=true`: crypto-erase), `POST ?action=move|share|revoke|restore` with its
/// parameters as a JSON body;
/// `GET /q/v1/drive-keys/{owner}` the owner's public key. Scopes `drive:read`, `drive:write`,
/// `drive:share`; a caller other than the admin token acts on its own drive (its subject), and
/// reads another's files only when they were shared with it.
struct DriveAPI {
    let node: Node
    let io: StorageThreads
    let downloads: Downloads
    let limits: ServerLimits
    let uploads: ClientSlots

    init(node: Node, io: StorageThreads, downloads: Downloads, limits: ServerLimits) {
        (self.node, self.io, self.downloads, self.limits) = (node, io, downloads, limits)
        uploads = ClientSlots(limits.uploads)
    }

    static let prefix = "/q/v1/drive"

    func register(on router: Router<ServerContext>) {
        for method in [HTTPRequest.Method.get, .put, .post, .delete] {
            router.on(RouterPath(Self.prefix + "/**"), method: method) { request, context in await qAsync { try await self.route(request, context) } }
        }
        router.get(RouterPath("/q/v1/drive-keys/{owner}")) { _, context in
            await qAsync {
                guard let owner = (context.parameters.get("owner") ?? "").decodingPercentEscapes() else { throw DriveError.invalid("the owner is not valid percent-encoding") }
                try Self.checkOwner(owner)
                let pub = try await io.run { try node.drivePublicKey(owner) }
                return QindexAPI.ok(DriveKeyWire(owner: owner, keyId: KeyWrap.keyID(pub), publicKey: DriveKeyWire.encode(pub), wrappedKey: nil))
            }
        }
    }

    static func checkOwner(_ owner: String) throws {
        guard !owner.isEmpty, owner != ".", owner != "..", owner.utf8.count <= 256, !owner.contains("/"), !owner.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw DriveError.invalid("an owner is 1 to 256 bytes, no / or control characters")
        }
    }

    /// The owner and the path (percent-decoded) of `/q/v1/drive/{owner}[/{path}]`.
    static func parse(_ path: String) throws -> (owner: String, path: String) {
        let rest = path.dropFirst(prefix.count + 1)
        let owner = rest.prefix { $0 != "/" }
        guard let o = String(owner).decodingPercentEscapes(), let p = String(rest.dropFirst(owner.count)).decodingPercentEscapes() else {
            throw DriveError.invalid("the path is not valid percent-encoding")
        }
        try checkOwner(o)
        return (o, p.isEmpty ? "/" : p)
    }

    /// Who reads or writes `owner`'s drive: the owner (the admin token acts as any owner); for a
    /// read, another caller is the reader whose key must open the file.
    static func caller(owner: String, write: Bool) throws -> String {
        guard let p = RequestCaller.principal else { throw DriveError.forbidden("no caller") }
        if p.credential == .adminToken || p.subject == owner { return owner }
        if write { throw DriveError.forbidden("\(p.subject) may not change the drive of \(owner)") }
        return p.subject
    }

    func route(_ request: Request, _ context: ServerContext) async throws -> Response {
        let (owner, path) = try Self.parse(request.uri.path)
        let q = request.uri.queryParameters
        let version = try q.get("version").map { v -> Int64 in
            guard let n = Int64(v), n > 0 else { throw DriveError.invalid("version: a positive integer") }
            return n
        }
        switch request.method {
        case .put: return try await put(request, context, owner: owner, path: path)
        case .delete:
            _ = try Self.caller(owner: owner, write: true)
            let erase = q.get("erase") == "true"
            let done = try await io.run { try node.driveRemove(owner: owner, path: path, erase: erase) }
            return QindexAPI.ok(DriveChangeWire(version: done.version, erased: erase ? done.erased.map(\.string) : nil))
        case .post: return try await action(request, owner: owner, path: path)
        default:
            let reader = try Self.caller(owner: owner, write: false)
            if reader == owner, q.get("info") == nil, q.get("key") == nil {
                // A directory lists; a file is read.
                let entries = try await io.run { () throws -> [DriveEntry]? in
                    if (try? node.driveInfo(owner: owner, path: path, version: version)) != nil { return nil }
                    return try node.driveList(owner: owner, path: path, version: version)
                }
                if let entries {
                    return QindexAPI.ok(DriveListingWire(owner: owner, path: path, entries: entries.map {
                        .init(name: $0.name, kind: $0.kind, size: $0.size, cid: $0.cid.string, mediaType: $0.file?.mediaType, modifiedAt: $0.file?.modifiedAt,
                              encrypted: $0.file.map { $0.encryption != nil })
                    }))
                }
            }
            // Another caller learns nothing of the drive but the files shared with it: any other
            // path (absent, a directory, not shared) is the same 403.
            let notShared = DriveError.forbidden("\(path) of \(owner) is not shared with \(reader)")
            let found = try? await io.run { try node.driveInfo(owner: owner, path: path, version: version) }
            if reader != owner, !(found?.file.encryption?.recipients.contains { $0.identity == reader } ?? false) { throw notShared }
            let info: DriveFileInfo
            if let found { info = found } else { info = try await io.run { try node.driveInfo(owner: owner, path: path, version: version) } }
            if let keyID = q.get("key") {
                // Another caller fetches only its own key's wrap.
                if reader != owner {
                    let mine = KeyWrap.keyID(try await io.run { try node.drivePublicKey(reader) })
                    guard String(keyID) == mine else { throw notShared }
                }
                let wrapped = try await io.run { try node.driveWrappedKey(info, keyID: String(keyID)) }
                return QindexAPI.ok(DriveKeyWire(owner: nil, keyId: String(keyID), publicKey: nil, wrappedKey: DriveKeyWire.encode(wrapped)))
            }
            if q.get("info") != nil { return QindexAPI.ok(DriveFileWire(path: info.path, cid: info.cid.string, version: info.version, file: info.file)) }
            if q.get("sealed") == "true" { return try await sealed(info) }
            return try await read(request, info, reader: reader)
        }
    }

    /// The file's bytes (decrypted), whole or one `Range`.
    func read(_ request: Request, _ info: DriveFileInfo, reader: String) async throws -> Response {
        let size = info.file.size
        // The key first: a file that no key here opens is an error status, not a cut stream.
        if info.file.encryption != nil { _ = try await io.run { try self.node.driveRead(info, reader: reader, from: 0, length: 0) { _ in } } }
        var headers = HTTPFields()
        headers[.contentType] = info.file.mediaType
        headers[.acceptRanges] = "bytes"
        headers[.eTag] = "\"\(info.cid.string)\""
        var status = HTTPResponse.Status.ok
        var from: UInt64 = 0, length = size
        if let ranges = try Gateway.byteRanges(request, size: size, maximum: 1), let r = ranges.first {
            (from, length) = (r.lowerBound, r.upperBound - r.lowerBound + 1)
            status = .partialContent
            headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(size)"
        }
        headers[.contentLength] = String(length)
        let node = self.node
        let (start, count) = (from, length)
        return Response(status: status, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
            var sink = ChannelSink(channel)
            try node.driveRead(info, reader: reader, from: start, length: count) { bytes in try bytes.withUnsafeBytes { try sink.write($0) } }
            try sink.flush()
        })
    }

    /// The file's stored bytes as they are (ciphertext when encrypted): what a client holding its
    /// own key decrypts itself.
    func sealed(_ info: DriveFileInfo) async throws -> Response {
        let node = self.node, content = info.file.content
        let size = try await io.run { try node.fileSize(content) }
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.contentLength] = String(size)
        headers[.eTag] = "\"\(content.string)\""
        return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
            var sink = ChannelSink(channel)
            try node.cat(content) { bytes in try bytes.withUnsafeBytes { try sink.write($0) } }
            try sink.flush()
        })
    }

    /// `PUT`: the body is read as it arrives on a thread of its own (an upload slot), encrypted
    /// and stored a segment at a time.
    func put(_ request: Request, _ context: ServerContext, owner: String, path: String) async throws -> Response {
        _ = try Self.caller(owner: owner, write: true)
        let q = request.uri.queryParameters
        var options = DrivePutOptions()
        options.mediaType = q.get("mediaType").map { String($0) } ?? request.headers[.contentType] ?? options.mediaType
        options.tags = q.get("tags").map { $0.split(separator: ",").map(String.init) } ?? []
        if let e = q.get("encrypt") {
            guard e == "true" || e == "false" else { throw DriveError.invalid("encrypt: true or false") }
            options.encrypt = e == "true"
        }
        if let s = q.get("segmentSize") {
            guard let n = Int(s), n >= SegmentCipher.minimumSegment, n <= SegmentCipher.maximumSegment else {
                throw DriveError.invalid("segmentSize: \(SegmentCipher.minimumSegment) to \(SegmentCipher.maximumSegment)")
            }
            options.segmentSize = n
        }
        if let e = q.get("expiresIn") {
            guard let ms = parseDuration(String(e)), ms > 0 else { throw DriveError.invalid("expiresIn: a duration such as 7d, 12h, 30m") }
            options.expiresIn = ms
        }
        for r in q.getAll("recipient") {
            guard let k = DriveKeyWire.decode(String(r)), k.count == 32 else { throw DriveError.invalid("recipient: an X25519 public key, 32 bytes base64url") }
            options.recipients.append(k)
        }
        if q.get("sealed") == "true" {
            // The body is ciphertext the client sealed (client-held keys: the node never has one).
            guard options.recipients.isEmpty, options.encrypt else { throw DriveError.invalid("sealed: the wraps come with wrap=KEYID:WRAP, not recipient= or encrypt=false") }
            guard let id = q.get("id"), let nonce = q.get("nonce").flatMap({ DriveKeyWire.decode(String($0)) }) else {
                throw DriveError.invalid("sealed: id (the file key's id) and nonce (base64url) are required")
            }
            var wraps: [String: [UInt8]] = [:]
            var recipients: [DriveFile.Recipient] = []
            for w in q.getAll("wrap") {
                let parts = w.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let bytes = DriveKeyWire.decode(String(parts[1])), wraps[String(parts[0])] == nil else {
                    throw DriveError.invalid("sealed: wrap=KEYID:WRAP (base64url), once per recipient key")
                }
                wraps[String(parts[0])] = bytes
                recipients.append(.init(identity: "key:" + parts[0], keyId: String(parts[0])))
            }
            options.sealed = (DriveFile.Encryption(segmentSize: options.segmentSize, id: String(id), nonce: nonce, recipients: recipients), wraps)
        } else if q.get("sealed").map({ $0 != "false" }) ?? false {
            throw DriveError.invalid("sealed: true or false")
        }
        _ = try DrivePath.parse(path)
        let (node, chosen) = (self.node, options)
        // A declared length over the owner's room is refused before a byte is read (a chunked
        // upload is checked when it is committed).
        if let length = request.headers[.contentLength].flatMap(UInt64.init),
           let room = try await io.run({ try node.driveRoom(owner: owner, path: path) }), length > room {
            throw PinningError.quotaExceeded(owner: owner, needed: length, available: room, quota: node.access.storageQuota(of: owner))
        }
        let info = try await BodyPipe.consume(request, context, slots: uploads, maximum: Int.max) { pipe in
            try node.drivePut(owner: owner, path: path, from: pipe, options: chosen)
        }
        return QindexAPI.ok(DriveFileWire(path: info.path, cid: info.cid.string, version: info.version, file: info.file), cid: info.cid, status: .created)
    }

    func action(_ request: Request, owner: String, path: String) async throws -> Response {
        let body = try await RequestBodies.collect(request, limit: 16 << 10, timeout: limits.requestTimeout)
        var a: DriveActionWire
        do { a = try JSONDecoder().decode(DriveActionWire.self, from: Data(buffer: body)) } catch {
            throw DriveError.invalid("the body is a JSON object {to?, identity?, publicKey?, who?, rotate?, version?}")
        }
        a.action = request.uri.queryParameters.get("action").map { String($0) } ?? ""
        let (identity, who, rotate) = (a.identity, a.who, a.rotate)
        _ = try Self.caller(owner: owner, write: true)
        let node = self.node
        switch a.action {
        case "move":
            guard let to = a.to else { throw DriveError.invalid("move: give to") }
            return QindexAPI.ok(DriveChangeWire(version: try await io.run { try node.driveMove(owner: owner, from: path, to: to) }))
        case "restore":
            guard let v = a.version, v > 0 else { throw DriveError.invalid("restore: give version (a positive integer)") }
            return QindexAPI.ok(DriveChangeWire(version: try await io.run { try node.driveRestore(owner: owner, path: path, version: v) }))
        case "share":
            let pub = try a.publicKey.map { p -> [UInt8] in
                guard let k = DriveKeyWire.decode(p), k.count == 32 else { throw DriveError.invalid("publicKey: an X25519 public key, 32 bytes base64url") }
                return k
            }
            guard (a.identity == nil) != (pub == nil) else { throw DriveError.invalid("share: give identity or publicKey (one)") }
            if let i = a.identity { try Self.checkOwner(i) }
            let info = try await io.run { try node.driveShare(owner: owner, path: path, identity: identity, publicKey: pub) }
            return QindexAPI.ok(DriveFileWire(path: info.path, cid: info.cid.string, version: info.version, file: info.file))
        case "revoke":
            guard let who else { throw DriveError.invalid("revoke: give who (an identity, or key:<keyId>)") }
            let info = try await io.run { try node.driveRevoke(owner: owner, path: path, who: who, rotate: rotate ?? false) }
            return QindexAPI.ok(DriveFileWire(path: info.path, cid: info.cid.string, version: info.version, file: info.file))
        default:
            throw DriveError.invalid("action: move, share, revoke or restore")
        }
    }
}
