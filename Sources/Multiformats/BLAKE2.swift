/// BLAKE2b and BLAKE2s (RFC 7693), unkeyed, with any digest length: the
/// multihash codes blake2b-8…512 (0xb201…0xb240) and blake2s-8…256
/// (0xb241…0xb260) each fix the output length, which is a parameter of the
/// hash itself (not a truncation), so OpenSSL's fixed-length EVP digests do not fit.
/// The `@_specialize` attributes matter: hashers are reached through
/// `any StreamingHasher`, and unspecialised generic arithmetic is ~100x slower.
struct BLAKE2<Variant: BLAKE2Variant>: StreamingHasher {
    typealias Word = Variant.Word
    static var blockBytes: Int { 16 * Word.bitWidth / 8 }

    /// Chaining value, message block and working vector, in one allocation reused
    /// for every block (allocating per 64/128-byte block would dominate the cost).
    private final class State {
        let h: UnsafeMutablePointer<Word>  // 8 words
        let m: UnsafeMutablePointer<Word>  // 16 words
        let v: UnsafeMutablePointer<Word>  // 16 words
        let block: UnsafeMutableRawPointer  // blockBytes
        var buffered = 0
        var t0: Word = 0
        var t1: Word = 0

        init() {
            h = .allocate(capacity: 8)
            m = .allocate(capacity: 16)
            v = .allocate(capacity: 16)
            block = .allocate(byteCount: BLAKE2.blockBytes, alignment: 8)
        }

        deinit {
            h.deallocate(); m.deallocate(); v.deallocate(); block.deallocate()
        }
    }

    private let state = State()
    private let digestLength: Int

    @_specialize(where Variant == BLAKE2bVariant)
    @_specialize(where Variant == BLAKE2sVariant)
    init(digestLength: Int) {
        precondition(digestLength >= 1 && digestLength <= Word.bitWidth, "BLAKE2 digest length out of range")
        self.digestLength = digestLength
        for i in 0..<8 { state.h[i] = Variant.iv[i] }
        // Parameter block word 0: digest length, key length 0, fanout 1, depth 1.
        state.h[0] ^= 0x0101_0000 ^ Word(digestLength)
    }

    @_specialize(where Variant == BLAKE2bVariant)
    @_specialize(where Variant == BLAKE2sVariant)
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var src = bytes.baseAddress else { return }
        var remaining = bytes.count
        let s = state
        while remaining > 0 {
            // The last block must be compressed with the final flag, so a full buffer
            // is only compressed once more input is known to follow.
            if s.buffered == Self.blockBytes {
                increment(by: Self.blockBytes)
                compress(last: false)
                s.buffered = 0
            }
            let n = min(Self.blockBytes - s.buffered, remaining)
            (s.block + s.buffered).copyMemory(from: src, byteCount: n)
            s.buffered += n
            src += n
            remaining -= n
        }
    }

    @_specialize(where Variant == BLAKE2bVariant)
    @_specialize(where Variant == BLAKE2sVariant)
    mutating func finalize() -> [UInt8] {
        let s = state
        increment(by: s.buffered)
        (s.block + s.buffered).initializeMemory(as: UInt8.self, repeating: 0, count: Self.blockBytes - s.buffered)
        compress(last: true)
        let wordBytes = Word.bitWidth / 8
        return [UInt8](unsafeUninitializedCapacity: digestLength) { out, count in
            for i in 0..<digestLength { out[i] = UInt8(truncatingIfNeeded: s.h[i / wordBytes] >> (8 * (i % wordBytes))) }
            count = digestLength
        }
    }

    private func increment(by n: Int) {
        let (sum, overflow) = state.t0.addingReportingOverflow(Word(n))
        state.t0 = sum
        if overflow { state.t1 &+= 1 }
    }

    @inline(__always)
    private static func rotr(_ x: Word, _ n: Int) -> Word { (x &>> Word(n)) | (x &<< Word(Word.bitWidth - n)) }

    @_specialize(where Variant == BLAKE2bVariant)
    @_specialize(where Variant == BLAKE2sVariant)
    private func compress(last: Bool) {
        let s = state
        let h = s.h, m = s.m, v = s.v
        for i in 0..<16 { m[i] = Word(littleEndian: s.block.loadUnaligned(fromByteOffset: i * (Word.bitWidth / 8), as: Word.self)) }
        for i in 0..<8 { v[i] = h[i]; v[i + 8] = Variant.iv[i] }
        v[12] ^= s.t0
        v[13] ^= s.t1
        if last { v[14] = ~v[14] }
        let (r1, r2, r3, r4) = Variant.rotations
        @inline(__always) func g(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: Word, _ y: Word) {
            v[a] = v[a] &+ v[b] &+ x; v[d] = Self.rotr(v[d] ^ v[a], r1)
            v[c] = v[c] &+ v[d]; v[b] = Self.rotr(v[b] ^ v[c], r2)
            v[a] = v[a] &+ v[b] &+ y; v[d] = Self.rotr(v[d] ^ v[a], r3)
            v[c] = v[c] &+ v[d]; v[b] = Self.rotr(v[b] ^ v[c], r4)
        }
        blake2Sigma.withUnsafeBufferPointer { sigma in
            for round in 0..<Variant.rounds {
                let s = sigma.baseAddress! + 16 * (round % 10)
                g(0, 4, 8, 12, m[Int(s[0])], m[Int(s[1])])
                g(1, 5, 9, 13, m[Int(s[2])], m[Int(s[3])])
                g(2, 6, 10, 14, m[Int(s[4])], m[Int(s[5])])
                g(3, 7, 11, 15, m[Int(s[6])], m[Int(s[7])])
                g(0, 5, 10, 15, m[Int(s[8])], m[Int(s[9])])
                g(1, 6, 11, 12, m[Int(s[10])], m[Int(s[11])])
                g(2, 7, 8, 13, m[Int(s[12])], m[Int(s[13])])
                g(3, 4, 9, 14, m[Int(s[14])], m[Int(s[15])])
            }
        }
        for i in 0..<8 { h[i] ^= v[i] ^ v[i + 8] }
    }
}

/// The parameters that tell BLAKE2b from BLAKE2s.
protocol BLAKE2Variant {
    associatedtype Word: FixedWidthInteger & UnsignedInteger & Sendable
    static var iv: [Word] { get }
    static var rounds: Int { get }
    static var rotations: (Int, Int, Int, Int) { get }
}

/// BLAKE2b: 64-bit words, 12 rounds, 128-byte blocks.
enum BLAKE2bVariant: BLAKE2Variant {
    static let iv: [UInt64] = [
        0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
        0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
    ]
    static let rounds = 12
    static let rotations = (32, 24, 16, 63)
}

/// BLAKE2s: 32-bit words, 10 rounds, 64-byte blocks.
enum BLAKE2sVariant: BLAKE2Variant {
    static let iv: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    static let rounds = 10
    static let rotations = (16, 12, 8, 7)
}

typealias BLAKE2b = BLAKE2<BLAKE2bVariant>
typealias BLAKE2s = BLAKE2<BLAKE2sVariant>

/// The message word permutation of each round (RFC 7693 section 2.7), 10 rows of 16.
private let blake2Sigma: [UInt8] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
    11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
    7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
    9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
    2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
    12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
    13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
    6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
    10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
]
