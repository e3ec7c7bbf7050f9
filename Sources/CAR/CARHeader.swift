import IPLD
import Multiformats

/// The CARv1 header: a DAG-CBOR map `{roots: [&Any], version: 1}`.
public struct CARHeader: Sendable, Equatable {
    /// The root CIDs (may be empty).
    public var roots: [CID]

    /// A header with these roots.
    public init(roots: [CID]) { self.roots = roots }

    /// The DAG-CBOR bytes of the header (without the length varint).
    public func encode() -> [UInt8] {
        let node: IPLDNode = .map(IPLDMap(uniqueKeysWithValues: [("roots", .list(roots.map { .link($0) })), ("version", 1)]))
        return try! DAGCBOR().encode(node)  // links, a list and an int always encode
    }

    /// The version a header block declares, and its roots when it is a valid v1 header.
    static func decode(_ bytes: [UInt8]) throws -> (version: Int, roots: [CID]) {
        let node: IPLDNode
        do { node = try DAGCBOR().decode(bytes) } catch { throw CARError.invalidHeader("not DAG-CBOR: \(error)") }
        guard case .map(let m) = node else { throw CARError.invalidHeader("not a map") }
        guard case .integer(let v)? = m["version"], let version = v.int else { throw CARError.invalidHeader("no integer version") }
        guard version == 1 else { return (version, []) }
        guard case .list(let items)? = m["roots"] else { throw CARError.invalidHeader("no roots list") }
        let roots = try items.map { item -> CID in
            guard case .link(let c) = item else { throw CARError.invalidHeader("a root is not a CID") }
            return c
        }
        return (1, roots)
    }
}

/// The fixed 40-byte CARv2 header that follows the 11-byte pragma.
public struct CARv2Header: Sendable, Equatable {
    /// The 11 bytes that open every CARv2: a CARv1 header `{version: 2}`.
    public static let pragma: [UInt8] = [0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02]
    /// Pragma plus header.
    public static let size: UInt64 = 51

    /// The 128-bit characteristics field, big-endian bit order as in the spec.
    public var characteristics: [UInt8]
    /// Offset of the CARv1 payload from the start of the pragma.
    public var dataOffset: UInt64
    /// Length of the CARv1 payload.
    public var dataSize: UInt64
    /// Offset of the index from the start of the pragma; 0 when there is none.
    public var indexOffset: UInt64

    /// Whether the `fully-indexed` characteristic (the leftmost bit) is set.
    public var fullyIndexed: Bool { characteristics[0] & 0x80 != 0 }

    /// A header.
    public init(fullyIndexed: Bool = false, dataOffset: UInt64, dataSize: UInt64, indexOffset: UInt64) {
        characteristics = [UInt8](repeating: 0, count: 16)
        if fullyIndexed { characteristics[0] = 0x80 }
        self.dataOffset = dataOffset
        self.dataSize = dataSize
        self.indexOffset = indexOffset
    }

    init(bytes: [UInt8]) {
        precondition(bytes.count == 40)
        characteristics = Array(bytes[0..<16])
        func le(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
        dataOffset = le(16)
        dataSize = le(24)
        indexOffset = le(32)
    }

    /// The 40 header bytes.
    public func encode() -> [UInt8] {
        var out = characteristics
        for v in [dataOffset, dataSize, indexOffset] { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        return out
    }

    /// Checks the offsets against each other and, when known, the file size.
    func validate(fileSize: UInt64?) throws {
        guard dataOffset >= CARv2Header.size else { throw CARError.invalidV2Header("data offset \(dataOffset) inside the header") }
        let (dataEnd, overflow) = dataOffset.addingReportingOverflow(dataSize)
        guard !overflow else { throw CARError.invalidV2Header("data offset \(dataOffset) + size \(dataSize) overflows") }
        if let fileSize, dataEnd > fileSize {
            throw CARError.invalidV2Header("data payload (offset \(dataOffset), size \(dataSize)) extends past the end of the file (\(fileSize) bytes)")
        }
        if indexOffset != 0 {
            guard indexOffset >= dataEnd else { throw CARError.invalidV2Header("index offset \(indexOffset) inside the data payload") }
            if let fileSize, indexOffset >= fileSize { throw CARError.invalidV2Header("index offset \(indexOffset) past the end of the file") }
        }
    }
}
