import IPLD
import Multiformats

/// The UnixFS `Data` protobuf carried in a dag-pb node's Data field (specs/ipfs/unixfs.md):
/// `Type` (1), `Data` (2), `filesize` (3), `blocksizes` (4, repeated, unpacked),
/// `hashType` (5), `fanout` (6), `mode` (7), `mtime` (8). Encoded in field order,
/// as go-unixfs writes it, so CIDs match Kubo's.
public struct UnixFSData: Sendable, Equatable {
    /// The node type.
    public enum Kind: UInt64, Sendable {
        case raw = 0, directory = 1, file = 2, metadata = 3, symlink = 4, hamtShard = 5
    }

    public var kind: Kind
    public var data: [UInt8]?
    public var fileSize: UInt64?
    public var blockSizes: [UInt64] = []
    public var hashType: UInt64?
    public var fanout: UInt64?
    public var mode: UInt32?
    /// Seconds and nanoseconds since the epoch.
    public var mtime: (seconds: Int64, nanoseconds: UInt32?)?

    public init(kind: Kind, data: [UInt8]? = nil, fileSize: UInt64? = nil, blockSizes: [UInt64] = []) {
        self.kind = kind
        self.data = data
        self.fileSize = fileSize
        self.blockSizes = blockSizes
    }

    public static func == (a: UnixFSData, b: UnixFSData) -> Bool {
        a.kind == b.kind && a.data == b.data && a.fileSize == b.fileSize && a.blockSizes == b.blockSizes
            && a.hashType == b.hashType && a.fanout == b.fanout && a.mode == b.mode
            && a.mtime?.seconds == b.mtime?.seconds && a.mtime?.nanoseconds == b.mtime?.nanoseconds
    }

    /// The protobuf bytes.
    public func encode() -> [UInt8] {
        var out: [UInt8] = []
        func varint(_ v: UInt64) { var v = v; while v >= 0x80 { out.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }; out.append(UInt8(v)) }
        out.append(0x08); varint(kind.rawValue)
        if let data { out.append(0x12); varint(UInt64(data.count)); out.append(contentsOf: data) }
        if let fileSize { out.append(0x18); varint(fileSize) }
        for b in blockSizes { out.append(0x20); varint(b) }
        if let hashType { out.append(0x28); varint(hashType) }
        if let fanout { out.append(0x30); varint(fanout) }
        if let mode { out.append(0x38); varint(UInt64(mode)) }
        if let mtime {
            var m: [UInt8] = [0x08]
            var s = UInt64(bitPattern: mtime.seconds)
            while s >= 0x80 { m.append(UInt8(truncatingIfNeeded: s) | 0x80); s >>= 7 }
            m.append(UInt8(s))
            if let ns = mtime.nanoseconds { m.append(0x15); withUnsafeBytes(of: ns.littleEndian) { m.append(contentsOf: $0) } }
            out.append(0x42); varint(UInt64(m.count)); out.append(contentsOf: m)
        }
        return out
    }

    /// Parses UnixFS Data bytes.
    public init(bytes: [UInt8]) throws {
        var kind: Kind?
        var r = ProtoReader(bytes)
        self.kind = .raw
        while !r.atEnd {
            let (field, wire) = try r.tag()
            switch (field, wire) {
            case (1, 0):
                guard let k = Kind(rawValue: try r.varint()) else { throw UnixFSError.invalid("unknown UnixFS type") }
                kind = k
            case (2, 2): data = try r.bytes()
            case (3, 0): fileSize = try r.varint()
            case (4, 0): blockSizes.append(try r.varint())
            case (4, 2):
                var packed = ProtoReader(try r.bytes())
                while !packed.atEnd { blockSizes.append(try packed.varint()) }
            case (5, 0): hashType = try r.varint()
            case (6, 0): fanout = try r.varint()
            case (7, 0): mode = UInt32(truncatingIfNeeded: try r.varint())
            case (8, 2):
                var m = ProtoReader(try r.bytes())
                var seconds: Int64 = 0
                var nanos: UInt32?
                while !m.atEnd {
                    let (f, w) = try m.tag()
                    if f == 1 && w == 0 { seconds = Int64(bitPattern: try m.varint()) }
                    else if f == 2 && w == 5 { nanos = try m.fixed32() }
                    else { try m.skip(w) }
                }
                mtime = (seconds, nanos)
            default: try r.skip(wire)
            }
        }
        guard let kind else { throw UnixFSError.invalid("UnixFS data without a Type") }
        self.kind = kind
    }
}

/// Why a UnixFS DAG could not be read or written.
public enum UnixFSError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(String)
    case notAFile(CID)
    case missingBlock(CID)
    case badChunker(String, String)

    public var description: String {
        switch self {
        case .invalid(let r): "invalid UnixFS: \(r)"
        case .notAFile(let c): "\(c) is not a UnixFS file"
        case .missingBlock(let c): "block \(c) is missing"
        case .badChunker(let c, let why): "bad chunker \"\(c)\": \(why)"
        }
    }
}

/// Minimal protobuf wire reading.
struct ProtoReader {
    let buffer: [UInt8]
    var pos = 0
    init(_ bytes: [UInt8]) { self.buffer = bytes }
    var atEnd: Bool { pos >= buffer.count }

    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard pos < buffer.count, shift < 64 else { throw UnixFSError.invalid("truncated varint") }
            let b = buffer[pos]; pos += 1
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
    }

    mutating func tag() throws -> (Int, Int) {
        let t = try varint()
        return (Int(t >> 3), Int(t & 7))
    }

    mutating func bytes() throws -> [UInt8] {
        let n = try varint()
        guard n <= UInt64(buffer.count - pos) else { throw UnixFSError.invalid("truncated field") }
        defer { pos += Int(n) }
        return Array(buffer[pos..<pos + Int(n)])
    }

    mutating func fixed32() throws -> UInt32 {
        guard buffer.count - pos >= 4 else { throw UnixFSError.invalid("truncated fixed32") }
        defer { pos += 4 }
        return (0..<4).reduce(0) { $0 | UInt32(buffer[pos + $1]) << (8 * UInt32($1)) }
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: guard buffer.count - pos >= 8 else { throw UnixFSError.invalid("truncated") }; pos += 8
        case 2: _ = try bytes()
        case 5: guard buffer.count - pos >= 4 else { throw UnixFSError.invalid("truncated") }; pos += 4
        default: throw UnixFSError.invalid("unsupported wire type \(wire)")
        }
    }
}

extension UnixFSError: KindedError {
    public var kind: ErrorKind {
        switch self {
        case .missingBlock: .notFound
        case .invalid, .notAFile, .badChunker: .invalidInput
        }
    }
}
