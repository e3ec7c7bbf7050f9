import Multiformats

/// A value of the IPLD data model: what every codec decodes to and encodes from.
///
/// Integers cover the whole CBOR range, -2^64 … 2^64-1 (see `IPLDInteger`);
/// maps are keyed by strings and kept sorted by key bytes (see `IPLDMap`).
public indirect enum IPLDNode: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(IPLDInteger)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([IPLDNode])
    case map(IPLDMap)
    case link(CID)

    /// An integer node from a Swift integer.
    public static func int(_ v: some BinaryInteger) -> IPLDNode { .integer(IPLDInteger(v)) }

    /// The kind's name as the data model spells it, for error messages.
    public var kind: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .integer: "int"
        case .float: "float"
        case .string: "string"
        case .bytes: "bytes"
        case .list: "list"
        case .map: "map"
        case .link: "link"
        }
    }

    /// Every link in the value, depth first, in map-key and list order.
    public var links: [CID] {
        var out: [CID] = []
        collectLinks(into: &out)
        return out
    }

    private func collectLinks(into out: inout [CID]) {
        switch self {
        case .link(let c): out.append(c)
        case .list(let items): for i in items { i.collectLinks(into: &out) }
        case .map(let m): for e in m.entries { e.value.collectLinks(into: &out) }
        default: break
        }
    }

    /// The value at `key` when this is a map.
    public subscript(key: String) -> IPLDNode? {
        if case .map(let m) = self { return m[key] }
        return nil
    }

    public static func == (a: IPLDNode, b: IPLDNode) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        // Bit patterns, so that 0.0 and -0.0 (different encodings) are different values.
        case (.float(let x), .float(let y)): x.bitPattern == y.bitPattern
        // Strings compare by their UTF-8 bytes: the codecs are byte-exact, Swift's == is Unicode-equivalence.
        case (.string(let x), .string(let y)): x.utf8.elementsEqual(y.utf8)
        case (.bytes(let x), .bytes(let y)): x == y
        case (.list(let x), .list(let y)): x == y
        case (.map(let x), .map(let y)): x == y
        case (.link(let x), .link(let y)): x == y
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let v): hasher.combine(v)
        case .integer(let v): hasher.combine(v)
        case .float(let v): hasher.combine(v.bitPattern)
        case .string(let v): hasher.combine(Array(v.utf8))
        case .bytes(let v): hasher.combine(v)
        case .list(let v): hasher.combine(v)
        case .map(let v): hasher.combine(v)
        case .link(let v): hasher.combine(v)
        }
    }
}

/// An integer of the IPLD data model over the whole CBOR range: CBOR's two
/// major types, so every value has exactly one representation.
public enum IPLDInteger: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The value `n` (0 … 2^64-1).
    case unsigned(UInt64)
    /// The value `-1 - n` (-2^64 … -1).
    case negative(UInt64)

    /// From any Swift integer that fits (every fixed-width integer up to 64 bits does).
    public init(_ v: some BinaryInteger) {
        if v >= 0 { self = .unsigned(UInt64(v)) } else { self = .negative(UInt64(v.magnitude) - 1) }
    }

    /// The value when it fits an Int64.
    public var int64: Int64? {
        switch self {
        case .unsigned(let n): n <= UInt64(Int64.max) ? Int64(n) : nil
        case .negative(let n): n <= UInt64(Int64.max) ? -1 - Int64(n) : nil
        }
    }

    /// The value when it fits an Int.
    public var int: Int? { int64.map { Int($0) } }

    /// Decimal digits with a leading `-` for negatives.
    public var description: String {
        switch self {
        case .unsigned(let n): return String(n)
        case .negative(let n):
            // -1 - n; n + 1 overflows only for n = 2^64-1, i.e. -2^64.
            if n == UInt64.max { return "-18446744073709551616" }
            return "-" + String(n + 1)
        }
    }

    /// Parses decimal digits with an optional leading `-`, in range -2^64 … 2^64-1.
    public init?(decimal text: Substring) {
        var digits = text
        let negative = digits.first == "-"
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        if let n = UInt64(digits) {
            if !negative { self = .unsigned(n) } else if n == 0 { self = .unsigned(0) } else { self = .negative(n - 1) }
        } else if negative && digits == "18446744073709551616" {
            self = .negative(UInt64.max)
        } else {
            return nil
        }
    }

    public static func < (a: IPLDInteger, b: IPLDInteger) -> Bool {
        switch (a, b) {
        case (.negative, .unsigned): true
        case (.unsigned, .negative): false
        case (.unsigned(let x), .unsigned(let y)): x < y
        case (.negative(let x), .negative(let y)): x > y
        }
    }
}

/// A map of the data model: string keys, unique, kept sorted by their UTF-8
/// bytes so equal maps compare equal whatever order they were built in.
/// Codecs impose their own order when they encode.
public struct IPLDMap: Sendable, Hashable, Sequence {
    /// One key and its value.
    public struct Entry: Sendable, Hashable {
        /// The key.
        public let key: String
        /// The value.
        public let value: IPLDNode
        public static func == (a: Entry, b: Entry) -> Bool { a.key.utf8.elementsEqual(b.key.utf8) && a.value == b.value }
        public func hash(into hasher: inout Hasher) { hasher.combine(Array(key.utf8)); hasher.combine(value) }
    }

    /// The entries, sorted by key bytes.
    public private(set) var entries: [Entry]

    /// An empty map.
    public init() { entries = [] }

    /// A map from pairs; nil when two keys are the same string (by bytes).
    public init?(_ pairs: [(String, IPLDNode)]) {
        var e = pairs.map { Entry(key: $0.0, value: $0.1) }
        e.sort { IPLDMap.bytewiseLess($0.key, $1.key) }
        for i in e.indices.dropFirst() where e[i - 1].key.utf8.elementsEqual(e[i].key.utf8) { return nil }
        entries = e
    }

    /// A map from pairs whose keys the caller knows to be unique; a duplicate is a programming error.
    public init(uniqueKeysWithValues pairs: [(String, IPLDNode)]) {
        guard let m = IPLDMap(pairs) else { preconditionFailure("duplicate key in IPLDMap(uniqueKeysWithValues:)") }
        self = m
    }

    /// The number of entries.
    public var count: Int { entries.count }
    /// The keys in byte order.
    public var keys: [String] { entries.map(\.key) }

    /// The value for `key`.
    public subscript(key: String) -> IPLDNode? {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if IPLDMap.bytewiseLess(entries[mid].key, key) { lo = mid + 1 } else { hi = mid }
        }
        if lo < entries.count, entries[lo].key.utf8.elementsEqual(key.utf8) { return entries[lo].value }
        return nil
    }

    public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }

    /// Byte-wise comparison of the UTF-8 forms (DAG-JSON's key order).
    public static func bytewiseLess(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// Length first, then bytes (DAG-CBOR's key order: the order of the encoded keys).
    public static func lengthFirstLess(_ a: String, _ b: String) -> Bool {
        let (x, y) = (a.utf8.count, b.utf8.count)
        return x != y ? x < y : a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}

extension IPLDNode: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByNilLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral v: String) { self = .string(v) }
    public init(integerLiteral v: Int) { self = .int(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }
    public init(nilLiteral: ()) { self = .null }
    public init(floatLiteral v: Double) { self = .float(v) }
    public init(arrayLiteral elements: IPLDNode...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, IPLDNode)...) { self = .map(IPLDMap(uniqueKeysWithValues: elements)) }
}
