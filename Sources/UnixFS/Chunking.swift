import CAR

/// How a file is cut into chunks: Kubo's three splitters, with the same parameters and the
/// same cut points, so the CIDs match `ipfs add --chunker=…`.
public enum Chunking: Sendable, Equatable {
    /// Fixed-size chunks (`size-N`); every chunk full but the last.
    case fixed(Int)
    /// Rabin fingerprints (`rabin`, `rabin-AVG`, `rabin-MIN-AVG-MAX`): Kubo's polynomial, a
    /// 16-byte window, a cut where the fingerprint's low ⌊log2 avg⌋ bits are zero.
    case rabin(min: Int, average: Int, max: Int)
    /// Buzhash (`buzhash`): a 32-byte window, chunks of 128 KiB to 512 KiB, a cut where the
    /// hash's low 17 bits are zero.
    case buzhash

    /// Kubo's default, `size-262144`.
    public static let `default` = Chunking.fixed(262_144)
    /// The largest chunk Kubo accepts from a chunker spec (boxo's ChunkSizeLimit).
    public static let maximumChunk = 1 << 20

    /// Parses a Kubo chunker spec: `size-N`, `rabin`, `rabin-AVG`, `rabin-[min:]MIN-[avg:]AVG-[max:]MAX`,
    /// `buzhash`; `default` or "" is `size-262144`.
    public init(spec: String) throws {
        let parts = spec.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        func number(_ s: String, label: String? = nil) throws -> Int {
            var s = Substring(s)
            if let label, let colon = s.firstIndex(of: ":") {
                guard s[..<colon] == label else { throw UnixFSError.badChunker(spec, "the \(label) label is missing or misspelt") }
                s = s[s.index(after: colon)...]
            }
            guard let n = Int(s), n > 0 else { throw UnixFSError.badChunker(spec, "\"\(s)\" is not a positive number") }
            return n
        }
        switch parts[0] {
        case "" where parts.count == 1, "default" where parts.count == 1:
            self = .default
        case "size":
            guard parts.count == 2 else { throw UnixFSError.badChunker(spec, "expected size-N") }
            let n = try number(parts[1])
            guard n <= Self.maximumChunk else { throw UnixFSError.badChunker(spec, "chunks may not exceed \(Self.maximumChunk) bytes") }
            self = .fixed(n)
        case "rabin":
            switch parts.count {
            case 1, 2:
                let average = parts.count == 1 ? 262_144 : try number(parts[1])
                guard average + average / 2 <= Self.maximumChunk else {
                    throw UnixFSError.badChunker(spec, "chunks may not exceed \(Self.maximumChunk) bytes (max = 1.5 × avg)")
                }
                self = .rabin(min: average / 3, average: average, max: average + average / 2)
            case 4:
                let (lo, avg, hi) = (try number(parts[1], label: "min"), try number(parts[2], label: "avg"), try number(parts[3], label: "max"))
                guard lo < avg else { throw UnixFSError.badChunker(spec, "rabin min must be smaller than avg") }
                guard avg < hi else { throw UnixFSError.badChunker(spec, "rabin avg must be smaller than max") }
                guard hi <= Self.maximumChunk else { throw UnixFSError.badChunker(spec, "chunks may not exceed \(Self.maximumChunk) bytes") }
                self = .rabin(min: lo, average: avg, max: hi)
            default:
                throw UnixFSError.badChunker(spec, "expected rabin, rabin-AVG or rabin-MIN-AVG-MAX")
            }
            // Kubo refuses min < 16 for rabin-MIN-AVG-MAX; for rabin-AVG it would skip the whole
            // file into one unbounded chunk instead, which Qstore refuses too.
            if case .rabin(let lo, _, _) = self, lo < RabinCutter.window {
                throw UnixFSError.badChunker(spec, "rabin min must be at least \(RabinCutter.window) bytes (rabin-AVG: avg ≥ 48)")
            }
        case "buzhash":
            self = .buzhash  // Kubo ignores anything after "buzhash-".
        default:
            throw UnixFSError.badChunker(spec, "unknown chunker (size-N, rabin[-AVG | -MIN-AVG-MAX], buzhash)")
        }
    }

    /// The spec string Kubo would take for these settings.
    public var spec: String {
        switch self {
        case .fixed(let n): "size-\(n)"
        case .rabin(let lo, let avg, let hi): "rabin-\(lo)-\(avg)-\(hi)"
        case .buzhash: "buzhash"
        }
    }

    /// The most bytes a chunk can have, which is also how far ahead the chunker reads.
    var largestChunk: Int {
        switch self {
        case .fixed(let n): n
        case .rabin(let lo, _, let hi): Swift.max(lo, hi)
        case .buzhash: BuzhashCutter.maximum
        }
    }
}

/// The chunks of a byte stream, read into one reused buffer that holds up to the largest
/// chunk: each chunk is found in the buffer, handed out in place, and what follows it moves
/// to the front for the next one. No allocation per chunk.
struct Chunker<S: ByteSource> {
    var source: S
    private let chunking: Chunking
    private let rabin: RabinCutter?
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var next: Int?
    private var finished = false

    init(source: S, chunking: Chunking) {
        self.source = source
        self.chunking = chunking
        if case .rabin(let lo, let avg, let hi) = chunking { rabin = RabinCutter(min: lo, average: avg, max: hi) } else { rabin = nil }
        buffer = [UInt8](repeating: 0, count: chunking.largestChunk)
    }

    /// Finds the next chunk unless one is waiting; false at the end.
    private mutating func load() throws -> Bool {
        if next != nil { return true }
        if start > 0 {
            let kept = end - start
            if kept > 0 {
                buffer.withUnsafeMutableBytes { b in
                    b.baseAddress!.copyMemory(from: b.baseAddress! + start, byteCount: kept)  // memmove: may overlap
                }
            }
            start = 0
            end = kept
        }
        while end < buffer.count && !finished {
            let n = try buffer.withUnsafeMutableBytes { try source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[end...])) }
            if n == 0 { finished = true } else { end += n }
        }
        guard end > 0 else { return false }
        // The buffer holds the largest possible chunk, or everything that is left.
        next = buffer.withUnsafeBytes { b -> Int in
            let data = UnsafeRawBufferPointer(rebasing: b[0..<end])
            switch chunking {
            case .fixed(let n): return Swift.min(n, end)
            case .rabin: return rabin!.cut(data)
            case .buzhash: return BuzhashCutter.cut(data)
            }
        }
        return true
    }

    /// Whether no chunk is left.
    mutating func atEnd() throws -> Bool { try !load() }

    /// Calls `body` with the next chunk (the caller checked `atEnd()`).
    mutating func withNext<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard try load(), let n = next else { throw UnixFSError.invalid("chunker read past the end") }
        next = nil
        defer { start = n }
        return try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
}

/// Kubo's Rabin cut points (boxo `chunker.NewRabinMinMax`, itself a fork of restic's chunker):
/// a Rabin fingerprint modulo the degree-53 polynomial 0x3DF305DFB2A805 over a 16-byte window.
/// Each chunk starts afresh: the first `min - 16` bytes are skipped unhashed, the window starts
/// from zeros with one byte 1 slid in, and the chunk ends after the first byte (from the
/// `min`-th on) where the fingerprint's low bits are zero, or at `max` bytes.
struct RabinCutter: Sendable {
    static let window = 16
    static let polynomial: UInt64 = 17_437_180_132_763_653
    let min: Int
    let max: Int
    let mask: UInt64
    private let outTable: [UInt64]
    private let modTable: [UInt64]
    private let shift: UInt64

    init(min: Int, average: Int, max: Int) {
        self.min = min
        self.max = max
        mask = (UInt64(1) << UInt64(Int.bitWidth - 1 - average.leadingZeroBitCount)) - 1
        let p = Self.polynomial
        let degree = Self.degree(p)
        shift = UInt64(degree - 8)
        // out[b]: the fingerprint of b followed by window-1 zero bytes, XORed in to slide b out.
        outTable = (0..<256).map { b in
            var h = Self.mod(UInt64(b), p)
            for _ in 1..<Self.window { h = Self.mod(h << 8, p) }
            return h
        }
        // mod[b]: reduces the 8 bits above the degree in one XOR (they cancel, the remainder stays).
        modTable = (0..<256).map { b in Self.mod(UInt64(b) << UInt64(degree), p) | UInt64(b) << UInt64(degree) }
    }

    static func degree(_ x: UInt64) -> Int { x == 0 ? -1 : 63 - x.leadingZeroBitCount }

    /// x modulo p over GF(2).
    static func mod(_ x: UInt64, _ p: UInt64) -> UInt64 {
        var x = x
        let dp = degree(p)
        while degree(x) >= dp { x ^= p << UInt64(degree(x) - dp) }
        return x
    }

    /// The length of the chunk at the start of `data` (which holds `max` bytes or the rest of the stream).
    func cut(_ data: UnsafeRawBufferPointer) -> Int {
        let skip = min - Self.window
        guard data.count > skip else { return data.count }
        let limit = Swift.min(data.count, max)
        return outTable.withUnsafeBufferPointer { out in
            modTable.withUnsafeBufferPointer { mod in
                // The window starts as zeros with a byte 1 slid in at its first position, so the
                // byte leaving it is 0 (out[0] = 0) for the first 15 bytes hashed, then that 1,
                // then the data 16 bytes back. The fingerprint starts as 1 appended to zero: 1.
                var digest: UInt64 = 1
                var i = skip
                // The first window's worth: what leaves is the initial window (zeros, then the 1).
                let warmEnd = Swift.min(limit, skip + Self.window)
                while i < warmEnd {
                    if i - skip == Self.window - 1 { digest ^= out[1] }
                    digest = (digest << 8 | UInt64(data[i])) ^ mod[Int(digest >> shift)]
                    i += 1
                    if i >= min && (digest & mask == 0 || i >= max) { return i }
                }
                // Then the byte 16 back leaves as each new one enters. Here i > min, and reaching
                // `limit` (max, or the end of the stream) ends the chunk there.
                while i < limit {
                    digest ^= out[Int(data[i - Self.window])]
                    digest = (digest << 8 | UInt64(data[i])) ^ mod[Int(digest >> shift)]
                    i += 1
                    if digest & mask == 0 { return i }
                }
                return limit
            }
        }
    }
}

/// Kubo's buzhash cut points (boxo `chunker.NewBuzhash`): a cyclic-polynomial hash over a
/// 32-byte window with Kubo's byte table; chunks of at least 128 KiB, a cut after a window
/// whose hash has its low 17 bits zero, else 512 KiB (or the rest of the stream).
enum BuzhashCutter {
    static let minimum = 128 << 10
    static let maximum = 512 << 10
    static let mask: UInt32 = 1 << 17 - 1
    static let window = 32

    /// The length of the chunk at the start of `data` (which holds 512 KiB or the rest of the stream).
    static func cut(_ data: UnsafeRawBufferPointer) -> Int {
        let n = Swift.min(data.count, maximum)
        guard n >= minimum else { return n }
        return buzhashTable.withUnsafeBufferPointer { table in
            var state: UInt32 = 0
            for i in (minimum - window)..<minimum {
                state = (state << 1 | state >> 31) ^ table[Int(data[i])]
            }
            // With a 32-byte window and a 32-bit rotation, the byte leaving the window has been
            // rotated a whole turn: XORing its table value again removes it.
            var i = minimum - window
            let last = n - window - 1
            while i <= last {
                if state & mask == 0 { break }
                state = (state << 1 | state >> 31) ^ table[Int(data[i])] ^ table[Int(data[i + window])]
                i += 1
            }
            return i + window
        }
    }
}
