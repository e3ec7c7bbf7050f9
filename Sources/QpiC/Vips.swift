import CVips
import Foundation
import Multiformats
import Qdrive

/// What libvips said when it failed: the file is not an image it can read (or make) — or, an
/// internal error, libvips could not be loaded on this machine.
public struct VipsError: Error, CustomStringConvertible, Sendable, KindedError {
    public let description: String
    public var kind: ErrorKind = .invalidInput
    public var code: String? { kind == .invalidInput ? "QDRIVE_INVALID" : nil }
}

/// libvips, loaded and started on first use, once per process (Sources/CVips).
enum Vips {
    static func error(_ what: String) -> VipsError {
        // A copy, cleared as it is taken (the buffer is the process's: another request may be failing too).
        guard let copy = qv_error_copy() else { return VipsError(description: "\(what): libvips failed") }
        defer { qv_free(copy) }
        // The last line is the failure; earlier ones are misses of optional fields (an absent tag).
        let text = String(cString: copy).split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return VipsError(description: "\(what): \(text.isEmpty ? "libvips failed" : text)")
    }

    static func ensure() throws {
        guard qv_init() == 0 else { throw VipsError(description: "libvips did not start: " + String(cString: qv_init_error()), kind: .internal) }
    }
}

/// Bytes libvips reads without copying: kept alive by every image made from them.
final class VipsBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let count: Int
    init(_ bytes: [UInt8]) {
        count = bytes.count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes.count), alignment: 16)
        bytes.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }
    deinit { pointer.deallocate() }
}

/// A libvips image (and the bytes it is read from).
final class VipsImageRef: @unchecked Sendable {
    let image: OpaquePointer
    let source: VipsBytes

    init(_ image: OpaquePointer, _ source: VipsBytes) { (self.image, self.source) = (image, source) }
    deinit { qv_unref(image) }

    /// `random`: for operations that read out of order (turning upright).
    static func load(_ bytes: VipsBytes, random: Bool = false) throws -> VipsImageRef {
        try Vips.ensure()
        guard let i = qv_load(bytes.pointer, bytes.count, random ? 1 : 0) else { throw Vips.error("cannot read the image") }
        return VipsImageRef(i, bytes)
    }

    var width: Int { Int(qv_width(image)) }
    var height: Int { Int(qv_height(image)) }

    func int(_ name: String) -> Int? {
        var v: Int32 = 0
        return qv_int(image, name, &v) == 0 ? Int(v) : nil
    }

    /// Every metadata field's name.
    var fields: [String] {
        guard let list = qv_fields(image) else { return [] }
        defer { qv_strfreev(list) }
        var out: [String] = []
        var i = 0
        while let p = list[i] {
            out.append(String(cString: p))
            i += 1
        }
        return out
    }

    /// A field as text (libvips' rendering: EXIF strings come as "value (description, type)").
    func string(_ name: String) -> String? {
        var out: UnsafeMutablePointer<CChar>?
        guard qv_string(image, name, &out) == 0, let out else { return nil }
        defer { qv_free(out) }
        return String(cString: out)
    }

    var interpretation: String {
        switch qv_interpretation(image) {
        case 0: "srgb"
        case 1: "b-w"
        case 2: "cmyk"
        case 3: "rgb16"
        case 4: "grey16"
        case 5: "scrgb"
        case 6: "lab"
        default: "other"
        }
    }

    /// A copy whose metadata may change.
    func copy() throws -> VipsImageRef {
        guard let c = qv_copy(image) else { throw Vips.error("copy") }
        return VipsImageRef(c, source)
    }

    func upright() throws -> VipsImageRef {
        guard let c = qv_autorot(image) else { throw Vips.error("rotate") }
        return VipsImageRef(c, source)
    }

    /// Removes the field `name` (the EXIF block is rebuilt from the remaining `exif-ifd…` fields on save).
    func remove(_ name: String) { qv_remove(image, name) }

    enum Format: Int32 { case jpeg = 0, png = 1, webp = 2, avif = 3, heic = 4 }

    func save(_ format: Format, quality: Int = 85, strip: Bool) throws -> [UInt8] {
        var target = self
        if strip {
            // Every metadata field goes first, whatever each saver's `strip` does with it.
            target = try copy()
            for f in target.fields where f.hasPrefix("exif-") || f.hasPrefix("xmp-") || f.hasPrefix("iptc-") || f == "orientation" { target.remove(f) }
        }
        var buf: UnsafeMutableRawPointer?
        var len = 0
        guard qv_save(target.image, format.rawValue, Int32(quality), strip ? 1 : 0, &buf, &len) == 0, let buf else { throw Vips.error("encode \(format)") }
        defer { qv_free(buf) }
        return Array(UnsafeRawBufferPointer(start: buf, count: len))
    }

    /// A thumbnail of `bytes` at most `width` × `height` (shrink-on-load, upright).
    static func thumbnail(_ bytes: VipsBytes, width: Int, height: Int) throws -> VipsImageRef {
        try Vips.ensure()
        guard let t = qv_thumbnail(bytes.pointer, bytes.count, Int32(width), Int32(height)) else { throw Vips.error("thumbnail") }
        return VipsImageRef(t, bytes)
    }
}

extension MediaProcessor {
    /// A `width` × `height` JPEG or PNG test image, a gradient or noise (no metadata).
    public static func testImage(width: Int, height: Int, png: Bool = false, noise: Bool = false) throws -> [UInt8] {
        try testImage(width: width, height: height, format: png ? .png : .jpeg, noise: noise)
    }

    /// The mean of every band of every pixel of a picture (0–255 for 8-bit ones).
    public static func average(_ bytes: [UInt8]) throws -> Double {
        try Vips.ensure()
        let source = VipsBytes(bytes)
        guard let i = qv_load(source.pointer, source.count, 0) else { throw Vips.error("load") }
        let image = VipsImageRef(i, source)
        var mean = 0.0
        guard qv_average(image.image, &mean) == 0 else { throw Vips.error("average") }
        return mean
    }

    /// A test picture in any format QpiC writes or libheif encodes here (JPEG, PNG, WebP, AVIF,
    /// HEIC); `transparent`: a fully transparent one (PNG or WebP).
    public static func testImage(width: Int, height: Int, format: MediaFormat, noise: Bool = false, transparent: Bool = false) throws -> [UInt8] {
        try Vips.ensure()
        let f: VipsImageRef.Format
        switch format {
        case .jpeg: f = .jpeg
        case .png: f = .png
        case .webp: f = .webp
        case .avif: f = .avif
        case .heic: f = .heic
        default: throw DriveError.invalid("no test picture in \(format.rawValue)")
        }
        guard let g = transparent ? qv_transparent(Int32(width), Int32(height)) : qv_gradient(Int32(width), Int32(height), noise ? 1 : 0) else {
            throw Vips.error("test image")
        }
        return try VipsImageRef(g, VipsBytes([])).save(f, strip: true)
    }
}
