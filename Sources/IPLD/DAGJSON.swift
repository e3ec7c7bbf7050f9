import Multiformats

/// DAG-JSON (0x0129): JSON with links as `{"/": "<cid>"}` and bytes as
/// `{"/": {"bytes": "<base64, no padding>"}}`.
///
/// Encoding is canonical: no whitespace, map keys sorted by their UTF-8 bytes,
/// integers in decimal, floats in the shortest round-trip form (JavaScript's
/// number formatting, with `.0` added to integral floats so they stay floats),
/// strings escaped as JSON.stringify does. The strict decoder (the default)
/// accepts only that form; the lenient one (for people typing JSON) allows
/// whitespace and any key order. Both refuse duplicate keys, malformed
/// reserved `"/"` forms, NaN/Infinity and integers beyond -2^64 … 2^64-1.
public struct DAGJSON: IPLDCodec {
    /// Deepest nesting the decoder follows.
    public static let maximumDepth = 512

    /// Whether decoding demands the canonical form.
    public let strict: Bool

    /// A DAG-JSON codec; `strict: false` accepts whitespace and unsorted keys on decode.
    public init(strict: Bool = true) { self.strict = strict }
    public var code: Multicodec { .dagJSON }

    public func decode(_ bytes: [UInt8]) throws -> IPLDNode {
        try bytes.withUnsafeBytes { raw in
            var r = JSONReader(buf: raw, strict: strict)
            r.skipWhitespace()
            let node = try r.readValue(depth: 0)
            r.skipWhitespace()
            guard r.pos == raw.count else { throw IPLDError.trailingBytes(codec: "dag-json", offset: r.pos) }
            return node
        }
    }

    public func encode(_ node: IPLDNode) throws -> [UInt8] {
        var out: [UInt8] = []
        try DAGJSON.write(node, to: &out)
        return out
    }

    public func links(in bytes: [UInt8]) throws -> [CID] {
        try DAGJSON(strict: false).decode(bytes).links
    }

    static func write(_ node: IPLDNode, to out: inout [UInt8]) throws {
        switch node {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let i): out.append(contentsOf: i.description.utf8)
        case .float(let d):
            guard d.isFinite else { throw IPLDError.unencodable(codec: "dag-json", reason: "NaN and Infinity are not in the data model") }
            out.append(contentsOf: formatFloat(d).utf8)
        case .string(let s): writeString(s, to: &out)
        case .bytes(let b):
            out.append(contentsOf: #"{"/":{"bytes":""#.utf8)
            out.append(contentsOf: Multibase.base64.encodeWithoutPrefix(b).utf8)
            out.append(contentsOf: #""}}"#.utf8)
        case .link(let c):
            out.append(contentsOf: #"{"/":""#.utf8)
            out.append(contentsOf: c.string.utf8)
            out.append(contentsOf: #""}"#.utf8)
        case .list(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                try write(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .map(let m):
            if let reason = reservedNamespaceViolation(m) {
                throw IPLDError.unencodable(codec: "dag-json", reason: reason)
            }
            out.append(UInt8(ascii: "{"))
            // IPLDMap keeps entries in byte order, which is DAG-JSON's canonical order.
            for (i, e) in m.entries.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(e.key, to: &out)
                out.append(UInt8(ascii: ":"))
                try write(e.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A map the reserved `"/"` namespace cannot carry as a plain map (it would
    /// read back as a link or bytes, or is one of the forms the spec rejects).
    static func reservedNamespaceViolation(_ m: IPLDMap) -> String? {
        guard let first = m.entries.first, first.key == "/" else { return nil }
        switch first.value {
        case .string:
            return m.count == 1 ? "a map {\"/\": string} reads back as a link" : "a map whose first key \"/\" holds a string must have no other keys"
        case .map(let inner):
            guard let innerFirst = inner.entries.first, innerFirst.key == "bytes", case .string = innerFirst.value else { return nil }
            if inner.count > 1 { return "a \"/\" map whose first key \"bytes\" holds a string must have no other keys" }
            return m.count == 1 ? "a map {\"/\": {\"bytes\": string}} reads back as bytes" : "a bytes form must be the only key of its map"
        default:
            return nil
        }
    }

    /// A JSON string literal with JSON.stringify's escaping (quote, backslash and control
    /// characters only): DAG-JSON's canonical form, and plain JSON anywhere else.
    public static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5c, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5c, 0x5c])
            case 0x08: out.append(contentsOf: [0x5c, UInt8(ascii: "b")])
            case 0x0c: out.append(contentsOf: [0x5c, UInt8(ascii: "f")])
            case 0x0a: out.append(contentsOf: [0x5c, UInt8(ascii: "n")])
            case 0x0d: out.append(contentsOf: [0x5c, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5c, UInt8(ascii: "t")])
            case 0..<0x20: out.append(contentsOf: [0x5c, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The shortest round-trip decimal of `d`, laid out as ECMAScript's
    /// Number::toString does, with `.0` appended when it would read as an integer.
    static func formatFloat(_ d: Double) -> String {
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is the shortest round-trip form; take its digits and exponent.
        let text = d.magnitude.description
        let parts = text.split(separator: "e")
        let mantissa = parts[0]
        let exponent = parts.count > 1 ? Int(parts[1])! : 0
        let dot = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        var digits = Array(dot[0].utf8) + (dot.count > 1 ? Array(dot[1].utf8) : [])
        var point = dot[0].utf8.count + exponent
        while digits.first == UInt8(ascii: "0") { digits.removeFirst(); point -= 1 }
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        let s = String(decoding: digits, as: UTF8.self)
        let k = digits.count, n = point
        var r: String
        if k <= n && n <= 21 {
            r = s + String(repeating: "0", count: n - k) + ".0"
        } else if 0 < n && n <= 21 {
            r = String(s.prefix(n)) + "." + String(s.dropFirst(n))
        } else if -6 < n && n <= 0 {
            r = "0." + String(repeating: "0", count: -n) + s
        } else {
            let e = n - 1
            let sign = e < 0 ? "-" : "+"
            r = String(s.prefix(1)) + (k > 1 ? "." + String(s.dropFirst()) : "") + "e" + sign + String(e.magnitude)
        }
        return d < 0 ? "-" + r : r
    }
}

/// Reads DAG-JSON from a buffer; `pos` is the next byte.
struct JSONReader {
    let buf: UnsafeRawBufferPointer
    let strict: Bool
    var pos = 0

    private func fail(_ reason: String, at offset: Int? = nil) -> IPLDError {
        .invalid(codec: "dag-json", offset: offset ?? pos, reason: reason)
    }

    private var end: IPLDError { .unexpectedEnd(codec: "dag-json", offset: pos) }

    mutating func skipWhitespace() {
        guard !strict else { return }
        while pos < buf.count, [0x20, 0x09, 0x0a, 0x0d].contains(buf[pos]) { pos += 1 }
    }

    private func peek() throws -> UInt8 {
        guard pos < buf.count else { throw end }
        return buf[pos]
    }

    private mutating func expect(_ literal: String) throws {
        for b in literal.utf8 {
            guard pos < buf.count else { throw end }
            guard buf[pos] == b else { throw fail("expected \(literal)") }
            pos += 1
        }
    }

    mutating func readValue(depth: Int) throws -> IPLDNode {
        guard depth <= DAGJSON.maximumDepth else { throw IPLDError.tooDeep(codec: "dag-json", limit: DAGJSON.maximumDepth) }
        switch try peek() {
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "["): return try readList(depth: depth)
        case UInt8(ascii: "{"): return try readMap(depth: depth)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try readNumber()
        default: throw fail("unexpected character")
        }
    }

    private mutating func readList(depth: Int) throws -> IPLDNode {
        pos += 1
        var items: [IPLDNode] = []
        skipWhitespace()
        if try peek() == UInt8(ascii: "]") { pos += 1; return .list(items) }
        while true {
            skipWhitespace()
            items.append(try readValue(depth: depth + 1))
            skipWhitespace()
            let c = try peek()
            pos += 1
            if c == UInt8(ascii: "]") { return .list(items) }
            guard c == UInt8(ascii: ",") else { throw fail("expected , or ]", at: pos - 1) }
        }
    }

    private mutating func readMap(depth: Int) throws -> IPLDNode {
        let start = pos
        pos += 1
        var pairs: [(String, IPLDNode)] = []
        skipWhitespace()
        if try peek() == UInt8(ascii: "}") { pos += 1; return .map(IPLDMap()) }
        while true {
            skipWhitespace()
            guard try peek() == UInt8(ascii: "\"") else { throw fail("map keys must be strings") }
            let key = try readString()
            if strict, let last = pairs.last?.0, !IPLDMap.bytewiseLess(last, key) {
                throw last.utf8.elementsEqual(key.utf8)
                    ? IPLDError.duplicateKey(codec: "dag-json", key: key) : IPLDError.unsortedKeys(codec: "dag-json", key: key)
            }
            skipWhitespace()
            try expect(":")
            skipWhitespace()
            pairs.append((key, try readValue(depth: depth + 1)))
            skipWhitespace()
            let c = try peek()
            pos += 1
            if c == UInt8(ascii: "}") { break }
            guard c == UInt8(ascii: ",") else { throw fail("expected , or }", at: pos - 1) }
        }
        guard let map = IPLDMap(pairs) else {
            let dup = pairs.first { p in pairs.filter { $0.0.utf8.elementsEqual(p.0.utf8) }.count > 1 }!.0
            throw IPLDError.duplicateKey(codec: "dag-json", key: dup)
        }
        return try interpretReserved(map, at: start)
    }

    /// `{"/": "<cid>"}` is a link, `{"/": {"bytes": "<base64>"}}` is bytes; other
    /// maps led by "/" are plain maps unless the spec rejects their form.
    private func interpretReserved(_ map: IPLDMap, at start: Int) throws -> IPLDNode {
        guard map.count == 1, let slash = map["/"] else {
            if let reason = DAGJSON.reservedNamespaceViolation(map) { throw fail(reason, at: start) }
            return .map(map)
        }
        switch slash {
        case .string(let s):
            do {
                let cid = try CID(s)
                // Links are written in their canonical form (base58btc v0, base32 v1).
                guard cid.string == s else { throw fail("link must be written as \(cid.string)", at: start) }
                return .link(cid)
            } catch let e as CIDError {
                throw IPLDError.invalidLink(codec: "dag-json", e)
            }
        case .map(let inner):
            guard let first = inner.entries.first, first.key == "bytes", case .string(let b64) = first.value else { return .map(map) }
            guard inner.count == 1 else { throw fail("a bytes form must have only the key \"bytes\"", at: start) }
            do {
                return .bytes(try Multibase.base64.decodeWithoutPrefix(Substring(b64)))
            } catch {
                throw fail("bytes are not valid unpadded base64: \(error)", at: start)
            }
        default:
            return .map(map)
        }
    }

    private mutating func readNumber() throws -> IPLDNode {
        let start = pos
        if buf[pos] == UInt8(ascii: "-") { pos += 1 }
        func digits() -> Int {
            let s = pos
            while pos < buf.count, buf[pos] >= 0x30, buf[pos] <= 0x39 { pos += 1 }
            return pos - s
        }
        let intStart = pos
        let intDigits = digits()
        guard intDigits > 0 else { throw fail("malformed number", at: start) }
        guard !(intDigits > 1 && buf[intStart] == 0x30) else { throw fail("leading zeros are not allowed", at: start) }
        var isFloat = false
        if pos < buf.count, buf[pos] == UInt8(ascii: ".") {
            pos += 1
            isFloat = true
            guard digits() > 0 else { throw fail("malformed number", at: start) }
        }
        if pos < buf.count, buf[pos] == UInt8(ascii: "e") || buf[pos] == UInt8(ascii: "E") {
            pos += 1
            isFloat = true
            if pos < buf.count, buf[pos] == UInt8(ascii: "+") || buf[pos] == UInt8(ascii: "-") { pos += 1 }
            guard digits() > 0 else { throw fail("malformed number", at: start) }
        }
        let text = Substring(String(decoding: UnsafeRawBufferPointer(rebasing: buf[start..<pos]), as: UTF8.self))
        if isFloat {
            guard let d = Double(text), d.isFinite else { throw fail("number out of range", at: start) }
            if strict && DAGJSON.formatFloat(d) != text { throw fail("float not in canonical form (\(DAGJSON.formatFloat(d)))", at: start) }
            return .float(d)
        }
        guard let i = IPLDInteger(decimal: text) else { throw fail("integer outside -2^64 … 2^64-1", at: start) }
        if text == "-0" { throw fail("-0 is not an integer", at: start) }
        return .integer(i)
    }

    private mutating func hex4() throws -> UInt32 {
        guard buf.count - pos >= 4 else { throw end }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[pos]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            case 0x41...0x46: d = c - 0x41 + 10
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | UInt32(d)
            pos += 1
        }
        return v
    }

    /// Whether the escape starting at `pos` (after the backslash, escape letter `e`) is one
    /// the encoder writes: the short forms for quote, backslash, \\b \\f \\n \\r \\t, and
    /// lowercase `\\u00XX` only for the other control characters.
    private func canonicalEscape(_ e: UInt8) -> Bool {
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
             UInt8(ascii: "r"), UInt8(ascii: "t"):
            return true
        case UInt8(ascii: "u"):
            guard buf.count - pos >= 4, buf[pos] == 0x30, buf[pos + 1] == 0x30, buf[pos + 2] <= 0x31 else { return false }
            let lowHex = Array("0123456789abcdef".utf8)
            guard buf[pos + 2] == 0x30 || buf[pos + 2] == 0x31, lowHex.contains(buf[pos + 3]) else { return false }
            let v = (buf[pos + 2] - 0x30) << 4 | UInt8(lowHex.firstIndex(of: buf[pos + 3])!)
            return ![0x08, 0x09, 0x0a, 0x0c, 0x0d].contains(v)
        default:
            return false
        }
    }

    mutating func readString() throws -> String {
        let start = pos
        pos += 1
        var out: [UInt8] = []
        while true {
            guard pos < buf.count else { throw end }
            let c = buf[pos]
            pos += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8", at: start) }
                return s
            case UInt8(ascii: "\\"):
                guard pos < buf.count else { throw end }
                let e = buf[pos]
                pos += 1
                if strict && !canonicalEscape(e) { throw fail("escape not in canonical form", at: pos - 2) }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xd800..<0xdc00).contains(scalar) {
                        guard buf.count - pos >= 6, buf[pos] == UInt8(ascii: "\\"), buf[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        pos += 2
                        let low = try hex4()
                        guard (0xdc00..<0xe000).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    } else if (0xdc00..<0xe000).contains(scalar) {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default: throw fail("bad escape \\\(Character(Unicode.Scalar(e)))", at: pos - 2)
                }
            case 0..<0x20: throw fail("control character in string", at: pos - 1)
            default: out.append(c)
            }
        }
    }
}
