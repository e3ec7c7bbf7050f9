/// A content identifier (multiformats/cid): version, content codec and multihash.
///
/// A small immutable value, parsed once at the edge. Equality, ordering and
/// hashing are by the binary form, so a CIDv0 and the CIDv1 of the same
/// dag-pb multihash are different CIDs (use `toV1()` to compare content).
public struct CID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The binary form: the bare multihash for v0; `varint(1) ‖ varint(codec) ‖ multihash` for v1.
    public let bytes: [UInt8]
    /// 0 or 1.
    public let version: Int
    /// The content codec (dag-pb for every v0).
    public let codec: Multicodec
    /// The multihash of the content.
    public let multihash: Multihash

    /// A CIDv1.
    public init(codec: Multicodec, multihash: Multihash) {
        var b: [UInt8] = [0x01]
        Varint.append(codec.code, to: &b)
        b.append(contentsOf: multihash.bytes)
        self.bytes = b
        self.version = 1
        self.codec = codec
        self.multihash = multihash
    }

    /// A CIDv0: dag-pb, sha2-256 with a 32-byte digest, nothing else.
    public init(v0 multihash: Multihash) throws(CIDError) {
        guard multihash.code == .sha2_256, multihash.digestLength == 32 else { throw .invalidV0Multihash(multihash.code) }
        self.bytes = multihash.bytes
        self.version = 0
        self.codec = .dagPB
        self.multihash = multihash
    }

    /// Parses the binary form filling all of `bytes`.
    public init(bytes: [UInt8]) throws(CIDError) {
        let (cid, n) = try bytes.withUnsafeBytesTyped { (raw) throws(CIDError) in try CID.decodePrefix(raw) }
        guard n == bytes.count else { throw .trailingBytes(bytes.count - n) }
        self = cid
    }

    /// Parses the CID at the start of `raw` (as in a CAR section) and says how many bytes it took.
    public static func decodePrefix(_ raw: UnsafeRawBufferPointer) throws(CIDError) -> (CID, Int) {
        guard raw.count > 0 else { throw .empty }
        // A v0 CID is a bare sha2-256 multihash: 0x12 0x20 and 32 digest bytes.
        if raw.count >= 34, raw[0] == 0x12, raw[1] == 0x20 {
            let mh: Multihash
            do { (mh, _) = try Multihash.decodePrefix(UnsafeRawBufferPointer(rebasing: raw[0..<34])) } catch { throw .invalidMultihash(error) }
            return (try CID(v0: mh), 34)
        }
        let version: (value: UInt64, length: Int)
        let codec: (value: UInt64, length: Int)
        do {
            version = try Varint.decode(raw)
        } catch { throw .invalidVarint(error) }
        switch version.value {
        case 1: break
        case 0x12: throw .invalidV0Multihash(Multicodec(0x12))  // a sha2-256 multihash that is not 34 bytes
        default: throw .unsupportedVersion(version.value)
        }
        do {
            codec = try Varint.decode(UnsafeRawBufferPointer(rebasing: raw[version.length...]))
        } catch { throw .invalidVarint(error) }
        let start = version.length + codec.length
        let mh: Multihash
        let n: Int
        do {
            (mh, n) = try Multihash.decodePrefix(UnsafeRawBufferPointer(rebasing: raw[start...]))
        } catch { throw .invalidMultihash(error) }
        return (CID(codec: Multicodec(codec.value), multihash: mh), start + n)
    }

    /// Parses a CID string: a 46-character base58btc `Qm…` is v0; anything else is multibase v1.
    public init(_ text: some StringProtocol) throws(CIDError) {
        if text.utf8.count == 46 && text.hasPrefix("Qm") {
            let raw: [UInt8]
            do { raw = try Multibase.base58btc.decodeWithoutPrefix(Substring(text)) } catch { throw .invalidMultibase(error) }
            let mh: Multihash
            do { mh = try Multihash(bytes: raw) } catch { throw .invalidMultihash(error) }
            self = try CID(v0: mh)
            return
        }
        let decoded: (base: Multibase, bytes: [UInt8])
        do { decoded = try Multibase.decode(text) } catch {
            if text.isEmpty { throw .empty }
            throw .invalidMultibase(error)
        }
        let cid = try CID(bytes: decoded.bytes)
        // A CIDv0 has exactly one string form; its bytes in another base are not a CID string.
        guard cid.version == 1 else { throw .v0InMultibase }
        self = cid
    }

    /// The canonical string: base58btc for v0, base32 (lower) for v1.
    public var string: String {
        version == 0 ? Multibase.base58btc.encodeWithoutPrefix(bytes) : Multibase.base32.encode(bytes)
    }

    /// The string in `base`. A v0 CID has only its base58btc form.
    public func string(base: Multibase) throws(CIDError) -> String {
        if version == 0 {
            guard base == .base58btc else { throw .v0InMultibase }
            return string
        }
        return base.encode(bytes)
    }

    public var description: String { string }

    /// The same content as a CIDv1 (v1 CIDs are returned unchanged).
    public func toV1() -> CID { version == 1 ? self : CID(codec: codec, multihash: multihash) }

    /// The same content as a CIDv0; only dag-pb with a 32-byte sha2-256 can be one.
    public func toV0() throws(CIDError) -> CID {
        if version == 0 { return self }
        guard codec == .dagPB else { throw .invalidV0Codec(codec) }
        return try CID(v0: multihash)
    }

    public static func == (a: CID, b: CID) -> Bool { a.bytes == b.bytes }
    /// The bytes in one call (an array combines them one by one: a cost that showed in every
    /// dictionary of blocks, the collector's first).
    public func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    public static func < (a: CID, b: CID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// What was wrong with a CID.
public enum CIDError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No bytes or text.
    case empty
    /// The string's multibase was unknown or malformed.
    case invalidMultibase(MultibaseError)
    /// A version or codec varint was malformed.
    case invalidVarint(VarintError)
    /// The multihash was malformed.
    case invalidMultihash(MultihashError)
    /// Version other than 0 or 1 (2 and 3 are reserved).
    case unsupportedVersion(UInt64)
    /// A v0 CID must be a 32-byte sha2-256 multihash.
    case invalidV0Multihash(Multicodec)
    /// A v0 CID is always dag-pb.
    case invalidV0Codec(Multicodec)
    /// A v0 CID written in a multibase other than its bare base58btc form.
    case v0InMultibase
    /// Bytes followed the CID where none may.
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .empty: "empty CID"
        case .invalidMultibase(let e): "invalid CID: \(e)"
        case .invalidVarint(let e): "invalid CID: \(e)"
        case .invalidMultihash(let e): "invalid CID: \(e)"
        case .unsupportedVersion(let v): "unsupported CID version \(v)"
        case .invalidV0Multihash(let c): "a CIDv0 must be a 32-byte sha2-256 multihash, not \(c.name)"
        case .invalidV0Codec(let c): "a CIDv0 must be dag-pb, not \(c.name)"
        case .v0InMultibase: "a CIDv0 is written only in bare base58btc (Qm…)"
        case .trailingBytes(let n): "CID followed by \(n) unexpected bytes"
        }
    }
}
