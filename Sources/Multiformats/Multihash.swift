/// A multihash: `varint(code) ‖ varint(digest length) ‖ digest`.
///
/// A small immutable value: equality and hashing are by the encoded bytes,
/// which are kept whole so a multihash can be used as a storage key as is.
public struct Multihash: Hashable, Sendable, CustomStringConvertible {
    /// The whole encoding.
    public let bytes: [UInt8]
    /// The hash function code.
    public let code: Multicodec
    /// Where the digest starts in `bytes`.
    let digestOffset: Int

    /// The largest identity digest Qstore will create (as Kubo/boxo's verifcid: inline CIDs stay small).
    public static let maximumIdentityDigestLength = 128

    /// The digest bytes.
    public var digest: ArraySlice<UInt8> { bytes[digestOffset...] }
    /// The digest length in bytes.
    public var digestLength: Int { bytes.count - digestOffset }

    /// A multihash from a code and a digest, as given (no hashing).
    public init(code: Multicodec, digest: some Collection<UInt8>) {
        var b: [UInt8] = []
        b.reserveCapacity(digest.count + 4)
        Varint.append(code.code, to: &b)
        Varint.append(UInt64(digest.count), to: &b)
        self.digestOffset = b.count
        b.append(contentsOf: digest)
        self.bytes = b
        self.code = code
    }

    /// Parses exactly one multihash filling all of `bytes`.
    public init(bytes: [UInt8]) throws(MultihashError) {
        let (mh, n) = try bytes.withUnsafeBytesTyped { (raw) throws(MultihashError) in try Multihash.decodePrefix(raw) }
        guard n == bytes.count else { throw .trailingBytes(bytes.count - n) }
        self = mh
    }

    private init(uncheckedBytes: [UInt8], code: Multicodec, digestOffset: Int) {
        self.bytes = uncheckedBytes
        self.code = code
        self.digestOffset = digestOffset
    }

    /// Parses the multihash at the start of `raw` and says how many bytes it took.
    public static func decodePrefix(_ raw: UnsafeRawBufferPointer) throws(MultihashError) -> (Multihash, Int) {
        let code: (value: UInt64, length: Int)
        let length: (value: UInt64, length: Int)
        do {
            code = try Varint.decode(raw)
            length = try Varint.decode(UnsafeRawBufferPointer(rebasing: raw[code.length...]))
        } catch {
            throw .invalidVarint(error)
        }
        let header = code.length + length.length
        guard length.value <= UInt64(raw.count - header) else {
            throw .digestTruncated(expected: length.value, available: raw.count - header)
        }
        let total = header + Int(length.value)
        let mh = Multihash(uncheckedBytes: Array(raw[0..<total]), code: Multicodec(code.value), digestOffset: header)
        return (mh, total)
    }

    /// The SHA-256 digest of `data` alone (no multihash around it): for structures that hash
    /// many small values (Merkle trees), one allocation per hash.
    public static func sha256Digest(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        OpenSSLDigest.digest(.sha2_256, data)
    }

    /// Hashes `data` with `function`, truncating the digest to `length` bytes when given.
    public static func compute(
        _ data: UnsafeRawBufferPointer, function: Multicodec = .sha2_256, length: Int? = nil
    ) throws(MultihashError) -> Multihash {
        let digest: [UInt8]
        if function == .identity {
            guard data.count <= maximumIdentityDigestLength else {
                throw .identityTooLong(data.count, limit: maximumIdentityDigestLength)
            }
            digest = Array(data)
        } else if let algorithm = OpenSSLDigest.Algorithm.byCode[function.code] {
            digest = OpenSSLDigest.digest(algorithm, data)
        } else if let f = HashFunction.lookup(function) {
            var h = f.makeHasher()
            h.update(data)
            digest = h.finalize()
        } else {
            throw .unsupportedFunction(function)
        }
        guard let length else { return Multihash(code: function, digest: digest) }
        guard length >= 0 && length <= digest.count else {
            throw .invalidLength(requested: length, maximum: digest.count)
        }
        return Multihash(code: function, digest: digest.prefix(length))
    }

    /// Hashes the bytes of `data` (any contiguous bytes).
    public static func compute<C: ContiguousBytes>(
        _ data: C, function: Multicodec = .sha2_256, length: Int? = nil
    ) throws(MultihashError) -> Multihash {
        do {
            return try data.withUnsafeBytes { try compute($0, function: function, length: length) }
        } catch {
            throw error as! MultihashError  // only compute throws
        }
    }

    /// Whether `data` hashes to this multihash. Throws when the function is not one Qstore computes.
    public func verify<C: ContiguousBytes>(_ data: C) throws(MultihashError) -> Bool {
        if code == .identity { return data.withUnsafeBytes { $0.elementsEqual(digest) } }
        return try Multihash.compute(data, function: code, length: digestLength) == self
    }

    /// Lowercase hex of the whole encoding.
    public var hex: String { Base16.encode(bytes, uppercase: false) }

    public var description: String { "\(code.name):\(Base16.encode(Array(digest), uppercase: false))" }

    public static func == (a: Multihash, b: Multihash) -> Bool { a.bytes == b.bytes }
    /// The bytes in one call (an array combines them one by one: a cost that showed in every
    /// dictionary of blocks, the collector's first).
    public func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
}

extension Multicodec {
    /// `sha2-256` (0x12), the default multihash function.
    public static let sha2_256 = Multicodec(0x12)
    /// `sha2-512` (0x13).
    public static let sha2_512 = Multicodec(0x13)
    /// `blake2b-256` (0xb220).
    public static let blake2b_256 = Multicodec(0xb220)
}

extension OpenSSLDigest.Algorithm {
    static let byCode: [UInt64: Self] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.multicodec, $0) })
}

/// What was wrong with a multihash, or why it could not be computed.
public enum MultihashError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The code or length varint was malformed.
    case invalidVarint(VarintError)
    /// The length said more bytes than there are.
    case digestTruncated(expected: UInt64, available: Int)
    /// Bytes followed the multihash where none may.
    case trailingBytes(Int)
    /// Qstore does not compute this hash function (parsing it is fine).
    case unsupportedFunction(Multicodec)
    /// An identity multihash above the inline limit was asked for.
    case identityTooLong(Int, limit: Int)
    /// A truncation length outside 0…digest length was asked for.
    case invalidLength(requested: Int, maximum: Int)

    public var description: String {
        switch self {
        case .invalidVarint(let e): "multihash: \(e)"
        case .digestTruncated(let n, let a): "multihash digest truncated: length says \(n) bytes, \(a) present"
        case .trailingBytes(let n): "multihash followed by \(n) unexpected bytes"
        case .unsupportedFunction(let c): "unsupported multihash function \(c.name) (0x\(String(c.code, radix: 16)))"
        case .identityTooLong(let n, let l): "identity multihash of \(n) bytes exceeds the \(l)-byte limit"
        case .invalidLength(let r, let m): "multihash length \(r) invalid: the digest has \(m) bytes"
        }
    }
}
