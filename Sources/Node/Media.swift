import CAR
import Foundation
import IPLD
import Multiformats
import Qdrive
import QpiC
import Storage

extension Node {
    /// The largest media upload (it is read whole: libvips decodes from memory).
    public static let maximumMedia = 256 << 20
    /// The `qpic` configuration (profiles, the default one, the upload variants), checked.
    public func qpicConfiguration() throws -> QpicConfiguration {
        let c = try repository.configuration.section(QpicConfiguration.self)
        try c.check()
        return c
    }

    static func mediaPath(_ id: String, _ file: String) -> String { "/media/\(id)/\(file)" }

    /// Uploads a picture or video into `owner`'s drive under `/media/<id>/`: the original kept
    /// encrypted (unless the profile keeps none), the `public` variant (full size, after the
    /// privacy profile) and the upload variants as plain files, and the asset (encrypted: it
    /// holds the original's metadata). Video is described, not transcoded: it gets no variants.
    public func mediaUpload(owner: String, bytes: [UInt8], profile name: String? = nil) throws -> MediaAsset {
        guard bytes.count <= Self.maximumMedia else { throw DriveError.invalid("a media upload is at most \(Self.maximumMedia) bytes") }
        let configuration = try qpicConfiguration()
        let profile = try configuration.profile(name)
        let info = try MediaProcessor.analyze(bytes)
        let id = KeyWrap.randomKey().prefix(10).map { String(format: "%02x", $0) }.joined()
        let lease = blocks.lease()
        defer { lease.release() }
        var asset = MediaAsset(id: id, owner: owner, profile: profile.name, file: nil, info: info, variants: [], createdAt: blocks.clock.now)
        var prepared: [DrivePrepared] = []
        if profile.keepOriginal || info.format.isVideo {
            var o = DrivePutOptions()
            o.mediaType = info.format.mediaType
            let original = try drivePrepare(owner: owner, path: Self.mediaPath(id, "original"), from: BytesSource(bytes), options: o)
            asset.file = original.block.cid
            prepared.append(original)
        }
        if !info.format.isVideo {
            let pub = try MediaProcessor.publicVariant(bytes, profile: profile)
            let (p, v) = try prepareVariant(owner: owner, id: id, name: "public", pub)
            prepared.append(p)
            asset.variants.append(v)
            for name in configuration.uploadVariants {
                let (p, v) = try prepareVariant(owner: owner, id: id, name: name, try MediaProcessor.sized(bytes, try VariantName(name)))
                prepared.append(p)
                asset.variants.append(v)
            }
        }
        if !profile.keepOriginal && !info.format.isVideo {
            // Nothing of the original's metadata is kept anywhere, the asset included.
            (asset.info.exif, asset.info.gps) = ([:], nil)
        }
        // One change of the drive (one version) for the whole upload.
        prepared.append(try prepareAsset(asset, owner: owner, id: id))
        _ = try driveCommitFiles(owner: owner, prepared)
        try announce(owner: owner, id: id, asset.variants)
        return asset
    }

    func prepareVariant(owner: String, id: String, name: String, _ v: (bytes: [UInt8], format: MediaFormat, width: Int, height: Int)) throws -> (DrivePrepared, MediaAsset.Variant) {
        var o = DrivePutOptions()
        o.encrypt = false
        o.mediaType = v.format.mediaType
        let p = try drivePrepare(owner: owner, path: Self.mediaPath(id, name), from: BytesSource(v.bytes), options: o)
        return (p, MediaAsset.Variant(name: name, width: v.width, height: v.height, format: v.format, file: p.block.cid, content: p.file.content))
    }

    /// `q.qpic.asset.transcoded.v1` for each variant made.
    func announce(owner: String, id: String, _ variants: [MediaAsset.Variant]) throws {
        try commits.run { [events] txn, _ in
            for v in variants {
                _ = events.stage("q.qpic.asset.transcoded.v1", IPLDMap(uniqueKeysWithValues: [
                    ("owner", .string(owner)), ("id", .string(id)), ("variant", .string(v.name)), ("cid", .string(v.content.string)),
                    ("width", .int(v.width)), ("height", .int(v.height)), ("format", .string(v.format.rawValue)),
                ]), at: txn.now, into: txn.batch)
            }
        }
        events.published()
    }

    /// The asset of `owner`'s media `id`, ready to commit (never where the object's own fields would say).
    func prepareAsset(_ a: MediaAsset, owner: String, id: String) throws -> DrivePrepared {
        var o = DrivePutOptions()
        o.mediaType = "application/vnd.ipld.dag-cbor"
        var a = a
        (a.owner, a.id) = (owner, id)
        return try drivePrepare(owner: owner, path: Self.mediaPath(id, "asset"), from: BytesSource(try DAGCBOR().encode(a.node)), options: o)
    }

    /// The asset `id` of `owner`.
    public func mediaAsset(owner: String, id: String) throws -> MediaAsset {
        guard id.count == 20, id.allSatisfy(\.isHexDigit) else { throw DriveError.invalid("a media id is 20 hex digits") }
        let info: DriveFileInfo
        do { info = try driveInfo(owner: owner, path: Self.mediaPath(id, "asset")) } catch DriveError.notFound { throw DriveError.notFound("no media \(id) of \(owner)") }
        var bytes: [UInt8] = []
        try driveRead(info, reader: owner) { bytes += $0 }
        let asset: MediaAsset
        do { asset = try MediaAsset(bytes) } catch {
            throw DriveError.corrupt("media \(id) of \(owner): /media/\(id)/asset is not a media asset (changed through qstore drive?): \(error)")
        }
        guard asset.owner == owner, asset.id == id else { throw DriveError.corrupt("media \(id) of \(owner): its asset names \(asset.id) of \(asset.owner)") }
        return asset
    }

    /// The variant `name` of asset `id` (made now, from the original — or the public variant when
    /// none is kept — and kept, when asked for the first time).
    /// `create`: whether a variant not made yet may be made now (the caller may write the drive).
    public func mediaVariant(owner: String, id: String, name: String, create: Bool = true) throws -> (asset: MediaAsset, file: DriveFileInfo) {
        let variant = try VariantName(name)
        var asset = try mediaAsset(owner: owner, id: id)
        if asset.variants.contains(where: { $0.name == name }) {
            return (asset, try driveInfo(owner: owner, path: Self.mediaPath(id, name)))
        }
        guard !asset.info.format.isVideo else { throw DriveError.invalid("a video has no image variants") }
        guard variant.size != nil else { throw DriveError.notFound("media \(id) has no \(name) variant") }
        guard create else { throw DriveError.forbidden("media \(id) has no \(name) variant yet: it is made on first request by a caller with drive:write") }
        let source = asset.file.map { _ in Self.mediaPath(id, "original") } ?? Self.mediaPath(id, "public")
        var bytes: [UInt8] = []
        try driveRead(try driveInfo(owner: owner, path: source), reader: owner) { bytes += $0 }
        let lease = blocks.lease()
        defer { lease.release() }
        let (p, v) = try prepareVariant(owner: owner, id: id, name: name, try MediaProcessor.sized(bytes, variant))
        // The decode ran unlocked; the asset is read again under the lock, so a variant made
        // meanwhile by another request stays in it (and one made twice goes in once).
        let made = try mediaAssetLock.withLock { () throws -> Bool in
            asset = try mediaAsset(owner: owner, id: id)
            guard !asset.variants.contains(where: { $0.name == name }) else { return false }
            asset.variants.append(v)
            _ = try driveCommitFiles(owner: owner, [p, try prepareAsset(asset, owner: owner, id: id)])
            return true
        }
        if made { try announce(owner: owner, id: id, [v]) }
        return (asset, try driveInfo(owner: owner, path: Self.mediaPath(id, name)))
    }
}
