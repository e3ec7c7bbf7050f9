import Multiformats

/// DAG-CBOR (0x71), strict: the decoder accepts only the canonical encoding
/// the encoder produces, so decode→encode gives the input back byte for byte.
///
/// Rules enforced on decode (specs/ipld/dag-cbor.md "Strictness"): shortest
/// integer and length forms; definite lengths only; map keys are text, unique
/// and sorted length-first then by bytes; tag 42 (as `d8 2a`) on a byte string
/// `00 ‖ CID` is the only tag; float64 only, never NaN or ±Infinity; simple
/// values false, true, null only; text is valid UTF-8; exactly one top-level value.
public struct DAGCBOR: IPLDCodec {
    /// Deepest nesting the decoder follows (hostile input must not exhaust the stack).
    public static let maximumDepth = 512

    public init() {}
    public var code: Multicodec { .dagCBOR }

    public func decode(_ bytes: [UInt8]) throws -> IPLDNode {
        try bytes.withUnsafeBytes { raw in
            var r = CBORReader(raw)
            let node = try r.readNode(depth: 0)
            guard r.pos == raw.count else { throw IPLDError.trailingBytes(codec: "dag-cbor", offset: r.pos) }
            return node
        }
    }

    public func encode(_ node: IPLDNode) throws -> [UInt8] {
        var w = CBORWriter()
        try w.write(node)
        return w.out
    }

    /// The links of a block, found by walking the CBOR tokens without building
    /// values or validating text, so blocks written by looser encoders (such as
    /// Filecoin's, whose strings need not be UTF-8) still give their links.
    public func links(in bytes: [UInt8]) throws -> [CID] {
        try bytes.withUnsafeBytes { raw in
            var r = CBORReader(raw)
            var links: [CID] = []
            try r.skip(depth: 0, collecting: &links)
            guard r.pos == raw.count else { throw IPLDError.trailingBytes(codec: "dag-cbor", offset: r.pos) }
            return links
        }
    }
}

/// Reads CBOR from a buffer; `pos` is the next byte.
struct CBORReader {
    let buf: UnsafeRawBufferPointer
    var pos = 0

    init(_ buf: UnsafeRawBufferPointer) { self.buf = buf }

    private func fail(_ reason: String, at offset: Int? = nil) -> IPLDError {
        .invalid(codec: "dag-cbor", offset: offset ?? pos, reason: reason)
    }

    private mutating func byte() throws -> UInt8 {
        guard pos < buf.count else { throw IPLDError.unexpectedEnd(codec: "dag-cbor", offset: pos) }
        defer { pos += 1 }
        return buf[pos]
    }

    private mutating func bigEndian(_ n: Int) throws -> UInt64 {
        guard buf.count - pos >= n else { throw IPLDError.unexpectedEnd(codec: "dag-cbor", offset: buf.count) }
        var v: UInt64 = 0
        for i in 0..<n { v = v << 8 | UInt64(buf[pos + i]) }
        pos += n
        return v
    }

    /// The head of a data item: major type and argument. `minimal` refuses
    /// arguments written longer than needed.
    mutating func head(minimal: Bool) throws -> (major: UInt8, info: UInt8, argument: UInt64) {
        let start = pos
        let b = try byte()
        let major = b >> 5, info = b & 0x1f
        let arg: UInt64
        switch info {
        case 0..<24: arg = UInt64(info)
        case 24: arg = try bigEndian(1); if minimal && major != 7 && arg < 24 { throw fail("integer or length not in its shortest form", at: start) }
        case 25: arg = try bigEndian(2); if minimal && major != 7 && arg <= 0xff { throw fail("integer or length not in its shortest form", at: start) }
        case 26: arg = try bigEndian(4); if minimal && major != 7 && arg <= 0xffff { throw fail("integer or length not in its shortest form", at: start) }
        case 27: arg = try bigEndian(8); if minimal && major != 7 && arg <= 0xffff_ffff { throw fail("integer or length not in its shortest form", at: start) }
        case 31: throw fail("indefinite-length items are not allowed", at: start)
        default: throw fail("reserved additional information \(info)", at: start)
        }
        return (major, info, arg)
    }

    /// A length that must fit in what is left, `unit` bytes per element at least.
    private func length(_ arg: UInt64, unit: Int, at offset: Int) throws -> Int {
        guard arg <= UInt64(buf.count - pos) / UInt64(unit) else {
            throw IPLDError.unexpectedEnd(codec: "dag-cbor", offset: buf.count)
        }
        return Int(arg)
    }

    private mutating func text(_ n: Int, at offset: Int) throws -> String {
        let slice = UnsafeRawBufferPointer(rebasing: buf[pos..<pos + n])
        guard let s = String(validating: slice, as: UTF8.self) else { throw fail("string is not valid UTF-8", at: offset) }
        pos += n
        return s
    }

    mutating func readNode(depth: Int) throws -> IPLDNode {
        guard depth <= DAGCBOR.maximumDepth else { throw IPLDError.tooDeep(codec: "dag-cbor", limit: DAGCBOR.maximumDepth) }
        let start = pos
        let (major, info, arg) = try head(minimal: true)
        switch major {
        case 0: return .integer(.unsigned(arg))
        case 1: return .integer(.negative(arg))
        case 2:
            let n = try length(arg, unit: 1, at: start)
            defer { pos += n }
            return .bytes(Array(buf[pos..<pos + n]))
        case 3:
            return .string(try text(length(arg, unit: 1, at: start), at: start))
        case 4:
            let n = try length(arg, unit: 1, at: start)
            var items: [IPLDNode] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try readNode(depth: depth + 1)) }
            return .list(items)
        case 5:
            let n = try length(arg, unit: 2, at: start)
            var pairs: [(String, IPLDNode)] = []
            pairs.reserveCapacity(n)
            var previous: UnsafeRawBufferPointer? = nil
            for _ in 0..<n {
                let keyStart = pos
                let (km, _, klen) = try head(minimal: true)
                guard km == 3 else { throw fail("map keys must be strings", at: keyStart) }
                let kn = try length(klen, unit: 1, at: keyStart)
                let keyBytes = UnsafeRawBufferPointer(rebasing: buf[pos..<pos + kn])
                let key = try text(kn, at: keyStart)
                if let p = previous {
                    // Canonical order: shorter keys first, then byte-wise; equal means duplicate.
                    if p.count == keyBytes.count && p.elementsEqual(keyBytes) { throw IPLDError.duplicateKey(codec: "dag-cbor", key: key) }
                    if p.count > keyBytes.count || (p.count == keyBytes.count && !p.lexicographicallyPrecedes(keyBytes)) {
                        throw IPLDError.unsortedKeys(codec: "dag-cbor", key: key)
                    }
                }
                previous = keyBytes
                pairs.append((key, try readNode(depth: depth + 1)))
            }
            return .map(IPLDMap(pairs)!)  // keys were checked unique above
        case 6:
            guard arg == 42, info == 24 else { throw fail("tag \(arg) is not allowed (only 42, as d8 2a)", at: start) }
            return .link(try linkBody())
        default:
            switch info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 27:
                let d = Double(bitPattern: arg)
                guard d.isFinite else { throw fail("NaN and Infinity are not allowed", at: start) }
                return .float(d)
            case 25, 26: throw fail("floats must be 64-bit", at: start)
            default: throw fail("simple value \(info == 24 ? arg : UInt64(info)) is not allowed", at: start)
            }
        }
    }

    /// After tag 42: a byte string holding the identity multibase prefix 0x00 and a CID.
    private mutating func linkBody() throws -> CID {
        let start = pos
        let (major, _, arg) = try head(minimal: true)
        guard major == 2 else { throw fail("tag 42 must hold a byte string", at: start) }
        let n = try length(arg, unit: 1, at: start)
        guard n >= 1, buf[pos] == 0x00 else { throw fail("CID bytes must start with the 0x00 multibase prefix", at: pos) }
        let cidBytes = Array(buf[(pos + 1)..<(pos + n)])
        pos += n
        do { return try CID(bytes: cidBytes) } catch { throw IPLDError.invalidLink(codec: "dag-cbor", error) }
    }

    /// Skips one data item of any well-formed definite-length CBOR, collecting tag-42 links.
    mutating func skip(depth: Int, collecting links: inout [CID]) throws {
        guard depth <= DAGCBOR.maximumDepth else { throw IPLDError.tooDeep(codec: "dag-cbor", limit: DAGCBOR.maximumDepth) }
        let start = pos
        let (major, _, arg) = try head(minimal: false)
        switch major {
        case 0, 1, 7: return
        case 2, 3: pos += try length(arg, unit: 1, at: start)
        case 4: for _ in 0..<(try length(arg, unit: 1, at: start)) { try skip(depth: depth + 1, collecting: &links) }
        case 5: for _ in 0..<(try length(arg, unit: 2, at: start)) * 2 { try skip(depth: depth + 1, collecting: &links) }
        default:
            if arg == 42 { links.append(try linkBody()) } else { try skip(depth: depth + 1, collecting: &links) }
        }
    }
}

/// Writes canonical DAG-CBOR.
struct CBORWriter {
    var out: [UInt8] = []

    mutating func head(_ major: UInt8, _ arg: UInt64) {
        let m = major << 5
        switch arg {
        case 0..<24: out.append(m | UInt8(arg))
        case 24...0xff: out.append(m | 24); out.append(UInt8(arg))
        case 0x100...0xffff: out.append(m | 25); appendBigEndian(arg, 2)
        case 0x10000...0xffff_ffff: out.append(m | 26); appendBigEndian(arg, 4)
        default: out.append(m | 27); appendBigEndian(arg, 8)
        }
    }

    private mutating func appendBigEndian(_ v: UInt64, _ n: Int) {
        for i in (0..<n).reversed() { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    mutating func write(_ node: IPLDNode) throws {
        switch node {
        case .null: out.append(0xf6)
        case .bool(let b): out.append(b ? 0xf5 : 0xf4)
        case .integer(.unsigned(let n)): head(0, n)
        case .integer(.negative(let n)): head(1, n)
        case .float(let d):
            guard d.isFinite else { throw IPLDError.unencodable(codec: "dag-cbor", reason: "NaN and Infinity are not in the data model") }
            out.append(0xfb)
            appendBigEndian(d.bitPattern, 8)
        case .string(let s): writeText(s)
        case .bytes(let b):
            head(2, UInt64(b.count))
            out.append(contentsOf: b)
        case .list(let items):
            head(4, UInt64(items.count))
            for i in items { try write(i) }
        case .map(let m):
            head(5, UInt64(m.count))
            for e in m.entries.sorted(by: { IPLDMap.lengthFirstLess($0.key, $1.key) }) {
                writeText(e.key)
                try write(e.value)
            }
        case .link(let cid):
            out.append(0xd8); out.append(0x2a)
            head(2, UInt64(cid.bytes.count + 1))
            out.append(0x00)
            out.append(contentsOf: cid.bytes)
        }
    }

    private mutating func writeText(_ s: String) {
        var s = s
        s.withUTF8 { u in
            head(3, UInt64(u.count))
            out.append(contentsOf: u)
        }
    }
}
