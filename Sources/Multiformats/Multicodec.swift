/// A multicodec code: the self-describing number that names a codec, a hash
/// function or another multiformat in the multicodec table.
public struct Multicodec: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The code as it appears (varint-encoded) in CIDs and multihashes.
    public let code: UInt64

    /// A code, known to the table or not.
    @inlinable public init(_ code: UInt64) { self.code = code }

    /// The code registered under `name` in the multicodec table, if any.
    public init?(name: String) {
        guard let entry = Multicodec.byName[name] else { return nil }
        self.code = entry.code
    }

    /// The table row for this code, if the table has one.
    public var entry: Entry? { Multicodec.byCode[code] }

    /// The table name, or the code in hex when the table does not know it.
    public var name: String { entry?.name ?? "0x" + String(code, radix: 16) }

    public var description: String { name }

    public static func < (a: Multicodec, b: Multicodec) -> Bool { a.code < b.code }

    /// One row of the multicodec table.
    public struct Entry: Sendable, Hashable {
        /// The registered name, e.g. `dag-cbor`.
        public let name: String
        /// The tag (the kind of thing), e.g. `ipld`, `multihash`.
        public let tag: String
        /// The code.
        public let code: UInt64
        /// `permanent`, `draft` or `deprecated`.
        public let status: String
    }

    static let byName: [String: Entry] = Dictionary(table.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    static let byCode: [UInt64: Entry] = Dictionary(table.map { ($0.code, $0) }, uniquingKeysWith: { a, _ in a })
}

extension Multicodec {
    /// `identity` (0x00): the multihash function that is no hash, and the raw multibase.
    public static let identity = Multicodec(0x00)
    /// `raw` (0x55): opaque bytes.
    public static let raw = Multicodec(0x55)
    /// `dag-pb` (0x70): MerkleDAG protobuf, UnixFS.
    public static let dagPB = Multicodec(0x70)
    /// `dag-cbor` (0x71): strict deterministic CBOR with tag-42 links.
    public static let dagCBOR = Multicodec(0x71)
    /// `libp2p-key` (0x72): a libp2p public key, used in IPNS names.
    public static let libp2pKey = Multicodec(0x72)
    /// `dag-json` (0x0129): canonical JSON with `{"/": ...}` links and bytes.
    public static let dagJSON = Multicodec(0x0129)
    /// `cbor` (0x51): plain CBOR.
    public static let cbor = Multicodec(0x51)
    /// `json` (0x0200): plain JSON.
    public static let json = Multicodec(0x0200)
    /// `car` (0x0202): a CAR file.
    public static let car = Multicodec(0x0202)
    /// `car-index-sorted` (0x0400): CARv2 IndexSorted.
    public static let carIndexSorted = Multicodec(0x0400)
    /// `car-multihash-index-sorted` (0x0401): CARv2 MultihashIndexSorted.
    public static let carMultihashIndexSorted = Multicodec(0x0401)
}
