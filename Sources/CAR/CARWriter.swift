import IPLD
import Multiformats

/// Writes a CAR as a stream: the header first, then one section per block.
///
/// A CARv1 needs nothing but a sink. A CARv2 also needs its sink to be
/// seekable: the fixed header is written with zeros first and filled in by
/// `finish()`, once the payload size is known, followed by the index. The
/// index holds one entry per block (digest and offset), the only state that
/// grows with the CAR.
public struct CARWriter<Sink: ByteSink> {
    /// The CAR version being written.
    public let version: Int
    private var sink: Sink
    private var written: UInt64 = 0
    private var payloadStart: UInt64 = 0
    private var indexEntries: [(Multihash, UInt64)] = []
    private let fullyIndexed: Bool
    private let indexFormat: Multicodec?

    /// Starts a CARv1 with `roots`.
    public init(roots: [CID], sink: Sink) throws {
        self.sink = sink
        version = 1
        fullyIndexed = false
        indexFormat = nil
        try writeHeader(roots)
    }

    /// Bytes written so far.
    public var bytesWritten: UInt64 { written }

    /// Appends one block. The caller vouches that `data` hashes to `cid` (blocks come from a verified store).
    public mutating func write(cid: CID, data: [UInt8]) throws {
        if version == 2 && (fullyIndexed || cid.multihash.code != .identity) {
            indexEntries.append((cid.multihash, written - payloadStart))
        }
        var head = Varint.encode(UInt64(cid.bytes.count + data.count))
        head.append(contentsOf: cid.bytes)
        try emit(head)
        try emit(data)
    }

    /// Ends the CAR and returns the sink. For a CARv1 there is nothing more to write.
    public mutating func finish() throws -> Sink {
        guard version == 2, let seekable = sink as? any SeekableByteSink else { return sink }
        let dataSize = written - payloadStart
        var indexOffset: UInt64 = 0
        if let indexFormat {
            indexOffset = written
            try emit(CARIndex(format: indexFormat, entries: indexEntries).encode())
        }
        let header = CARv2Header(fullyIndexed: fullyIndexed, dataOffset: payloadStart, dataSize: dataSize, indexOffset: indexOffset)
        var s = seekable
        try header.encode().withUnsafeBytes { try s.write($0, at: UInt64(CARv2Header.pragma.count)) }
        sink = s as! Sink
        return sink
    }

    private mutating func writeHeader(_ roots: [CID]) throws {
        let header = CARHeader(roots: roots).encode()
        try emit(Varint.encode(UInt64(header.count)) + header)
    }

    private mutating func emit(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sink.write($0) }
        written += UInt64(bytes.count)
    }
}

extension CARWriter where Sink: SeekableByteSink {
    /// Starts a CARv2 with `roots`; `index` nil writes none. Identity blocks are
    /// indexed only when `fullyIndexed` (which also sets that characteristic).
    public init(v2Roots roots: [CID], sink: Sink, index: Multicodec? = .carMultihashIndexSorted, fullyIndexed: Bool = false) throws {
        self.sink = sink
        version = 2
        self.fullyIndexed = fullyIndexed
        indexFormat = index
        try emit(CARv2Header.pragma)
        try emit([UInt8](repeating: 0, count: 40))
        payloadStart = written
        try writeHeader(roots)
    }
}
