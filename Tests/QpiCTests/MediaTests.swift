import Foundation
import QpiC
import Testing
import TestSupport

/// QpiC through real libvips and exiftool: images tagged by exiftool with GPS, serial numbers,
/// owner and author — the `public` variant read back by exiftool has none of them (and keeps the
/// camera's make), `private` keeps all, `anonymous` none at all; thumbnails have the right size
/// and come out upright; formats are told by content.
@Suite(.serialized) struct MediaTests {
    static func exiftool(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/exiftool")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Tags exiftool reads from `bytes`, by name.
    static func tags(_ bytes: [UInt8], in dir: String) throws -> [String: Any] {
        let f = dir + "/read-\(UUID().uuidString).jpg"
        try Data(bytes).write(to: URL(fileURLWithPath: f))
        let (rc, out) = try exiftool(["-j", "-n", f])
        try #require(rc == 0, "\(out)")
        return try #require((try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])?.first)
    }

    /// A 400 × 200 JPEG tagged with a location, serial numbers, owner, author and orientation 6.
    static func tagged(in dir: String) throws -> [UInt8] {
        let f = dir + "/tagged.jpg"
        try Data(try MediaProcessor.testImage(width: 400, height: 200)).write(to: URL(fileURLWithPath: f))
        let (rc, out) = try exiftool(["-overwrite_original", "-GPSLatitude=51.5", "-GPSLatitudeRef=N", "-GPSLongitude=0.125", "-GPSLongitudeRef=W",
                                      "-SerialNumber=SN-123", "-LensSerialNumber=LS-9", "-OwnerName=Alice", "-Artist=Alice A.", "-Copyright=Alice",
                                      "-Make=Canon", "-Model=EOS", "-Orientation#=6", "-XMP:Creator=Alice", "-IPTC:By-line=Alice", f])
        try #require(rc == 0, "exiftool: \(out)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: f)))
    }

    /// A PNG that declares `width` × `height` and holds a few bytes of image data.
    static func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
        func crc(_ b: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xffff_ffff
            for x in b {
                c ^= UInt32(x)
                for _ in 0..<8 { c = c & 1 == 1 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
            }
            return ~c
        }
        func be(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] { be(UInt32(data.count)) + Array(type.utf8) + data + be(crc(Array(type.utf8) + data)) }
        return [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] + chunk("IHDR", be(width) + be(height) + [8, 2, 0, 0, 0])
            + chunk("IDAT", [0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]) + chunk("IEND", [])
    }

    static let identifying = ["GPSLatitude", "GPSLongitude", "SerialNumber", "LensSerialNumber", "OwnerName", "Artist", "Copyright", "Creator", "By-line"]

    @Test func profilesStripWhatTheySay() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/exiftool") else {
            Issue.record("exiftool (libimage-exiftool-perl) is not installed: make test installs it")
            return
        }
        let dir = TemporaryDirectory()
        let original = try Self.tagged(in: dir.path)
        let before = try Self.tags(original, in: dir.path)
        for t in Self.identifying { #expect(before[t] != nil, "the test image lacks \(t)") }
        let info = try MediaProcessor.analyze(original)
        #expect(info.format == .jpeg && info.width == 400 && info.height == 200 && info.orientation == 6)
        #expect(abs((info.gps?.lat ?? 0) - 51.5) < 1e-6 && abs((info.gps?.lon ?? 0) + 0.125) < 1e-6, "\(String(describing: info.gps))")
        #expect(info.exif["ifd0-Make"]?.contains("Canon") == true)

        let profiles = Dictionary(uniqueKeysWithValues: PrivacyProfile.builtIn.map { ($0.name, $0) })
        let pub = try Self.tags(try MediaProcessor.publicVariant(original, profile: try #require(profiles["public"])).bytes, in: dir.path)
        for t in Self.identifying { #expect(pub[t] == nil, "public kept \(t): \(pub[t]!)") }
        #expect(pub["Make"] as? String == "Canon" && pub["Orientation"] as? Int == 6, "\(pub)")
        let priv = try Self.tags(try MediaProcessor.publicVariant(original, profile: try #require(profiles["private"])).bytes, in: dir.path)
        for t in Self.identifying { #expect(priv[t] != nil, "private lost \(t)") }
        // PNG text chunks (author, comments — anything) do not survive the public profile either.
        let png = dir.path + "/tagged.png"
        try Data(try MediaProcessor.testImage(width: 64, height: 64, png: true)).write(to: URL(fileURLWithPath: png))
        let (prc, pout) = try Self.exiftool(["-overwrite_original", "-PNG:Author=Alice", "-PNG:Comment=meet at the station", png])
        try #require(prc == 0, "\(pout)")
        #expect(try Self.tags(Array(try Data(contentsOf: URL(fileURLWithPath: png))), in: dir.path)["Author"] as? String == "Alice")
        let pngPublic = try MediaProcessor.publicVariant(Array(try Data(contentsOf: URL(fileURLWithPath: png))), profile: try #require(profiles["public"]))
        let pngTags = try Self.tags(pngPublic.bytes, in: dir.path)
        #expect(pngPublic.format == .png && pngTags["Author"] == nil && pngTags["Comment"] == nil, "\(pngTags)")
        let anonymous = try MediaProcessor.publicVariant(original, profile: try #require(profiles["anonymous"]))
        // With its orientation tag gone, the picture itself is turned upright (400 × 200 at 6: 200 × 400).
        #expect(anonymous.width == 200 && anonymous.height == 400, "\(anonymous.width)×\(anonymous.height)")
        let anon = try Self.tags(anonymous.bytes, in: dir.path)
        for t in Self.identifying + ["Make", "Model"] { #expect(anon[t] == nil, "anonymous kept \(t)") }
    }

    /// A configured profile replaces a built-in by name or adds one; it strips exactly its fields.
    @Test func configuredProfiles() throws {
        var c = QpicConfiguration()
        c.profiles = [PrivacyProfile(name: "press", stripAll: false, strip: ["exif-ifd3-*"], keepOriginal: false)]
        c.defaultProfile = "press"
        try c.check()
        #expect(try c.profile(nil).name == "press")
        #expect(try c.profile("public").strip.contains("xmp-data"))
        #expect(throws: (any Error).self) { try c.profile("nope") }
        c.uploadVariants = ["huge"]
        #expect(throws: (any Error).self) { try c.check() }
        c.uploadVariants = ["thumb-64"]
        c.defaultProfile = "gone"
        #expect(throws: (any Error).self) { try c.check() }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/exiftool") else { return }
        let dir = TemporaryDirectory()
        let tags = try Self.tags(try MediaProcessor.publicVariant(try Self.tagged(in: dir.path), profile: c.profiles[0]).bytes, in: dir.path)
        #expect(tags["GPSLatitude"] == nil && tags["Artist"] != nil && tags["SerialNumber"] != nil)
    }

    @Test func thumbnailsAreUprightAndSized() throws {
        let dir = TemporaryDirectory()
        let original = FileManager.default.isExecutableFile(atPath: "/usr/bin/exiftool") ? try Self.tagged(in: dir.path) : try MediaProcessor.testImage(width: 400, height: 200)
        let upright = (try MediaProcessor.analyze(original)).orientation == 6
        for (name, long) in [("thumb-256", 256), ("web-1280", 400), ("thumb-64-webp", 64)] {
            let v = try MediaProcessor.sized(original, try VariantName(name))
            // 400 × 200 turned a quarter: 200 × 400, so the long side is the height.
            let (w, h) = upright ? (long / 2, long) : (long, long / 2)
            #expect(v.width == w && v.height == h, "\(name): \(v.width)×\(v.height)")
            #expect(MediaFormat.detect(v.bytes) == (name.hasSuffix("webp") ? .webp : .jpeg))
            let again = try MediaProcessor.analyze(v.bytes)
            // No metadata of the original (the WebP saver writes a bare EXIF block of its own:
            // resolution, dimensions).
            let kept = again.exif.keys.filter { k in ["GPS", "Serial", "Artist", "Owner", "Make", "Model", "Copyright"].contains { k.contains($0) } }
            #expect(again.width == w && again.orientation == 1 && kept.isEmpty, "\(again.exif)")
        }
        for bad in ["thumb", "thumb-0", "big-256", "web-99999", "", "thumb-0256", "web-016", "thumb-256-webp-webp", "web-8193",
                    "thumb-15", "Thumb-256", "thumb-٢٥٦", "thumb--webp", "-webp", "web-+256", "thumb-256 "] {
            #expect(throws: (any Error).self, "\(bad)") { _ = try VariantName(bad) }
        }
        for (good, size, webp) in [("thumb-16", 16, false), ("web-8192-webp", 8192, true), ("thumb-256", 256, false)] {
            let v = try VariantName(good)
            #expect(v.size == size && v.webp == webp && v.description == good)
        }
        #expect(try VariantName("public").size == nil)
    }

    @Test func formatsAreToldByContent() throws {
        #expect(MediaFormat.detect(try MediaProcessor.testImage(width: 10, height: 10, png: true)) == .png)
        #expect(MediaFormat.detect(Array("GIF89a....".utf8)) == .gif)
        #expect(MediaFormat.detect([0, 0, 0, 0x18] + Array("ftypheic".utf8) + [0, 0, 0, 0]) == .heic)
        #expect(MediaFormat.detect([0, 0, 0, 0x18] + Array("ftypqt  ".utf8) + [0, 0, 0, 0]) == .mov)
        #expect(MediaFormat.detect(Array("not an image at all".utf8)) == nil)
        #expect(throws: (any Error).self) { _ = try MediaProcessor.analyze(Array("<html>".utf8)) }
        // A small PNG declaring 20000 × 20000 pixels (a decompression bomb) is refused before decoding.
        do {
            _ = try MediaProcessor.analyze(Self.pngHeader(width: 20000, height: 20000))
            Issue.record("a 400-megapixel PNG was read")
        } catch {
            #expect("\(error)".contains("megapixels"), "\(error)")
        }
        // Hostile containers: an empty box at the end, a 64-bit size past the end — described or
        // refused, never a crash.
        let ftyp: [UInt8] = [0, 0, 0, 0x14] + Array("ftypisom".utf8) + [0, 0, 0, 0] + Array("isom".utf8)
        for hostile in [ftyp + [0, 0, 0, 8] + Array("mvhd".utf8), ftyp + [0, 0, 0, 1] + Array("free".utf8) + [UInt8](repeating: 0xff, count: 8),
                        ftyp + [0, 0, 0, 8] + Array("moov".utf8) + [0, 0, 0, 8] + Array("tkhd".utf8)] {
            _ = try? MediaProcessor.analyze(hostile)
        }
        // A truncated picture is refused, not turned into variants of a broken image.
        let whole = try MediaProcessor.testImage(width: 600, height: 400, noise: true)
        let profile = try #require(PrivacyProfile.builtIn.first)
        #expect(throws: (any Error).self) { _ = try MediaProcessor.publicVariant(Array(whole.prefix(2000)), profile: profile) }
        // A corrupt JPEG (right magic, nothing after) is an error, not a crash.
        #expect(throws: (any Error).self) { _ = try MediaProcessor.analyze([0xff, 0xd8, 0xff, 0xe0, 0, 0]) }
    }

    /// HEIC and AVIF (libheif, as libvips reads them here): told by content, measured, and made
    /// into variants of the right size like any picture.
    @Test func heicAndAVIFAreReadAndResized() throws {
        for format in [MediaFormat.avif, .heic] {
            let bytes = try MediaProcessor.testImage(width: 640, height: 480, format: format)
            #expect(MediaFormat.detect(bytes) == format)
            let info = try MediaProcessor.analyze(bytes)
            #expect(info.format == format && info.width == 640 && info.height == 480, "\(format): \(info.width)×\(info.height)")
            let thumb = try MediaProcessor.sized(bytes, try VariantName("thumb-256"))
            #expect(thumb.width == 256 && thumb.height == 192 && MediaFormat.detect(thumb.bytes) == .jpeg, "\(format)")
        }
    }

    /// A transparent picture's JPEG variants are on white (JPEG has no alpha); its WebP ones keep
    /// the alpha.
    @Test func transparencyBecomesWhiteInJPEG() throws {
        for format in [MediaFormat.png, .webp] {
            let clear = try MediaProcessor.testImage(width: 200, height: 100, format: format, transparent: true)
            let jpeg = try MediaProcessor.sized(clear, try VariantName("thumb-64"))
            let jpegMean = try MediaProcessor.average(jpeg.bytes)
            #expect(MediaFormat.detect(jpeg.bytes) == .jpeg && jpegMean > 250, "\(format): \(jpegMean)")
            let webp = try MediaProcessor.sized(clear, try VariantName("thumb-64-webp"))
            // Four bands, all zero: transparent black, kept.
            let webpMean = try MediaProcessor.average(webp.bytes)
            #expect(MediaFormat.detect(webp.bytes) == .webp && webpMean < 5, "\(format): \(webpMean)")
        }
    }

    /// An EBML element: its ID's bytes (marker kept), its size as an 8-byte vint (or unknown).
    static func ebml(_ id: [UInt8], _ body: [UInt8], unknownSize: Bool = false) -> [UInt8] {
        let n = UInt64(body.count)
        let size: [UInt8] = unknownSize ? [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : [0x01] + (0..<7).map { UInt8(truncatingIfNeeded: n >> (8 * (6 - UInt64($0)))) }
        return id + size + body
    }

    /// An ISO BMFF box.
    static func box(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count + 8)
        return [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: n >> $0) } + Array(type.utf8) + body
    }

    /// Video: container metadata only, from containers built here element by element after
    /// their specifications (Matroska, RFC 9559; ISO/IEC 14496-12): duration, dimensions and
    /// codecs, no decoding; cut anywhere, they are described or refused, never a crash.
    @Test func videoContainersAreDescribed() throws {
        func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(n - 1 - $0))) } }
        // WebM: 2.5 s at the default 1 ms timestamp scale (Duration a float64 of 2500.0), a VP9
        // track of 320 × 240, an Opus track, then a Cluster of unknown size (a live stream).
        let header = Self.ebml([0x1a, 0x45, 0xdf, 0xa3], Self.ebml([0x42, 0x82], Array("webm".utf8)))
        let infoElement = Self.ebml([0x15, 0x49, 0xa9, 0x66], Self.ebml([0x2a, 0xd7, 0xb1], be(1_000_000, 3)) + Self.ebml([0x44, 0x89], be(2500.0.bitPattern, 8)))
        let video = Self.ebml([0xae], Self.ebml([0x83], [1]) + Self.ebml([0x86], Array("V_VP9".utf8)) + Self.ebml([0xe0], Self.ebml([0xb0], be(320, 2)) + Self.ebml([0xba], be(240, 2))))
        let audio = Self.ebml([0xae], Self.ebml([0x83], [2]) + Self.ebml([0x86], Array("A_OPUS".utf8)))
        let cluster = Self.ebml([0x1f, 0x43, 0xb6, 0x75], [0xe7, 0x81, 0x00], unknownSize: true)
        let webm = header + Self.ebml([0x18, 0x53, 0x80, 0x67], infoElement + Self.ebml([0x16, 0x54, 0xae, 0x6b], video + audio) + cluster, unknownSize: true)
        // MP4: mvhd (version 0: timescale 600, duration 1500 → 2.5 s), a track of 320 × 240 (16.16
        // fixed point) whose sample description is avc1.
        let mvhd = Self.box("mvhd", [0, 0, 0, 0] + be(0, 4) + be(0, 4) + be(600, 4) + be(1500, 4) + [UInt8](repeating: 0, count: 80))
        let tkhd = Self.box("tkhd", [0, 0, 0, 3] + [UInt8](repeating: 0, count: 72) + be(320 << 16, 4) + be(240 << 16, 4))
        let stsd = Self.box("stsd", [0, 0, 0, 0] + be(1, 4) + be(16, 4) + Array("avc1".utf8) + [UInt8](repeating: 0, count: 8))
        let trak = Self.box("trak", tkhd + Self.box("mdia", Self.box("minf", Self.box("stbl", stsd))))
        let mp4 = Self.box("ftyp", Array("isom".utf8) + be(0, 4) + Array("isomavc1".utf8)) + Self.box("moov", mvhd + trak)
        for (format, bytes, codecs) in [(MediaFormat.webm, webm, ["V_VP9", "A_OPUS"]), (.mp4, mp4, ["avc1"])] {
            #expect(MediaFormat.detect(bytes) == format)
            let info = try MediaProcessor.analyze(bytes)
            #expect(info.format == format && info.width == 320 && info.height == 240 && info.duration == 2.5 && info.codecs == codecs,
                    "\(format): \(info.width)×\(info.height) \(String(describing: info.duration)) \(info.codecs)")
            for cut in stride(from: 1, to: bytes.count, by: 3) { _ = try? MediaProcessor.analyze(Array(bytes.prefix(cut))) }
        }
    }
}
