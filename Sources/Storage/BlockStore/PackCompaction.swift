import Multiformats

/// Reclaiming pack space: a deleted packed block leaves its entry in its pack (dead space,
/// counted by a `K 01` record, one per entry, written in the deletion's batch). A sealed pack whose dead share
/// passes a threshold is compacted in three steps, each safe to interrupt:
/// 1. `copyLiveEntries`: its entries that records still point at are appended to the current
///    pack and synced. Nothing refers to the copies yet (a crash leaves them as dead space).
/// 2. `stageRetirement`, in the caller's batch inside `exclusively` (the lock every record change
///    takes): records still pointing at the old entries are repointed to the copies, the
///    pack's dead-entry records go, and a `K 02` record marks the pack retired.
/// 3. `removeRetiredPacks`, after that batch is written (and at every open, for a crash between
///    the two): the files of retired packs are removed and their marks dropped.
/// Readers that looked a block up before step 2 follow the move (`readFollowingMoves`).
/// A pack of this open whose bytes are not exactly its live entries plus its counted dead
/// entries is never compacted (an entry the scan could not account for might be live). A pack
/// written before this open is compacted even so: no append to it can still be waiting for its
/// record, so an entry nothing points at is dead, counted or not. Appends go to a fresh pack
/// after every open, so a torn entry from a crash can only be the last of its pack: such a pack
/// from before this open is compacted once every block record pointing into it is known to point
/// at an entry its scan found (what did not parse is then a torn append, not damage hiding a live
/// entry).
extension LevelDBBlockStore {
    /// A pack's share of dead space.
    public struct PackUsage: Sendable, Equatable {
        public var pack: UInt32
        public var size: UInt64
        public var dead: UInt64
        /// The pack being appended to (never compacted).
        public var current: Bool
    }

    /// What step 1 did for one pack.
    public struct PackCompaction: Sendable {
        public let pack: UInt32
        /// (block, where it was, where its copy is).
        let moves: [(Multihash, PackLocation, PackLocation)]
        /// Bytes of the pack file.
        public let packBytes: UInt64
        /// Bytes copied to the current pack.
        public let copiedBytes: UInt64
    }

    /// `K 01 ‖ u32(pack) ‖ u64(offset of the entry's data)`: one key per dead entry, so the dead
    /// bytes of a pack are exact.
    static func deadEntryKey(_ location: PackLocation) -> [UInt8] {
        KeySpace.packs.key([1] + withUnsafeBytes(of: location.pack.bigEndian, Array.init) + withUnsafeBytes(of: location.offset.bigEndian, Array.init))
    }

    /// Counts the entry of `mh` at `location` as dead space (its `K 01` record, the entry's bytes).
    static func stageDead(_ mh: Multihash, at location: PackLocation, into batch: WriteBatch) {
        var size: [UInt8] = []
        Varint.append(PackStore.entrySize(multihash: mh, length: location.length), to: &size)
        batch.put(deadEntryKey(location), size)
    }

    /// The dead bytes counted for one pack.
    func deadBytes(of pack: UInt32) throws -> UInt64 {
        var dead: UInt64 = 0
        try db.makeIterator(fillCache: false).forEach(prefix: KeySpace.packs.key([1] + withUnsafeBytes(of: pack.bigEndian, Array.init))) { _, v in
            dead += (try? Varint.decode(v, at: 0).0) ?? 0
            return true
        }
        return dead
    }

    static func retiredKey(_ pack: UInt32) -> [UInt8] {
        KeySpace.packs.key([2] + withUnsafeBytes(of: pack.bigEndian, Array.init))
    }

    /// Every pack with its size and counted dead bytes (read from the `K 01` records: the cost
    /// follows the garbage, not the repository).
    public func packUsage() throws -> [PackUsage] {
        var dead: [UInt32: UInt64] = [:]
        try db.makeIterator(fillCache: false).forEach(prefix: KeySpace.packs.key([1])) { k, v in
            guard k.count >= 6 else { return true }
            let pack = k[2..<6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            dead[pack, default: 0] += (try? Varint.decode(v, at: 0).0) ?? 0
            return true
        }
        let current = packs.currentPack
        return try PackStore.packNumbers(in: packs.directory).map { n in
            PackUsage(pack: n, size: packs.size(of: n) ?? 0, dead: dead[n] ?? 0, current: n == current)
        }
    }

    /// Step 1: appends the pack's live entries to the current pack, synced. Memory: one batch
    /// of up to 32 MiB of copies. Nil, for a pack this open appended to, when its bytes are not
    /// exactly its live entries plus its counted dead ones (bytes of a put whose record may still
    /// be coming: an entry the scan missed could be live) or it does not parse to its end. A pack
    /// from before this open may hold entries nothing points at and no deletion counted (a put
    /// whose batch never landed, a poisoned pack's failed batch): they are dead, and go with it;
    /// so does a torn end (a crash during an append), once every record pointing into the pack
    /// is known to point at an entry the scan found (nil otherwise: damage, hiding live entries).
    public func copyLiveEntries(of pack: UInt32) throws -> PackCompaction? {
        precondition(pack != packs.currentPack, "the pack being appended to is never compacted")
        if let refused = packs.refusedForCompaction.locked({ $0[pack] }), refused == packs.size(of: pack) { return nil }
        // What is live, decided before anything is copied: the entries a block's record points at.
        var live: [(Multihash, PackLocation)] = []
        var liveBytes: UInt64 = 0
        let stopped = try packs.scan(pack) { mh, location, _ in
            guard case .packed(let l)? = try record(mh), l == location else { return }
            live.append((mh, location))
            liveBytes += PackStore.entrySize(multihash: mh, length: location.length)
        }
        // Every byte of the pack must be accounted for. For a pack this open appended to, where a
        // put's record may still be coming, it parses to its end and live entries plus entries
        // counted dead are all of it (checked again under the writer lock: `stageRetirement`).
        // For one from before this open, what did not parse is a torn append only if every record
        // pointing into the pack points at an entry the scan found (a damaged length can also
        // make the scan skip live entries before stopping): read every block record once to know
        // (a crash tears at most one pack; a refusal is not tried again in this open, since
        // nothing changes it).
        let size = packs.size(of: pack) ?? 0
        if stopped != nil, try pack >= packs.firstPackOfThisOpen || recordPoints(into: pack, elsewhereThan: Set(live.map { $0.1.offset })) {
            packs.refusedForCompaction.locked { $0[pack] = size }
            return nil
        }
        guard try pack < packs.firstPackOfThisOpen || liveBytes + deadBytes(of: pack) == size else { return nil }
        var moves: [(Multihash, PackLocation, PackLocation)] = []
        var pending: [(Multihash, [UInt8])] = []
        var pendingOld: [PackLocation] = []
        var pendingBytes = 0
        func flush() throws {
            guard !pending.isEmpty else { return }
            for (i, location) in try packs.append(pending).enumerated() { moves.append((pending[i].0, pendingOld[i], location)) }
            pending.removeAll(keepingCapacity: true)
            pendingOld.removeAll(keepingCapacity: true)
            pendingBytes = 0
        }
        do {
            // A second scan reads them (through a descriptor of its own, closed at its end: one kept
            // among the readers' would hold the file's space after its removal, until the next
            // compaction run).
            let wanted = Dictionary(uniqueKeysWithValues: live.map { ($0.1.offset, ($0.0, $0.1.length)) })
            var found = 0
            let again = try packs.scan(pack) { mh, location, data in
                guard let (expected, length) = wanted[location.offset] else { return }
                guard expected == mh, length == location.length else { return }
                found += 1
                pending.append((mh, Array(data)))
                pendingOld.append(location)
                pendingBytes += data.count
                if pendingBytes >= 32 << 20 { try flush() }
            }
            try flush()
            // The pack is sealed and never rewritten, so the second scan finds what the first did;
            // if it ever does not, nothing is retired on its strength.
            guard again == stopped, found == live.count else {
                throw BlockStoreError.io("pack \(pack) read differently on its second scan (\(found) of \(live.count) live entries): not compacted")
            }
            try packs.sync(moves.map(\.2))
        } catch {
            // Copies made for nothing are the dead space they are: uncounted, their own pack
            // would not be accounted for either.
            countDead(moves.map { ($0.0, $0.2) })
            throw error
        }
        return PackCompaction(pack: pack, moves: moves, packBytes: size, copiedBytes: liveBytes)
    }

    /// Whether a block record points into `pack` at data not at one of `offsets`, or cannot be
    /// read (it might). Reads every record, copying only those of packed blocks.
    func recordPoints(into pack: UInt32, elsewhereThan offsets: Set<UInt64>) throws -> Bool {
        let it = db.makeIterator(fillCache: false)
        let prefix = KeySpace.blockData.prefix
        it.seek(prefix)
        while it.isValid, it.withKey({ $0.starts(with: prefix) }) {
            let pointsElsewhere = it.withValue { v -> Bool in
                // An unknown kind might point here; kinds 0 and 2 are inline (their body, the block,
                // is not copied); 1 and 3 are packed.
                guard let kind = v.first, kind <= 3 else { return true }
                guard kind == 1 || kind == 3 else { return false }
                guard case .packed(let l)? = try? Record(Array(v)) else { return true }
                return l.pack == pack && !offsets.contains(l.offset)
            }
            if pointsElsewhere { return true }
            it.next()
        }
        try it.checkError()
        return false
    }

    /// The pack gained a live entry that was not copied (a put's record landed after the scan):
    /// its retirement is dropped, and it is tried again at the next compaction.
    public struct PackChangedDuringCompaction: Error, Sendable {
        public let pack: UInt32
    }

    /// Step 2, into the caller's batch, inside `exclusively` (the caller writes the batch there):
    /// repoints what still points at the
    /// old entries (a block deleted or moved meanwhile is left alone), drops the pack's dead-entry
    /// records, marks the pack retired.
    public func stageRetirement(_ c: PackCompaction, into batch: WriteBatch) throws {
        requireExclusive("stageRetirement")
        // The file is removed once this batch is written: under `buffered` durability too, the
        // records pointing away from it must be on disk first, or a power failure could leave
        // them pointing into a removed file.
        batch.mustSync = true
        // Should this batch be dropped, the copies are dead space (`recordDropped`).
        batch.appended += c.moves.map { ($0.0, $0.2) }
        var stillLive: UInt64 = 0
        for (mh, old, new) in c.moves {
            let bytes = try db.get(Self.dataKey(mh))
            guard let bytes, case .packed(let l) = try Record(bytes), l == old else {
                // Deleted (or put anew) since the copy: the copy is dead space of its own pack.
                Self.stageDead(mh, at: new, into: batch)
                continue
            }
            batch.put(Self.dataKey(mh), Record.packed(new).encode(codecs: try Record.codecs(bytes)))
            stillLive += PackStore.entrySize(multihash: mh, length: old.length)
        }
        // A pack this open appended to may have gained a live entry since its scan: a put whose
        // record was still coming, which no check outside this lock can rule out (and a deletion
        // of the same size since could make the sums agree). Here no put is halfway, so its live
        // entries are exactly the moves still pointing at it, and with its counted dead entries
        // they must be all of it.
        if try c.pack >= packs.firstPackOfThisOpen && stillLive + deadBytes(of: c.pack) != c.packBytes {
            throw PackChangedDuringCompaction(pack: c.pack)
        }
        try db.makeIterator(fillCache: false).forEach(prefix: KeySpace.packs.key([1] + withUnsafeBytes(of: c.pack.bigEndian, Array.init))) { k, _ in
            batch.delete(k)
            return true
        }
        batch.put(Self.retiredKey(c.pack), [])
    }

    /// Step 3: removes the files of retired packs and their marks; returns how many.
    @discardableResult
    public func removeRetiredPacks() throws -> Int {
        var retired: [(UInt32, [UInt8])] = []
        try db.makeIterator(fillCache: false).forEach(prefix: KeySpace.packs.key([2])) { k, _ in
            if k.count == 6 { retired.append((k[2..<6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, k)) }
            return true
        }
        guard !retired.isEmpty else { return 0 }
        // The files first, whatever comes next: a retired pack's mark is written, so nothing
        // points into it, and on a full disk its space is what is needed (dropping the marks may
        // be refused then, until LevelDB is opened again; they are dropped at a later run).
        let current = packs.currentPack
        for (pack, _) in retired where pack != current { packs.remove(pack) }
        return try exclusively {
            let batch = WriteBatch()
            for (_, key) in retired { batch.delete(key) }
            try db.write(batch, sync: options.durability == .sync)
            return retired.count
        }
    }

    /// Closes what removed packs still hold open (call between compaction runs).
    public func releaseRemovedPacks() { packs.closeRemoved() }
}
