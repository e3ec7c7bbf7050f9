import Multiformats
import CAR
#if canImport(Glibc)
import Glibc
#endif

/// Reads a `multipart/form-data` body part by part from any `ByteSource`,
/// without holding a whole part in memory: after `nextPart()` returns a part's
/// headers, the reader itself is a `ByteSource` of that part's body, ending at
/// the next boundary. Kubo's RPC clients send files this way.
public final class MultipartReader<Source: ByteSource>: ByteSource {
    private var source: Source
    private let delimiter: [UInt8]  // "\r\n--boundary"
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private var inBody = false
    private var finished = false
    private var started = false
    /// Header bytes allowed per part.
    private let maximumHeaderBytes = 16 << 10
    /// Reused for every read from the source.
    private var scratch: [UInt8]

    /// A reader of `source`; `readSize` is how much it asks the source for at a time
    /// (small for a body already in memory, 64 KiB for an upload).
    public init(_ source: Source, boundary: String, readSize: Int = 64 << 10) {
        self.source = source
        delimiter = Array("\r\n--\(boundary)".utf8)
        scratch = [UInt8](repeating: 0, count: max(readSize, 4096))
    }

    /// The boundary parameter of a `multipart/…` content type.
    public static func boundary(of contentType: String) -> String? {
        guard contentType.lowercased().hasPrefix("multipart/") else { return nil }
        for param in contentType.split(separator: ";").dropFirst() {
            let kv = param.split(separator: "=", maxSplits: 1).map { $0.trimmingOWS }
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                var v = kv[1]
                if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = v.dropFirst().dropLast() }
                return v.isEmpty ? nil : String(v)
            }
        }
        return nil
    }

    private var available: Int { buffer.count - start }

    /// Ensures `n` bytes are buffered unless the source ends; returns how many are.
    private func fill(_ n: Int) throws -> Int {
        if available >= n || eof { return available }
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        while available < n && !eof {
            let got = try scratch.withUnsafeMutableBytes { try source.read(into: $0) }
            if got == 0 { eof = true } else { buffer.append(contentsOf: scratch[0..<got]) }
        }
        return available
    }

    /// Index of `needle` in the buffered bytes at or after `from`, if present: memchr finds each
    /// candidate first byte, so a body is scanned at memory speed.
    private func find(_ needle: [UInt8], from: Int) -> Int? {
        guard available >= needle.count else { return nil }
        return buffer.withUnsafeBytes { b -> Int? in
            let base = b.baseAddress!
            var i = start + from
            let last = b.count - needle.count
            while i <= last {
                guard let hit = memchr(base + i, Int32(needle[0]), last - i + 1) else { return nil }
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + at, needle, needle.count) == 0 { return at - start }
                i = at + 1
            }
            return nil
        }
    }

    /// Moves to the next part and returns its headers (names lowercased), or nil after the last part.
    public func nextPart() throws -> [String: String]? {
        if finished { return nil }
        if inBody {
            // Skip what is left of the current body.
            while try bodyBytes(maximum: .max) != nil {}
        }
        if !started {
            // The first boundary has no leading CRLF; match it with one prepended.
            started = true
            buffer = [13, 10] + buffer
            _ = try fill(delimiter.count)
            var searched = 0
            while true {
                if let i = find(delimiter, from: searched) { start += i + delimiter.count; break }
                guard !eof else { throw MultipartMalformed(description: "no multipart boundary in the body") }
                searched = max(0, available - delimiter.count)
                _ = try fill(available + (64 << 10))
            }
        }
        // After a boundary: "--" ends the body; otherwise CRLF and headers.
        guard try fill(2) >= 2 else { throw MultipartMalformed(description: "multipart body ends after a boundary") }
        if buffer[start] == 45 && buffer[start + 1] == 45 {
            finished = true
            return nil
        }
        // Tolerate transport padding (spaces/tabs) before the CRLF.
        while try fill(1) >= 1, buffer[start] == 32 || buffer[start] == 9 { start += 1 }
        guard try fill(2) >= 2, buffer[start] == 13, buffer[start + 1] == 10 else {
            throw MultipartMalformed(description: "malformed multipart boundary line")
        }
        start += 2
        var headerEnd: Int?
        while headerEnd == nil {
            if available >= 2 && buffer[start] == 13 && buffer[start + 1] == 10 { headerEnd = 0; break }
            headerEnd = find([13, 10, 13, 10], from: 0)
            if headerEnd != nil { break }
            guard available < maximumHeaderBytes else { throw MultipartMalformed(description: "multipart part headers too long") }
            guard !eof else { throw MultipartMalformed(description: "multipart body ends inside part headers") }
            _ = try fill(available + 4096)
        }
        let end = headerEnd!
        let text = String(decoding: buffer[start..<start + end], as: UTF8.self)
        start += end + (end == 0 ? 2 : 4)
        var headers: [String: String] = [:]
        for line in text.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].trimmingOWS.lowercased()] = String(line[line.index(after: colon)...].trimmingOWS)
        }
        inBody = true
        return headers
    }

    /// The next bytes of the current part's body, at most `maximum`, as a range of `buffer`
    /// (valid until the buffer is next filled) that counts as read; nil at the body's end.
    private func bodyBytes(maximum: Int) throws -> Range<Int>? {
        guard inBody else { return nil }
        _ = try fill(delimiter.count + 1)
        let n: Int
        if let i = find(delimiter, from: 0) {
            if i == 0 {
                start += delimiter.count
                inBody = false
                return nil
            }
            n = min(i, maximum)
        } else {
            guard !eof else { throw MultipartMalformed(description: "multipart body ends inside a part (truncated upload)") }
            // Everything but a possible partial delimiter at the end is body: at least 2 bytes,
            // as the fill above buffered a delimiter and one more (the source has not ended).
            n = min(available - (delimiter.count - 1), maximum)
        }
        defer { start += n }
        return start..<start + n
    }

    /// Reads the current part's body; 0 at its end.
    public func read(into out: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let range = try bodyBytes(maximum: out.count) else { return 0 }
        buffer.withUnsafeBytes { b in out.baseAddress!.copyMemory(from: b.baseAddress! + range.lowerBound, byteCount: range.count) }
        return range.count
    }

    /// The rest of the current part's body, refusing more than `limit` bytes.
    public func readBody(limit: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        let past = limit < Int.max ? limit + 1 : limit  // one byte past the limit tells it was passed
        while let range = try bodyBytes(maximum: past - out.count) {
            guard out.count + range.count <= limit else { throw BodyTooLarge(limit: limit) }
            out.append(contentsOf: buffer[range])
        }
        return out
    }
}

/// Why a body is not valid multipart.
public struct MultipartMalformed: KindedError, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
    public var kind: ErrorKind { .invalidInput }
}

/// A request body (or part) above the configured limit.
public struct BodyTooLarge: KindedError, CustomStringConvertible {
    public let limit: Int
    public init(limit: Int) { self.limit = limit }
    public var kind: ErrorKind { .tooLarge }
    public var description: String { "request body exceeds the \(limit)-byte limit" }
}
