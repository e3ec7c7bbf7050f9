import Foundation
import IPLD
import Multiformats
import Pinning
import Signing
import Storage

/// A pointer's current state, as the head table keeps it.
public struct Head: Sendable, Equatable {
    public var type: String
    public var key: String
    /// The head record.
    public var record: CID
    public var version: Int64
    /// The target; nil when the pointer was deleted (the head is a tombstone).
    public var target: CID?
    /// When the head last moved here (ms).
    public var updatedAt: UInt64
    public var tags: [String]
    /// The pin that holds the head record.
    public var pin: PinID?
    /// The head record's createdAt (ms): a record made on top of it is never dated earlier.
    public var recordCreatedAt: UInt64 = 0

    public var isDeleted: Bool { target == nil }
}

/// Who may sign records as whom, beyond the node's own key and keys the pointer's name is made
/// of (a layer with registered identity keys answers more).
public protocol KeyAuthority: Sendable {
    /// Whether `publicKey` was a key of `author` at `ms`.
    func isKey(_ publicKey: [UInt8], of author: IdentityRef, at ms: UInt64) -> Bool
}

/// Knows no registered keys.
public struct NoRegisteredKeys: KeyAuthority {
    public init() {}
    public func isKey(_ publicKey: [UInt8], of author: IdentityRef, at ms: UInt64) -> Bool { false }
}

/// Qindex: signed mutable pointers `(type, key)` → CID with verifiable history.
///
/// Every update is an `IndexRecord` block; the head table (key space `Q`) moves in the same
/// LevelDB batch that stores the record, changes the reference counts and moves the pointer's
/// pin (a direct pin on the head record, resource type `index-records`; the record's links keep
/// its history and target). Updates from concurrent callers share one commit (`GroupCommit`);
/// compare-and-swap is checked inside it, so no update is lost and no version reused.
///
/// Key space `Q` (`ptr` = `type ‖ 00 ‖ key`; neither contains NUL):
/// - `Q 01 ‖ ptr` → the head (dag-cbor `{r, v, t, c, g, p}`: record, version, updatedAt, target, tags, pin);
/// - `Q 02 ‖ target CID ‖ ptr` → `""`: current targets (reverse lookup);
/// - `Q 03 ‖ tag ‖ 00 ‖ ptr` → `""`: current tags;
/// - `Q 04 ‖ u64(updatedAt) ‖ ptr` → `""`: live pointers by the time they last moved;
/// - `Q 05 ‖ ptr ‖ 00 ‖ u64(version)` → record CID ‖ u64(createdAt) ‖ u64(version of its prev, 0:
///   none): the main chain (the `prev` line from the head), walkable without reading records;
/// - `Q 06 ‖ ptr ‖ 00 ‖ u64(createdAt) ‖ u64(version)` → record CID: the main chain by time;
/// - `Q 07 ‖ IPNS name multihash` → the IPNS record held for that name (`IPNSNames`);
/// - `Q 08 ‖ type ‖ 00 ‖ u64(updatedAt) ‖ ptr` → `""`: live pointers of one type by the time they
///   last moved (a type's `sort=updatedAt` page without scanning the others).
/// Deleted pointers keep their `01` entry (their history goes on) and lose `02`–`04` and `08`.
public final class Qindex: Sendable {
    /// The counted store records go into.
    public let store: CountedBlockStore
    let pins: Pinner
    /// The key that signs the node's records.
    public let nodeKey: SigningKey
    /// The author of records no caller identity asked for.
    public let nodeAuthor: IdentityRef
    let authority: any KeyAuthority
    let commits: GroupCommit<HeadChanges>
    /// Where each head move is published (`q.qindex.record.created|deleted|merged.v1`).
    public let events: EventLog?
    /// The resource type (pinning policy) of head pins.
    public static let resourceType = "index-records"
    /// How many of a pointer's newest main-chain records its history keeps (the `index-records`
    /// policy's `keepLatest`; nil: all of them).
    public let keepLatest: Int?

    public init(store: CountedBlockStore, pins: Pinner, nodeKey: SigningKey, nodeAuthor: IdentityRef,
                authority: any KeyAuthority = NoRegisteredKeys(), events: EventLog? = nil) {
        self.store = store
        self.events = events
        self.pins = pins
        self.nodeKey = nodeKey
        self.nodeAuthor = nodeAuthor
        self.authority = authority
        keepLatest = (try? pins.policies.policy(Self.resourceType))?.condition?.keepLatest
        commits = GroupCommit(store: store, label: "qstore.qindex")
    }

    var db: LevelDB { store.db }

    // MARK: updating

    /// An update of one pointer.
    public struct Update: Sendable {
        public var type: String
        public var key: String
        /// The new target; nil deletes the pointer (a tombstone).
        public var target: CID?
        public var tags: [String] = []
        /// Compare-and-swap: the version the head must have (0: the pointer must not exist).
        public var expectedVersion: Int64?
        /// Compare-and-swap: the record the head must be.
        public var expectedHead: CID?
        /// Who asks (nil: the node).
        public var author: IdentityRef?
        /// Point at a target that is not here; its pin is queued until it arrives.
        public var allowMissing = false
        /// A record the client signed (its fields must match the update's place in the chain).
        public var signed: IndexRecord?
        /// Who the head's pin is counted for (quotas), with the target DAG's bytes; nil: no one.
        public var owner: (name: String, bytes: UInt64)?

        public init(type: String, key: String, target: CID?, tags: [String] = []) {
            self.type = type
            self.key = key
            self.target = target
            self.tags = tags
        }
    }

    /// Applies `update` (see `Update`) and returns the new head once durable.
    public func put(_ update: Update) async throws -> Head {
        let u = try prepared(update)
        let draft = try self.draft(u)
        let head = try await commits.run { txn, changes in try self.stage(u, draft, txn, &changes) }
        events?.published()
        try queueMissingTarget(u, head)
        return head
    }

    /// `put` for threads that may block.
    public func putBlocking(_ update: Update) throws -> Head {
        let u = try prepared(update)
        let draft = try self.draft(u)
        let head = try commits.run { txn, changes in try self.stage(u, draft, txn, &changes) }
        events?.published()
        try queueMissingTarget(u, head)
        return head
    }

    /// Checks what needs no state (names, tags, a client record's signature) before the commit.
    private func prepared(_ u: Update) throws -> Update {
        try IndexNames.check(type: u.type, key: u.key)
        try IndexNames.check(tags: u.tags)
        try u.author?.check(field: "author")
        if let r = u.signed {
            guard r.type == u.type, r.key == u.key else { throw QindexError.invalid("the signed record is for \(r.type)/\(r.key), not \(u.type)/\(u.key)") }
            guard !r.isMerge else { throw QindexError.invalid("a merge record is made by merging (POST /q/v1/index/import), not put") }
            try r.verifySignature()
            try checkSigner(r)
        }
        return u
    }

    /// Refuses a client record signed by a key that is neither the node's, nor one registered for
    /// its author, nor the one the pointer's key is made of with that key's peer ID as the author.
    ///
    /// `allowingSelfCertifiedNodes` (imports): a record whose author is the peer ID of the very
    /// key that signed it — a node's own record, as every node signs them — is accepted too, so
    /// histories merge between nodes; who may move which pointer is the grants' business.
    func checkSigner(_ r: IndexRecord, allowingSelfCertifiedNodes: Bool = false) throws {
        guard let pub = r.sig?.pub else { throw SigningError.invalid("the record is not signed") }
        // The node signs for the callers it authenticated, naming them.
        if pub == nodeKey.publicKey { return }
        if authority.isKey(pub, of: r.author, at: r.createdAtMilliseconds) { return }
        // Any other key vouches only for itself: the record's author is that key's peer ID, so it
        // cannot claim to be someone registered (or the node).
        let ownPeer = r.author.squidId == NodeIdentity.peerID(ofPublicKey: pub)
        if allowingSelfCertifiedNodes && ownPeer { return }
        if Libp2pKey.publicKey(ofName: r.key) == pub {
            guard ownPeer && r.author.subId == nil else {
                throw SigningError.invalid("a record signed with the key the pointer's name is made of names that key's peer ID as its author, not \(r.author.squidId)")
            }
            return
        }
        throw SigningError.invalid("sig.pub is not a key of \(r.author.squidId) (register it, or sign with the key the pointer's name is made of)")
    }

    /// A record made and signed before the commit, on the caller's thread, on top of the head
    /// stored then. Commits are serial: signing inside one would make every update wait for
    /// every other's signature. The commit uses the draft when the head is still `basis`, and
    /// makes the record again when another update moved it first.
    struct Draft: Sendable {
        var basis: CID?
        var record: IndexRecord
        var block: Block
    }

    /// The record `update` would make on top of the head stored now (signed by the node, or the
    /// client's own `signed` record), not committed: a cluster agrees on it first (Docs/cluster.md).
    public func draftRecord(_ update: Update) throws -> IndexRecord {
        let u = try prepared(update)
        if let signed = u.signed { return signed }
        return try draft(u)!.record
    }

    private func draft(_ u: Update) throws -> Draft? {
        guard u.signed == nil else { return nil }
        let current = try readHead(Keys.pointer(u.type, u.key))
        guard (current?.version ?? 0) < IndexRecord.maximumVersion else { throw QindexError.invalid("\(u.type)/\(u.key) is at its last version") }
        let now = max(store.clock.now, current?.recordCreatedAt ?? 0)
        var record = IndexRecord(type: u.type, key: u.key, cid: u.target, version: (current?.version ?? 0) + 1, prev: current?.record,
                                 tags: u.target == nil ? [] : u.tags, createdAt: Timestamps.format(now), author: u.author ?? nodeAuthor)
        record.sign(with: nodeKey, ts: Int64(store.clock.now))
        return Draft(basis: current?.record, record: record, block: record.block)
    }

    /// The update inside a commit: everything that can refuse it runs before anything is staged.
    private func stage(_ u: Update, _ draft: Draft?, _ txn: CountTransaction, _ changes: inout HeadChanges) throws -> Head {
        let ptr = Keys.pointer(u.type, u.key)
        let current = try changes.head(ptr, in: self)
        if let e = u.expectedVersion, e != (current?.version ?? 0) {
            throw QindexError.versionConflict(expected: "version \(e)", current: current)
        }
        if let e = u.expectedHead, e != current?.record {
            throw QindexError.versionConflict(expected: "head \(e)", current: current)
        }
        if u.target == nil, current?.isDeleted ?? true { throw QindexError.notFound("no pointer \(u.type)/\(u.key)") }
        var record: IndexRecord
        var made: Block?
        if let draft, draft.basis == current?.record {
            record = draft.record
            made = draft.block
        } else if let signed = u.signed {
            guard signed.version == (current?.version ?? 0) + 1, signed.prev == current?.record else {
                throw QindexError.versionConflict(expected: "version \(signed.version - 1) (the signed record's prev)", current: current)
            }
            guard signed.cid == u.target else { throw QindexError.invalid("the signed record's cid is not the update's") }
            // Its time: not before the record below (`?at=` reads history by time), not from the future.
            if let prev = signed.prev, try signed.createdAtMilliseconds < changes.record(prev, in: self).createdAtMilliseconds {
                throw QindexError.invalid("the signed record's createdAt is before its prev's")
            }
            guard signed.createdAtMilliseconds <= txn.now + 300_000 else { throw QindexError.invalid("the signed record's createdAt is more than 5 minutes ahead") }
            record = signed
        } else {
            guard (current?.version ?? 0) < IndexRecord.maximumVersion else { throw QindexError.invalid("\(u.type)/\(u.key) is at its last version") }
            // Never dated before the record below (a merged head may come from a node whose clock is ahead).
            record = IndexRecord(type: u.type, key: u.key, cid: u.target, version: (current?.version ?? 0) + 1, prev: current?.record,
                                 tags: u.target == nil ? [] : u.tags, createdAt: Timestamps.format(max(txn.now, current?.recordCreatedAt ?? 0)),
                                 author: u.author ?? nodeAuthor)
            record.sign(with: nodeKey, ts: Int64(txn.now))
        }
        if let t = record.cid, !u.allowMissing, t.multihash.code != .identity, try !store.has(t) { throw QindexError.targetMissing(t) }
        let block = made ?? record.block
        try store.stage([block], in: txn)
        changes.records[block.cid] = record
        return try move(ptr, from: current, to: block.cid, record, txn, &changes, owner: u.owner)
    }

    /// A target that was allowed to be missing gets a queued pin that completes when it arrives.
    private func queueMissingTarget(_ u: Update, _ head: Head) throws {
        guard u.allowMissing, let t = head.target, try !store.has(t) else { return }
        var r = Pinner.Request(cid: t, name: "qindex:\(head.type)/\(head.key)", resourceType: Self.resourceType)
        r.meta = ["qindex.record": head.record.string]
        // The caller's: measured (and checked against its quota) when it completes.
        r.owner = u.owner?.name
        try pins.pin(r, queueIfIncomplete: true)
    }

    /// Moves the head of `ptr` from `current` to `recordCID` (already staged or stored): the pin,
    /// the head entry and every index, in `txn`.
    func move(_ ptr: [UInt8], from current: Head?, to recordCID: CID, _ record: IndexRecord, _ txn: CountTransaction,
              _ changes: inout HeadChanges, owner: (name: String, bytes: UInt64)? = nil) throws -> Head {
        var request = Pinner.Request(cid: recordCID, name: "qindex:\(record.type)/\(record.key)", resourceType: Self.resourceType)
        request.meta = ["qindex.version": String(record.version)]
        request.owner = owner?.name
        request.knownSize = owner?.bytes
        let pin = try pins.stageMovingPin(request, replacing: current?.pin, in: txn)
        let head = Head(type: record.type, key: record.key, record: recordCID, version: record.version, target: record.cid,
                        updatedAt: txn.now, tags: record.tags, pin: pin.id, recordCreatedAt: record.createdAtMilliseconds)
        let b = txn.batch
        if let old = current, !old.isDeleted {
            b.delete(Keys.target(old.target!, ptr))
            for t in old.tags { b.delete(Keys.tag(t, ptr)) }
            b.delete(Keys.time(old.updatedAt, ptr))
            b.delete(Keys.typeTime(ptr, old.updatedAt))
        }
        b.put(Keys.head(ptr), head.encoded)
        if let t = head.target {
            b.put(Keys.target(t, ptr), [])
            for t in head.tags { b.put(Keys.tag(t, ptr), []) }
            b.put(Keys.time(head.updatedAt, ptr), [])
            b.put(Keys.typeTime(ptr, head.updatedAt), [])
        }
        try indexMainChain(ptr, from: recordCID, record, txn.batch, &changes)
        try pruneHistory(ptr, head: record, txn, &changes)
        changes.heads[ptr] = .some(head)
        let topic = record.isMerge ? "q.qindex.record.merged.v1" : record.isTombstone ? "q.qindex.record.deleted.v1" : "q.qindex.record.created.v1"
        txn.audit(topic, ref: "\(head.type)/\(head.key)", cid: recordCID, details: [
            ("version", .int(head.version)), ("target", head.target.map { .string($0.string) } ?? .null),
            ("author", .string(record.author.squidId)),
        ])
        if let events {
            events.stage(topic, IPLDMap(uniqueKeysWithValues: [
                ("type", .string(head.type)), ("key", .string(head.key)), ("version", .int(head.version)),
                ("cid", head.target.map { .string($0.string) } ?? .null), ("record", .string(recordCID.string)),
            ]), at: txn.now, into: b)
        }
        return head
    }

    /// The version entry at `key` as this commit sees it (nil: none, or removed in this batch).
    func versionEntry(_ key: [UInt8], _ changes: HeadChanges) throws -> VersionEntry? {
        try VersionEntry(try changes.versions[key] ?? db.get(key))
    }

    /// Writes the version and time entries of the main chain from `cid` down, until an entry that
    /// already names the same record (an update writes one; a fast-forward or merge the records
    /// the winning line brought).
    ///
    /// A version entry that named a record of another line (the branch a merge or fast-forward
    /// replaced) is overwritten and that record's time entry removed; entries between a merge
    /// record and the head it follows (its version counts the heads it joined) are removed. So the
    /// version and time indexes hold exactly the main chain.
    private func indexMainChain(_ ptr: [UInt8], from cid: CID, _ record: IndexRecord, _ b: WriteBatch, _ changes: inout HeadChanges) throws {
        var cid = cid
        var r = record
        while true {
            let vk = Keys.version(ptr, r.version)
            let known = try versionEntry(vk, changes)
            if known?.record == cid { return }
            if let known { b.delete(Keys.created(ptr, known.createdAt, r.version)) }
            // A record's prev is the version below it, except below a merge record (whose version
            // counts the heads it joined): there it is read.
            var prevVersion: Int64 = 0
            var prevRecord: IndexRecord?
            if let p = r.prev {
                if r.isMerge {
                    prevRecord = try changes.record(p, in: self)
                    prevVersion = prevRecord!.version
                } else {
                    prevVersion = r.version - 1
                }
            }
            let entry = VersionEntry(record: cid, createdAt: r.createdAtMilliseconds, prevVersion: prevVersion).bytes
            b.put(vk, entry)
            changes.versions[vk] = entry
            b.put(Keys.created(ptr, r.createdAtMilliseconds, r.version), cid.bytes)
            guard let p = r.prev else { return }
            // When the chain already names the record below, the rest is indexed too.
            if try versionEntry(Keys.version(ptr, prevVersion), changes)?.record == p { return }
            if prevVersion + 1 < r.version {
                for v in (prevVersion + 1)..<r.version {
                    let gk = Keys.version(ptr, v)
                    if let stale = try versionEntry(gk, changes) {
                        b.delete(Keys.created(ptr, stale.createdAt, v))
                        b.delete(gk)
                        changes.versions[gk] = []
                    }
                }
            }
            cid = p
            // A history whose older records were let go (merged as new here) is indexed down to them.
            do { r = try prevRecord ?? changes.record(p, in: self) } catch QindexError.notFound { return }
        }
    }

    /// Lets history past `keepLatest` go: the oldest kept record's `prev` link is detached (it stays
    /// in the record's bytes but no longer holds the record below, which with everything only it
    /// holds — older records, their targets, merged branches — becomes garbage, collected after
    /// its grace period), and the version and time entries below it are removed, in the batch of
    /// the update. A history never loses a record above its newest `keepLatest`. Reads only index
    /// entries (point reads; no record is decoded, no range scanned over earlier deletions).
    private func pruneHistory(_ ptr: [UInt8], head: IndexRecord, _ txn: CountTransaction, _ changes: inout HeadChanges) throws {
        guard let k = keepLatest, head.version > Int64(k) else { return }
        let horizon = head.version - Int64(k) + 1
        // The oldest kept record: the main chain's at the horizon, or just above it (below a
        // merge record the chain skips versions).
        var kept: VersionEntry?
        var v = horizon
        while kept == nil, v <= head.version {
            kept = try versionEntry(Keys.version(ptr, v), changes)
            v += 1
        }
        guard let kept, kept.prevVersion > 0, let below = try versionEntry(Keys.version(ptr, kept.prevVersion), changes) else { return }
        let entries = try store.base.linkEntries(of: kept.record)
            ?? changes.records[kept.record].map { try Codecs.links(in: $0.encoded, codec: .dagCBOR).map { LinkEntry($0) } }
        if let entries { try store.stageDetach(parent: kept.record, child: below.record, entries: entries, in: txn) }
        // The index entries of the versions let go, down the chain until one already let go
        // (normally one; every older one the first time).
        var next: (version: Int64, entry: VersionEntry)? = (kept.prevVersion, below)
        while let (version, entry) = next {
            let vk = Keys.version(ptr, version)
            txn.batch.delete(vk)
            txn.batch.delete(Keys.created(ptr, entry.createdAt, version))
            changes.versions[vk] = []
            next = try entry.prevVersion > 0 ? versionEntry(Keys.version(ptr, entry.prevVersion), changes).map { (entry.prevVersion, $0) } : nil
        }
    }

    // MARK: reading

    /// The pointer's head, deleted or not; nil when it never existed.
    public func head(type: String, key: String) throws -> Head? {
        try IndexNames.check(type: type, key: key)
        return try readHead(Keys.pointer(type, key))
    }

    /// Every head, deleted ones too (their history goes on), in key order (backups).
    public func forEachHead(_ body: (Head) throws -> Bool) throws {
        let prefix = Keys.headPrefix
        try db.makeIterator(snapshot: db.snapshot(), fillCache: false).forEach(prefix: prefix) { k, v in
            try body(try Head(ptr: Array(k.dropFirst(prefix.count)), decoding: v))
        }
    }

    func readHead(_ ptr: [UInt8]) throws -> Head? {
        try db.get(Keys.head(ptr)).map { try Head(ptr: ptr, decoding: $0) }
    }

    /// The live head; `QINDEX_NOT_FOUND` when the pointer does not exist or was deleted.
    public func current(type: String, key: String) throws -> Head {
        guard let h = try head(type: type, key: key) else { throw QindexError.notFound("no pointer \(type)/\(key)") }
        guard !h.isDeleted else { throw QindexError.notFound("pointer \(type)/\(key) was deleted (version \(h.version))") }
        return h
    }

    /// The record stored as `cid`.
    public func record(_ cid: CID) throws -> IndexRecord {
        guard let data = try store.get(cid) else { throw QindexError.notFound("record \(cid) is not in the repository") }
        return try IndexRecord(decoding: data)
    }

    /// The main chain's record of `version`.
    public func record(type: String, key: String, version: Int64) throws -> (cid: CID, record: IndexRecord) {
        try IndexNames.check(type: type, key: key)
        guard version >= 1, let entry = try VersionEntry(try db.get(Keys.version(Keys.pointer(type, key), version))) else {
            throw QindexError.notFound("no version \(version) of \(type)/\(key)")
        }
        return (entry.record, try record(entry.record))
    }

    /// The main chain's record that was the newest at `ms` (by its createdAt).
    public func record(type: String, key: String, at ms: UInt64) throws -> (cid: CID, record: IndexRecord) {
        try IndexNames.check(type: type, key: key)
        let ptr = Keys.pointer(type, key)
        let prefix = Keys.createdPrefix(ptr)
        let it = db.makeIterator()
        it.seek(Keys.created(ptr, ms == .max ? ms : ms + 1, 0))
        if it.isValid { it.previous() } else { it.seekToLast() }
        guard it.isValid, it.key.starts(with: prefix) else { throw QindexError.notFound("\(type)/\(key) had no version at \(Timestamps.format(ms))") }
        let cid = try CID(bytes: it.value)
        return (cid, try record(cid))
    }

    /// One page of the main chain, newest first: up to `limit` records with versions below
    /// `before` (nil: from the head), and the cursor of the next page (nil: no more).
    public func history(type: String, key: String, limit: Int, before: Int64? = nil) throws -> (records: [(cid: CID, record: IndexRecord)], next: Int64?) {
        guard (1...1000).contains(limit) else { throw QindexError.invalid("limit: 1–1000") }
        guard try head(type: type, key: key) != nil else { throw QindexError.notFound("no pointer \(type)/\(key)") }
        let ptr = Keys.pointer(type, key)
        let prefix = Keys.versionPrefix(ptr)
        let it = db.makeIterator()
        if let before { it.seek(Keys.version(ptr, before)) } else { it.seek(prefix + [0xff]) }
        if it.isValid { it.previous() } else { it.seekToLast() }
        var out: [(CID, IndexRecord)] = []
        while it.isValid, it.key.starts(with: prefix), out.count < limit {
            guard let entry = try VersionEntry(it.value) else { throw QindexError.invalid("empty version entry") }
            out.append((entry.record, try record(entry.record)))
            it.previous()
        }
        let more = it.isValid && it.key.starts(with: prefix)
        return (out, more ? out.last.map { $0.1.version } : nil)
    }

    /// What `list` finds.
    public struct Query: Sendable {
        public var type: String?
        public var prefix: String?
        public var tag: String?
        /// Pointers whose current target is this CID.
        public var target: CID?
        public var sort: Sort = .key
        public var limit = 100
        /// The cursor a previous page returned.
        public var cursor: [UInt8]?
        public enum Sort: String, Sendable, CaseIterable { case key, updatedAt }
        public init() {}
    }

    /// One page of live pointers matching `query`, and the cursor of the next (nil: no more).
    /// Keys sort by bytes; `updatedAt` newest first.
    public func list(_ query: Query) throws -> (heads: [Head], next: [UInt8]?) {
        if let t = query.type, !IndexNames.isValidType(t) { throw QindexError.invalid("type \"\(t)\": 1–64 of a-z 0-9 . _ -") }
        if let tag = query.tag { try IndexNames.check(tags: [tag]) }
        guard (1...1000).contains(query.limit) else { throw QindexError.invalid("limit: 1–1000") }
        let typePart = query.type.map { Array($0.utf8) + [0] }
        let keyPart = Array((query.prefix ?? "").utf8)
        // The index to scan, the prefix of its keys, and how to find the pointer in a key.
        var scan: [UInt8]
        var ptrOffset: Int
        var reverse = false
        if let t = query.target {
            scan = Keys.targetPrefix(t)
            ptrOffset = scan.count
            if let typePart { scan += typePart + (query.type != nil ? keyPart : []) }
        } else if let tag = query.tag {
            scan = Keys.tagPrefix(tag)
            ptrOffset = scan.count
            if let typePart { scan += typePart + keyPart }
        } else if query.sort == .updatedAt, let type = query.type {
            // One type's own time index: a page costs the same however many other types there are.
            scan = Keys.typeTimePrefix(type)
            ptrOffset = scan.count + 8
            reverse = true
        } else if query.sort == .updatedAt {
            scan = Keys.timePrefix
            ptrOffset = scan.count + 8
            reverse = true
        } else {
            scan = Keys.headPrefix
            ptrOffset = scan.count
            if let typePart { scan += typePart + keyPart }
        }
        func matches(_ ptr: ArraySlice<UInt8>) -> Bool {
            guard let zero = ptr.firstIndex(of: 0) else { return false }
            if let typePart, !ptr.starts(with: typePart) { return false }
            return ptr[(zero + 1)...].starts(with: keyPart)
        }
        let it = db.makeIterator()
        if reverse {
            if let c = query.cursor { it.seek(c) } else { it.seek(scan + [0xff]) }
            if it.isValid { it.previous() } else { it.seekToLast() }
        } else {
            if let c = query.cursor { it.seek(c); if it.isValid, it.key == c { it.next() } } else { it.seek(scan) }
        }
        var out: [Head] = []
        var last: [UInt8]?
        while it.isValid, out.count < query.limit {
            let k = it.key
            guard k.starts(with: scan) else { break }
            let ptr = k[ptrOffset...]
            if matches(ptr), let h = try readHead(Array(ptr)), !h.isDeleted,
               query.sort == .key || query.target != nil || query.tag != nil || h.updatedAt == Keys.timeOf(k, at: ptrOffset - 8) {
                out.append(h)
            }
            last = k
            if reverse { it.previous() } else { it.next() }
        }
        let more = it.isValid && it.key.starts(with: scan)
        if query.sort == .updatedAt && (query.target != nil || query.tag != nil) {
            out.sort { $0.updatedAt > $1.updatedAt }
        }
        return (out, more ? last : nil)
    }

    /// Every live pointer whose current target is `cid`.
    public func pointers(to cid: CID) throws -> [Head] {
        var q = Query()
        q.target = cid
        q.limit = 1000
        return try list(q).heads
    }
}

/// The heads and version entries the operations of one commit have moved, so each operation
/// sees the ones before it.
struct HeadChanges: CommitBatch {
    var heads: [[UInt8]: Head?] = [:]
    var versions: [[UInt8]: [UInt8]] = [:]
    /// Records staged in this commit (not yet readable from the store).
    var records: [CID: IndexRecord] = [:]
    init() {}

    func record(_ cid: CID, in index: Qindex) throws -> IndexRecord {
        if let r = records[cid] { return r }
        return try index.record(cid)
    }
    func finish(_ txn: CountTransaction, store: CountedBlockStore) throws {}

    func head(_ ptr: [UInt8], in index: Qindex) throws -> Head? {
        if let h = heads[ptr] { return h }
        return try index.readHead(ptr)
    }
}

/// The `Q` key space's keys.
enum Keys {
    static let heads: UInt8 = 1, targets: UInt8 = 2, tags: UInt8 = 3, times: UInt8 = 4, versions: UInt8 = 5, created: UInt8 = 6, typeTimes: UInt8 = 8

    static func pointer(_ type: String, _ key: String) -> [UInt8] { Array(type.utf8) + [0] + Array(key.utf8) }
    static func be(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func be64(_ bytes: some Collection<UInt8>) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }
    static func space(_ sub: UInt8) -> [UInt8] { KeySpace.qindexHeads.key([sub]) }

    static var headPrefix: [UInt8] { space(heads) }
    static func head(_ ptr: [UInt8]) -> [UInt8] { space(heads) + ptr }
    static func targetPrefix(_ cid: CID) -> [UInt8] { space(targets) + cid.bytes }
    static func target(_ cid: CID, _ ptr: [UInt8]) -> [UInt8] { targetPrefix(cid) + ptr }
    static func tagPrefix(_ tag: String) -> [UInt8] { space(tags) + Array(tag.utf8) + [0] }
    static func tag(_ tag: String, _ ptr: [UInt8]) -> [UInt8] { tagPrefix(tag) + ptr }
    static var timePrefix: [UInt8] { space(times) }
    static func time(_ t: UInt64, _ ptr: [UInt8]) -> [UInt8] { space(times) + be(t) + ptr }
    static func timeOf(_ key: [UInt8], at offset: Int = 2) -> UInt64 { be64(key.dropFirst(offset).prefix(8)) }
    static func typeTimePrefix(_ type: String) -> [UInt8] { space(typeTimes) + Array(type.utf8) + [0] }
    /// `Q 08 ‖ type ‖ 00 ‖ u64(updatedAt) ‖ ptr`: live pointers of one type by the time they moved.
    static func typeTime(_ ptr: [UInt8], _ t: UInt64) -> [UInt8] {
        let type = ptr.prefix { $0 != 0 }
        return space(typeTimes) + type + [0] + be(t) + ptr
    }
    static func versionPrefix(_ ptr: [UInt8]) -> [UInt8] { space(versions) + ptr + [0] }
    static func version(_ ptr: [UInt8], _ v: Int64) -> [UInt8] { versionPrefix(ptr) + be(UInt64(v)) }
    static func createdPrefix(_ ptr: [UInt8]) -> [UInt8] { space(created) + ptr + [0] }
    static func created(_ ptr: [UInt8], _ ms: UInt64, _ v: Int64) -> [UInt8] { createdPrefix(ptr) + be(ms) + be(UInt64(v)) }
}

/// A main-chain entry (`Q 05`): the record, when it was made, and the version of the record below
/// it (0: none), so the chain can be walked and unindexed from the index alone.
struct VersionEntry: Equatable {
    var record: CID
    var createdAt: UInt64
    var prevVersion: Int64

    var bytes: [UInt8] { record.bytes + Keys.be(createdAt) + Keys.be(UInt64(prevVersion)) }

    /// Nil for no entry (or one removed earlier in the batch: empty).
    init?(_ bytes: [UInt8]?) throws {
        guard let bytes, !bytes.isEmpty else { return nil }
        guard bytes.count > 16 else { throw QindexError.invalid("malformed version entry") }
        record = try CID(bytes: Array(bytes.dropLast(16)))
        createdAt = Keys.be64(bytes.suffix(16).prefix(8))
        prevVersion = Int64(bitPattern: Keys.be64(bytes.suffix(8)))
    }

    init(record: CID, createdAt: UInt64, prevVersion: Int64) { (self.record, self.createdAt, self.prevVersion) = (record, createdAt, prevVersion) }
}

extension Head {
    var encoded: [UInt8] {
        var f: [(String, IPLDNode)] = [("r", .link(record)), ("v", .int(version)), ("t", .int(updatedAt)),
                                       ("c", target.map(IPLDNode.link) ?? .null), ("g", .list(tags.map(IPLDNode.string)))]
        if let pin { f.append(("p", .bytes(pin.bytes))) }
        f.append(("a", .int(recordCreatedAt)))
        return try! DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: f)))
    }

    init(ptr: [UInt8], decoding bytes: [UInt8]) throws {
        let zero = ptr.firstIndex(of: 0)!
        type = String(decoding: ptr[..<zero], as: UTF8.self)
        key = String(decoding: ptr[(zero + 1)...], as: UTF8.self)
        let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "head", allowed: ["r", "v", "t", "c", "g", "p", "a"])
        record = try m.link("r")
        version = try m.integer("v")
        updatedAt = UInt64(try m.integer("t"))
        target = try m.optionalLink("c")
        tags = try m.strings("g")
        pin = m.has("p") ? PinID(bytes: try m.bytes("p")) : nil
        recordCreatedAt = m.has("a") ? UInt64(try m.integer("a")) : 0
    }
}
