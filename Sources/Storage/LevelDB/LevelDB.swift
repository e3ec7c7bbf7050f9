import CLevelDB
import Foundation
import Locking
import Multiformats
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A LevelDB database: the embedded key-value store under every repository.
///
/// Thread safety: LevelDB's `DB` is safe for concurrent reads and writes from
/// many threads without external locking (its documentation, "Concurrency"), and
/// so are the read/write option objects this class creates once and never
/// mutates. That is the proof behind `@unchecked Sendable`. The handle itself is
/// behind a read-write gate: every call holds it shared, and `reopen` (after the
/// disk was full) and `close` hold it alone.
///
/// Out of space: LevelDB has no `Resume()` (RocksDB's way back from a full disk).
/// Once a table or log write fails it either refuses every later write until the
/// database is opened again (a failed sync or compaction: "force the DB into a
/// mode where all future writes fail"), or, after a failed log append, goes on
/// appending records off the log's 32 KiB block grid, which its next recovery
/// drops. So a write that finds the disk full calls `noSpace` (the repository
/// gives its reserve back); from then on every write is refused until a reopen;
/// when there is room for what recovery writes and no iterator or snapshot is
/// open, the database is closed and opened again — recovery turns the log into a
/// table and starts a clean one — and the write is applied again.
/// A batch is a list of absolute puts and deletes, so applying it a second time
/// (when the first attempt reached the log after all) changes nothing.
public final class LevelDB: @unchecked Sendable {
    /// Tuning knobs; the defaults are what Qstore measured best (Docs/storage.md).
    public struct Options: Sendable {
        /// Memtable size before a flush to a level-0 table.
        public var writeBufferSize = 32 << 20
        /// LRU cache of uncompressed table blocks.
        public var blockCacheSize = 64 << 20
        /// Table block size.
        public var blockSize = 16 << 10
        /// Target table file size.
        public var maxFileSize = 32 << 20
        /// Bloom filter bits per key (0: no filter).
        public var bloomBitsPerKey = 10
        /// File descriptors LevelDB may keep open.
        public var maxOpenFiles = 1000
        /// Snappy compression of table blocks.
        public var compression = true
        /// Check everything LevelDB reads (slower; used by repository verification).
        public var paranoidChecks = false
        /// Create the database when missing.
        public var createIfMissing = true
        /// Defaults.
        public init() {}
    }

    private var db: OpaquePointer?
    /// Held shared around every use of `db`, alone to replace it.
    private let gate = ReadWriteLock()
    /// Iterators and snapshots alive: they point into the open database, so a reopen waits for none.
    private let outstanding = Atomic<Int>(0)
    private let options: OpaquePointer
    private let cache: OpaquePointer
    private let filter: OpaquePointer?
    private let readOptions: OpaquePointer
    private let syncWrite: OpaquePointer
    private let bufferedWrite: OpaquePointer
    /// Where the database lives.
    public let path: String

    /// Opens (or creates) the database at `path`.
    public init(path: String, options o: Options = Options()) throws {
        self.path = path
        options = leveldb_options_create()
        leveldb_options_set_create_if_missing(options, o.createIfMissing ? 1 : 0)
        leveldb_options_set_paranoid_checks(options, o.paranoidChecks ? 1 : 0)
        leveldb_options_set_write_buffer_size(options, o.writeBufferSize)
        leveldb_options_set_block_size(options, o.blockSize)
        leveldb_options_set_max_file_size(options, o.maxFileSize)
        leveldb_options_set_max_open_files(options, Int32(o.maxOpenFiles))
        leveldb_options_set_compression(options, o.compression ? Int32(leveldb_snappy_compression) : Int32(leveldb_no_compression))
        cache = leveldb_cache_create_lru(o.blockCacheSize)
        leveldb_options_set_cache(options, cache)
        if o.bloomBitsPerKey > 0 {
            filter = leveldb_filterpolicy_create_bloom(Int32(o.bloomBitsPerKey))
            leveldb_options_set_filter_policy(options, filter)
        } else {
            filter = nil
        }
        readOptions = leveldb_readoptions_create()
        syncWrite = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWrite, 1)
        bufferedWrite = leveldb_writeoptions_create()
        var err: UnsafeMutablePointer<CChar>?
        db = leveldb_open(options, path, &err)
        // On failure deinit still runs (every property is set) and releases the options once.
        if let e = LevelDBError.take(err, "open \(path)") { throw e }
    }

    deinit {
        close()
        releaseOptions()
    }

    private func releaseOptions() {
        leveldb_options_destroy(options)
        leveldb_cache_destroy(cache)
        if let filter { leveldb_filterpolicy_destroy(filter) }
        leveldb_readoptions_destroy(readOptions)
        leveldb_writeoptions_destroy(syncWrite)
        leveldb_writeoptions_destroy(bufferedWrite)
    }

    /// Closes the database (flushing nothing that is not already durable: LevelDB's log is its durability).
    public func close() {
        gate.write {
            if let db { leveldb_close(db) }
            db = nil
        }
    }

    /// Calls `body` with the open database, holding the gate shared.
    private func withHandle<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        try gate.read {
            guard let db else { preconditionFailure("LevelDB \(path) used after close") }
            return try body(db)
        }
    }

    /// Where a reopen after a full disk stands.
    private struct Recovery {
        /// Reopens so far: a write that failed before one and retries after it needs none of its own.
        var generation = 0
        /// A write failed for space and the database was not opened again yet: its log may end in a
        /// torn record, after which LevelDB's recovery would lose whatever else is appended, so
        /// every write is refused until a reopen.
        var needed = false
        /// After a reopen that could not be made (an iterator or snapshot still open, no room), the
        /// next try waits until then, so a stream of refused writes does not each wait.
        var notBefore: ContinuousClock.Instant?
    }
    private let recovery = Mutex(Recovery())

    /// How many times the database was opened again after the disk was full.
    public var reopenCount: Int { recovery.locked { $0.generation } }

    /// Whether writes are refused until the database can be opened again (the disk was full).
    public var isWaitingToReopen: Bool { recovery.locked { $0.needed } }

    /// Tests: as if a write had just found the disk full.
    package func markWaitingToReopen() { recovery.locked { $0.needed = true } }

    /// When a reopen is pending, makes it now (if it can be made); whether writes may go on. A
    /// writer that reads before it writes calls this first: the reopen replays LevelDB's log, which
    /// may hold a write that reported failing, and reads taken before it would be stale after it.
    public func reopenIfWaiting() -> Bool {
        let (generation, needed) = recovery.locked { ($0.generation, $0.needed) }
        return !needed || recover(since: generation)
    }

    /// Bytes LevelDB's recovery may write when it opens: a table for each log, a new manifest.
    private func bytesToReopen() -> UInt64 {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        var total: UInt64 = 1 << 20
        for name in names where name.hasSuffix(".log") || name.hasPrefix("MANIFEST-") {
            var st = stat()
            if stat(path + "/" + name, &st) == 0 { total += UInt64(st.st_size) }
        }
        return total
    }

    /// Opens the database again after a write failed for space (see the type's documentation):
    /// the repository's reserve is given back first; the reopen needs room for what recovery
    /// writes and no iterator or snapshot open (waiting at most `patience`). True when the
    /// database was opened again since `generation` (by this call or another).
    private func recover(since generation: Int, patience: Duration = .seconds(2)) -> Bool {
        let now = ContinuousClock.now
        let due = recovery.locked { r -> Bool? in
            if r.generation != generation { return nil }
            if let t = r.notBefore, now < t { return false }
            return true
        }
        guard let due else { return true }
        guard due else { return false }
        noSpace.locked { $0 }?()
        let deadline = now + patience
        var done: Bool?
        if (SpaceReserve.freeBytes(path) ?? 0) >= bytesToReopen() {
            while done == nil {
                done = gate.tryWrite { () -> Bool? in
                    if recovery.locked({ $0.generation != generation }) { return true }
                    guard outstanding.load(ordering: .acquiring) == 0 else { return nil }
                    if let db { leveldb_close(db) }
                    db = nil
                    for attempt in 0..<3 {
                        var err: UnsafeMutablePointer<CChar>?
                        let opened = leveldb_open(options, path, &err)
                        if LevelDBError.take(err, "reopen \(path)") == nil, let opened {
                            db = opened
                            recovery.locked { $0 = Recovery(generation: $0.generation + 1) }
                            return true
                        }
                        usleep(UInt32(50_000 * (attempt + 1)))
                    }
                    // Room was measured before closing; a database that still will not open
                    // cannot be served, and carrying on would read an empty store as this one.
                    fatalError("LevelDB \(path) could not be opened again after the disk was full")
                } ?? nil
                if done == nil {
                    if ContinuousClock.now >= deadline { break }
                    usleep(5_000)
                }
            }
        }
        if done == true { return true }
        recovery.locked { $0.notBefore = ContinuousClock.now + .seconds(1) }
        return false
    }

    /// The value at `key`, or nil.
    public func get(_ key: [UInt8], snapshot: Snapshot? = nil) throws -> [UInt8]? {
        var length = 0
        var err: UnsafeMutablePointer<CChar>?
        let value: UnsafeMutablePointer<CChar>?
        if let snapshot {
            let ro = leveldb_readoptions_create()
            defer { leveldb_readoptions_destroy(ro) }
            leveldb_readoptions_set_snapshot(ro, snapshot.pointer)
            value = withHandle { h in key.withUnsafeBufferPointer { k in k.withMemoryRebound(to: CChar.self) { leveldb_get(h, ro, $0.baseAddress, k.count, &length, &err) } } }
        } else {
            value = withHandle { h in key.withUnsafeBufferPointer { k in k.withMemoryRebound(to: CChar.self) { leveldb_get(h, readOptions, $0.baseAddress, k.count, &length, &err) } } }
        }
        if let e = LevelDBError.take(err, "get") { throw e }
        guard let value else { return nil }
        defer { leveldb_free(value) }
        return [UInt8](UnsafeRawBufferPointer(start: value, count: length))
    }

    /// Applies `batch` atomically; with `sync` (or the batch's `mustSync`) the write is on disk
    /// (the log fsynced) before this returns. When the disk is full: see the type's documentation.
    public func write(_ batch: WriteBatch, sync: Bool) throws {
        let sync = sync || batch.mustSync
        var failure: LevelDBError?
        for _ in 0..<3 {
            let (generation, needed) = recovery.locked { ($0.generation, $0.needed) }
            if needed {
                guard recover(since: generation) else {
                    throw failure ?? LevelDBError.refusedUntilReopened
                }
                continue
            }
            var err: UnsafeMutablePointer<CChar>?
            withHandle { leveldb_write($0, sync ? syncWrite : bufferedWrite, batch.pointer, &err) }
            guard let e = LevelDBError.take(err, "write") else { return }
            guard e.isNoSpace else { throw e }
            failure = e
            // Another writer's reopen since this one began: just try again.
            let reopened = recovery.locked { r -> Bool in
                if r.generation != generation { return true }
                r.needed = true
                return false
            }
            if !reopened, !recover(since: generation) { throw e }
        }
        throw failure ?? LevelDBError(operation: "write", message: "No space left on device")
    }

    /// Called when a write finds the disk full: the repository gives its reserve back.
    public let noSpace = Mutex<(@Sendable () -> Void)?>(nil)

    /// An iterator, optionally over a snapshot; position it with `seek`.
    public func makeIterator(snapshot: Snapshot? = nil, fillCache: Bool = true) -> Iterator {
        Iterator(db: self, snapshot: snapshot, fillCache: fillCache)
    }

    /// A consistent read view as of now.
    public func snapshot() -> Snapshot { Snapshot(db: self) }

    /// A LevelDB property, e.g. `leveldb.stats`, `leveldb.approximate-memory-usage`.
    public func property(_ name: String) -> String? {
        guard let p = withHandle({ leveldb_property_value($0, name) }) else { return nil }
        defer { leveldb_free(p) }
        return String(cString: p)
    }

    /// Approximate bytes on disk used by keys in [start, end).
    public func approximateSize(start: [UInt8], end: [UInt8]) -> UInt64 {
        var size: UInt64 = 0
        start.withUnsafeBufferPointer { s in
            end.withUnsafeBufferPointer { e in
                s.withMemoryRebound(to: CChar.self) { sp in
                    e.withMemoryRebound(to: CChar.self) { ep in
                        var starts: [UnsafePointer<CChar>?] = [sp.baseAddress]
                        var ends: [UnsafePointer<CChar>?] = [ep.baseAddress]
                        var startLengths = [s.count], endLengths = [e.count]
                        withHandle { leveldb_approximate_sizes($0, 1, &starts, &startLengths, &ends, &endLengths, &size) }
                    }
                }
            }
        }
        return size
    }

    /// Compacts the whole key range (reclaims space after large deletions).
    public func compact() { withHandle { leveldb_compact_range($0, nil, 0, nil, 0) } }

    /// Compacts the keys from `start` to `end` (inclusive) down through every level, so values
    /// deleted there are gone from the files too (the log is flushed first).
    public func compact(from start: [UInt8], to end: [UInt8]) {
        start.withUnsafeBufferPointer { s in
            end.withUnsafeBufferPointer { e in
                s.withMemoryRebound(to: CChar.self) { sc in
                    e.withMemoryRebound(to: CChar.self) { ec in withHandle { h in leveldb_compact_range(h, sc.baseAddress, start.count, ec.baseAddress, end.count) } }
                }
            }
        }
    }

    /// A consistent view of the database; released with the last reference.
    public final class Snapshot: @unchecked Sendable {
        // A LevelDB snapshot is an immutable sequence number; sharing it between threads is safe.
        let pointer: OpaquePointer
        let db: LevelDB
        init(db: LevelDB) {
            self.db = db
            pointer = db.withHandle { h in
                db.outstanding.add(1, ordering: .relaxed)
                return leveldb_create_snapshot(h)
            }
        }
        deinit {
            db.withHandle { leveldb_release_snapshot($0, pointer) }
            db.outstanding.subtract(1, ordering: .releasing)
        }
    }

    /// A cursor over keys in order. Not thread-safe: one iterator, one user.
    public final class Iterator {
        let pointer: OpaquePointer
        let readOptions: OpaquePointer
        // Keep what the C iterator reads from alive.
        let db: LevelDB
        let snapshot: Snapshot?

        init(db: LevelDB, snapshot: Snapshot?, fillCache: Bool) {
            self.db = db
            self.snapshot = snapshot
            readOptions = leveldb_readoptions_create()
            leveldb_readoptions_set_fill_cache(readOptions, fillCache ? 1 : 0)
            if let snapshot { leveldb_readoptions_set_snapshot(readOptions, snapshot.pointer) }
            pointer = db.withHandle { [readOptions] h in
                db.outstanding.add(1, ordering: .relaxed)
                return leveldb_create_iterator(h, readOptions)
            }
        }

        deinit {
            leveldb_iter_destroy(pointer)
            leveldb_readoptions_destroy(readOptions)
            db.outstanding.subtract(1, ordering: .releasing)
        }

        /// Moves to the first key ≥ `key`.
        public func seek(_ key: [UInt8]) {
            key.withUnsafeBufferPointer { k in k.withMemoryRebound(to: CChar.self) { leveldb_iter_seek(pointer, $0.baseAddress, k.count) } }
        }

        /// Moves to the first key.
        public func seekToFirst() { leveldb_iter_seek_to_first(pointer) }

        /// Moves to the last key.
        public func seekToLast() { leveldb_iter_seek_to_last(pointer) }

        /// Moves to the previous entry.
        public func previous() { leveldb_iter_prev(pointer) }

        /// Whether the cursor is on an entry.
        public var isValid: Bool { leveldb_iter_valid(pointer) != 0 }

        /// Moves to the next entry.
        public func next() { leveldb_iter_next(pointer) }

        /// The current key.
        public var key: [UInt8] {
            var n = 0
            let p = leveldb_iter_key(pointer, &n)!
            return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
        }

        /// The current value.
        public var value: [UInt8] {
            var n = 0
            guard let p = leveldb_iter_value(pointer, &n) else { return [] }
            return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
        }

        /// Calls `body` with the current key without copying it.
        public func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            var n = 0
            let p = leveldb_iter_key(pointer, &n)!
            return try body(UnsafeRawBufferPointer(start: p, count: n))
        }

        /// Calls `body` with the current value without copying it.
        public func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            var n = 0
            let p = leveldb_iter_value(pointer, &n)
            return try body(UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : n))
        }

        /// The error that stopped the iteration, if any.
        public func checkError() throws {
            var err: UnsafeMutablePointer<CChar>?
            leveldb_iter_get_error(pointer, &err)
            if let e = LevelDBError.take(err, "iterate") { throw e }
        }

        /// Visits every entry whose key starts with `prefix` (from `start` on, if given), in
        /// order, until `body` returns false.
        public func forEach(prefix: [UInt8], from start: [UInt8]? = nil, _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool) throws {
            seek(start.map { $0.lexicographicallyPrecedes(prefix) ? prefix : $0 } ?? prefix)
            while isValid {
                let k = key
                guard k.starts(with: prefix) else { break }
                guard try body(k, value) else { return }
                next()
            }
            try checkError()
        }
    }
}

/// A pthread read-write lock (many readers or one writer).
final class ReadWriteLock: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func read<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func write<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// `body`'s result when the lock was free to take alone, else nil.
    func tryWrite<R>(_ body: () throws -> R) rethrows -> R? {
        guard pthread_rwlock_trywrlock(lock) == 0 else { return nil }
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

/// A set of puts and deletes applied atomically by `LevelDB.write`.
public final class WriteBatch {
    let pointer: OpaquePointer
    /// Bytes of keys and values added (for deciding when to flush big batches).
    public private(set) var byteCount = 0
    /// Operations added.
    public private(set) var count = 0
    /// The block data records this batch sets (nil: deletes), by key: a later `stage` into the
    /// same batch reads them here, since the database does not have them until the batch is
    /// written (`LevelDBBlockStore`).
    var blockRecords: [[UInt8]: [UInt8]?] = [:]
    /// The pack entries its stages appended: dead space if this batch is dropped unwritten
    /// (`LevelDBBlockStore.recordDropped`).
    var appended: [(Multihash, PackLocation)] = []
    /// Written synced whatever the writer's durability (a pack's retirement: the file goes right
    /// after, and must not outlive on disk the records that point away from it).
    public var mustSync = false

    /// An empty batch.
    public init() { pointer = leveldb_writebatch_create() }
    deinit { leveldb_writebatch_destroy(pointer) }

    /// Sets `key` to `value`.
    public func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: CChar.self) { kp in
                    v.withMemoryRebound(to: CChar.self) { vp in leveldb_writebatch_put(pointer, kp.baseAddress, k.count, vp.baseAddress, v.count) }
                }
            }
        }
        byteCount += key.count + value.count
        count += 1
    }

    /// Removes `key`.
    public func delete(_ key: [UInt8]) {
        key.withUnsafeBufferPointer { k in k.withMemoryRebound(to: CChar.self) { leveldb_writebatch_delete(pointer, $0.baseAddress, k.count) } }
        byteCount += key.count
        count += 1
    }

    /// Empties the batch.
    public func clear() {
        leveldb_writebatch_clear(pointer)
        byteCount = 0
        count = 0
        blockRecords = [:]
        appended = []
    }
}

/// A failure reported by LevelDB (corruption, I/O error, lock held, …).
public struct LevelDBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being done.
    public let operation: String
    /// LevelDB's message.
    public let message: String
    public var description: String { "LevelDB \(operation): \(message)" }

    /// A write refused while a reopen after a full disk is pending and cannot be made yet.
    public static let refusedUntilReopened = LevelDBError(
        operation: "write", message: "refused until the database is opened again: an earlier write found No space left on device (free some space)")

    static func take(_ err: UnsafeMutablePointer<CChar>?, _ operation: String) -> LevelDBError? {
        guard let err else { return nil }
        defer { leveldb_free(err) }
        return LevelDBError(operation: operation, message: String(cString: err))
    }
}

extension LevelDBError: KindedError {
    /// Out of space is the disk's state, not the node's fault (507); anything else is internal.
    public var kind: ErrorKind { isNoSpace ? .storageFull : .internal }
    public var code: String? { isNoSpace ? "STORAGE_FULL" : nil }
    public var isNoSpace: Bool { message.contains("No space left on device") || message.contains("Disk quota exceeded") }
}
