import Multiformats

/// A DAG-PB link: the binary CID of the target, an optional name and an
/// optional cumulative size.
public struct PBLink: Sendable, Hashable {
    /// The target.
    public var hash: CID
    /// The name (directory entry name in UnixFS); nil when absent.
    public var name: String?
    /// The cumulative size of the target DAG; nil when absent.
    public var tsize: UInt64?

    /// A link.
    public init(hash: CID, name: String? = nil, tsize: UInt64? = nil) {
        self.hash = hash
        self.name = name
        self.tsize = tsize
    }
}

/// A DAG-PB node: links and optional opaque data (UnixFS puts its protobuf there).
public struct PBNode: Sendable, Hashable {
    /// The links, in block order.
    public var links: [PBLink]
    /// The data; nil when absent (different from empty).
    public var data: [UInt8]?

    /// A node.
    public init(links: [PBLink] = [], data: [UInt8]? = nil) {
        self.links = links
        self.data = data
    }

    /// Whether the links are in the order DAG-PB requires for encoding:
    /// ascending by name bytes (a missing name sorts as empty), ties kept.
    public var linksAreSorted: Bool {
        zip(links, links.dropFirst()).allSatisfy { a, b in
            !Array((b.name ?? "").utf8).lexicographicallyPrecedes(Array((a.name ?? "").utf8))
        }
    }

    /// Sorts the links as DAG-PB requires (stable).
    public mutating func sortLinks() {
        links = links.enumerated().sorted { x, y in
            let a = Array((x.element.name ?? "").utf8), b = Array((y.element.name ?? "").utf8)
            return a == b ? x.offset < y.offset : a.lexicographicallyPrecedes(b)
        }.map(\.element)
    }
}

/// DAG-PB (0x70): the protobuf form of `PBNode`, strictly: PBLink fields in
/// field order (Hash, Name, Tsize), each at most once, Hash required and a
/// valid CID; PBNode's Links contiguous and Data at most once (before or after
/// the links: both exist in the wild); no other fields or wire types; minimal
/// varints. Encoding writes Links then Data and refuses unsorted links.
///
/// The data model form is `{"Data": bytes?, "Links": [{"Hash": link, "Name": string?, "Tsize": int?}]}`.
public struct DAGPB: IPLDCodec {
    public init() {}
    public var code: Multicodec { .dagPB }

    public func decode(_ bytes: [UInt8]) throws -> IPLDNode { DAGPB.node(try DAGPB.decodeNode(bytes)) }

    public func encode(_ node: IPLDNode) throws -> [UInt8] { try DAGPB.encodeNode(DAGPB.pbNode(from: node)) }

    public func links(in bytes: [UInt8]) throws -> [CID] { try DAGPB.decodeNode(bytes).links.map(\.hash) }

    /// The canonical bytes of `node`. Throws when its links are not sorted.
    public static func encodeNode(_ node: PBNode) throws -> [UInt8] {
        guard node.linksAreSorted else { throw IPLDError.unencodable(codec: "dag-pb", reason: "links must be sorted by name") }
        var out: [UInt8] = []
        for link in node.links {
            var l: [UInt8] = []
            appendBytesField(1, link.hash.bytes, to: &l)
            if let name = link.name { appendBytesField(2, Array(name.utf8), to: &l) }
            if let tsize = link.tsize { l.append(0x18); appendVarint(tsize, to: &l) }
            appendBytesField(2, l, to: &out)
        }
        if let data = node.data { appendBytesField(1, data, to: &out) }
        return out
    }

    private static func appendVarint(_ v: UInt64, to out: inout [UInt8]) {
        var v = v
        while v >= 0x80 { out.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    private static func appendBytesField(_ field: UInt8, _ bytes: [UInt8], to out: inout [UInt8]) {
        out.append(field << 3 | 2)
        appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// Decodes a block into a `PBNode`.
    public static func decodeNode(_ bytes: [UInt8]) throws -> PBNode {
        try bytes.withUnsafeBytes { raw in
            var r = PBReader(buf: raw, start: 0, end: raw.count)
            var node = PBNode()
            // 0: nothing yet; 1: reading links; 2: links ended (data seen after them).
            var linksState = 0
            while !r.atEnd {
                let tagAt = r.pos
                let tag = try r.varint()
                switch tag {
                case 0x12:
                    if linksState == 2 { throw IPLDError.invalid(codec: "dag-pb", offset: tagAt, reason: "duplicate Links section") }
                    linksState = 1
                    let (s, e) = try r.lengthDelimited()
                    node.links.append(try decodeLink(raw, s, e))
                case 0x0a:
                    if node.data != nil { throw IPLDError.invalid(codec: "dag-pb", offset: tagAt, reason: "duplicate Data field") }
                    if linksState == 1 { linksState = 2 }
                    let (s, e) = try r.lengthDelimited()
                    node.data = Array(raw[s..<e])
                default:
                    throw IPLDError.invalid(codec: "dag-pb", offset: tagAt, reason: "unexpected field or wire type (tag \(tag)) in PBNode")
                }
            }
            return node
        }
    }

    private static func decodeLink(_ raw: UnsafeRawBufferPointer, _ start: Int, _ end: Int) throws -> PBLink {
        var r = PBReader(buf: raw, start: start, end: end)
        var hash: CID?
        var name: String?
        var tsize: UInt64?
        var lastField = 0
        while !r.atEnd {
            let tagAt = r.pos
            let tag = try r.varint()
            let field = Int(tag >> 3)
            guard field > lastField else {
                throw IPLDError.invalid(codec: "dag-pb", offset: tagAt, reason: "PBLink fields duplicated or out of order")
            }
            lastField = field
            switch tag {
            case 0x0a:
                let (s, e) = try r.lengthDelimited()
                do { hash = try CID(bytes: Array(raw[s..<e])) } catch {
                    throw IPLDError.invalidLink(codec: "dag-pb", error)
                }
            case 0x12:
                let (s, e) = try r.lengthDelimited()
                guard let n = String(validating: UnsafeRawBufferPointer(rebasing: raw[s..<e]), as: UTF8.self) else {
                    throw IPLDError.invalid(codec: "dag-pb", offset: s, reason: "link Name is not valid UTF-8")
                }
                name = n
            case 0x18:
                tsize = try r.varint()
            default:
                throw IPLDError.invalid(codec: "dag-pb", offset: tagAt, reason: "unexpected field or wire type (tag \(tag)) in PBLink")
            }
        }
        guard let hash else { throw IPLDError.invalid(codec: "dag-pb", offset: start, reason: "link has no Hash") }
        return PBLink(hash: hash, name: name, tsize: tsize)
    }

    /// The data model form of a node.
    public static func node(_ pb: PBNode) -> IPLDNode {
        let links: [IPLDNode] = pb.links.map { l in
            var pairs: [(String, IPLDNode)] = [("Hash", .link(l.hash))]
            if let n = l.name { pairs.append(("Name", .string(n))) }
            if let t = l.tsize { pairs.append(("Tsize", .integer(.unsigned(t)))) }
            return .map(IPLDMap(uniqueKeysWithValues: pairs))
        }
        var pairs: [(String, IPLDNode)] = [("Links", .list(links))]
        if let d = pb.data { pairs.append(("Data", .bytes(d))) }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    /// The `PBNode` a data model value describes; throws when it is not exactly the DAG-PB shape.
    public static func pbNode(from node: IPLDNode) throws -> PBNode {
        func bad(_ why: String) -> IPLDError { .unencodable(codec: "dag-pb", reason: why) }
        guard case .map(let m) = node else { throw bad("a DAG-PB node is a map, not \(node.kind)") }
        for k in m.keys where k != "Data" && k != "Links" { throw bad("extraneous field \"\(k)\"") }
        guard case .list(let linkNodes)? = m["Links"] else { throw bad("Links must be a list") }
        var pb = PBNode()
        if let d = m["Data"] {
            guard case .bytes(let b) = d else { throw bad("Data must be bytes") }
            pb.data = b
        }
        for ln in linkNodes {
            guard case .map(let lm) = ln else { throw bad("each link must be a map") }
            for k in lm.keys where k != "Hash" && k != "Name" && k != "Tsize" { throw bad("extraneous link field \"\(k)\"") }
            guard let h = lm["Hash"] else { throw bad("link must have a Hash") }
            guard case .link(let cid) = h else { throw bad("link Hash must be a CID") }
            var link = PBLink(hash: cid)
            if let n = lm["Name"] {
                guard case .string(let s) = n else { throw bad("link Name must be a string") }
                link.name = s
            }
            if let t = lm["Tsize"] {
                guard case .integer(let i) = t else { throw bad("link Tsize must be an integer") }
                guard case .unsigned(let u) = i else { throw bad("link Tsize cannot be negative") }
                link.tsize = u
            }
            pb.links.append(link)
        }
        return pb
    }
}

/// Reads protobuf wire data between `pos` and `end`.
struct PBReader {
    let buf: UnsafeRawBufferPointer
    var pos: Int
    let end: Int

    init(buf: UnsafeRawBufferPointer, start: Int, end: Int) {
        self.buf = buf
        self.pos = start
        self.end = end
    }

    var atEnd: Bool { pos >= end }

    /// A protobuf varint (up to 10 bytes, 64 bits), minimally encoded.
    mutating func varint() throws -> UInt64 {
        let start = pos
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else { throw IPLDError.unexpectedEnd(codec: "dag-pb", offset: pos) }
            let b = buf[pos]
            pos += 1
            guard shift < 64, !(shift == 63 && b > 1) else { throw IPLDError.invalid(codec: "dag-pb", offset: start, reason: "varint overflows 64 bits") }
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 {
                if b == 0 && pos - start > 1 { throw IPLDError.invalid(codec: "dag-pb", offset: start, reason: "varint not minimally encoded") }
                return v
            }
            shift += 7
        }
    }

    /// A length-delimited field's bounds.
    mutating func lengthDelimited() throws -> (Int, Int) {
        let n = try varint()
        guard n <= UInt64(end - pos) else { throw IPLDError.unexpectedEnd(codec: "dag-pb", offset: end) }
        let s = pos
        pos += Int(n)
        return (s, pos)
    }
}
