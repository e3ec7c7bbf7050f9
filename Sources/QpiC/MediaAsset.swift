import IPLD
import Multiformats
import Qdrive

/// A media asset (QpiC): what was read from the upload, and where its original and variants are.
///
/// `{type: "qpic.asset", id, profile, file?: Link (the encrypted original's DriveFile; absent when
/// the profile keeps none), format, width, height, duration?, orientation, colorSpace?, exif: {…},
/// gps?: {lat, lon}, codecs, variants: [{name, width, height, format, file: Link (a DriveFile),
/// content: Link (its UnixFS content)}], createdAt}` — kept encrypted in the owner's drive (it holds
/// the original's metadata); the variants are plain files, served by CID like any file.
public struct MediaAsset: Sendable, Equatable {
    public struct Variant: Sendable, Equatable {
        public var name: String
        public var width: Int
        public var height: Int
        public var format: MediaFormat
        public var file: CID
        public var content: CID
        public init(name: String, width: Int, height: Int, format: MediaFormat, file: CID, content: CID) {
            (self.name, self.width, self.height, self.format, self.file, self.content) = (name, width, height, format, file, content)
        }
    }
    public var id: String
    public var owner: String
    public var profile: String
    public var file: CID?
    public var info: MediaInfo
    public var variants: [Variant]
    public var createdAt: UInt64

    public var node: IPLDNode {
        var pairs: [(String, IPLDNode)] = [
            ("type", .string("qpic.asset")), ("id", .string(id)), ("owner", .string(owner)), ("profile", .string(profile)),
            ("format", .string(info.format.rawValue)), ("width", .int(info.width)), ("height", .int(info.height)), ("orientation", .int(info.orientation)),
            ("exif", .map(IPLDMap(uniqueKeysWithValues: info.exif.sorted { $0.key < $1.key }.map { ($0.key, IPLDNode.string($0.value)) }))),
            ("codecs", .list(info.codecs.map { .string($0) })), ("createdAt", .int(createdAt)),
            ("variants", .list(variants.map { v in
                .map(IPLDMap(uniqueKeysWithValues: [("name", .string(v.name)), ("width", .int(v.width)), ("height", .int(v.height)),
                                                    ("format", .string(v.format.rawValue)), ("file", .link(v.file)), ("content", .link(v.content))]))
            })),
        ]
        if let file { pairs.append(("file", .link(file))) }
        if let d = info.duration { pairs.append(("duration", .float(d))) }
        if let c = info.colorSpace { pairs.append(("colorSpace", .string(c))) }
        if let g = info.gps { pairs.append(("gps", .map(IPLDMap(uniqueKeysWithValues: [("lat", .float(g.lat)), ("lon", .float(g.lon))])))) }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    public init(id: String, owner: String, profile: String, file: CID?, info: MediaInfo, variants: [Variant], createdAt: UInt64) {
        (self.id, self.owner, self.profile, self.file, self.info, self.variants, self.createdAt) = (id, owner, profile, file, info, variants, createdAt)
    }

    public init(_ bytes: [UInt8]) throws {
        guard case .map(let m) = try DAGCBOR().decode(bytes), case .string("qpic.asset")? = m["type"] else { throw DriveError.corrupt("not a qpic.asset") }
        func s(_ k: String) -> String? { if case .string(let v)? = m[k] { v } else { nil } }
        func i(_ k: String, _ n: IPLDMap? = nil) -> Int {
            let map = n ?? m
            if case .integer(let v)? = map[k], let n = v.int64 { return Int(clamping: n) }
            return 0
        }
        func f(_ k: String, _ n: IPLDMap) -> Double? {
            switch n[k] {
            case .float(let v)?: return v
            case .integer(let v)?: return v.int64.map(Double.init)
            default: return nil
            }
        }
        func l(_ k: String, _ n: IPLDMap? = nil) -> CID? {
            let map = n ?? m
            if case .link(let c)? = map[k] { return c }
            return nil
        }
        guard let id = s("id"), let owner = s("owner"), let profile = s("profile"), let format = s("format").flatMap(MediaFormat.init(rawValue:)) else {
            throw DriveError.corrupt("a qpic.asset without its id, owner, profile or format")
        }
        var exif: [String: String] = [:]
        if case .map(let e)? = m["exif"] { for entry in e { if case .string(let v) = entry.value { exif[entry.key] = v } } }
        var gps: (Double, Double)?
        if case .map(let g)? = m["gps"], let lat = f("lat", g), let lon = f("lon", g) { gps = (lat, lon) }
        var codecs: [String] = []
        if case .list(let c)? = m["codecs"] { codecs = c.compactMap { if case .string(let v) = $0 { v } else { nil } } }
        var variants: [Variant] = []
        if case .list(let vs)? = m["variants"] {
            for case .map(let v) in vs {
                guard case .string(let name)? = v["name"], case .string(let fmt)? = v["format"], let format = MediaFormat(rawValue: fmt),
                      let file = l("file", v), let content = l("content", v) else { throw DriveError.corrupt("a qpic.asset variant is incomplete") }
                variants.append(Variant(name: name, width: i("width", v), height: i("height", v), format: format, file: file, content: content))
            }
        }
        self.init(id: id, owner: owner, profile: profile, file: l("file"),
                  info: MediaInfo(format: format, width: i("width"), height: i("height"), duration: f("duration", m), orientation: i("orientation"),
                                  colorSpace: s("colorSpace"), exif: exif, gps: gps, codecs: codecs),
                  variants: variants, createdAt: UInt64(clamping: i("createdAt")))
    }
}

