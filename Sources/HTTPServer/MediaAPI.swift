import Foundation
import HTTPTypes
import Hummingbird
import Node
import NIOCore
import QAPI
import Qdrive
import QpiC

/// QpiC on the Q API (Docs/media.md): `POST /q/v1/media?profile=` (the body is the picture or
/// video) → the asset; `GET /q/v1/media/{id}` the asset, `?variant=NAME` the variant's bytes
/// (made on first request when not yet there). Scopes `drive:write` / `drive:read`; a caller works
/// on its own drive (`?owner=` for the admin token, default `admin`).
struct MediaAPI {
    let node: Node
    let io: StorageThreads
    let downloads: Downloads
    let uploads: ClientSlots

    init(node: Node, io: StorageThreads, downloads: Downloads, limits: ServerLimits) {
        (self.node, self.io, self.downloads) = (node, io, downloads)
        uploads = ClientSlots(limits.uploads)
    }

    func register(on router: Router<ServerContext>) {
        router.post(RouterPath("/q/v1/media")) { request, context in await qAsync { try await self.upload(request, context) } }
        router.get(RouterPath("/q/v1/media/{id}")) { request, context in
            await qAsync { try await self.get(request, id: context.parameters.get("id") ?? "") }
        }
    }

    /// The drive the caller works on: its own (the admin token names one with `?owner=`).
    static func owner(_ request: Request) throws -> String {
        guard let p = RequestCaller.principal else { throw DriveError.forbidden("no caller") }
        let asked = request.uri.queryParameters.get("owner").map { String($0) }
        if p.credential == .adminToken {
            let o = asked ?? "admin"
            try DriveAPI.checkOwner(o)
            return o
        }
        guard asked == nil || asked == p.subject else { throw DriveError.forbidden("\(p.subject) works on its own media only") }
        return p.subject
    }

    func upload(_ request: Request, _ context: ServerContext) async throws -> Response {
        let owner = try Self.owner(request)
        let profile = request.uri.queryParameters.get("profile").map { String($0) }
        let node = self.node
        let asset = try await BodyPipe.consume(request, context, slots: uploads, maximum: Node.maximumMedia) { pipe in
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = try chunk.withUnsafeMutableBytes { try pipe.read(into: $0) }
                if n == 0 { break }
                bytes += chunk[..<n]
            }
            return try node.mediaUpload(owner: owner, bytes: bytes, profile: profile)
        }
        return QindexAPI.ok(MediaAssetWire(asset), status: .created)
    }

    func get(_ request: Request, id: String) async throws -> Response {
        let owner = try Self.owner(request)
        let node = self.node
        guard let name = request.uri.queryParameters.get("variant").map({ String($0) }) else {
            return QindexAPI.ok(MediaAssetWire(try await io.run { try node.mediaAsset(owner: owner, id: id) }))
        }
        // Making a variant writes the drive: only a caller who may.
        let create = RequestCaller.principal?.allows(AccessRules.driveWrite) ?? false
        let (asset, file) = try await io.run { try node.mediaVariant(owner: owner, id: id, name: name, create: create) }
        var headers = HTTPFields()
        // The variant's format, not what the drive's metadata says (its owner may change that).
        headers[.contentType] = asset.variants.first { $0.name == name }?.format.mediaType ?? "application/octet-stream"
        headers[.xContentTypeOptions] = "nosniff"
        headers[.contentLength] = String(file.file.size)
        headers[.eTag] = "\"\(file.file.content.string)\""
        headers[.xIpfsPath] = "/ipfs/\(file.file.content.string)"
        return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
            var sink = ChannelSink(channel)
            try node.driveRead(file, reader: owner) { bytes in try bytes.withUnsafeBytes { try sink.write($0) } }
            try sink.flush()
        })
    }
}
