import Foundation
import IPLD
import Multiformats
import Qdrive

/// What a file is, by its first bytes (never by its name).
public enum MediaFormat: String, Sendable, Codable, CaseIterable {
    case jpeg, png, gif, webp, heic, avif, mp4, mov, webm

    public var isVideo: Bool { [.mp4, .mov, .webm].contains(self) }

    public var mediaType: String {
        switch self {
        case .jpeg: "image/jpeg"
        case .png: "image/png"
        case .gif: "image/gif"
        case .webp: "image/webp"
        case .heic: "image/heic"
        case .avif: "image/avif"
        case .mp4: "video/mp4"
        case .mov: "video/quicktime"
        case .webm: "video/webm"
        }
    }

    public static func detect(_ b: [UInt8]) -> MediaFormat? {
        func at(_ i: Int, _ s: String) -> Bool { let u = Array(s.utf8); return b.count >= i + u.count && Array(b[i..<(i + u.count)]) == u }
        if b.count >= 3, b[0] == 0xff, b[1] == 0xd8, b[2] == 0xff { return .jpeg }
        if b.starts(with: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) { return .png }
        if at(0, "GIF87a") || at(0, "GIF89a") { return .gif }
        if at(0, "RIFF"), at(8, "WEBP") { return .webp }
        if b.starts(with: [0x1a, 0x45, 0xdf, 0xa3]) { return .webm }
        if at(4, "ftyp"), b.count >= 12 {
            let brand = String(decoding: b[8..<12], as: UTF8.self)
            switch brand {
            case "heic", "heix", "mif1", "msf1", "hevc", "heim", "heis": return .heic
            case "avif", "avis": return .avif
            case "qt  ": return .mov
            default: return .mp4
            }
        }
        return nil
    }
}

/// A privacy profile (Qmask): what of an image's metadata the stored public variant keeps, and
/// whether the original is kept (encrypted).
public struct PrivacyProfile: Sendable, Codable, Equatable {
    public var name: String
    /// Strip every metadata block (EXIF, XMP, IPTC, ICC).
    public var stripAll: Bool
    /// libvips field names (or prefixes ending in `*`) removed from the public variant.
    public var strip: [String]
    /// Keep the original, encrypted in the owner's drive.
    public var keepOriginal: Bool

    public init(name: String, stripAll: Bool, strip: [String], keepOriginal: Bool) {
        (self.name, self.stripAll, self.strip, self.keepOriginal) = (name, stripAll, strip, keepOriginal)
    }

    /// `public`: no location (the GPS IFD), no serial numbers, owner or author, no maker notes,
    /// no XMP or IPTC blocks (they carry the same); `private`: everything kept; `anonymous`:
    /// no metadata at all, and no original kept.
    public static let builtIn: [PrivacyProfile] = [
        PrivacyProfile(name: "public", stripAll: false, strip: [
            "exif-ifd3-*", "exif-ifd2-BodySerialNumber", "exif-ifd2-CameraSerialNumber", "exif-ifd2-LensSerialNumber", "exif-ifd0-CameraSerialNumber",
            "exif-ifd2-CameraOwnerName", "exif-ifd0-Artist", "exif-ifd0-Copyright", "exif-ifd0-XPAuthor", "exif-ifd2-MakerNote", "exif-ifd0-ImageUniqueID",
            "exif-ifd2-ImageUniqueID", "exif-ifd0-ImageDescription", "exif-ifd2-UserComment", "exif-ifd0-XPComment", "exif-ifd0-XPTitle",
            "exif-ifd0-XPSubject", "exif-ifd0-XPKeywords", "exif-ifd0-HostComputer", "exif-ifd0-DocumentName",
            // XMP and IPTC carry author and place too; PNG text chunks anything (even a whole EXIF
            // block as hex); the EXIF thumbnail is a small copy of the original as it was.
            "xmp-data", "iptc-data", "png-comment-*", "jpeg-thumbnail-data",
        ], keepOriginal: true),
        PrivacyProfile(name: "private", stripAll: false, strip: [], keepOriginal: true),
        PrivacyProfile(name: "anonymous", stripAll: true, strip: [], keepOriginal: false),
    ]

    func removes(_ field: String) -> Bool {
        strip.contains { $0.hasSuffix("*") ? field.hasPrefix(String($0.dropLast())) : $0 == field }
    }
}

/// A variant's name: `public` (full size, after the profile), or `thumb-N` / `web-N` (the longest
/// side at most N, 16 to 8192), with `-webp` for WebP (else JPEG).
public struct VariantName: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public let size: Int?
    public let webp: Bool

    public init(_ text: String) throws {
        description = text
        if text == "public" { (size, webp) = (nil, false); return }
        // `(thumb|web)-N(-webp)?`, N of 2 to 4 ASCII digits without a leading zero.
        var t = Substring(text)
        let w = t.hasSuffix("-webp")
        if w { t = t.dropLast(5) }
        if t.hasPrefix("thumb-") { t = t.dropFirst(6) } else if t.hasPrefix("web-") { t = t.dropFirst(4) } else { t = "" }
        guard (2...4).contains(t.utf8.count), t.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              t.utf8.first != UInt8(ascii: "0"), let n = Int(t), (16...8192).contains(n) else {
            throw DriveError.invalid("variant \(text.prefix(40)): public, thumb-N or web-N (N 16 to 8192), optionally -webp")
        }
        (size, webp) = (n, w)
    }
}

/// What QpiC reads from a file.
public struct MediaInfo: Sendable, Equatable {
    public var format: MediaFormat
    public var width: Int
    public var height: Int
    /// Seconds (video).
    public var duration: Double?
    /// EXIF orientation 1–8 (1: upright).
    public var orientation: Int
    public var colorSpace: String?
    /// EXIF fields (libvips' names without `exif-`, e.g. `ifd0-Make`) → value.
    public var exif: [String: String]
    public var gps: (lat: Double, lon: Double)?
    /// Video: codecs of the tracks (e.g. avc1, mp4a).
    public var codecs: [String]

    public init(format: MediaFormat, width: Int, height: Int, duration: Double?, orientation: Int, colorSpace: String?, exif: [String: String],
                gps: (lat: Double, lon: Double)?, codecs: [String]) {
        (self.format, self.width, self.height, self.duration, self.orientation) = (format, width, height, duration, orientation)
        (self.colorSpace, self.exif, self.gps, self.codecs) = (colorSpace, exif, gps, codecs)
    }

    public static func == (a: MediaInfo, b: MediaInfo) -> Bool {
        a.format == b.format && a.width == b.width && a.height == b.height && a.orientation == b.orientation && a.exif == b.exif
            && a.gps?.lat == b.gps?.lat && a.gps?.lon == b.gps?.lon && a.duration == b.duration && a.codecs == b.codecs
    }
}

/// Reads media and makes its variants (libvips for images; container boxes for video).
public enum MediaProcessor {
    /// The most pixels an image may have: a small file can declare a huge image (a decompression
    /// bomb), and the public variant is decoded whole.
    public static let maximumPixels = 100_000_000

    public static func analyze(_ bytes: [UInt8]) throws -> MediaInfo {
        guard let format = MediaFormat.detect(bytes) else { throw DriveError.invalid("not a media type QpiC reads (JPEG, PNG, GIF, WebP, HEIC, AVIF, MP4, MOV, WebM)") }
        if format.isVideo { return try ContainerInfo.read(bytes, format: format) }
        let image = try VipsImageRef.load(VipsBytes(bytes))
        guard image.width > 0, image.height > 0, image.width * image.height <= maximumPixels else {
            throw DriveError.invalid("the image is \(image.width)×\(image.height): at most \(maximumPixels / 1_000_000) megapixels")
        }
        var exif: [String: String] = [:]
        for f in image.fields where f.hasPrefix("exif-ifd") {
            exif[String(f.dropFirst(5))] = image.string(f).map(Self.value)
        }
        let gps = Self.coordinate(image, "Latitude").flatMap { lat in Self.coordinate(image, "Longitude").map { (lat, $0) } }
        return MediaInfo(format: format, width: image.width, height: image.height, duration: nil, orientation: image.int("orientation") ?? 1,
                         colorSpace: image.interpretation, exif: exif, gps: gps, codecs: [])
    }

    /// The value part of libvips' rendering of an EXIF field ("51/1 30/1 26/1 (51, 30, 26, Rational, …)" → "51/1 30/1 26/1").
    static func value(_ s: String) -> String {
        guard let open = s.range(of: " (", options: .backwards) else { return s }
        return String(s[..<open.lowerBound])
    }

    /// A GPS coordinate in degrees from `exif-ifd3-GPS<axis>` and its reference (S and W negative).
    static func coordinate(_ image: VipsImageRef, _ axis: String) -> Double? {
        guard let raw = image.string("exif-ifd3-GPS" + axis) else { return nil }
        let parts = value(raw).split(separator: " ").compactMap { p -> Double? in
            let f = p.split(separator: "/")
            guard f.count == 2, let n = Double(f[0]), let d = Double(f[1]), d != 0 else { return Double(p) }
            return n / d
        }
        guard parts.count == 3 else { return nil }
        var deg = parts[0] + parts[1] / 60 + parts[2] / 3600
        if let ref = image.string("exif-ifd3-GPS" + axis + "Ref").map(value)?.trimmingCharacters(in: .whitespaces), ref.hasPrefix("S") || ref.hasPrefix("W") { deg = -deg }
        return (deg * 1e7).rounded() / 1e7
    }

    /// The full-size variant after `profile`: re-encoded (JPEG for JPEG, PNG for PNG, else JPEG)
    /// without what the profile removes.
    public static func publicVariant(_ bytes: [UInt8], profile: PrivacyProfile) throws -> (bytes: [UInt8], format: MediaFormat, width: Int, height: Int) {
        guard let format = MediaFormat.detect(bytes), !format.isVideo else { throw DriveError.invalid("no public variant of a video (QpiC does not transcode video)") }
        // A profile that drops the orientation tag turns the pixels upright first.
        let loaded = try VipsImageRef.load(VipsBytes(bytes), random: profile.stripAll)
        guard loaded.width * loaded.height <= maximumPixels else { throw DriveError.invalid("the image is over \(maximumPixels / 1_000_000) megapixels") }
        let image = try (profile.stripAll ? loaded.upright() : loaded).copy()
        for f in image.fields where profile.removes(f) { image.remove(f) }
        let out: VipsImageRef.Format = format == .png ? .png : .jpeg
        return (try image.save(out, quality: 90, strip: profile.stripAll), out == .png ? .png : .jpeg, image.width, image.height)
    }

    /// A `thumb-N` / `web-N` variant: shrunk while loading, upright, with no metadata.
    public static func sized(_ bytes: [UInt8], _ name: VariantName) throws -> (bytes: [UInt8], format: MediaFormat, width: Int, height: Int) {
        guard let n = name.size else { throw DriveError.invalid("\(name) is not a sized variant") }
        guard let format = MediaFormat.detect(bytes), !format.isVideo else { throw DriveError.invalid("no image variants of a video") }
        let header = try VipsImageRef.load(VipsBytes(bytes))
        guard header.width * header.height <= maximumPixels else { throw DriveError.invalid("the image is over \(maximumPixels / 1_000_000) megapixels") }
        let t = try VipsImageRef.thumbnail(VipsBytes(bytes), width: n, height: n)
        return (try t.save(name.webp ? .webp : .jpeg, quality: 82, strip: true), name.webp ? .webp : .jpeg, t.width, t.height)
    }
}

/// Duration, dimensions and codecs from an MP4/MOV container (ISO BMFF boxes: mvhd, tkhd, stsd)
/// or a WebM one (Matroska's EBML elements: Info's TimestampScale and Duration, each TrackEntry's
/// CodecID and Video's PixelWidth/PixelHeight). No frame is decoded.
enum ContainerInfo {
    static func read(_ b: [UInt8], format: MediaFormat) throws -> MediaInfo {
        var info = MediaInfo(format: format, width: 0, height: 0, duration: nil, orientation: 1, colorSpace: nil, exif: [:], gps: nil, codecs: [])
        guard format != .webm else {
            readWebM(b, into: &info)
            return info
        }
        func walk(_ from: Int, _ to: Int, depth: Int) {
            // Every read stays inside the box being read (`end`), every size inside its parent.
            func u32(_ i: Int, _ end: Int) -> UInt64? { i >= 0 && i + 4 <= end ? b[i..<(i + 4)].reduce(0) { $0 << 8 | UInt64($1) } : nil }
            func u64(_ i: Int, _ end: Int) -> UInt64? { guard let hi = u32(i, end), let lo = u32(i + 4, end) else { return nil }; return hi << 32 | lo }
            var i = from
            while to - i >= 8, depth < 8 {
                guard var size = u32(i, to).map({ Int(clamping: $0) }) else { return }
                let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
                var header = 8
                if size == 1 {
                    guard let large = u64(i + 8, to) else { return }
                    size = Int(clamping: large)
                    header = 16
                } else if size == 0 {
                    size = to - i
                }
                guard size >= header, size <= to - i else { return }
                let (body, end) = (i + header, i + size)
                switch type {
                case "moov", "trak", "mdia", "minf", "stbl": walk(body, end, depth: depth + 1)
                case "mvhd" where body < end:
                    let long = b[body] == 1
                    if let scale = u32(body + (long ? 20 : 12), end), let dur = long ? u64(body + 24, end) : u32(body + 16, end), scale > 0 {
                        info.duration = (Double(dur) / Double(scale) * 1000).rounded() / 1000
                    }
                case "tkhd" where body < end:
                    let off = b[body] == 1 ? body + 88 : body + 76
                    if let w = u32(off, end), let h = u32(off + 4, end), w >> 16 > 0, h >> 16 > 0, info.width == 0 { (info.width, info.height) = (Int(w >> 16), Int(h >> 16)) }
                case "stsd":
                    if end - body >= 16 { info.codecs.append(String(decoding: b[(body + 12)..<(body + 16)], as: UTF8.self)) }
                default: break
                }
                i = end
            }
        }
        walk(0, b.count, depth: 0)
        return info
    }

    /// Matroska/WebM (RFC 9559): element IDs and sizes are EBML variable-length integers. Every
    /// read stays inside the element being read; an unknown size (a live stream's Segment) runs to
    /// its parent's end; Clusters (the frames) are skipped whole.
    static func readWebM(_ b: [UInt8], into info: inout MediaInfo) {
        /// A variable-length integer at `i`: its value (the length marker kept for IDs, removed
        /// for sizes), its length; nil past `end` or when malformed. `unknown`: all value bits set.
        func vint(_ i: Int, _ end: Int, id: Bool) -> (value: UInt64, length: Int, unknown: Bool)? {
            guard i < end, b[i] != 0 else { return nil }
            let length = b[i].leadingZeroBitCount + 1
            guard length <= (id ? 4 : 8), i + length <= end else { return nil }
            var v = UInt64(id ? b[i] : b[i] & (0xff >> length))
            for k in 1..<length { v = v << 8 | UInt64(b[i + k]) }
            let unknown = !id && v == (UInt64(1) << (7 * length)) - 1
            return (v, length, unknown)
        }
        func uint(_ from: Int, _ to: Int) -> UInt64? { to - from >= 1 && to - from <= 8 ? b[from..<to].reduce(0) { $0 << 8 | UInt64($1) } : nil }
        func float(_ from: Int, _ to: Int) -> Double? {
            switch to - from {
            case 4: return uint(from, to).map { Double(Float(bitPattern: UInt32($0))) }
            case 8: return uint(from, to).map { Double(bitPattern: $0) }
            default: return nil
            }
        }
        var scale: UInt64 = 1_000_000  // ns per timestamp unit (the default)
        var duration: Double?
        func walk(_ from: Int, _ to: Int, depth: Int) {
            var i = from
            while i < to, depth < 8 {
                guard let id = vint(i, to, id: true), let size = vint(i + id.length, to, id: false) else { return }
                let body = i + id.length + size.length
                let end = size.unknown ? to : body + Int(clamping: size.value)
                guard end <= to, end >= body else { return }
                switch id.value {
                case 0x1853_8067, 0x1549_A966, 0x1654_AE6B, 0xAE, 0xE0: walk(body, end, depth: depth + 1)  // Segment, Info, Tracks, TrackEntry, Video
                case 0x2AD7B1: if let v = uint(body, end), v > 0 { scale = v }  // TimestampScale
                case 0x4489: duration = float(body, end)  // Duration
                case 0x86: info.codecs.append(String(decoding: b[body..<min(end, body + 32)], as: UTF8.self))  // CodecID
                case 0xB0: if info.width == 0, let w = uint(body, end), w > 0, w < 1 << 20 { info.width = Int(w) }  // PixelWidth
                case 0xBA: if info.height == 0, let h = uint(body, end), h > 0, h < 1 << 20 { info.height = Int(h) }  // PixelHeight
                case 0x1F43_B675: if size.unknown { return }  // a Cluster of unknown size: frames to the end
                default: break
                }
                i = end
            }
        }
        walk(0, b.count, depth: 0)
        if let d = duration, d.isFinite, d >= 0 { info.duration = (d * Double(scale) / 1e9 * 1000).rounded() / 1000 }
    }
}
