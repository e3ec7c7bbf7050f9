/// A hash function being fed incrementally: the streaming half of a multihash
/// function. One value hashes one input; `finalize` ends it. Hashers keep their
/// state in a reference (an OpenSSL context, a reusable block buffer), so a copy
/// shares it: give each input its own hasher from `HashFunction.makeHasher`.
public protocol StreamingHasher {
    /// Feeds more input.
    mutating func update(_ bytes: UnsafeRawBufferPointer)
    /// Returns the full-length digest. The hasher must not be used afterwards.
    mutating func finalize() -> [UInt8]
}

extension StreamingHasher {
    /// Feeds the bytes of an array (or any contiguous collection).
    @inlinable
    public mutating func update<C: ContiguousBytes>(_ bytes: C) {
        bytes.withUnsafeBytes { update($0) }
    }
}

/// Contiguous byte storage that can lend its bytes without copying.
public protocol ContiguousBytes {
    /// Calls `body` with the bytes.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension ContiguousArray: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    /// Lends itself.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}

/// A multihash function Qstore can compute: its code, its natural digest
/// length and how to start a hasher.
public struct HashFunction: Sendable {
    /// The multicodec code (tag `multihash`).
    public let code: Multicodec
    /// The digest length the function produces untruncated.
    public let digestLength: Int
    /// Starts a new streaming hasher.
    public let makeHasher: @Sendable () -> any StreamingHasher

    /// The function registered under `code`, if Qstore computes it.
    public static func lookup(_ code: Multicodec) -> HashFunction? { registry[code.code] }

    /// Every function Qstore computes, by code.
    public static var all: [HashFunction] { registry.values.sorted { $0.code < $1.code } }

    static let registry: [UInt64: HashFunction] = {
        var r: [UInt64: HashFunction] = [:]
        func add(_ code: UInt64, _ length: Int, _ make: @escaping @Sendable () -> any StreamingHasher) {
            r[code] = HashFunction(code: Multicodec(code), digestLength: length, makeHasher: make)
        }
        add(0x00, 0) { IdentityHasher() }
        for d in OpenSSLDigest.Algorithm.allCases {
            add(d.multicodec, d.digestLength) { OpenSSLDigest(d) }
        }
        add(0x56, 32) { DoubleSHA256() }
        // blake2b-8 … blake2b-512 are 0xb201 … 0xb240; blake2s-8 … blake2s-256 are 0xb241 … 0xb260.
        for bytes in 1...64 { add(0xb200 + UInt64(bytes), bytes) { BLAKE2b(digestLength: bytes) } }
        for bytes in 1...32 { add(0xb240 + UInt64(bytes), bytes) { BLAKE2s(digestLength: bytes) } }
        return r
    }()
}

/// The `identity` multihash: the digest is the input itself.
struct IdentityHasher: StreamingHasher {
    var buffer: [UInt8] = []
    mutating func update(_ bytes: UnsafeRawBufferPointer) { buffer.append(contentsOf: bytes) }
    mutating func finalize() -> [UInt8] { buffer }
}

/// `dbl-sha2-256`: sha2-256 of the sha2-256 digest (Bitcoin's hash).
struct DoubleSHA256: StreamingHasher {
    var inner = OpenSSLDigest(.sha2_256)
    mutating func update(_ bytes: UnsafeRawBufferPointer) { inner.update(bytes) }
    mutating func finalize() -> [UInt8] {
        let first = inner.finalize()
        var outer = OpenSSLDigest(.sha2_256)
        outer.update(first)
        return outer.finalize()
    }
}
