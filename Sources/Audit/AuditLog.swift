import Foundation
import IPLD
import Locking
import Multiformats
import Pinning
import Signing
import Storage
import Synchronization

/// The Qerberos audit log: every change of the node (and every refusal) as an `AuditEvent`
/// block, the leaves of an RFC 9162 Merkle tree kept as C2SP tiles in blocks, with signed
/// checkpoints. It is the store's `AuditSink`: a transaction's entries are staged into the
/// transaction's own batch (durable with the change, none for a change that failed).
///
/// As blocks (all pinned through one moving pin of resource type `audit-logs`):
/// - an event: its dag-cbor block (the leaf; leaf hash SHA-256(0x00 ‖ block));
/// - a full tile: a raw block of its 256 hashes (as `tile/L/N` serves it) and a tile node,
///   dag-cbor `{level, index, tile: Link(raw), children: [Link]}`, whose children are the 256
///   events (level 0) or the 256 tile nodes of the level below;
/// - a checkpoint: dag-cbor `{note, size, prev?: Link}` (the signed note; all of them chained);
/// - the head, made at each checkpoint and pinned: dag-cbor `{origin, key, size, checkpoint:
///   Link, pending: [[Link]]}` — `pending[L]` the children of level L's partial tile (events for
///   L = 0), in log order from the highest level down. Walking it yields every event in order.
///
/// The index (key space `A`): `A 01 ‖ u64(i)` → leaf hash ‖ u64(time appended) ‖ event CID (the
/// times never decrease along the log, so a time is found by bisection); `A 02 ‖ u8(L) ‖ u64(N)`
/// → subtree hash ‖ u8(length) ‖ tile node CID ‖ raw tile CID (full tiles); `A 04 ‖ u64(size)` → checkpoint block CID;
/// `A 05` → head CID.
public final class AuditLog: AuditSink {
    /// The pinning policy the log is kept under.
    public static let resourceType = "audit-logs"
    /// The name of the log's pin.
    public static let pinName = "qerberos audit log"

    let store: CountedBlockStore
    let pins: Pinner
    let events: EventLog?
    let key: SigningKey
    /// The checkpoints' origin line, also the signing key's name.
    public let origin: String
    /// Who acts when no context names anyone: the node.
    let nodeActor: IdentityRef
    let every: UInt64
    /// Whether changes are logged (`audit.enabled`); when not, entries are dropped, and events a
    /// crash left uncovered still get their checkpoint.
    public let isRecording: Bool
    /// How long events may wait for a checkpoint (ms).
    public let interval: UInt64
    let clock: any WallClock
    private let state: Mutex<State>
    private let tiles = Memo<TileCoordinate, [[[UInt8]]]>()
    /// Hashes of complete subtrees reduced from partial tiles (keyed by tree level and index).
    let subtrees = Memo<TileCoordinate, [UInt8]>()

    struct State: Sendable {
        var edge: LogEdge
        var checkpoint: Latest?
        var head: CID?
        /// The time of the first event not covered by a checkpoint.
        var uncoveredSince: UInt64?
        /// The database's reopen count when this was read (`LevelDB.reopenCount`).
        var generation = 0
    }

    /// The latest checkpoint.
    public struct Latest: Sendable, Equatable {
        public var size: UInt64
        public var rootHash: [UInt8]
        public var note: String
        public var cid: CID
    }

    /// The log in `store`'s database, signing with `key`; appends continue after what is stored.
    public init(store: CountedBlockStore, pins: Pinner, events: EventLog?, key: SigningKey, origin: String, nodeActor: IdentityRef,
                checkpointEvery: UInt64, interval: UInt64, recording: Bool = true, clock: any WallClock = SystemClock()) throws {
        self.isRecording = recording
        self.store = store
        self.pins = pins
        self.events = events
        self.key = key
        self.origin = origin
        self.nodeActor = nodeActor
        self.every = max(1, checkpointEvery)
        self.interval = interval
        self.clock = clock
        state = Mutex(try Self.readState(store))
    }

    /// The log's state as stored: its right edge, latest checkpoint and head.
    static func readState(_ store: CountedBlockStore) throws -> State {
        let db = store.db
        let generation = db.reopenCount
        let edge = try Self.readEdge(db)
        var latest: Latest?
        let it = db.makeIterator()
        it.seek(Self.checkpointKey(.max))
        if it.isValid { it.previous() } else { it.seekToLast() }
        if it.isValid, it.key.count == 10, it.key.starts(with: Self.checkpointPrefix) {
            let cid = try CID(bytes: it.value)
            latest = try Self.readCheckpoint(cid, store: store)
        }
        let head = try db.get(Self.headKey).map { try CID(bytes: $0) }
        return State(edge: edge, checkpoint: latest, head: head, uncoveredSince: edge.tiles.size > (latest?.size ?? 0) ? 0 : nil, generation: generation)
    }

    // MARK: keys

    static let prefix = KeySpace.auditHead.prefix
    static func be(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func leafKey(_ i: UInt64) -> [UInt8] { prefix + [1] + be(i) }
    static func tileKey(_ c: TileCoordinate) -> [UInt8] { prefix + [2, UInt8(c.level)] + be(c.index) }
    static let checkpointPrefix = prefix + [4]
    static func checkpointKey(_ size: UInt64) -> [UInt8] { checkpointPrefix + be(size) }
    static let headKey = prefix + [5]
    /// `A 06 ‖ CID` of each full tile's raw block and tile node (what `holds` asks).
    static func memberKey(_ cid: CID) -> [UInt8] { prefix + [6] + cid.bytes }
    static func uint(_ b: some Collection<UInt8>) -> UInt64 { b.reduce(0) { $0 << 8 | UInt64($1) } }

    /// The stored leaf `i`: its hash, the time it was appended and its event CID.
    func leaf(_ i: UInt64, snapshot: LevelDB.Snapshot? = nil) throws -> (hash: [UInt8], time: UInt64, cid: CID)? {
        guard let v = try store.db.get(Self.leafKey(i), snapshot: snapshot) else { return nil }
        guard let l = Self.parseLeaf(v) else { throw AuditError.corrupt("index entry of event \(i)") }
        return l
    }

    static func parseLeaf(_ v: [UInt8]) -> (hash: [UInt8], time: UInt64, cid: CID)? {
        guard v.count > 40, let cid = try? CID(bytes: Array(v[40...])) else { return nil }
        return (Array(v[0..<32]), uint(v[32..<40]), cid)
    }

    /// The stored full tile `c`: its subtree hash, tile node CID and raw tile CID.
    func fullTile(_ c: TileCoordinate) throws -> (hash: [UInt8], node: CID, raw: CID)? {
        guard let v = try store.db.get(Self.tileKey(c)) else { return nil }
        guard let t = Self.parseTile(v) else { throw AuditError.corrupt("index entry of \(c)") }
        return t
    }

    /// `A 02` values: subtree hash ‖ u8(length) ‖ tile node CID ‖ raw tile CID.
    static func tileValue(_ hash: [UInt8], node: CID, raw: CID) -> [UInt8] { hash + [UInt8(node.bytes.count)] + node.bytes + raw.bytes }

    static func parseTile(_ v: [UInt8]) -> (hash: [UInt8], node: CID, raw: CID)? {
        guard v.count > 33 else { return nil }
        let n = Int(v[32])
        guard v.count > 33 + n, let node = try? CID(bytes: Array(v[33..<(33 + n)])), let raw = try? CID(bytes: Array(v[(33 + n)...])) else { return nil }
        return (Array(v[0..<32]), node, raw)
    }

    /// Rebuilds the right edge from the index: the leaves after the last full level-0 tile, and
    /// the subtree hashes of the full tiles not yet under a full tile of the level above.
    static func readEdge(_ db: LevelDB) throws -> LogEdge {
        let it = db.makeIterator()
        it.seek(leafKey(.max))
        if it.isValid { it.previous() } else { it.seekToLast() }
        guard it.isValid, it.key.count == 10, it.key.starts(with: prefix + [1]) else { return LogEdge() }
        let size = uint(it.key[2...]) + 1
        var partial: [[[UInt8]]] = []
        var children: [[CID]] = []
        guard let last = parseLeaf(it.value) else { throw AuditError.corrupt("index entry of event \(size - 1)") }
        var level = 0
        while level == 0 || size >> UInt64(8 * level) > 0 {
            let count = size >> UInt64(8 * level)
            let first = count - count % 256
            var hashes: [[UInt8]] = []
            var kids: [CID] = []
            for i in first..<count {
                let key = level == 0 ? leafKey(i) : tileKey(TileCoordinate(level: level - 1, index: i))
                let v = try db.get(key)
                if level == 0, let l = v.flatMap(parseLeaf) {
                    hashes.append(l.hash)
                    kids.append(l.cid)
                } else if level > 0, let t = v.flatMap(parseTile) {
                    hashes.append(t.hash)
                    kids.append(t.node)
                } else {
                    throw AuditError.corrupt(level == 0 ? "index entry of event \(i) is missing" : "index entry of tile/\(level - 1)/\(i) is missing")
                }
            }
            partial.append(hashes)
            children.append(kids)
            level += 1
        }
        return LogEdge(tiles: TileEdge(size: size, partial: partial), children: children, lastTime: last.time)
    }

    static func readCheckpoint(_ cid: CID, store: some BlockStore) throws -> Latest {
        guard let bytes = try store.get(cid) else { throw AuditError.corrupt("checkpoint block \(cid) is missing") }
        let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "checkpoint", allowed: ["note", "size", "prev"])
        let note = try m.string("note")
        let text = note.components(separatedBy: "\n\n").first ?? ""
        let c = try Checkpoint(text: text + "\n")
        return Latest(size: c.size, rootHash: c.rootHash, note: note, cid: cid)
    }

    // MARK: state

    /// Events appended (and written).
    public var size: UInt64 { state.locked { $0.edge.tiles.size } }
    /// The latest checkpoint, nil before the first.
    public var latestCheckpoint: Latest? { state.locked { $0.checkpoint } }
    /// The pinned head (nil before the first checkpoint).
    public var head: CID? { state.locked { $0.head } }
    /// The node's public key, as checkpoints are signed with.
    public var publicKey: [UInt8] { key.publicKey }
    /// Whether the events appended are all covered by a checkpoint older than `interval`… i.e.
    /// whether a timed checkpoint is due now.
    public var checkpointDue: Bool {
        state.locked { s in
            guard let since = s.uncoveredSince else { return false }
            return s.edge.tiles.size > (s.checkpoint?.size ?? 0) && clock.now >= since + interval
        }
    }

    // MARK: AuditSink

    struct Staged: Sendable {
        var edge: LogEdge
        var checkpoint: Latest?
        var head: CID?
        var first: UInt64?
    }

    /// An event made ahead of its transaction: its block, its leaf hash, its time, and its entry
    /// on the event stream, encoded.
    struct Prepared: Sendable {
        var block: Block
        var leaf: [UInt8]
        var ts: UInt64
        var streamed: [UInt8]?
    }

    public func prepare(_ entry: AuditEntry, at ts: UInt64) throws -> any Sendable {
        try prepared(entry, at: ts, requestId: entry.requestId ?? AuditContext.newRequestID(prefix: "node-"))
    }

    func prepared(_ entry: AuditEntry, at ts: UInt64, requestId: String) throws -> Prepared {
        let actor = entry.actor ?? nodeActor
        let event = try AuditEvent(type: entry.type, ref: entry.ref, actor: actor, verdict: entry.verdict,
                                   details: entry.details, cid: entry.cid, ts: ts, requestId: requestId)
        let bytes = try event.encoded()
        let block = try Block(data: bytes, codec: .dagCBOR, hash: .sha2_256)
        var streamed: [UInt8]?
        if events != nil {
            var data: [(String, IPLDNode)] = [("cid", .string(block.cid.description)), ("type", .string(entry.type)),
                                              ("verdict", .string(entry.verdict.rawValue)), ("actor", .string(actor.squidId)), ("ref", .string(entry.ref))]
            if let c = entry.cid { data.append(("subject", .string(c.description))) }
            streamed = EventLog.encode("q.qerberos." + entry.type.dropFirst(2), IPLDMap(uniqueKeysWithValues: data), at: ts)
        }
        return Prepared(block: block, leaf: MerkleHash.leaf(bytes), ts: ts, streamed: streamed)
    }

    public func stage(_ items: [AuditItem], checkpoint: Bool, in txn: CountTransaction, store: CountedBlockStore) throws -> any Sendable {
        // LevelDB was opened again after a full disk (the writer lock made that reopen before this
        // transaction read anything): its log's replay may have applied a batch of ours that
        // reported failing — entries, a checkpoint, the head — which this process never settled.
        // The log goes on from what is stored, or the next entry would take a stored one's index.
        if state.locked({ $0.generation }) != store.db.reopenCount {
            let stored = try Self.readState(store)
            state.locked { $0 = stored }
        }
        let (committed, latest, head) = state.locked { ($0.edge, $0.checkpoint, $0.head) }
        var edge = committed
        var blocks: [Block] = []
        blocks.reserveCapacity(items.count + 4)
        let batch = txn.batch
        // Entries that go with a change (a pin removed: how space is made) are not refused by the
        // free-space guard; entries alone (a refusal recorded) are, so a flood of refused requests
        // cannot eat the room kept for the repository's own writes.
        let guarded = batch.count == 0
        // Entries recorded without a request id share one made up for the transaction.
        var generated: String?
        for item in items where isRecording {
            let p: Prepared
            switch item {
            case .prepared(let v): p = v as! Prepared
            case .entry(let entry):
                let requestId = entry.requestId ?? {
                    if generated == nil { generated = AuditContext.newRequestID(prefix: "node-") }
                    return generated!
                }()
                p = try prepared(entry, at: txn.now, requestId: requestId)
            }
            let index = edge.tiles.size
            edge.lastTime = max(edge.lastTime, txn.now)
            batch.put(Self.leafKey(index), p.leaf + Self.be(edge.lastTime) + p.block.cid.bytes)
            blocks.append(p.block)
            for filled in try edge.append(leafHash: p.leaf, cid: p.block.cid) {
                blocks.append(filled.raw)
                blocks.append(filled.node)
                batch.put(Self.tileKey(filled.coordinate), Self.tileValue(filled.subtreeHash, node: filled.node.cid, raw: filled.raw.cid))
                batch.put(Self.memberKey(filled.raw.cid), [])
                batch.put(Self.memberKey(filled.node.cid), [])
            }
            if let events, let streamed = p.streamed { events.stage(encoded: streamed, into: batch) }
        }
        var staged = Staged(edge: edge, checkpoint: nil, head: nil, first: items.isEmpty ? nil : committed.tiles.size)
        let covered = latest?.size ?? 0
        if edge.tiles.size > covered, checkpoint || edge.tiles.size - covered >= every {
            let root = edge.tiles.rootHash()
            let note = Checkpoint(origin: origin, size: edge.tiles.size, rootHash: root).signed(by: key, name: origin)
            var cp: [(String, IPLDNode)] = [("note", .string(note)), ("size", .int(edge.tiles.size))]
            if let prev = latest?.cid { cp.append(("prev", .link(prev))) }
            let cpBlock = try Block(data: try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: cp))), codec: .dagCBOR, hash: .sha2_256)
            let headBlock = try Self.headBlock(origin: origin, key: key.publicKey, size: edge.tiles.size, checkpoint: cpBlock.cid, edge: edge)
            blocks.append(cpBlock)
            blocks.append(headBlock)
            batch.put(Self.checkpointKey(edge.tiles.size), cpBlock.cid.bytes)
            batch.put(Self.headKey, headBlock.cid.bytes)
            staged.checkpoint = Latest(size: edge.tiles.size, rootHash: root, note: note, cid: cpBlock.cid)
            staged.head = headBlock.cid
            try store.stage(blocks, in: txn, guarded: guarded)
            // The head moves: one direct pin whose links hold everything (a retained type no caller may touch).
            let old = try head.map { h in try pins.pins(of: h.multihash).first { $0.resourceType == Self.resourceType }?.id } ?? nil
            var request = Pinner.Request(cid: headBlock.cid)
            request.name = Self.pinName
            request.resourceType = Self.resourceType
            _ = try pins.stageMovingPin(request, replacing: old, in: txn)
        } else if !blocks.isEmpty {
            try store.stage(blocks, in: txn, guarded: guarded)
        }
        return staged
    }

    public func settle(_ staged: any Sendable, written: Bool) {
        guard written, let s = staged as? Staged else { return }
        let now = clock.now
        state.locked { st in
            st.edge = s.edge
            if let c = s.checkpoint {
                st.checkpoint = c
                st.head = s.head
            }
            let covered = st.checkpoint?.size ?? 0
            if st.edge.tiles.size <= covered { st.uncoveredSince = nil } else if st.uncoveredSince == nil { st.uncoveredSince = now }
        }
        if s.first != nil { events?.published() }
    }

    static func headBlock(origin: String, key: [UInt8], size: UInt64, checkpoint: CID, edge: LogEdge) throws -> Block {
        let pending: [IPLDNode] = edge.children.reversed().map { .list($0.map { .link($0) }) }
        let node = IPLDNode.map(IPLDMap(uniqueKeysWithValues: [
            ("origin", .string(origin)), ("key", .bytes(key)), ("size", .int(size)), ("checkpoint", .link(checkpoint)), ("pending", .list(pending)),
        ]))
        return try Block(data: try DAGCBOR().encode(node), codec: .dagCBOR, hash: .sha2_256)
    }

    // MARK: checkpoints outside a change

    /// Signs a checkpoint now if events were appended since the last one; returns the latest.
    @discardableResult
    public func checkpointNow() throws -> Latest? {
        try store.transaction { txn in txn.requestAuditCheckpoint() }
        return latestCheckpoint
    }

    // MARK: reading

    /// The event at `index` (its CID and bytes); nil beyond the log.
    public func event(at index: UInt64) throws -> (cid: CID, bytes: [UInt8])? {
        guard index < size, let l = try leaf(index) else { return nil }
        guard let bytes = try store.get(l.cid) else { throw AuditError.corrupt("event \(index) (\(l.cid)) is missing") }
        return (l.cid, bytes)
    }

    /// The first index appended at or after `ts` (ms): a bisection over the index's times.
    public func index(atOrAfter ts: UInt64) throws -> UInt64 {
        var (lo, hi) = (UInt64(0), size)
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            guard let l = try leaf(mid) else { throw AuditError.corrupt("index entry of event \(mid) is missing") }
            if l.time < ts { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The hashes of tile `c` as far as the tree of the first `size` leaves has them; nil when it
    /// has none of them.
    public func tileHashes(_ c: TileCoordinate, size: UInt64? = nil) throws -> [[UInt8]]? {
        let edge = state.locked { $0.edge }
        let n = min(size ?? edge.tiles.size, edge.tiles.size)
        let shift = UInt64(8 * c.level)
        let atLevel = c.level < 8 ? n >> shift : 0
        let full = atLevel / 256
        if c.index < full { return try storedTile(c) }
        guard c.index == full, atLevel % 256 > 0 else { return nil }
        let width = Int(atLevel % 256)
        // The partial tile: from the edge when it still is the edge's, else from the full tile it became.
        if edge.tiles.size >> shift / 256 == c.index, c.level < edge.tiles.partial.count {
            return Array(edge.tiles.partial[c.level].prefix(width))
        }
        return try storedTile(c).map { Array($0.prefix(width)) }
    }

    func storedTile(_ c: TileCoordinate) throws -> [[UInt8]]? { try storedTileLevels(c)?[0] }

    /// A full tile's hashes and every level of the subtree they make (`[0]` the tile's 256,
    /// `[k]` the 256 >> k hashes k levels up), computed once per tile read.
    func storedTileLevels(_ c: TileCoordinate) throws -> [[[UInt8]]]? {
        if let t = tiles.get(c) { return t }
        guard let (_, _, rawCID) = try fullTile(c) else { return nil }
        guard let raw = try store.get(rawCID) else { throw AuditError.corrupt("\(c) (\(rawCID)) is missing") }
        guard raw.count == 256 * 32 else { throw AuditError.corrupt("\(c) is \(raw.count) bytes, not 8192") }
        var levels = [stride(from: 0, to: raw.count, by: 32).map { Array(raw[$0..<($0 + 32)]) }]
        while levels.last!.count > 1 {
            let row = levels.last!
            levels.append(stride(from: 0, to: row.count, by: 2).map { MerkleHash.node(row[$0], row[$0 + 1]) })
        }
        tiles.put(c, levels)
        return levels
    }

    /// Subtree hashes of the log as it is now, for proofs.
    struct Hashes: SubtreeHashes, TileReader {
        let log: AuditLog
        let size: UInt64
        func tile(_ c: TileCoordinate) throws -> [[UInt8]]? { try log.tileHashes(c, size: size) }
        /// From a full tile's precomputed levels when the subtree is in one (the usual case: one
        /// lookup), else reduced from the partial tile's hashes.
        func hash(level: Int, index: UInt64) throws -> [UInt8] {
            let tileLevel = level / 8, k = level % 8
            let first = index << UInt64(k)
            let c = TileCoordinate(level: tileLevel, index: first / UInt64(TileEdge.width))
            let atLevel = tileLevel < 8 ? size >> UInt64(8 * tileLevel) : 0
            if c.index < atLevel / UInt64(TileEdge.width), let levels = try log.storedTileLevels(c) {
                return levels[k][Int(first % UInt64(TileEdge.width)) >> k]
            }
            // A complete subtree's hash never changes: one computed from a partial tile is kept.
            let key = TileCoordinate(level: level, index: index)
            if let h = log.subtrees.get(key) { return h }
            let h = try TiledHashes(self).hash(level: level, index: index)
            if level > 0 { log.subtrees.put(key, h) }
            return h
        }
    }

    /// The root hash of the first `size` events.
    public func rootHash(size: UInt64) throws -> [UInt8] {
        guard size <= self.size else { throw AuditError.outOfRange("size \(size) is past the log's \(self.size) events") }
        return try MerkleTree.root(of: size, Hashes(log: self, size: size))
    }

    /// The inclusion proof of event `index` in the tree of `size` events, and its leaf hash.
    public func inclusionProof(index: UInt64, size: UInt64) throws -> (leafHash: [UInt8], hashes: [[UInt8]]) {
        guard size <= self.size else { throw AuditError.outOfRange("size \(size) is past the log's \(self.size) events") }
        guard index < size else { throw AuditError.outOfRange("index \(index) is not below size \(size)") }
        guard let l = try leaf(index) else { throw AuditError.corrupt("index entry of event \(index) is missing") }
        return (l.hash, try MerkleTree.inclusionProof(index: index, size: size, Hashes(log: self, size: size)))
    }

    /// The consistency proof between the trees of `from` and `to` events.
    public func consistencyProof(from: UInt64, to: UInt64) throws -> [[UInt8]] {
        guard to <= size else { throw AuditError.outOfRange("to \(to) is past the log's \(size) events") }
        guard from <= to else { throw AuditError.outOfRange("from \(from) is after to \(to)") }
        guard from > 0 else { return [] }
        return try MerkleTree.consistencyProof(from: from, to: to, Hashes(log: self, size: to))
    }

    /// Whether the block `cid` (its `bytes`) is part of the log: an event, a tile, a tile node, a
    /// checkpoint or the head. `referenced`: whether something links it (its count is above its
    /// pins). Such blocks are refused removal: the log's pin holds them through links, and the
    /// events after the latest checkpoint only by the put grace period.
    public func holds(_ cid: CID, bytes: [UInt8], referenced: Bool) throws -> Bool {
        let pending = state.locked { s in s.head == cid || s.edge.children.contains { $0.contains(cid) } }
        if pending { return true }
        if try store.db.get(Self.memberKey(cid)) != nil { return true }
        guard referenced, cid.codec == .dagCBOR else { return false }
        if (try? AuditEvent(decoding: bytes)) != nil { return true }
        if let m = try? IPLDFields(try DAGCBOR().decode(bytes), field: "", allowed: ["note", "size", "prev"]), m.has("note") { return true }
        return false
    }

    /// Every checkpoint kept, oldest first (at most `limit`, from size `after` on).
    public func checkpoints(after: UInt64 = 0, limit: Int = .max) throws -> [Latest] {
        var out: [Latest] = []
        guard after < .max, limit > 0 else { return out }
        try store.db.makeIterator().forEach(prefix: Self.checkpointPrefix, from: Self.checkpointKey(after &+ 1)) { _, v in
            out.append(try Self.readCheckpoint(try CID(bytes: v), store: store))
            return out.count < limit
        }
        return out
    }

    /// A head for the log as it is now (for export): the latest checkpoint and every event so far.
    /// Not stored; nil before the first checkpoint.
    public func currentHead() throws -> Block? {
        let (edge, cp) = state.locked { ($0.edge, $0.checkpoint) }
        guard let cp else { return nil }
        return try Self.headBlock(origin: origin, key: key.publicKey, size: edge.tiles.size, checkpoint: cp.cid, edge: edge)
    }
}

/// The right edge of the log: the tiles' partial hashes, and beside each hash the CID of what it
/// covers (an event at level 0, a tile node above).
struct LogEdge: Sendable, Equatable {
    var tiles = TileEdge()
    var children: [[CID]] = [[]]
    /// When the last event was appended (ms; never decreases along the log).
    var lastTime: UInt64 = 0

    struct Filled {
        var coordinate: TileCoordinate
        var subtreeHash: [UInt8]
        var raw: Block
        var node: Block
    }

    /// Appends a leaf; returns the tiles it filled, each as its raw block and its tile node.
    mutating func append(leafHash: [UInt8], cid: CID) throws -> [Filled] {
        children[0].append(cid)
        let filled = tiles.append(leafHash: leafHash)
        var out: [Filled] = []
        for (c, hashes) in filled {
            let kids = children[c.level]
            children[c.level] = []
            let raw = try Block(data: Array(hashes.joined()), codec: .raw, hash: .sha2_256)
            let node = try Block(data: TileNode(level: c.level, index: c.index, tile: raw.cid, children: kids).encoded(), codec: .dagCBOR, hash: .sha2_256)
            if children.count == c.level + 1 { children.append([]) }
            children[c.level + 1].append(node.cid)
            out.append(Filled(coordinate: c, subtreeHash: TileEdge.reduce(hashes[...]), raw: raw, node: node))
        }
        return out
    }
}

/// A full tile's node: `{level, index, tile: Link(raw tile), children: [Link]}`.
struct TileNode: Equatable {
    var level: Int
    var index: UInt64
    var tile: CID
    var children: [CID]

    init(level: Int, index: UInt64, tile: CID, children: [CID]) {
        (self.level, self.index, self.tile, self.children) = (level, index, tile, children)
    }

    func encoded() throws -> [UInt8] {
        try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: [
            ("level", .int(UInt64(level))), ("index", .int(index)), ("tile", .link(tile)), ("children", .list(children.map { .link($0) })),
        ])))
    }

    init(decoding bytes: [UInt8]) throws {
        let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "tile node", allowed: ["level", "index", "tile", "children"])
        let l = try m.integer("level"), i = try m.integer("index")
        guard (0..<8).contains(l), i >= 0 else { throw AuditError.corrupt("tile node: level 0–7, index ≥ 0") }
        level = Int(l)
        index = UInt64(i)
        tile = try m.link("tile")
        guard case .list(let items)? = m.map["children"] else { throw AuditError.corrupt("tile node: children must be a list") }
        children = try items.map { guard case .link(let c) = $0 else { throw AuditError.corrupt("tile node: children must be links") }; return c }
        guard children.count == TileEdge.width else { throw AuditError.corrupt("tile node \(level)/\(index): \(children.count) children, not 256") }
    }
}

/// Values that never change once computed (full tiles, complete subtree hashes), the most recent
/// 512 kept.
final class Memo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let entries = Mutex<[Key: Value]>([:])
    func get(_ k: Key) -> Value? { entries.locked { $0[k] } }
    func put(_ k: Key, _ v: Value) {
        entries.locked { e in
            if e.count >= 512 { e.removeAll(keepingCapacity: true) }
            e[k] = v
        }
    }
}

/// Failures of the audit log.
public enum AuditError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    case corrupt(String)
    case outOfRange(String)
    case invalid(String)
    case notFound(String)
    case disabled
    public var description: String {
        switch self {
        case .notFound(let s): s
        case .corrupt(let s): "audit log: \(s)"
        case .outOfRange(let s): s
        case .invalid(let s): s
        case .disabled: "the audit log is off (audit.enabled is false)"
        }
    }
    public var kind: ErrorKind {
        switch self {
        case .corrupt: .internal
        case .outOfRange: .invalidInput
        case .invalid: .invalidInput
        case .notFound: .notFound
        case .disabled: .unavailable
        }
    }
}
