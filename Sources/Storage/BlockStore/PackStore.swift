#if canImport(Glibc)
import Glibc
#endif
import Locking
import Multiformats
import Synchronization

/// Where a packed block's bytes are.
struct PackLocation: Sendable, Equatable {
    var pack: UInt32
    var offset: UInt64
    var length: UInt32
}

/// Large blocks, appended to pack files (value separation, as WiscKey, BlobDB and
/// Badger do): LevelDB keeps only a small record pointing here, so its compactions
/// rewrite records, not block data (Docs/storage.md has the measurements).
///
/// Invariants:
/// - Packs are append-only. An entry is `varint(len(mh)) ‖ mh ‖ varint(len(data)) ‖ data`,
///   so a pack can be rescanned without LevelDB.
/// - A location is handed out only after its bytes are written; `sync()` makes every
///   handed-out location durable. The block store writes the LevelDB record that
///   references a location only after `sync()` when durability is on, so after a crash
///   every record points at durable bytes. Bytes written but never referenced (a crash
///   between the two steps) are dead space, never wrong data.
/// - A pack is closed for appends (and synced) when it reaches `maximumPackSize`.
final class PackStore: Sendable {
    let directory: String
    let maximumPackSize: UInt64
    /// The pack this open began appending to. Every pack before it was written by a process
    /// that is gone (the repository's lock), so no append to it is still waiting for its record.
    let firstPackOfThisOpen: UInt32
    /// Packs compaction refused in this open for a torn end, with their size then
    /// (`copyLiveEntries`): nothing changes that while the file stays as it is.
    let refusedForCompaction = Mutex([UInt32: UInt64]())

    private struct Writer {
        var pack: UInt32
        var descriptor: Int32
        var end: UInt64
        var synced: UInt64
        /// How far the pack's pages have been let go from the page cache (`releaseSynced`).
        var released: UInt64 = 0
    }

    /// How much of what was written last stays in the page cache once durable (for the reads
    /// that often follow a write); anything before it is let go as soon as it is synced.
    static let cachedTail: UInt64 = 64 << 20
    /// What is let go is whole units of this. The page cache holds a file in folios of up to
    /// 2 MiB, each aligned to its size in the file, and the kernel drops only folios wholly in the
    /// range given: with ranges ending on 2 MiB boundaries none is ever cut (with 64 KiB ones, a
    /// folio across a boundary stayed cached for good: 3–5% of what was written).
    static let releaseUnit: UInt64 = 2 << 20

    /// The pack being appended to. Held while appending, so appends are sequential writes.
    private let writer: Mutex<Writer>
    /// Serialises fdatasync calls; whoever syncs covers every append before it.
    private let syncing = Mutex(())
    /// Packs an fdatasync of which failed. Linux reports a failed write-back once, then forgets
    /// it (the pages are marked clean), so a later fdatasync of the same file succeeds although
    /// what was written before the failure may not be on disk: nothing appended to such a pack
    /// may be acknowledged any more, and appends go to a new pack.
    private let failed = Mutex(Set<UInt32>())
    /// fdatasync calls still to fail with EIO (tests: `failNextSyncs`).
    private let injectedFailures = Mutex(0)
    /// Read descriptors by pack number.
    private let readers = Mutex([UInt32: Int32]())
    /// Descriptors of removed packs, closed one `closeRemoved()` later: a reader that took one
    /// just before the removal finishes its read on the file it opened.
    private let removed = Mutex<(closing: [Int32], waiting: [Int32])>(([], []))

    /// Given back when an append finds the disk full.
    let reserve: SpaceReserve?

    init(directory: String, maximumPackSize: UInt64, reserve: SpaceReserve? = nil) throws {
        self.directory = directory
        self.maximumPackSize = maximumPackSize
        self.reserve = reserve
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw PackStore.error("mkdir \(directory)") }
        let existing = try PackStore.packNumbers(in: directory)
        // Appends go to a fresh pack after every open: if the process died during an append, the
        // last pack may end with a torn entry, and it must stay at its end (a pack is scanned
        // entry by entry when compacted). A number is never used twice: an empty last pack (made
        // by an open that appended nothing, or whose bytes a power failure lost) is removed, not
        // reused, since records of its earlier life (dead-entry counts, locations) may remain and
        // would be taken for the new entries at the same offsets.
        let number = (existing.last ?? 0) + 1
        let path = PackStore.path(directory, number)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PackStore.error("open \(path)") }
        // The new pack exists (and the directory is synced) before the empty one goes: a crash in
        // between leaves both, never a number to take again.
        if let last = existing.last, PackStore.fileSize(PackStore.path(directory, last)) == 0 {
            syncDirectory(directory)
            unlink(PackStore.path(directory, last))
        }
        let end = UInt64(lseek(fd, 0, SEEK_END))
        writer = Mutex(Writer(pack: number, descriptor: fd, end: end, synced: end))
        firstPackOfThisOpen = number
    }

    deinit {
        writer.locked { w in _ = close(w.descriptor) }
        readers.locked { r in for fd in r.values { _ = close(fd) } }
        removed.locked { r in for fd in r.closing + r.waiting { _ = close(fd) } }
    }

    /// Bytes of a pack entry: `varint(len(mh)) ‖ mh ‖ varint(len) ‖ data`.
    static func entrySize(multihash: Multihash, length: UInt32) -> UInt64 {
        UInt64(Varint.encodedLength(UInt64(multihash.bytes.count)) + multihash.bytes.count + Varint.encodedLength(UInt64(length))) + UInt64(length)
    }

    /// The pack being appended to.
    var currentPack: UInt32 { writer.locked { $0.pack } }

    /// A pack's size in bytes (nil if it does not exist).
    func size(of pack: UInt32) -> UInt64? { PackStore.fileSize(PackStore.path(directory, pack)) }

    static func fileSize(_ path: String) -> UInt64? {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_size) : nil
    }

    /// Reads a pack from start to end, entry by entry: `body` gets each entry's multihash, its
    /// data's location and the data (valid during the call). Returns nil when every byte of the
    /// pack parsed as entries, else the offset of the entry that did not parse, where the scan
    /// stopped (a torn entry at the end, from a crash during an append; or damage).
    @discardableResult
    func scan(_ pack: UInt32, _ body: (Multihash, PackLocation, UnsafeRawBufferPointer) throws -> Void) throws -> UInt64? {
        let fd = open(PackStore.path(directory, pack), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PackStore.error("open pack \(pack)") }
        defer { close(fd) }
        var window = [UInt8](repeating: 0, count: 8 << 20)
        var windowStart: UInt64 = 0
        var filled = 0
        var at = 0
        var eof = false
        func ensure(_ n: Int) throws -> Bool {
            if filled - at >= n { return true }
            if eof { return false }
            // Keep the unread tail, then fill behind it (growing for an entry larger than the window).
            let kept = filled - at
            if at > 0 {
                window.withUnsafeMutableBytes { b in b.baseAddress!.copyMemory(from: b.baseAddress! + at, byteCount: kept) }
                windowStart += UInt64(at)
                at = 0
                filled = kept
            }
            if window.count < n { window += [UInt8](repeating: 0, count: n - window.count) }
            while filled < window.count && !eof {
                let got = window.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(windowStart) + off_t(filled)) }
                if got < 0 { if errno == EINTR { continue }; throw PackStore.error("pread pack \(pack)") }
                if got == 0 { eof = true } else { filled += got }
            }
            return filled - at >= n
        }
        func varint() throws -> UInt64? {
            guard try ensure(1) else { return nil }
            _ = try ensure(10)
            let slice = Array(window[at..<min(filled, at + 10)])
            guard let (v, n) = try? Varint.decode(slice, at: 0) else { return nil }
            at += n
            return v
        }
        while true {
            guard try ensure(1) else { return nil }  // the clean end
            let entry = windowStart + UInt64(at)
            guard let mhLength = try varint(), mhLength <= 128, try ensure(Int(mhLength)) else { return entry }
            guard let mh = try? Multihash(bytes: Array(window[at..<at + Int(mhLength)])) else { return entry }
            at += Int(mhLength)
            guard let length = try varint(), length <= UInt64(UInt32.max), try ensure(Int(length)) else { return entry }
            let location = PackLocation(pack: pack, offset: windowStart + UInt64(at), length: UInt32(length))
            try window.withUnsafeBytes { try body(mh, location, UnsafeRawBufferPointer(rebasing: $0[at..<at + Int(length)])) }
            at += Int(length)
        }
    }

    /// Removes a pack's file. A read descriptor already open stays usable until the next call
    /// of `closeRemoved()`.
    func remove(_ pack: UInt32) {
        precondition(pack != currentPack, "the pack being appended to is never removed")
        if let fd = readers.locked({ $0.removeValue(forKey: pack) }) { removed.locked { $0.waiting.append(fd) } }
        unlink(PackStore.path(directory, pack))
    }

    /// Closes the descriptors of packs removed before the previous call (their space is freed).
    func closeRemoved() {
        let closing = removed.locked { r -> [Int32] in
            let c = r.closing
            r.closing = r.waiting
            r.waiting = []
            return c
        }
        for fd in closing { close(fd) }
    }

    static func path(_ directory: String, _ number: UInt32) -> String {
        var digits = String(number)
        while digits.count < 8 { digits = "0" + digits }
        return "\(directory)/pack-\(digits).pack"
    }

    static func packNumbers(in directory: String) throws -> [UInt32] {
        guard let dir = opendir(directory) else { throw error("opendir \(directory)") }
        defer { closedir(dir) }
        var out: [UInt32] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name.hasPrefix("pack-"), name.hasSuffix(".pack"), let n = UInt32(name.dropFirst(5).dropLast(5)) { out.append(n) }
        }
        return out.sorted()
    }

    static func error(_ what: String) -> BlockStoreError {
        let code = errno
        if code == ENOSPC || code == EDQUOT { return .noSpace("\(what): the disk is full (\(String(cString: strerror(code))))") }
        return .io("\(what): \(String(cString: strerror(code)))")
    }

    /// Appends blocks; returns where each one's data is. Not durable until `sync()`.
    ///
    /// The disk full (ENOSPC, EDQUOT): what this call wrote to the pack is cut off again, the
    /// pack is sealed (so what is stored in it and collected later can be compacted away), the
    /// reserve is given back, and `noSpace` is thrown.
    func append(_ entries: [(Multihash, [UInt8])]) throws -> [PackLocation] {
        try writer.locked { w in
            let origin = (pack: w.pack, end: w.end)
            do {
                return try append(entries, &w)
            } catch let e as BlockStoreError {
                guard case .noSpace = e else { throw e }
                // Back to where this call began; in a pack it rolled into, every byte is this call's
                // (its large blocks move the end as they are written).
                w.end = w.pack == origin.pack ? origin.end : 0
                _ = ftruncate(w.descriptor, off_t(w.end))
                w.synced = min(w.synced, w.end)
                reserve?.release()
                if w.end > 0 { try? roll(&w) }
                throw e
            }
        }
    }

    private func append(_ entries: [(Multihash, [UInt8])], _ w: inout Writer) throws -> [PackLocation] {
        // A pack whose fdatasync failed takes nothing more: its syncs can no longer be believed.
        if failed.locked({ $0.contains(w.pack) }) { try startNext(&w) }
        var locations: [PackLocation] = []
        var buffer: [UInt8] = []
        buffer.reserveCapacity(entries.reduce(0) { $0 + ($1.1.count < Self.directWriteSize ? $1.1.count + 48 : 0) })
        var start = w.end
        func flush() throws {
            try PackStore.writeAll(w.descriptor, buffer, at: start)
            w.end = start + UInt64(buffer.count)
            buffer.removeAll(keepingCapacity: true)
            start = w.end
        }
        for (mh, data) in entries {
            if start + UInt64(buffer.count) > 0, start + UInt64(buffer.count) + UInt64(data.count) > maximumPackSize {
                try flush()
                try roll(&w)
                start = w.end
            }
            if data.count >= Self.directWriteSize {
                // A large block goes from its own array to the file, after its header, in one
                // call: copying it into the buffer first would be a pass over its bytes for nothing.
                try flush()
                var header: [UInt8] = []
                PackStore.appendHeader(mh, length: data.count, to: &header)
                try PackStore.writeAll(w.descriptor, header, data, at: start)
                locations.append(PackLocation(pack: w.pack, offset: start + UInt64(header.count), length: UInt32(data.count)))
                w.end = start + UInt64(header.count + data.count)
                start = w.end
                continue
            }
            PackStore.appendHeader(mh, length: data.count, to: &buffer)
            locations.append(PackLocation(pack: w.pack, offset: start + UInt64(buffer.count), length: UInt32(data.count)))
            buffer.append(contentsOf: data)
        }
        try flush()
        return locations
    }

    /// Blocks this large are written from their own arrays rather than gathered into one buffer.
    static let directWriteSize = 16 << 10

    /// An entry's header: `varint(len(mh)) ‖ mh ‖ varint(len(data))`.
    private static func appendHeader(_ mh: Multihash, length: Int, to out: inout [UInt8]) {
        Varint.append(UInt64(mh.bytes.count), to: &out)
        out.append(contentsOf: mh.bytes)
        Varint.append(UInt64(length), to: &out)
    }

    /// Seals the current pack when it holds anything: what an import refused for want of space
    /// stored in it can then be compacted away once collected (the current pack never is).
    func seal() {
        writer.locked { w in if w.end > 0 { try? roll(&w) } }
    }

    /// Seals the current pack (synced) and starts the next.
    private func roll(_ w: inout Writer) throws {
        guard datasync(w.descriptor) == 0 else {
            let code = errno
            failed.locked { _ = $0.insert(w.pack) }
            errno = code
            throw PackStore.error("fdatasync of pack \(w.pack)")
        }
        w.synced = w.end
        Self.releaseSynced(&w, keepTail: false)  // its tail would stay cached for good otherwise
        try startNext(&w)
    }

    /// Makes the next pack the current one (the current one sealed as it is).
    private func startNext(_ w: inout Writer) throws {
        let old = w.descriptor
        let number = w.pack + 1
        let path = PackStore.path(directory, number)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PackStore.error("open \(path)") }
        w = Writer(pack: number, descriptor: fd, end: 0, synced: 0)
        close(old)
    }

    /// The pack being appended to, where its appends end and how far it has been fdatasync'ed
    /// (what a durable put must have covered before it returns; for tests).
    var appendState: (pack: UInt32, end: UInt64, synced: UInt64) { writer.locked { ($0.pack, $0.end, $0.synced) } }

    /// Makes the appends that returned `appended` durable (and every append before them).
    /// Concurrent callers share one fdatasync.
    ///
    /// The packs are told by their numbers, not their descriptors: a roll closes the descriptor,
    /// and the number may come back for another file. Every pack the appends went to is checked
    /// for a failed fdatasync (`failed`) — not only the current one, which may be a newer pack by
    /// then.
    func sync(_ appended: [PackLocation]) throws {
        guard let first = appended.lazy.map(\.pack).min(), let last = appended.lazy.map(\.pack).max() else { return }
        let target = appended.lazy.filter { $0.pack == last }.map { $0.offset + UInt64($0.length) }.max() ?? 0
        try syncing.locked { _ in
            try refuseFailed(first...last)
            // Nothing to do when synced already, or sealed since: a seal syncs its pack (or
            // poisons it, which the check above and the one below see).
            let current = writer.locked { w -> (Int32, UInt64)? in w.pack == last && w.synced < target ? (w.descriptor, w.end) : nil }
            guard let (fd, end) = current else { return }
            let failure = datasync(fd) == 0 ? 0 : errno
            try writer.locked { w in
                // A write-back error poisons the pack even when it was sealed meanwhile: the seal's
                // own fdatasync was told nothing of it. (Another error of a sealed pack's closed
                // descriptor, EBADF or a reused number's EINVAL, is not about its data.)
                if failure != 0, w.pack == last || [EIO, ENOSPC, EDQUOT].contains(failure) {
                    failed.locked { _ = $0.insert(last) }
                    errno = failure
                    throw PackStore.error("fdatasync of pack \(last)")
                }
                try refuseFailed(first...last)  // a seal's fdatasync failed during the call
                guard w.pack == last else { return }  // sealed (and so synced) during the call
                w.synced = max(w.synced, end)
                Self.releaseSynced(&w)
            }
        }
    }

    /// Throws when an fdatasync of one of `packs` has failed.
    private func refuseFailed(_ packs: ClosedRange<UInt32>) throws {
        let bad = failed.locked { f in packs.first { f.contains($0) } }
        if let bad {
            throw BlockStoreError.io("an fdatasync of pack \(bad) failed (the disk reports write errors): what was written to it before the failure may not be on disk")
        }
    }

    /// fdatasync, or an injected EIO.
    private func datasync(_ fd: Int32) -> Int32 {
        let inject = injectedFailures.locked { n -> Bool in
            guard n > 0 else { return false }
            n -= 1
            return true
        }
        if inject {
            errno = EIO
            return -1
        }
        return fdatasync(fd)
    }

    /// Makes the next `count` fdatasync calls fail with EIO, as a failing disk would (tests).
    func failNextSyncs(_ count: Int) { injectedFailures.locked { $0 = count } }

    /// Lets go of the pack's synced pages but the last `cachedTail` bytes (all of them when the
    /// pack is sealed: `keepTail` false): they are on disk, and keeping them would fill the page
    /// cache with data nobody asked to read. A bulk import then recycles the same pages instead of
    /// growing the cache by its whole size, which costs the machine page reclaim: a 10 GiB add's
    /// system time went from 16–30 s to 6–7.5 s, its wall time from 25–41 s to 12.8–22 s in five
    /// alternating rounds; a 1 GiB add pays 5–10% for freeing its pages at once (Docs/benchmarks.md).
    /// Advice only: nothing depends on it.
    private static func releaseSynced(_ w: inout Writer, keepTail: Bool = true) {
        let upTo = keepTail ? (w.synced > cachedTail ? w.synced - cachedTail : 0) / releaseUnit * releaseUnit : w.synced
        guard upTo > w.released else { return }
        _ = posix_fadvise(w.descriptor, off_t(w.released), off_t(upTo - w.released), POSIX_FADV_DONTNEED)
        w.released = upTo
    }

    /// Reads a block's bytes.
    func read(_ location: PackLocation) throws -> [UInt8] {
        let fd = try readDescriptor(location.pack)
        let length = Int(location.length)
        guard length > 0 else { return [] }
        // Read into the array's storage as it is made (not zeroed first: pread fills it all, or
        // the read throws and the array, with nothing counted as initialised, is not kept).
        return try [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
            var done = 0
            while done < length {
                let n = pread(fd, out.baseAddress! + done, length - done, off_t(location.offset) + off_t(done))
                if n < 0 { if errno == EINTR { continue }; throw PackStore.error("pread") }
                if n == 0 { throw BlockStoreError.invalidBlock(reason: "pack \(location.pack) ends before offset \(location.offset + UInt64(location.length))") }
                done += n
            }
            initialized = length
        }
    }

    private func readDescriptor(_ pack: UInt32) throws -> Int32 {
        try readers.locked { r in
            if let fd = r[pack] { return fd }
            let path = PackStore.path(directory, pack)
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw PackStore.error("open \(path)") }
            r[pack] = fd
            return fd
        }
    }

    /// Total bytes in all packs.
    func totalSize() throws -> UInt64 {
        var total: UInt64 = 0
        for n in try PackStore.packNumbers(in: directory) {
            var st = stat()
            if stat(PackStore.path(directory, n), &st) == 0 { total += UInt64(st.st_size) }
        }
        return total
    }

    /// Writes `head` then `body` (not empty) at `offset`: one `pwritev` where the file takes
    /// both whole, the rest after a short write.
    private static func writeAll(_ fd: Int32, _ head: [UInt8], _ body: [UInt8], at offset: UInt64) throws {
        let total = head.count + body.count
        var done = 0
        while done < total {
            // errno is read at once, before anything (a freed array) may change it.
            let (n, failure) = head.withUnsafeBytes { h in
                body.withUnsafeBytes { b -> (Int, Int32) in
                    let n: Int
                    if done >= h.count {
                        n = pwrite(fd, b.baseAddress! + (done - h.count), total - done, off_t(offset) + off_t(done))
                    } else {
                        n = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { parts in
                            parts[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress! + done), iov_len: h.count - done)
                            parts[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress!), iov_len: b.count)
                            return pwritev(fd, parts.baseAddress!, 2, off_t(offset) + off_t(done))
                        }
                    }
                    return (n, n < 0 ? errno : 0)
                }
            }
            if n < 0 {
                if failure == EINTR { continue }
                errno = failure
                throw error("pwrite")
            }
            done += n
        }
    }

    /// Writes all of `bytes` at `offset` (short writes and EINTR retried).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw error("pwrite") }
            done += n
        }
    }
}
