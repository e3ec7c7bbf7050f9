import IPLD
import Multiformats

/// One block of a CAR, with where its section sits in the file.
public struct CARBlock: Sendable, Equatable {
    /// The block's CID.
    public let cid: CID
    /// The block's bytes.
    public let data: [UInt8]
    /// Absolute file offset of the section (its length varint).
    public let sectionOffset: UInt64
    /// Length of the whole section, length varint included.
    public let sectionLength: UInt64
    /// Absolute file offset of the block bytes.
    public let blockOffset: UInt64
}

/// Reads a CAR (v1, or v2 through its pragma) as a stream: the header when
/// opened, then one block per `next()`. Memory holds one block and a fixed
/// buffer, whatever the size of the CAR.
public struct CARReader<Source: ByteSource> {
    /// How the reader treats what it reads.
    public struct Options: Sendable {
        /// Re-hash every block and fail on a mismatch (and on hash functions it cannot compute).
        public var verifyBlocks = true
        /// Treat a zero-length section as the end of the data (go-car's ZeroLengthSectionAsEOF), instead of an error.
        public var zeroLengthSectionAsEOF = false
        /// The largest section accepted; a longer one is an error before anything is allocated.
        public var maximumSectionLength: UInt64 = 32 << 20
        /// The largest header accepted.
        public var maximumHeaderLength: UInt64 = 16 << 20
        /// Defaults: verify blocks, strict sections.
        public init() {}
    }

    /// 1 or 2.
    public let version: Int
    /// The roots of the CARv1 header (the payload's header for a CARv2).
    public let roots: [CID]
    /// The CARv2 header, for a CARv2.
    public let v2Header: CARv2Header?
    /// The options in force.
    public let options: Options
    private var reader: BufferedReader<Source>
    private var finished = false

    /// Opens a CAR: reads and checks the header (and for a CARv2 its fixed
    /// header, skipping to the payload). `fileSize`, when known, lets a
    /// CARv2's offsets be checked before reading.
    public init(_ source: Source, options: Options = Options(), fileSize: UInt64? = nil) throws {
        self.options = options
        reader = BufferedReader(source)
        let (version, roots, headerBytes) = try CARReader.readHeader(&reader, options)
        if version == 2 && headerBytes == Array(CARv2Header.pragma.dropFirst()) {
            let h = CARv2Header(bytes: try reader.bytes(40))
            try h.validate(fileSize: fileSize)
            try reader.skip(h.dataOffset - CARv2Header.size)
            reader.limit = h.dataSize
            let inner = try CARReader.readHeader(&reader, options)
            guard inner.version == 1 else { throw CARError.unsupportedVersion(inner.version) }
            self.version = 2
            self.roots = inner.roots
            self.v2Header = h
        } else {
            guard version == 1 else { throw CARError.unsupportedVersion(version) }
            self.version = 1
            self.roots = roots
            self.v2Header = nil
        }
    }

    private static func readHeader(_ r: inout BufferedReader<Source>, _ options: Options) throws -> (version: Int, roots: [CID], bytes: [UInt8]) {
        guard let length = try r.varint() else { throw CARError.invalidHeader("empty input") }
        guard length > 0 else { throw CARError.invalidHeader("zero-length header") }
        guard length <= options.maximumHeaderLength else {
            throw CARError.invalidHeader("header length \(length) exceeds the \(options.maximumHeaderLength)-byte limit")
        }
        let bytes = try r.bytes(length)
        let (version, roots) = try CARHeader.decode(bytes)
        return (version, roots, bytes)
    }

    /// The next block, or nil at the end of the data.
    public mutating func next() throws -> CARBlock? {
        guard !finished else { return nil }
        let sectionOffset = reader.offset
        guard let length = try reader.varint() else { finished = true; return nil }
        let varintLength = reader.offset - sectionOffset
        if length == 0 {
            guard options.zeroLengthSectionAsEOF else {
                throw CARError.invalidSection(offset: sectionOffset, reason: "zero-length section")
            }
            finished = true
            return nil
        }
        guard length <= options.maximumSectionLength else {
            throw CARError.invalidSection(offset: sectionOffset, reason: "length \(length) exceeds the \(options.maximumSectionLength)-byte limit")
        }
        let section = try reader.bytes(length)
        let (cid, cidLength): (CID, Int)
        do {
            (cid, cidLength) = try section.withUnsafeBytesTyped { (raw) throws(CIDError) in try CID.decodePrefix(raw) }
        } catch {
            throw CARError.invalidSection(offset: sectionOffset, reason: "\(error)")
        }
        let data = Array(section[cidLength...])
        if options.verifyBlocks {
            let ok: Bool
            do { ok = try cid.multihash.verify(data) } catch { throw CARError.unverifiable(cid) }
            guard ok else { throw CARError.hashMismatch(cid, offset: sectionOffset) }
        }
        return CARBlock(
            cid: cid, data: data, sectionOffset: sectionOffset, sectionLength: varintLength + length,
            blockOffset: sectionOffset + varintLength + UInt64(cidLength))
    }
}

extension CARReader where Source == FileSource {
    /// Opens the CAR file at `path`.
    public init(path: String, options: Options = Options()) throws {
        let file = try FileSource(path: path)
        try self.init(file, options: options, fileSize: file.size)
    }

    /// Reads the CARv2 index of the file, if it has one (nil for a CARv1 or an indexless CARv2).
    public func readIndex() throws -> CARIndex? {
        guard let h = v2Header, h.indexOffset != 0, let size = reader.source.size else { return nil }
        return try CARIndex(bytes: reader.source.read(count: Int(size - h.indexOffset), at: h.indexOffset))
    }
}
