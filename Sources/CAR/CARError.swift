import IPLD
import Multiformats

/// What was wrong with a CAR, naming where.
public enum CARError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The data ended inside the header or a section.
    case truncated(offset: UInt64)
    /// A length varint was malformed.
    case invalidVarint(offset: UInt64, VarintError)
    /// The header is not the DAG-CBOR map `{roots, version}` it must be.
    case invalidHeader(String)
    /// A version other than 1 (or 2 through the pragma).
    case unsupportedVersion(Int)
    /// The CARv2 header's offsets and sizes contradict each other or the file.
    case invalidV2Header(String)
    /// A section is malformed: zero length, no room for its CID, a bad CID, or longer than allowed.
    case invalidSection(offset: UInt64, reason: String)
    /// A block's bytes do not hash to its CID.
    case hashMismatch(CID, offset: UInt64)
    /// A block's hash function is not one Qstore computes, so it cannot be verified.
    case unverifiable(CID)
    /// The CARv2 index is malformed or of an unknown format.
    case invalidIndex(String)

    public var description: String {
        switch self {
        case .truncated(let o): "CAR truncated: data ends at byte \(o)"
        case .invalidVarint(let o, let e): "CAR: \(e) at byte \(o)"
        case .invalidHeader(let r): "invalid CAR header: \(r)"
        case .unsupportedVersion(let v): "unsupported CAR version \(v)"
        case .invalidV2Header(let r): "invalid CARv2 header: \(r)"
        case .invalidSection(let o, let r): "invalid CAR section at byte \(o): \(r)"
        case .hashMismatch(let c, let o): "block \(c) at byte \(o) does not match its hash"
        case .unverifiable(let c): "cannot verify block \(c): hash function \(c.multihash.code.name) is not supported"
        case .invalidIndex(let r): "invalid CARv2 index: \(r)"
        }
    }
}

extension CARError: KindedError { public var kind: ErrorKind { .invalidInput } }
extension IOError: KindedError { public var kind: ErrorKind { .internal } }
