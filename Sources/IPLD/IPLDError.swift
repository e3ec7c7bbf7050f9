import Multiformats

/// Why a block could not be decoded or a value could not be encoded. Every
/// case names the codec's rule that was broken and where.
public enum IPLDError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended before the value did.
    case unexpectedEnd(codec: String, offset: Int)
    /// Bytes remained after the single top-level value.
    case trailingBytes(codec: String, offset: Int)
    /// A construct the codec forbids (non-minimal integer, indefinite length, tag other than 42, …).
    case invalid(codec: String, offset: Int, reason: String)
    /// Two equal keys in one map.
    case duplicateKey(codec: String, key: String)
    /// Map keys out of the codec's canonical order.
    case unsortedKeys(codec: String, key: String)
    /// A link that is not a valid CID.
    case invalidLink(codec: String, CIDError)
    /// Nesting deeper than the decoder allows (guards the stack against hostile input).
    case tooDeep(codec: String, limit: Int)
    /// A value the codec cannot represent (a NaN float, a non-DAG-PB shape, …).
    case unencodable(codec: String, reason: String)
    /// No codec for this multicodec.
    case unsupportedCodec(Multicodec)

    public var description: String {
        switch self {
        case .unexpectedEnd(let c, let o): "\(c): unexpected end of data at byte \(o)"
        case .trailingBytes(let c, let o): "\(c): unexpected data after the value at byte \(o)"
        case .invalid(let c, let o, let r): "\(c): \(r) at byte \(o)"
        case .duplicateKey(let c, let k): "\(c): duplicate map key \"\(k)\""
        case .unsortedKeys(let c, let k): "\(c): map keys not in canonical order at \"\(k)\""
        case .invalidLink(let c, let e): "\(c): invalid link: \(e)"
        case .tooDeep(let c, let l): "\(c): nesting deeper than \(l) levels"
        case .unencodable(let c, let r): "\(c): cannot encode: \(r)"
        case .unsupportedCodec(let m): "unsupported codec \(m.name) (0x\(String(m.code, radix: 16)))"
        }
    }
}

/// A codec between blocks and data model values.
public protocol IPLDCodec: Sendable {
    /// The multicodec code CIDs carry for this codec.
    var code: Multicodec { get }
    /// Decodes one block (strictly: the bytes must be the canonical encoding).
    func decode(_ bytes: [UInt8]) throws -> IPLDNode
    /// Encodes a value canonically.
    func encode(_ node: IPLDNode) throws -> [UInt8]
    /// The links in a block, in encounter order, without building the whole value when that can be avoided.
    func links(in bytes: [UInt8]) throws -> [CID]
}

/// The codecs Qstore knows.
public enum Codecs {
    /// Every codec, by code.
    public static let all: [any IPLDCodec] = [RawCodec(), DAGPB(), DAGCBOR(), DAGJSON()]

    /// The codec for `code`.
    public static func codec(for code: Multicodec) throws(IPLDError) -> any IPLDCodec {
        guard let c = byCode[code] else { throw .unsupportedCodec(code) }
        return c
    }

    /// The links in a block of codec `code`. Codecs that cannot hold links
    /// (and codecs Qstore does not know, stored as opaque data) have none.
    public static func links(in bytes: [UInt8], codec code: Multicodec) throws -> [CID] {
        guard let c = byCode[code] else { return [] }
        return try c.links(in: bytes)
    }

    private static let byCode: [Multicodec: any IPLDCodec] = Dictionary(uniqueKeysWithValues: all.map { ($0.code, $0) })
}

/// `raw` (0x55): the block is the bytes; a raw block has no links.
public struct RawCodec: IPLDCodec {
    public init() {}
    public var code: Multicodec { .raw }
    public func decode(_ bytes: [UInt8]) throws -> IPLDNode { .bytes(bytes) }
    public func encode(_ node: IPLDNode) throws -> [UInt8] {
        guard case .bytes(let b) = node else { throw IPLDError.unencodable(codec: "raw", reason: "a raw block is bytes, not \(node.kind)") }
        return b
    }
    public func links(in bytes: [UInt8]) throws -> [CID] { [] }
}

extension IPLDError: KindedError {
    public var kind: ErrorKind {
        if case .unsupportedCodec = self { return .unsupported }
        return .invalidInput
    }
}
