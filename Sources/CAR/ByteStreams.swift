#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a CAR is read from: anything that hands out bytes in order.
public protocol ByteSource {
    /// Fills the start of `buffer`; returns how many bytes, 0 at the end of the data.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// Where a CAR is written to.
public protocol ByteSink {
    /// Writes all of `bytes`.
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// A sink that can also overwrite what it already wrote (a file), which a
/// CARv2 writer needs to fill in its header once the payload size is known.
public protocol SeekableByteSink: ByteSink {
    /// Overwrites bytes at absolute `offset`.
    mutating func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws
}

/// A failed read or write on a file descriptor.
public struct IOError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being done.
    public let operation: String
    /// The errno value.
    public let code: Int32
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// Passes another source's bytes through and tells `report` how many have been read so far:
/// each time at least `every` more bytes have gone by, and once at the end (`true`).
/// Progress bars and Kubo's add progress lines are built on it.
public struct ObservedSource<Inner: ByteSource>: ByteSource {
    private var inner: Inner
    private let every: UInt64
    private let report: (UInt64, Bool) throws -> Void
    private var bytes: UInt64 = 0
    private var reported: UInt64 = 0
    private var ended = false

    /// A source reading `inner`, reporting every `every` bytes and at the end.
    public init(_ inner: Inner, every: UInt64, report: @escaping (_ bytes: UInt64, _ atEnd: Bool) throws -> Void) {
        self.inner = inner
        self.every = max(1, every)
        self.report = report
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        bytes += UInt64(n)
        if n == 0 {
            if !ended { try report(bytes, true) }
            ended = true
        } else if bytes - reported >= every {
            reported = bytes
            try report(bytes, false)
        }
        return n
    }
}

/// Bytes already in memory.
public struct BytesSource: ByteSource {
    private let bytes: [UInt8]
    private var position = 0
    /// A source over `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - position)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + position, byteCount: n)
        }
        position += n
        return n
    }
}

/// Reads a file descriptor (a file, a pipe, standard input). The descriptor is closed only when `closeOnDeinit`.
public final class FileSource: ByteSource {
    /// The descriptor.
    public let descriptor: Int32
    private let owned: Bool

    /// Opens `path` for reading.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(operation: "open \(path)", code: errno) }
        descriptor = fd
        owned = true
    }

    /// Reads an already open descriptor, e.g. 0 for standard input.
    public init(descriptor: Int32, closeOnDeinit: Bool = false) {
        self.descriptor = descriptor
        owned = closeOnDeinit
    }

    deinit { if owned { close(descriptor) } }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            #if canImport(Glibc)
            let n = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            #else
            let n = Darwin.read(descriptor, buffer.baseAddress, buffer.count)
            #endif
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw IOError(operation: "read", code: errno)
        }
    }

    /// Reads exactly `count` bytes at absolute `offset` without moving the read position (fewer only at end of file).
    public func read(count: Int, at offset: UInt64) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw IOError(operation: "pread", code: errno) }
            if n == 0 { break }
            done += n
        }
        return Array(out.prefix(done))
    }

    /// The size of the file, when the descriptor is a regular file.
    public var size: UInt64? {
        var st = stat()
        guard fstat(descriptor, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return UInt64(st.st_size)
    }
}

/// Collects written bytes in memory.
public struct ArraySink: SeekableByteSink {
    /// Everything written so far.
    public private(set) var bytes: [UInt8] = []
    /// An empty sink.
    public init() {}
    public mutating func write(_ b: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: b) }
    public mutating func write(_ b: UnsafeRawBufferPointer, at offset: UInt64) throws {
        let o = Int(offset)
        if bytes.count < o + b.count { bytes.append(contentsOf: repeatElement(0, count: o + b.count - bytes.count)) }
        bytes.replaceSubrange(o..<o + b.count, with: b)
    }
}

/// Writes a file descriptor through a buffer (one write call per 1 MiB, not per block).
public final class FileSink: SeekableByteSink {
    /// The descriptor.
    public let descriptor: Int32
    private let owned: Bool
    private var buffer: [UInt8] = []
    private let capacity = 1 << 20

    /// Creates (or truncates) `path` for writing.
    public init(path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IOError(operation: "open \(path)", code: errno) }
        descriptor = fd
        owned = true
        buffer.reserveCapacity(capacity)
    }

    /// Writes an already open descriptor, e.g. 1 for standard output.
    public init(descriptor: Int32, closeOnDeinit: Bool = false) {
        self.descriptor = descriptor
        owned = closeOnDeinit
        buffer.reserveCapacity(capacity)
    }

    deinit {
        try? flush()
        if owned { close(descriptor) }
    }

    public func write(_ b: UnsafeRawBufferPointer) throws {
        if buffer.count + b.count > capacity { try flush() }
        if b.count >= capacity { try writeAll(b) } else { buffer.append(contentsOf: b) }
    }

    public func write(_ b: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try flush()
        var done = 0
        while done < b.count {
            let n = pwrite(descriptor, b.baseAddress! + done, b.count - done, off_t(offset) + off_t(done))
            if n < 0 { if errno == EINTR { continue }; throw IOError(operation: "pwrite", code: errno) }
            done += n
        }
    }

    /// Writes out what is buffered.
    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and asks the kernel to put the data on disk.
    public func sync() throws {
        try flush()
        guard fsync(descriptor) == 0 else { throw IOError(operation: "fsync", code: errno) }
    }

    private func writeAll(_ b: UnsafeRawBufferPointer) throws { try Self.writeAll(b, to: descriptor) }

    /// Writes all of `b` to `descriptor`, unbuffered (`IOError` with the write's errno).
    public static func writeAll(_ b: UnsafeRawBufferPointer, to descriptor: Int32) throws {
        var done = 0
        while done < b.count {
            #if canImport(Glibc)
            let n = Glibc.write(descriptor, b.baseAddress! + done, b.count - done)
            #else
            let n = Darwin.write(descriptor, b.baseAddress! + done, b.count - done)
            #endif
            if n < 0 { if errno == EINTR { continue }; throw IOError(operation: "write", code: errno) }
            done += n
        }
    }
}

/// Buffered reading of exact byte counts and varints from a source, tracking the absolute offset.
struct BufferedReader<Source: ByteSource> {
    var source: Source
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    /// Absolute offset of the next byte.
    private(set) var offset: UInt64 = 0
    /// Bytes allowed from here on (a CARv2 payload is bounded by its data size).
    var limit: UInt64 = .max

    init(_ source: Source, bufferSize: Int = 1 << 16) {
        self.source = source
        buffer = [UInt8](repeating: 0, count: bufferSize)
    }

    /// Makes at least `n` bytes available if the data has them; returns how many are.
    private mutating func fill(_ n: Int) throws -> Int {
        if end - start >= n || eof { return end - start }
        if start > 0 {
            buffer.withUnsafeMutableBytes { b in
                b.baseAddress!.copyMemory(from: b.baseAddress! + start, byteCount: end - start)
            }
            end -= start
            start = 0
        }
        if buffer.count < n { buffer.append(contentsOf: repeatElement(0, count: n - buffer.count)) }
        while end - start < n && !eof {
            let got = try buffer.withUnsafeMutableBytes { b in
                try source.read(into: UnsafeMutableRawBufferPointer(rebasing: b[end...]))
            }
            if got == 0 { eof = true } else { end += got }
        }
        return end - start
    }

    /// Reads a varint; nil at a clean end of data.
    mutating func varint() throws -> UInt64? {
        let filled = try fill(9)
        let available = Int(min(UInt64(filled), limit))
        if available == 0 { return nil }
        let at = offset
        let (v, n) = try buffer.withUnsafeBytes { b in
            do {
                return try Varint.decode(UnsafeRawBufferPointer(rebasing: b[start..<start + available]))
            } catch VarintError.truncated {
                throw CARError.truncated(offset: at + UInt64(available))
            } catch {
                throw CARError.invalidVarint(offset: at, error as! VarintError)  // only Varint.decode throws
            }
        }
        consume(n)
        return v
    }

    /// Reads exactly `n` bytes, or fails with `.truncated` when the data ends first.
    /// Large reads grow chunk by chunk, so a lying length cannot allocate more than the data holds.
    mutating func bytes(_ n: UInt64) throws -> [UInt8] {
        guard n <= limit else { throw CARError.truncated(offset: offset + limit) }
        var out: [UInt8] = []
        var remaining = Int(n)
        out.reserveCapacity(min(remaining, 1 << 20))
        while remaining > 0 {
            let available = try fill(min(remaining, buffer.count))
            guard available > 0 else { throw CARError.truncated(offset: offset) }
            let take = min(available, remaining)
            out.append(contentsOf: buffer[start..<start + take])
            consume(take)
            remaining -= take
        }
        return out
    }

    /// Skips `n` bytes.
    mutating func skip(_ n: UInt64) throws {
        var remaining = n
        while remaining > 0 {
            let available = try fill(Int(min(remaining, UInt64(buffer.count))))
            guard available > 0 else { throw CARError.truncated(offset: offset) }
            let take = min(UInt64(available), remaining)
            consume(Int(take))
            remaining -= take
        }
    }

    private mutating func consume(_ n: Int) {
        start += n
        offset += UInt64(n)
        if limit != .max { limit -= UInt64(n) }
    }
}

import Multiformats
