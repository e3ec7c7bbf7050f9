import Foundation
import Synchronization
import IPLD
import Multiformats

/// The repository's block store: LevelDB for records and small blocks, pack
/// files for large ones.
///
/// Invariants (checked by `verify()` and the crash test):
/// 1. Every put, put-many and delete is one LevelDB write batch: it is applied
///    whole or not at all, whatever instant the process dies at.
/// 2. A block is present iff it has a `D` record; every `L` record has a `D`
///    record for its multihash, and `D` has at least one `L` record.
/// 3. A `D` record's bytes (inline, or in a pack) hash to its multihash.
/// 4. With `durability = .sync`, a put returns only after its pack bytes were
///    fdatasync'ed and its batch was written with LevelDB's sync option: an
///    acknowledged put survives `kill -9` and power loss.
public final class LevelDBBlockStore: BlockStore {
    /// How the store trades durability for speed.
    public enum Durability: String, Sendable, Codable {
        /// Each acknowledged write is on disk before it is acknowledged (the default).
        case sync
        /// Writes reach the OS, not the disk: a process crash loses nothing, a power loss may lose the last writes.
        case buffered
    }

    /// The block store's own settings.
    public struct Options: Sendable, Codable, Equatable {
        /// Settings common to block stores.
        public var blocks = BlockStoreOptions()
        /// Blocks larger than this go to pack files; smaller ones stay in LevelDB.
        public var inlineLimit = 16 << 10
        /// When a pack file is sealed and the next begun.
        public var maximumPackSize: UInt64 = 1 << 30
        /// When writes are acknowledged.
        public var durability = Durability.sync
        /// Space kept from block data twice over: a preallocated file given back when the disk
        /// fills anyway, and a margin block writes never eat into (`SpaceReserve`). 0: none.
        public var reserveBytes: UInt64 = 64 << 20
        /// Memory for small blocks (≤ 16 KiB) read recently by the gateway, answered without a
        /// trip to the storage threads (`HotBlocks`). 0: none.
        public var hotBlockCacheBytes = 4 << 20
        /// Defaults.
        public init() {}

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            blocks = try c.decodeIfPresent(BlockStoreOptions.self, forKey: .blocks) ?? blocks
            inlineLimit = try c.decodeIfPresent(Int.self, forKey: .inlineLimit) ?? inlineLimit
            maximumPackSize = try c.decodeIfPresent(UInt64.self, forKey: .maximumPackSize) ?? maximumPackSize
            durability = try c.decodeIfPresent(Durability.self, forKey: .durability) ?? durability
            reserveBytes = try c.decodeIfPresent(UInt64.self, forKey: .reserveBytes) ?? reserveBytes
            hotBlockCacheBytes = try c.decodeIfPresent(Int.self, forKey: .hotBlockCacheBytes) ?? hotBlockCacheBytes
        }
    }

    /// The database (shared with the layers above, which own other key spaces).
    public let db: LevelDB
    let packs: PackStore
    /// The options in force.
    public let options: Options
    /// Serialises the writers of block records (`exclusively`); not reentrant.
    private let writer = NSLock()
    /// The thread holding `writer` (0: none), to refuse reentry instead of deadlocking on it.
    private let writerThread = Atomic<UInt>(0)

    /// What keeps block data from filling the disk (nil: nothing does).
    public let reserve: SpaceReserve?
    /// Small blocks read recently through `getKeepingHot`, for readers that must not block.
    public let hot: HotBlocks

    /// Opens the store over an open database and a pack directory.

    public init(db: LevelDB, packDirectory: String, options: Options = Options(), reserve: SpaceReserve? = nil) throws {
        self.db = db
        self.options = options
        self.reserve = reserve
        self.hot = HotBlocks(capacity: options.hotBlockCacheBytes, maximumBlockSize: options.inlineLimit)
        self.packs = try PackStore(directory: packDirectory, maximumPackSize: options.maximumPackSize, reserve: reserve)
        // A compaction interrupted after retiring a pack but before removing its file.
        try removeRetiredPacks()
    }

    enum Record {
        case inline([UInt8])
        case packed(PackLocation)

        var size: Int {
            switch self {
            case .inline(let d): d.count
            case .packed(let l): Int(l.length)
            }
        }

        /// `kind ‖ [varint(n) ‖ varint(codec)×n] ‖ body`: kinds 0 (inline) and 1 (packed) are
        /// version 1's records, which do not say under which codecs the block is stored; kinds 2
        /// (inline) and 3 (packed) list them, so a deletion reads those links records by key
        /// instead of seeking their prefix (Docs/storage.md, "Block records").
        func encode(codecs: [UInt64]? = nil) -> [UInt8] {
            var out: [UInt8] = []
            if case .inline(let d) = self { out.reserveCapacity(d.count + 2 + 2 * (codecs?.count ?? 0)) }
            switch self {
            case .inline: out.append(codecs == nil ? 0 : 2)
            case .packed: out.append(codecs == nil ? 1 : 3)
            }
            if let codecs {
                Varint.append(UInt64(codecs.count), to: &out)
                for c in codecs { Varint.append(c, to: &out) }
            }
            switch self {
            case .inline(let d): out.append(contentsOf: d)
            case .packed(let l):
                Varint.append(UInt64(l.pack), to: &out)
                Varint.append(l.offset, to: &out)
                Varint.append(UInt64(l.length), to: &out)
            }
            return out
        }

        init(_ bytes: [UInt8]) throws {
            let (kind, body, _) = try Self.parse(bytes)
            switch kind {
            case 0, 2: self = .inline(Array(bytes[body...]))
            default:
                let (p, a) = try Varint.decode(bytes, at: body)
                let (o, b) = try Varint.decode(bytes, at: body + a)
                let (l, _) = try Varint.decode(bytes, at: body + a + b)
                guard let pack = UInt32(exactly: p), let length = UInt32(exactly: l) else {
                    throw BlockStoreError.invalidBlock(reason: "block record names pack \(p), length \(l)")
                }
                self = .packed(PackLocation(pack: pack, offset: o, length: length))
            }
        }

        /// The codecs a record lists (nil: a version 1 record, which lists none).
        static func codecs(_ bytes: [UInt8]) throws -> [UInt64]? { try parse(bytes).codecs }

        /// The longest list a record keeps: a block stored under more codecs than this keeps a
        /// record without a list (deleted by the prefix seek, as a version 1 record is).
        static let maximumListedCodecs = 64

        private static func parse(_ bytes: [UInt8]) throws -> (kind: UInt8, body: Int, codecs: [UInt64]?) {
            guard let kind = bytes.first else { throw BlockStoreError.invalidBlock(reason: "empty block record") }
            switch kind {
            case 0, 1: return (kind, 1, nil)
            case 2, 3:
                var at = 1
                let (n, a) = try Varint.decode(bytes, at: at)
                at += a
                guard n <= maximumListedCodecs else { throw BlockStoreError.invalidBlock(reason: "block record lists \(n) codecs") }
                var codecs: [UInt64] = []
                for _ in 0..<n {
                    let (c, b) = try Varint.decode(bytes, at: at)
                    codecs.append(c)
                    at += b
                }
                return (kind, at, codecs)
            default: throw BlockStoreError.invalidBlock(reason: "unknown block record kind \(kind)")
            }
        }
    }

    static func dataKey(_ mh: Multihash) -> [UInt8] { KeySpace.blockData.key(mh.bytes) }

    static func linksKey(_ mh: Multihash, _ codec: Multicodec) -> [UInt8] {
        var k = KeySpace.blockLinks.key(mh.bytes)
        Varint.append(codec.code, to: &k)
        return k
    }

    /// The block's data record as `batch` would leave it: what an earlier `stage` or
    /// `stageDelete` into the batch set, else what the database holds.
    func dataRecord(_ mh: Multihash, staged batch: WriteBatch) throws -> [UInt8]? {
        let key = Self.dataKey(mh)
        if let staged = batch.blockRecords[key] { return staged }
        return try db.get(key)
    }

    func record(_ mh: Multihash) throws -> Record? {
        guard let bytes = try db.get(Self.dataKey(mh)) else { return nil }
        return try Record(bytes)
    }

    func read(_ record: Record) throws -> [UInt8] {
        switch record {
        case .inline(let d): return d
        case .packed(let l): return try packs.read(l)
        }
    }

    /// Reads a record read earlier; if that fails because compaction moved the block (or it was
    /// deleted) since, reads where the block is now (nil: deleted).
    func readFollowingMoves(_ mh: Multihash, _ record: Record) throws -> [UInt8]? {
        do { return try read(record) } catch {
            guard case .packed(let old) = record else { throw error }
            guard let now = try self.record(mh) else { return nil }
            if case .packed(let l) = now, l == old { throw error }
            return try read(now)
        }
    }

    public func has(_ cid: CID) throws -> Bool {
        if cid.multihash.code == .identity { return cid.multihash.digestLength <= Block.maximumIdentityLength }
        return try db.get(Self.dataKey(cid.multihash)) != nil
    }

    public func get(_ cid: CID) throws -> [UInt8]? {
        if cid.multihash.code == .identity { return try Block.identityData(cid) }
        guard let r = try record(cid.multihash) else { return nil }
        let data: [UInt8]
        do {
            guard let d = try readFollowingMoves(cid.multihash, r) else { return nil }
            data = d
        } catch { throw BlockStoreError.corrupted(cid, reason: "\(error)") }
        if options.blocks.verifyOnRead {
            guard (try? cid.multihash.verify(data)) == true else { throw BlockStoreError.corrupted(cid, reason: "hash mismatch on read") }
        }
        return data
    }

    /// The block's bytes if they are in memory (`hot`): never reads the disk, so a caller that
    /// must not block can try it first.
    public func hotBlock(_ cid: CID) -> [UInt8]? { hot.get(cid.multihash) }

    /// `get`, keeping a small block in memory for `hotBlock` (for reads likely to come again: the
    /// gateway's, not a DAG walk's).
    public func getKeepingHot(_ cid: CID) throws -> [UInt8]? {
        let generation = hot.generation
        guard let data = try get(cid) else { return nil }
        if cid.multihash.code != .identity { hot.insert(cid.multihash, data, ifGeneration: generation) }
        return data
    }

    public func size(_ cid: CID) throws -> Int? {
        if cid.multihash.code == .identity { return try Block.identityData(cid).count }
        return try record(cid.multihash)?.size
    }

    public func put(_ block: Block) throws { try putMany([block]) }

    public func putMany(_ blocks: [Block]) throws {
        try exclusively {
            let batch = WriteBatch()
            do {
                try stage(blocks, into: batch)
                if batch.count > 0 { try db.write(batch, sync: options.durability == .sync) }
            } catch {
                recordDropped(batch)
                throw error
            }
        }
    }

    /// For a batch that will not be written (its operation failed after staging): the pack
    /// entries its stages appended are counted as the dead space they are (`K 01`), so their
    /// pack stays accounted for and can be compacted (Docs/storage.md, "Dead space"). Best effort:
    /// a database that refuses this write too leaves them uncounted, and their pack is then
    /// compacted only after the next open.
    public func recordDropped(_ batch: WriteBatch) {
        countDead(batch.appended)
        batch.appended = []
    }

    /// Writes the dead-entry records (`K 01`) of pack entries appended for nothing, leaving out
    /// any that a block's record points at after all (a write that reported a failure may still
    /// have been applied: a reopen after a full disk replays LevelDB's log). Best effort.
    func countDead(_ entries: [(Multihash, PackLocation)]) {
        // A pending reopen first: the log it replays may hold the batch that reported failing, and
        // the records are read after it (when it cannot be made yet, nothing is counted).
        guard !entries.isEmpty, db.reopenIfWaiting() else { return }
        let dead = WriteBatch()
        for (mh, location) in entries {
            // A record that cannot be read might point here: the entry stays uncounted.
            let current: Record?
            do { current = try record(mh) } catch { continue }
            if case .packed(let l)? = current, l == location { continue }
            Self.stageDead(mh, at: location, into: dead)
        }
        if dead.count > 0 { try? db.write(dead, sync: false) }
    }

    /// Runs `body` while no other writer of this store's records runs. Every put, put-many,
    /// delete and pack retirement of the store takes this lock; a layer above that stages its own
    /// changes with the store's (`stage`, `stageDelete`, `stageRetirement`) writes its batch inside
    /// it, so a record read there stays what it read until the batch is written.
    ///
    /// Not reentrant: a writer never calls another writer of the store inside `body` (they stage
    /// into the one batch instead), so every batch is written under exactly one acquisition and no
    /// caller can assume a lock it does not hold. Reentry is a programming error, stopped at once
    /// rather than left to deadlock.
    ///
    /// A reopen left pending by a write that found the disk full is made first (or `body` is
    /// refused, as its write would be): the reopen replays LevelDB's log, which may hold that
    /// "failed" write, and a batch built on reads from before it would undo it (a retirement
    /// replayed under a re-put pointing back into the removed pack).
    public func exclusively<R>(_ body: () throws -> R) throws -> R {
        let me = Self.threadID
        precondition(writerThread.load(ordering: .relaxed) != me, "LevelDBBlockStore.exclusively reentered: stage into the batch instead")
        writer.lock()
        writerThread.store(me, ordering: .relaxed)
        defer {
            hot.writerDone()
            writerThread.store(0, ordering: .relaxed)
            writer.unlock()
        }
        guard db.reopenIfWaiting() else { throw LevelDBError.refusedUntilReopened }
        return try body()
    }

    /// Stops a caller that stages records without holding `exclusively`.
    func requireExclusive(_ what: String) {
        precondition(writerThread.load(ordering: .relaxed) == Self.threadID, "LevelDBBlockStore.\(what) outside exclusively")
    }

    /// The calling thread's identity (pthread_t, never 0 for a running thread).
    private static var threadID: UInt {
        #if canImport(Darwin)
        UInt(bitPattern: pthread_self())
        #else
        UInt(pthread_self())
        #endif
    }

    /// A block `stage` handled: its links, and whether this put adds its links record
    /// (false: the block was already stored under this codec, nothing was written for it).
    public struct Staged: Sendable {
        /// The block's CID.
        public let cid: CID
        /// The links extracted from it for its codec.
        public let links: [CID]
        /// Whether the (multihash, codec) links record is new.
        public let isNew: Bool
    }

    /// Adds the records for `blocks` to `batch` (large blocks are appended to a pack
    /// and, under `.sync`, synced first); returns what was staged for each non-identity
    /// block, first occurrence only. Blocks already stored under the same codec are not
    /// written again. Layers above use this to put blocks in the same batch as their own changes.
    @discardableResult
    /// `guarded`: false for the repository's own records (audit entries) that go with a change,
    /// which the free-space guard must not refuse: a pin removal is how space is made.
    public func stage(_ blocks: [Block], into batch: WriteBatch, guarded: Bool = true) throws -> [Staged] {
        requireExclusive("stage")
        // One entry per multihash of the batch: its data record as stored, read once (absent, the
        // block is new under every codec, invariant 2; present, its codec list says whether a
        // codec is: a version 1 record, without a list, leaves the links record to ask), the
        // codecs met in this batch, and the record to write.
        struct Entry {
            let mh: Multihash
            let stored: [UInt8]?
            /// The stored record's list (nil: none stored, or a version 1 record).
            let storedList: [UInt64]?
            var codecs: [UInt64] = []
            var record: Record? = nil
            var listed: [UInt64]? = nil
            /// Whether the record to write has been decided (a large block's location comes later).
            var prepared = false
        }
        var entries: [Entry] = []
        var index: [Multihash: Int] = [:]
        index.reserveCapacity(blocks.count)
        var staged: [(block: Block, staged: Staged, entry: Int)] = []
        staged.reserveCapacity(blocks.count)
        // Everything is checked before anything is written.
        for b in blocks {
            guard b.data.count <= options.blocks.maximumBlockSize else {
                throw BlockStoreError.blockTooLarge(size: b.data.count, limit: options.blocks.maximumBlockSize)
            }
            let mh = b.cid.multihash
            if mh.code == .identity { continue }
            let e: Int
            if let i = index[mh] {
                e = i
            } else {
                e = entries.count
                let stored = try dataRecord(mh, staged: batch)
                entries.append(Entry(mh: mh, stored: stored, storedList: try stored.flatMap { try Record.codecs($0) }))
                index[mh] = e
            }
            let codec = b.cid.codec.code
            guard !entries[e].codecs.contains(codec) else { continue }  // the same CID twice
            entries[e].codecs.append(codec)
            let links = try extractLinks(b)
            let isNew: Bool
            if entries[e].stored == nil {
                isNew = true
            } else if let listed = entries[e].storedList {
                isNew = !listed.contains(codec)
            } else {
                isNew = try db.get(Self.linksKey(mh, b.cid.codec)) == nil
            }
            staged.append((b, Staged(cid: b.cid, links: links, isNew: isNew), e))
        }
        if let reserve, guarded {
            let bytes = staged.reduce(0) { $0 + ($1.staged.isNew ? $1.block.data.count : 0) }
            do {
                if bytes > 0 { try reserve.check(writing: UInt64(bytes)) }
            } catch {
                packs.seal()
                throw error
            }
        }
        // The data record lists every codec the block is stored under: those of its record so far
        // (a block already stored under another codec) and those this batch adds. A version 1
        // record, which lists none, stays without a list (its deletion seeks), and so does a block
        // stored under more than `maximumListedCodecs`.
        var large: [(Multihash, [UInt8])] = []
        var largeEntries: [Int] = []
        var linksRecords: [([UInt8], [UInt8])] = []
        linksRecords.reserveCapacity(staged.count)
        for (b, s, e) in staged where s.isNew {
            if !entries[e].prepared {
                entries[e].prepared = true
                entries[e].listed = entries[e].stored == nil ? [] : entries[e].storedList
                if let stored = entries[e].stored {
                    entries[e].record = try Record(stored)  // stored already: its bytes stay where they are
                } else if b.data.count <= options.inlineLimit {
                    entries[e].record = .inline(b.data)
                } else {
                    large.append((b.cid.multihash, b.data))
                    largeEntries.append(e)
                }
            }
            if let listed = entries[e].listed, !listed.contains(b.cid.codec.code) {
                entries[e].listed = listed.count < Record.maximumListedCodecs ? listed + [b.cid.codec.code] : nil
            }
            linksRecords.append((Self.linksKey(b.cid.multihash, b.cid.codec), LinkList.encode(s.links)))
        }
        if !large.isEmpty {
            let locations = try packs.append(large)
            let appended = zip(large, locations).map { ($0.0.0, $0.1) }
            for (e, location) in zip(largeEntries, locations) { entries[e].record = .packed(location) }
            if options.durability == .sync {
                // Unsynced, they are dead space whatever the caller does next (a group commit
                // refuses this operation alone and writes the others' batch).
                do { try packs.sync(locations) } catch {
                    countDead(appended)
                    throw error
                }
            }
            batch.appended += appended
        }
        // Nothing is added to the batch before the pack bytes are appended (and synced).
        for (k, v) in linksRecords { batch.put(k, v) }
        batch.blockRecords.reserveCapacity(batch.blockRecords.count + entries.count)
        for entry in entries {
            guard let record = entry.record else { continue }
            let key = Self.dataKey(entry.mh)
            let bytes = record.encode(codecs: entry.listed)
            batch.put(key, bytes)
            batch.blockRecords[key] = .some(bytes)
        }
        return staged.map(\.staged)
    }

    @discardableResult
    public func delete(_ cid: CID) throws -> Bool {
        if cid.multihash.code == .identity { return false }
        return try exclusively {
            let batch = WriteBatch()
            guard try stageDelete(cid.multihash, into: batch) != nil else { return false }
            try db.write(batch, sync: options.durability == .sync)
            return true
        }
    }

    /// Adds the deletion of a block (data and every links record) to `batch`. Returns, for
    /// each links record removed, its distinct links (concatenated), with the block's size;
    /// nil when the block is absent. Deleting many blocks, pass one `iterator` for all of them:
    /// making an iterator costs more as the database grows.
    public func stageDelete(_ mh: Multihash, into batch: WriteBatch, iterator: LevelDB.Iterator? = nil) throws -> (links: [CID], size: Int)? {
        requireExclusive("stageDelete")
        guard let bytes = try db.get(Self.dataKey(mh)) else { return nil }
        let record = try Record(bytes)
        hot.evict(mh)
        batch.delete(Self.dataKey(mh))
        batch.blockRecords[Self.dataKey(mh)] = .some(nil)
        if case .packed(let l) = record {
            // Its pack entry becomes dead space, counted for compaction.
            Self.stageDead(mh, at: l, into: batch)
        }
        var links: [CID] = []
        func remove(_ k: [UInt8], _ v: [UInt8]) throws {
            batch.delete(k)
            var seen = Set<Multihash>()
            for l in try LinkList.live(v) where seen.insert(l.multihash).inserted { links.append(l) }
        }
        if let codecs = try Record.codecs(bytes) {
            // The record lists its codecs: their links records are read by key (a seek would
            // position in every level of the database).
            var seen = Set<UInt64>()
            for c in codecs where seen.insert(c).inserted {
                let k = Self.linksKey(mh, Multicodec(c))
                if let v = try db.get(k) { try remove(k, v) }
            }
        } else {
            let it = iterator ?? db.makeIterator()
            try it.forEach(prefix: KeySpace.blockLinks.key(mh.bytes)) { k, v in
                try remove(k, v)
                return true
            }
        }
        return (links, record.size)
    }

    /// The links that hold their children (a detached link is left out): what DAG walks follow.
    public func links(of cid: CID) throws -> [CID]? {
        try linkEntries(of: cid).map { $0.filter { !$0.detached }.map(\.cid) }
    }

    /// Every link recorded for the block, detached or not (what its bytes hold).
    public func linkEntries(of cid: CID) throws -> [LinkEntry]? {
        if cid.multihash.code == .identity { return try extractLinks(Block(trusted: cid, data: try Block.identityData(cid))).map { LinkEntry($0) } }
        guard let bytes = try db.get(Self.linksKey(cid.multihash, cid.codec)) else { return nil }
        return try LinkList.entries(bytes)
    }

    /// Rewrites the links record of a stored (or staged) block with `entries` (the same links,
    /// some detached), in `batch`. The caller adjusts the reference counts.
    public func stageLinkEntries(_ cid: CID, _ entries: [LinkEntry], into batch: WriteBatch) {
        batch.put(Self.linksKey(cid.multihash, cid.codec), LinkList.encode(entries: entries))
    }

    public func forEach(_ body: (CID) throws -> Bool) throws {
        let it = db.makeIterator(snapshot: db.snapshot(), fillCache: false)
        try it.forEach(prefix: KeySpace.blockLinks.prefix) { k, _ in
            let (mh, codec) = try Self.parseLinksKey(k)
            return try body(CID(codec: codec, multihash: mh))
        }
    }

    /// The (multihash, codec) of a links-record key.
    public static func parseLinksKey(_ key: [UInt8]) throws -> (Multihash, Multicodec) {
        let rest = Array(key.dropFirst())
        let (mh, n) = try rest.withUnsafeBytesTyped { (raw) throws(MultihashError) in try Multihash.decodePrefix(raw) }
        let (codec, m) = try Varint.decode(rest, at: n)
        guard n + m == rest.count else { throw BlockStoreError.invalidBlock(reason: "malformed links key") }
        return (mh, Multicodec(codec))
    }

    /// Bytes held in pack files (live and dead).
    public func packBytes() throws -> UInt64 { try packs.totalSize() }
}
