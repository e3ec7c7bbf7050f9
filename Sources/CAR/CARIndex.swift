import Multiformats

/// A CARv2 index: multihash digest → offset of its section in the CARv1
/// payload. Two formats exist: IndexSorted (0x0400, digests only) and
/// MultihashIndexSorted (0x0401, also grouped by hash function).
///
/// Layout as go-car writes it (and the spec's fixtures hold): the format's
/// varint code; for 0x0401 a uint32 count of hash functions, each an uint64
/// code followed by an IndexSorted body; an IndexSorted body is a uint32 count
/// of buckets, each `uint32 width ‖ uint64 byte length ‖ (digest ‖ uint64 offset)*`
/// sorted by digest. All integers little-endian.
public struct CARIndex: Sendable, Equatable {
    /// The index format.
    public var format: Multicodec
    /// Entries grouped by hash function code (0 for IndexSorted, which records none), then digest length.
    public private(set) var buckets: [Bucket]

    /// Digests of one length (and, in 0x0401, one hash function), sorted.
    public struct Bucket: Sendable, Equatable {
        /// The hash function code (0x0401 only; 0 otherwise).
        public var code: UInt64
        /// The digest length.
        public var digestLength: Int
        /// Sorted digests with their offsets.
        public var entries: [(digest: [UInt8], offset: UInt64)]

        public static func == (a: Bucket, b: Bucket) -> Bool {
            a.code == b.code && a.digestLength == b.digestLength
                && a.entries.map(\.digest) == b.entries.map(\.digest) && a.entries.map(\.offset) == b.entries.map(\.offset)
        }
    }

    /// An index of `entries` (multihash, offset of the section in the payload).
    public init(format: Multicodec = .carMultihashIndexSorted, entries: [(Multihash, UInt64)]) {
        self.format = format
        var groups: [[UInt64]: [(digest: [UInt8], offset: UInt64)]] = [:]
        for (mh, offset) in entries {
            let code = format == .carMultihashIndexSorted ? mh.code.code : 0
            groups[[code, UInt64(mh.digestLength)], default: []].append((Array(mh.digest), offset))
        }
        buckets = groups.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key in
            let sorted = groups[key]!.sorted { a, b in
                a.digest == b.digest ? a.offset < b.offset : a.digest.lexicographicallyPrecedes(b.digest)
            }
            return Bucket(code: key[0], digestLength: Int(key[1]), entries: sorted)
        }
    }

    /// The offset of the section holding `multihash`, if indexed.
    public func offset(of multihash: Multihash) -> UInt64? {
        let code = format == .carMultihashIndexSorted ? multihash.code.code : 0
        guard let bucket = buckets.first(where: { $0.code == code && $0.digestLength == multihash.digestLength }) else { return nil }
        let digest = Array(multihash.digest)
        var lo = 0, hi = bucket.entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if bucket.entries[mid].digest.lexicographicallyPrecedes(digest) { lo = mid + 1 } else { hi = mid }
        }
        return lo < bucket.entries.count && bucket.entries[lo].digest == digest ? bucket.entries[lo].offset : nil
    }

    /// The number of entries.
    public var count: Int { buckets.reduce(0) { $0 + $1.entries.count } }

    /// The serialised index, format code first.
    public func encode() -> [UInt8] {
        var out = Varint.encode(format.code)
        func u32(_ v: Int) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        func u64(_ v: UInt64) { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        func sortedBody(_ bs: [Bucket]) {
            u32(bs.count)
            for b in bs {
                u32(b.digestLength + 8)
                u64(UInt64(b.entries.count * (b.digestLength + 8)))
                for e in b.entries { out.append(contentsOf: e.digest); u64(e.offset) }
            }
        }
        if format == .carMultihashIndexSorted {
            let codes = Array(Set(buckets.map(\.code))).sorted()
            u32(codes.count)
            for c in codes { u64(c); sortedBody(buckets.filter { $0.code == c }) }
        } else {
            sortedBody(buckets)
        }
        return out
    }

    /// Parses a serialised index (from its format code to the end of the CAR).
    public init(bytes: [UInt8]) throws {
        var pos = 0
        func need(_ n: Int) throws { guard bytes.count - pos >= n else { throw CARError.invalidIndex("truncated at byte \(pos)") } }
        func u32() throws -> Int { try need(4); defer { pos += 4 }; return (0..<4).reduce(0) { $0 | Int(bytes[pos + $1]) << (8 * $1) } }
        func u64() throws -> UInt64 { try need(8); defer { pos += 8 }; return (0..<8).reduce(0) { $0 | UInt64(bytes[pos + $1]) << (8 * UInt64($1)) } }
        func sortedBody(code: UInt64) throws -> [Bucket] {
            let n = try u32()
            var out: [Bucket] = []
            for _ in 0..<n {
                let width = try u32()
                let length = try u64()
                guard width > 8, length % UInt64(width) == 0, length <= UInt64(bytes.count - pos) else {
                    throw CARError.invalidIndex("bucket of width \(width) and length \(length) does not fit")
                }
                var entries: [(digest: [UInt8], offset: UInt64)] = []
                for _ in 0..<Int(length / UInt64(width)) {
                    let d = Array(bytes[pos..<pos + width - 8])
                    pos += width - 8
                    entries.append((d, try u64()))
                }
                out.append(Bucket(code: code, digestLength: width - 8, entries: entries))
            }
            return out
        }
        let code: UInt64
        do { (code, pos) = try Varint.decode(bytes) } catch { throw CARError.invalidIndex("format code: \(error)") }
        format = Multicodec(code)
        switch format {
        case .carIndexSorted:
            buckets = try sortedBody(code: 0)
        case .carMultihashIndexSorted:
            var all: [Bucket] = []
            for _ in 0..<(try u32()) { all += try sortedBody(code: try u64()) }
            buckets = all
        default:
            throw CARError.invalidIndex("unknown index format \(format.name)")
        }
        guard pos == bytes.count else { throw CARError.invalidIndex("\(bytes.count - pos) bytes after the index") }
    }

    public static func == (a: CARIndex, b: CARIndex) -> Bool { a.format == b.format && a.buckets == b.buckets }
}
