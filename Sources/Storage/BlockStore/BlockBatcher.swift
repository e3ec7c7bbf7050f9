import Dispatch
import Foundation
import Multiformats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Stores a stream of blocks in put-many batches of about `batchBytes`, each written on a
/// second thread while the caller produces the next (hashing, reading a CAR), so producing
/// and disk writes overlap. One batch is written while the next fills, so memory stays
/// bounded. `finish()` stores the rest and returns once every batch is durable, or throws
/// the first failure (after which nothing more is written).
///
/// Used by every bulk path: file import, tree import, CAR import.
public final class BlockBatcher: @unchecked Sendable {
    // `pending` and `pendingBytes` belong to the producing thread; `failure` is guarded by
    // `lock`; `written` is used on `queue` only; the rest is immutable after init.
    private let store: any BlockStore
    private let batchBytes: Int
    private var pending: [Block] = []
    private var pendingBytes = 0
    private let queue = DispatchQueue(label: "qstore.block-batcher")
    private let slot = DispatchSemaphore(value: 1)
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var failure: (any Error)?
    /// What was stored, when the batcher remembers.
    private let written: SpilledMultihashes?

    /// A batcher writing into `store`. With `rememberIn`, it keeps the multihashes it stored
    /// (`forEachStored`) in an unlinked file in that directory, so that its memory stays the same
    /// however many blocks it stores.
    public init(store: any BlockStore, batchBytes: Int = 3 << 20, rememberIn directory: String? = nil) throws {
        self.store = store
        self.batchBytes = batchBytes
        written = try directory.map { try SpilledMultihashes(directory: $0) }
    }

    /// Calls `body` with what was stored so far, in the order stored, at most `chunk` at a time
    /// (nothing when the batcher does not remember). Call it after `finish()`.
    public func forEachStored(chunk: Int = 4096, _ body: ([Multihash]) throws -> Void) throws {
        try queue.sync { try written?.forEach(chunk: chunk, body) }
    }

    /// Adds a block; a full batch goes to the writer (waiting while the previous one is written).
    public func add(_ block: Block) throws {
        pending.append(block)
        pendingBytes += block.data.count
        if pendingBytes >= batchBytes { try submit() }
    }

    /// Stores what is pending and waits for every batch; throws the first failure.
    public func finish() throws {
        if !pending.isEmpty { try submit() }
        group.wait()
        if let f = lock.withLock({ failure }) { throw f }
    }

    private func submit() throws {
        if let f = lock.withLock({ failure }) { throw f }
        let batch = pending
        pending = []
        pendingBytes = 0
        slot.wait()
        group.enter()
        queue.async {
            defer { self.slot.signal(); self.group.leave() }
            if self.lock.withLock({ self.failure }) != nil { return }
            do {
                try self.store.putMany(batch)
                try self.written?.append(batch.lazy.map(\.cid.multihash))
            } catch { self.lock.withLock { if self.failure == nil { self.failure = error } } }
        }
    }
}

/// An append-only list of multihashes in a file that has no name (made in `directory`, then
/// unlinked): it goes when the process does, crash or not. One thread at a time.
final class SpilledMultihashes {
    private let fd: Int32
    private var end: Int64 = 0
    /// How the file is named between `mkstemp` and `unlink`.
    static let namePrefix = ".remembered-"

    init(directory: String) throws {
        var template = Array((directory + "/" + Self.namePrefix + "XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw PackStore.error("making a temporary file in \(directory)") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Removes the files of processes that died between making one and unlinking it (a
    /// window of microseconds). Only with the repository's lock held: then no process is
    /// making one.
    static func removeLeftovers(in directory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix(namePrefix) { unlink(directory + "/" + name) }
    }

    /// Appends `hashes` (each multihash's bytes: they delimit themselves).
    func append(_ hashes: some Sequence<Multihash>) throws {
        var bytes: [UInt8] = []
        for mh in hashes { bytes += mh.bytes }
        try PackStore.writeAll(fd, bytes, at: UInt64(end))
        end += Int64(bytes.count)
    }

    /// The multihashes appended, in order, at most `chunk` per call of `body`.
    func forEach(chunk: Int, _ body: ([Multihash]) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var held = 0  // bytes of `buffer` not decoded yet
        var offset: Int64 = 0
        var hashes: [Multihash] = []
        while offset < end || held > 0 {
            let want = min(Int64(buffer.count - held), end - offset)
            if want > 0 {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + held, Int(want), off_t(offset)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PackStore.error("reading the list of stored blocks")
                }
                guard n > 0 else { throw BlockStoreError.io("the list of stored blocks ends early") }
                held += n
                offset += Int64(n)
            }
            // Decode every whole multihash held; a partial one at the end waits for more bytes.
            var used = 0
            while used < held {
                let decoded = buffer.withUnsafeBytes { raw -> (Multihash, Int)? in
                    do { return try Multihash.decodePrefix(UnsafeRawBufferPointer(rebasing: raw[used..<held])) } catch { return nil }
                }
                guard let (mh, n) = decoded else {
                    // Wait for more bytes, unless there are none or the buffer is full of one entry.
                    guard offset < end, used > 0 || held < buffer.count else {
                        throw BlockStoreError.io("the list of stored blocks holds a damaged entry")
                    }
                    break
                }
                hashes.append(mh)
                used += n
                if hashes.count == chunk { try body(hashes); hashes.removeAll(keepingCapacity: true) }
            }
            buffer.withUnsafeMutableBytes { b in
                if used > 0 && used < held { b.baseAddress!.copyMemory(from: b.baseAddress! + used, byteCount: held - used) }
            }
            held -= used
        }
        if !hashes.isEmpty { try body(hashes) }
    }
}
