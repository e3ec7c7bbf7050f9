@preconcurrency import Crypto
import Foundation

/// Qdrive's content encryption: age's STREAM construction (C2SP age, "payload"). The plaintext is
/// cut into segments of `segmentSize` bytes (the last may be shorter; an empty file is one empty
/// segment), each sealed with ChaCha20-Poly1305 under the payload key with the 12-byte nonce
/// `u88be(index) ‖ last`, `last` = 1 on the final segment only. So a segment moved, dropped,
/// repeated or added, a file cut short at a segment border, or one extended past its final
/// segment fails to open. The payload key is HKDF-SHA-256(file key, salt: the file's 16-byte
/// nonce, info: "qdrive/v1 payload"): a file key is never used directly.
public struct SegmentCipher: Sendable {
    public static let tagSize = 16
    public static let minimumSegment = 64 << 10
    public static let maximumSegment = 1 << 20
    public static let defaultSegment = 256 << 10
    public static let algorithm = "chacha20-poly1305-stream"

    public let segmentSize: Int
    let key: SymmetricKey

    public init(fileKey: [UInt8], nonce: [UInt8], segmentSize: Int) throws {
        guard fileKey.count == 32, nonce.count == 16 else { throw DriveError.invalid("a file key is 32 bytes and its nonce 16") }
        guard segmentSize >= Self.minimumSegment, segmentSize <= Self.maximumSegment else {
            throw DriveError.invalid("segmentSize: \(Self.minimumSegment) to \(Self.maximumSegment) bytes")
        }
        self.segmentSize = segmentSize
        key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: fileKey), salt: nonce, info: Array("qdrive/v1 payload".utf8), outputByteCount: 32)
    }

    /// How many segments a plaintext of `size` bytes has (at least one).
    public func segments(_ size: UInt64) -> UInt64 { size == 0 ? 1 : (size + UInt64(segmentSize) - 1) / UInt64(segmentSize) }

    /// The ciphertext's size for a plaintext of `size` bytes.
    public func ciphertextSize(_ size: UInt64) -> UInt64 { size + segments(size) * UInt64(Self.tagSize) }

    /// The plaintext's size for a ciphertext of `size` bytes; nil when no plaintext seals to that
    /// size (a final segment shorter than its tag, an empty one after others, or nothing at all).
    public func plaintextSize(_ size: UInt64) -> UInt64? {
        let sealed = UInt64(segmentSize + Self.tagSize), tag = UInt64(Self.tagSize)
        guard size >= tag else { return nil }
        let count = (size + sealed - 1) / sealed
        let last = size - (count - 1) * sealed
        guard last > tag || (last == tag && count == 1) else { return nil }
        return size - count * tag
    }

    static func nonce(_ index: UInt64, last: Bool) throws -> ChaChaPoly.Nonce {
        var n = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { n[3 + i] = UInt8(truncatingIfNeeded: index >> (8 * UInt64(7 - i))) }
        n[11] = last ? 1 : 0
        return try ChaChaPoly.Nonce(data: n)
    }

    public func seal(_ plaintext: some DataProtocol, index: UInt64, last: Bool) throws -> [UInt8] {
        let box = try ChaChaPoly.seal(plaintext, using: key, nonce: try Self.nonce(index, last: last))
        return Array(box.ciphertext) + Array(box.tag)
    }

    /// Opens segment `index`; `last` must be what the file's size says it is.
    public func open(_ segment: [UInt8], index: UInt64, last: Bool) throws -> [UInt8] {
        try segment.withUnsafeBytes { try open($0, index: index, last: last) }
    }

    /// Opens segment `index` from `segment` (not copied first).
    public func open(_ segment: UnsafeRawBufferPointer, index: UInt64, last: Bool) throws -> [UInt8] {
        guard segment.count >= Self.tagSize, segment.count <= segmentSize + Self.tagSize else {
            throw DriveError.corrupt("segment \(index): \(segment.count) bytes, not a sealed segment")
        }
        do {
            let cut = segment.count - Self.tagSize
            let box = try ChaChaPoly.SealedBox(nonce: try Self.nonce(index, last: last), ciphertext: UnsafeRawBufferPointer(rebasing: segment[..<cut]),
                                               tag: UnsafeRawBufferPointer(rebasing: segment[cut...]))
            return try ChaChaPoly.open(box, using: key).withUnsafeBytes { Array($0) }
        } catch {
            throw DriveError.corrupt("segment \(index) does not open: the file was altered, cut short, reordered or sealed under another key")
        }
    }
}

/// Encrypts a plaintext stream as it is read: a `ByteSource`-shaped reader handing out the
/// ciphertext (each segment sealed once the next byte after it is known, so the last is marked).
public struct EncryptingReader {
    let cipher: SegmentCipher
    var read: (UnsafeMutableRawBufferPointer) throws -> Int
    var pending: [UInt8] = []
    var pendingAt = 0
    var current: [UInt8] = []
    var index: UInt64 = 0
    var done = false
    /// Plaintext bytes read so far.
    public private(set) var plaintextSize: UInt64 = 0

    public init(cipher: SegmentCipher, read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) {
        self.cipher = cipher
        self.read = read
    }

    /// Fills `segment` with up to `segmentSize` bytes; false at the end of the input.
    mutating func fill() throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: cipher.segmentSize)
        var n = 0
        while n < out.count {
            let got = try out.withUnsafeMutableBytes { b in try read(UnsafeMutableRawBufferPointer(rebasing: b[n...])) }
            if got == 0 { break }
            n += got
        }
        out.removeSubrange(n...)
        plaintextSize += UInt64(n)
        return out
    }

    /// The next piece of ciphertext (a whole segment); empty at the end.
    public mutating func nextSegment() throws -> [UInt8] {
        guard !done else { return [] }
        if index == 0 && current.isEmpty { current = try fill() }
        // Full segment: peek at the next one to know whether this is the last.
        let next = current.count == cipher.segmentSize ? try fill() : []
        let last = next.isEmpty
        let sealed = try cipher.seal(current, index: index, last: last)
        index += 1
        current = next
        if last { done = true }
        return sealed
    }

    /// Copies ciphertext into `buffer`; 0 at the end.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if pendingAt == pending.count {
            pending = try nextSegment()
            pendingAt = 0
            if pending.isEmpty { return 0 }
        }
        let n = min(buffer.count, pending.count - pendingAt)
        pending.withUnsafeBytes { src in buffer.baseAddress!.copyMemory(from: src.baseAddress! + pendingAt, byteCount: n) }
        pendingAt += n
        return n
    }
}

/// Cuts ciphertext arriving in pieces of any size into sealed segments (each handed out whole and
/// owned; the last may be shorter).
public struct SegmentSplitter {
    let sealed: Int
    var buffer: [UInt8] = []

    public init(cipher: SegmentCipher) { sealed = cipher.segmentSize + SegmentCipher.tagSize }

    /// Hands out every segment `bytes` completes.
    public mutating func write(_ bytes: [UInt8], _ segment: ([UInt8]) throws -> Void) rethrows {
        var at = 0
        while at < bytes.count {
            if buffer.isEmpty && bytes.count - at >= sealed {
                // A whole segment in one piece: one copy, no buffering.
                try segment(Array(bytes[at..<(at + sealed)]))
                at += sealed
                continue
            }
            if buffer.capacity < sealed { buffer.reserveCapacity(sealed) }
            let n = min(sealed - buffer.count, bytes.count - at)
            buffer += bytes[at..<(at + n)]
            at += n
            if buffer.count == sealed {
                let full = buffer
                buffer = []
                try segment(full)
            }
        }
    }

    /// After the last byte: what is left (a final, shorter segment), if anything.
    public mutating func finish() -> [UInt8]? {
        defer { buffer = [] }
        return buffer.isEmpty ? nil : buffer
    }
}

/// The segments of `[from, from+length)` of a file of `size` bytes, and what each must be: the
/// opener checks a segment's place (the final-segment flag), the trim hands out only the range's
/// bytes, in order, and checks at the end that nothing was missing.
public struct SegmentRange: Sendable {
    public let cipher: SegmentCipher
    public let segments: UInt64
    public let first: UInt64
    /// The last segment the range needs (every segment up to it must open).
    public let lastNeeded: UInt64
    var index: UInt64
    var skip: Int
    var remaining: UInt64

    public init(cipher: SegmentCipher, size: UInt64, from: UInt64, length: UInt64) {
        self.cipher = cipher
        segments = cipher.segments(size)
        let seg = UInt64(cipher.segmentSize)
        first = min(from / seg, segments - 1)
        index = first
        skip = Int(from % seg)
        remaining = length
        lastNeeded = min(length == 0 ? from / seg : (from + length - 1) / seg, segments - 1)
    }

    /// Opens segment `index` (any thread: it reads nothing that changes).
    public func open(_ segment: [UInt8], index: UInt64) throws -> [UInt8] {
        guard index < segments else { throw DriveError.corrupt("the file goes on past its final segment \(segments - 1)") }
        return try cipher.open(segment, index: index, last: index == segments - 1)
    }

    /// Takes the next segment's plaintext (in order) and hands out the range's part of it.
    public mutating func take(_ plain: [UInt8], _ emit: ([UInt8]) throws -> Void) throws {
        index += 1
        let from = min(skip, plain.count)
        skip = 0
        let n = Int(min(UInt64(plain.count - from), remaining))
        remaining -= UInt64(n)
        guard n > 0 else { return }
        try emit(from == 0 && n == plain.count ? plain : Array(plain[from..<(from + n)]))
    }

    /// The segment `take` expects next.
    public var next: UInt64 { index }

    /// After the last segment: nothing may be missing.
    public func finish() throws {
        guard remaining == 0, index > lastNeeded else { throw DriveError.corrupt("the file ends \(remaining) bytes early (cut short)") }
    }
}

/// Decrypts a run of whole segments as their ciphertext arrives, on the caller's thread, handing
/// out the plaintext of `[from, from+length)` only.
public struct DecryptingWriter {
    var splitter: SegmentSplitter
    var range: SegmentRange
    let emit: ([UInt8]) throws -> Void

    /// For plaintext bytes `[from, from+length)` of a file of `size` bytes; the ciphertext given
    /// must start at segment `firstSegment(from)`.
    public init(cipher: SegmentCipher, size: UInt64, from: UInt64, length: UInt64, emit: @escaping ([UInt8]) throws -> Void) {
        splitter = SegmentSplitter(cipher: cipher)
        range = SegmentRange(cipher: cipher, size: size, from: from, length: length)
        self.emit = emit
    }

    /// Where the ciphertext of the segments holding `[from, from+length)` starts, and its length.
    public static func ciphertextRange(_ cipher: SegmentCipher, size: UInt64, from: UInt64, length: UInt64) -> (offset: UInt64, length: UInt64) {
        let seg = UInt64(cipher.segmentSize), sealed = seg + UInt64(SegmentCipher.tagSize)
        let first = min(from / seg, cipher.segments(size) - 1)
        let last = length == 0 ? first : min((from + length - 1) / seg, cipher.segments(size) - 1)
        let end = min((last + 1) * sealed, cipher.ciphertextSize(size))
        return (first * sealed, end - first * sealed)
    }

    public mutating func write(_ bytes: [UInt8]) throws {
        var opened: [[UInt8]] = []
        try splitter.write(bytes) { opened.append(try range.open($0, index: range.next + UInt64(opened.count))) }
        for plain in opened { try range.take(plain, emit) }
    }

    mutating func openOne(_ segment: [UInt8]) throws {
        try range.take(try range.open(segment, index: range.next), emit)
    }

    /// After the last ciphertext byte: opens what is left and checks nothing is missing.
    public mutating func finish() throws {
        if let rest = splitter.finish() { try openOne(rest) } else if range.next <= range.lastNeeded { try openOne([]) }
        try range.finish()
    }
}
