import Foundation
import IPLD
import Multiformats
import Storage

/// Pins over a counted block store: add, remove, update, list, verify, and the upkeep that
/// ends expired and superseded pins. A pin holds one reference on its root; the root's stored
/// links hold the rest of the DAG (`ReferenceCounts.swift`), so pin and unpin are O(1) count
/// changes plus, on pin, a walk that checks the DAG is complete.
public final class Pinner: Sendable {
    /// The counted store pins protect blocks in.
    public let store: CountedBlockStore
    /// The policies in force.
    public let policies: PolicySet
    /// How long a queued pin waits for its blocks before it fails (ms).
    public let queuedTimeout: UInt64

    /// Pins over `store` governed by `policies`.
    /// Resource types whose pins a layer above moves itself (Qindex's `index-records`): callers
    /// other than the admin may not make, remove, replace or update them.
    public let reservedTypes: Set<String>
    /// Reserved types whose direct pins hold their DAGs through links and whose DAGs count as
    /// pinned below them (`recursiveRoot`: `block rm`, `pin ls <cid>`) — small ones, like Qindex
    /// heads; not a layer that guards its own blocks (the audit log: a walk of it is every event).
    public let walkedHeadTypes: Set<String>

    public init(store: CountedBlockStore, policies: PolicySet, queuedTimeout: UInt64 = 86_400_000, reservedTypes: Set<String> = [],
                walkedHeadTypes: Set<String> = []) {
        self.store = store
        self.policies = policies
        self.queuedTimeout = queuedTimeout
        self.reservedTypes = reservedTypes
        self.walkedHeadTypes = walkedHeadTypes
    }

    /// Refuses a caller other than the admin (`owner`) a pin of a reserved resource type.
    func checkReserved(_ pin: Pin, owner: String?) throws {
        if owner != nil, reservedTypes.contains(pin.resourceType) {
            throw PinningError.invalid("\(pin.cid)'s pin (\(pin.resourceType)) is managed by the node; only the admin may change it")
        }
    }

    var db: LevelDB { store.db }

    /// What to pin and how.
    public struct Request: Sendable {
        /// The root.
        public var cid: CID
        /// Recursive or direct.
        public var type: PinType = .recursive
        /// Optional name.
        public var name: String?
        /// Resource type (nil: `default`).
        public var resourceType: String?
        /// When the pin should end (ms); TEMPORARY policies end it no later than created + ttl.
        public var expires: UInt64?
        /// How long after it is made the pin should end (ms), when `expires` is not given.
        public var expiresIn: UInt64?
        /// Replication target (nil: the policy's).
        public var replicationFactor: Int?
        /// Where the data may be found.
        public var origins: [String] = []
        /// Free-form metadata.
        public var meta: [String: String] = [:]
        /// Who asks (a sQuid id, or `token:ID`): the pin records it and its DAG's size.
        public var owner: String?
        /// The owner's storage left (bytes): a pin holding more is refused (`quotaExceeded`).
        public var quota: (available: UInt64, total: UInt64)?
        /// The DAG's bytes when the caller measured them (a pin moved inside another layer's
        /// commit, which does not walk the DAG).
        public var knownSize: UInt64?
        /// A request.
        public init(cid: CID, type: PinType = .recursive, name: String? = nil, resourceType: String? = nil) {
            self.cid = cid
            self.type = type
            self.name = name
            self.resourceType = resourceType
        }
    }

    // MARK: adding

    /// Kubo's `pin add`: makes `request` a pin unless an equal or stronger one exists on the same
    /// CID (a recursive pin replaces direct ones). The DAG must be complete (recursive) or the
    /// block present (direct). Returns the pin in force.
    /// `progress` is told how many blocks the walk has visited, every 1,000 and at its end.
    /// With `queueIfIncomplete`, a DAG whose blocks are not all present is not refused: the pin
    /// is recorded `queued`, holding its root, and completes when the blocks arrive (or fails
    /// after `queuedTimeout`), as a Pinning Service API pin does (`dag put --pin` of a node whose
    /// children come later).
    @discardableResult
    public func pin(_ request: Request, queueIfIncomplete: Bool = false, progress: (Int) throws -> Void = { _ in }) throws -> Pin {
        try insert(request, merge: true, allowQueued: queueIfIncomplete, progress: progress)
    }

    /// A new pin object (the Pinning Service API): always a new pin; when blocks are missing
    /// it is queued, holding its root, until they arrive or `queuedTimeout` passes.
    @discardableResult
    public func add(_ request: Request) throws -> Pin {
        try insert(request, merge: false, allowQueued: true)
    }

    /// Makes the pin; with `replacing`, removes that pin in the same batch (a crash leaves the
    /// old pin or the new one, never neither). The DAG walk runs outside the writer lock and is
    /// kept only if nothing was deleted meanwhile; after three such races it runs under the lock.
    private func insert(_ request: Request, merge: Bool, allowQueued: Bool, replacing: PinID? = nil,
                        progress: (Int) throws -> Void = { _ in }) throws -> Pin {
        let resourceType = request.resourceType ?? "default"
        let policy = try policies.policy(resourceType)
        if request.owner != nil, reservedTypes.contains(resourceType) {
            throw PinningError.invalid("resource type \(resourceType) is the node's own (pins a layer moves itself)")
        }
        // An owned pin is charged what it keeps alive: every block under its root that is here
        // (a direct pin keeps its children through their links; a queued one what has arrived).
        let ownedBytes = try request.owner.map { _ in try measure(request.cid) }
        if let n = request.name {
            guard n.utf8.count <= 255, !n.utf8.contains(0) else { throw PinningError.invalid("a pin name is at most 255 bytes and has no NUL") }
        }
        /// One try: `early` is a walk made outside the lock at deletion epoch `epoch` (nil: walk
        /// under the lock); nil when a deletion since then makes that walk stale.
        func attempt(early: DAGCheck?, epoch: UInt64) throws -> Pin? {
            try store.transaction { txn in
                if early != nil && store.deletionCount != epoch { return nil }
                var freed: UInt64 = 0
                if let id = replacing {
                    guard let old = try pin(id: id) else { throw PinningError.noSuchPin(id.description) }
                    try checkRetention(old, now: txn.now)
                    try stageRemove(old, txn, reason: "replaced")
                    if old.owner != nil, old.owner == request.owner { freed = old.size ?? 0 }
                }
                let dag = try early ?? check(request.cid, type: request.type)
                if let m = dag.missing, !allowQueued {
                    throw m == request.cid ? PinningError.notFound(m) : PinningError.incompleteDAG(missing: m, root: request.cid)
                }
                try recordLinks(dag, txn)
                // Merging, a queued pin of the same CID is the same promise: it is not made twice.
                let existing = try pins(of: request.cid.multihash).filter {
                    $0.cid.codec == request.cid.codec && ($0.status == .pinned || (merge && allowQueued && $0.status == .queued))
                }
                if merge {
                    if let r = existing.first(where: { $0.type == .recursive }) {
                        if request.type == .direct { throw PinningError.alreadyPinnedRecursively(request.cid) }
                        return r
                    }
                    if request.type == .direct, let d = existing.first(where: { $0.type == .direct }) { return d }
                }
                // A new pin (not one already there): it must fit in its owner's quota.
                let size = ownedBytes ?? 0
                if let owner = request.owner, let q = request.quota {
                    let room = q.available.addingReportingOverflow(freed)
                    if !room.overflow, size > room.partialValue {
                        throw PinningError.quotaExceeded(owner: owner, needed: size, available: room.partialValue, quota: q.total)
                    }
                }
                let now = txn.now
                var expires = request.expires ?? request.expiresIn.map { now + $0 }
                if policy.pinningStrategy == .temporary, let ttl = policy.ttl { expires = min(expires ?? .max, now + ttl) }
                let p = Pin(id: PinID(created: now), cid: request.cid, type: request.type, status: dag.missing == nil ? .pinned : .queued,
                            name: request.name, resourceType: resourceType, created: now, expires: expires,
                            replicationFactor: request.replicationFactor ?? policy.replicationFactor, origins: request.origins,
                            meta: request.meta, info: dag.missing.map { ["missing": $0.description] } ?? [:],
                            owner: request.owner, size: request.owner == nil ? nil : size)
                if merge {
                    // A recursive pin supersedes direct pins of the same CID (the same owner's).
                    for d in existing where d.type == .direct && request.type == .recursive && d.owner == request.owner { try stageRemove(d, txn, grace: 0, reason: "superseded") }
                }
                Self.audit(replacing == nil ? "q.pin.add.v1" : "q.pin.replace.v1", p, txn, replacing.map { [("replaces", .string($0.description))] } ?? [])
                PinIndex.stagePut(p, into: txn.batch)
                try txn.adjust(p.cid.multihash, by: 1)
                if let condition = policy.condition, let name = p.name {
                    try enforceKeepLatest(condition.keepLatest, name: name, resourceType: resourceType, adding: p, txn)
                }
                return p
            }
        }
        for _ in 0..<3 {
            let epoch = store.deletionCount
            if let p = try attempt(early: try check(request.cid, type: request.type, progress: progress), epoch: epoch) { return p }
        }
        // A busy collector cannot starve a pin: this walk runs under the lock, so it cannot go stale.
        guard let p = try attempt(early: nil, epoch: store.deletionCount) else { throw PinningError.invalid("pin: the repository changed during the pin; try again") }
        return p
    }

    /// The meta key naming the ID a restored pin had in its backup, when another pin held it here.
    public static let restoredFrom = "qstore.restoredFrom"

    /// What restoring a pin from a backup did.
    public enum Restoration: Sendable, Equatable {
        case restored(Pin)
        /// The same pin (root, type, name, policy) is there under the ID already.
        case present(Pin)
        /// Another pin holds the ID: it is kept, and the restored pin was made under a new ID.
        case conflict(existing: Pin, restoredAs: Pin)
    }

    /// Puts back a pin from a backup as it was — its ID, root, type, name, policy, creation and
    /// expiry, replication, origins, meta, owner — once its DAG is here (a pinned recursive pin
    /// needs it whole; a queued one stays queued). The pin already there under the ID is left
    /// when it is the same pin; another one keeps the ID and the restored pin gets a new one.
    public func restore(_ pin: Pin) throws -> Restoration {
        _ = try policies.policy(pin.resourceType)
        func attempt(_ early: DAGCheck?, _ epoch: UInt64) throws -> Restoration? {
            try store.transaction { txn in
                if early != nil && store.deletionCount != epoch { return nil }
                let dag = try early ?? check(pin.cid, type: pin.type)
                if let m = dag.missing, pin.status != .queued {
                    throw m == pin.cid ? PinningError.notFound(m) : PinningError.incompleteDAG(missing: m, root: pin.cid)
                }
                try recordLinks(dag, txn)
                var p = pin
                p.status = dag.missing == nil ? .pinned : .queued
                p.info = dag.missing.map { ["missing": $0.description] } ?? [:]
                let existing = try self.pin(id: pin.id)
                if let e = existing {
                    if e.cid == pin.cid, e.type == pin.type, e.name == pin.name, e.resourceType == pin.resourceType { return .present(e) }
                    // Restored before under a new ID (a rerun): that copy is the pin.
                    if let copy = try pins(of: pin.cid.multihash).first(where: { $0.meta[Self.restoredFrom] == pin.id.description }) { return .present(copy) }
                    p.id = PinID(created: pin.created)
                    p.meta[Self.restoredFrom] = pin.id.description
                }
                Self.audit("q.pin.restore.v1", p, txn, existing.map { [("conflictsWith", .string($0.id.description))] } ?? [])
                PinIndex.stagePut(p, into: txn.batch)
                try txn.adjust(p.cid.multihash, by: 1)
                return existing.map { .conflict(existing: $0, restoredAs: p) } ?? .restored(p)
            }
        }
        for _ in 0..<3 {
            let epoch = store.deletionCount
            if let r = try attempt(try check(pin.cid, type: pin.type), epoch) { return r }
        }
        guard let r = try attempt(nil, store.deletionCount) else { throw PinningError.invalid("restore: the repository changed during the pin; try again") }
        return r
    }

    /// What a walk of a DAG found: the first missing block (nil: complete), and blocks present
    /// only under another codec (they get links records in the pin's transaction, so their
    /// children are counted).
    struct DAGCheck {
        var missing: CID?
        var unrecorded: [CID] = []
    }

    /// Gives the blocks a walk found stored only under another codec their links records, in `txn`.
    private func recordLinks(_ dag: DAGCheck, _ txn: CountTransaction) throws {
        guard !dag.unrecorded.isEmpty else { return }
        try store.stage(try dag.unrecorded.map { c in try Block(cid: c, data: try store.get(c) ?? []) }, in: txn)
    }

    /// Walks the DAG under `root` (recursive) or just the root (direct), skipping `known` CIDs.
    func check(_ root: CID, type: PinType, known: (CID) -> Bool = { _ in false }, progress: (Int) throws -> Void = { _ in }) throws -> DAGCheck {
        var result = DAGCheck()
        var stack = [root]
        var seen = Set<CID>()
        defer { try? progress(seen.count) }
        while let c = stack.popLast() {
            guard seen.insert(c).inserted, !known(c) else { continue }
            if seen.count % 1000 == 0 { try progress(seen.count) }
            if let links = try store.links(of: c) {
                if type == .recursive { stack.append(contentsOf: links) }
                continue
            }
            guard let data = try store.get(c) else {
                result.missing = c
                return result
            }
            let links: [CID]
            do { links = try Codecs.links(in: data, codec: c.codec) } catch {
                throw PinningError.invalid("block \(c) is not valid \(c.codec.name): \(error)")
            }
            result.unrecorded.append(c)
            if type == .recursive { stack.append(contentsOf: links) }
        }
        return result
    }

    // MARK: reading

    /// The first block found missing under `root` (nil: the whole DAG is here).
    public func missingBlock(under root: CID) throws -> CID? { try check(root, type: .recursive).missing }

    /// The bytes of the DAG under `root` that are here (missing blocks count nothing): what a pin
    /// on it keeps alive, directly or through the links of what is stored.
    public func measure(_ root: CID) throws -> UInt64 {
        var total: UInt64 = 0
        var stack = [root]
        var seen = Set<CID>()
        while let c = stack.popLast() {
            guard seen.insert(c).inserted else { continue }
            if let links = try store.links(of: c) {
                total += UInt64(try store.size(c) ?? 0)
                stack.append(contentsOf: links)
            } else if let data = try store.get(c) {
                total += UInt64(data.count)
                stack.append(contentsOf: (try? Codecs.links(in: data, codec: c.codec)) ?? [])
            }
        }
        return total
    }

    /// The bytes the pins of `owner` hold (each pin's DAG as measured when it was made): one
    /// scan of the owner's entries in the owner index.
    public func usage(of owner: String) throws -> UInt64 {
        var total: UInt64 = 0
        try db.makeIterator().forEach(prefix: PinIndex.ownerPrefix(owner)) { _, v in
            if v.count == 8 { total += v.reduce(0) { $0 << 8 | UInt64($1) } }
            return true
        }
        return total
    }

    /// Every pin on the multihash (any codec, any status): one seek in the index.
    public func pins(of mh: Multihash) throws -> [Pin] {
        var ids: [PinID] = []
        try db.makeIterator().forEach(prefix: PinIndex.multihashPrefix(mh)) { k, _ in
            if k.count == PinIndex.multihashPrefix(mh).count + 16, let id = PinIndex.trailingID(k) { ids.append(id) }
            return true
        }
        return try ids.compactMap { try pin(id: $0) }
    }

    /// The pin with this ID.
    public func pin(id: PinID) throws -> Pin? {
        try db.get(PinIndex.recordKey(id)).map { try Pin(id: id, decoding: $0) }
    }

    /// Visits pins in creation order, or newest first (those created before `before` ms only),
    /// until `body` returns false.
    public func forEachPin(newestFirst: Bool = false, before: UInt64? = nil, _ body: (Pin) throws -> Bool) throws {
        let it = db.makeIterator(snapshot: db.snapshot(), fillCache: false)
        let prefix = PinIndex.key(PinIndex.records)
        if newestFirst {
            it.seek(before.map { PinIndex.key(PinIndex.records, PinIndex.bigEndian($0)) } ?? PinIndex.key(PinIndex.records + 1))
            if it.isValid { it.previous() } else { it.seekToLast() }
            while it.isValid {
                let k = it.key
                guard k.starts(with: prefix) else { break }
                if let id = PinIndex.trailingID(k), try !body(try Pin(id: id, decoding: it.value)) { return }
                it.previous()
            }
            try it.checkError()
        } else {
            try it.forEach(prefix: prefix) { k, v in
                guard let id = PinIndex.trailingID(k) else { return true }
                return try body(try Pin(id: id, decoding: v))
            }
        }
    }

    /// Visits every pin as (CID, type, status, name) from the multihash index alone, in multihash
    /// order (`pin ls`: no record is decoded), until `body` returns false.
    public func forEachListing(_ body: (CID, PinType, PinStatus, String) throws -> Bool) throws {
        try db.makeIterator(snapshot: db.snapshot(), fillCache: false).forEach(prefix: PinIndex.key(PinIndex.byMultihash)) { k, v in
            let l = try PinIndex.parseListing(k, v)
            return try body(l.cid, l.type, l.status, l.name)
        }
    }

    /// Moves a pointer's pin, in the caller's transaction: a direct pin on `cid` — a block the
    /// caller staged in `txn` or knows present, so no walk — made from `request`'s name, resource
    /// type and metadata, replacing the pin `replacing` (its reference and index entries go in the
    /// same batch). For layers whose roots link everything they keep (a Qindex head record links
    /// its history and target): the root's stored links hold the rest, as for every pin.
    /// Retention and `keepLatest` do not apply: the pin moves, it is not made or ended.
    public func stageMovingPin(_ request: Request, replacing: PinID?, in txn: CountTransaction) throws -> Pin {
        let resourceType = request.resourceType ?? "default"
        let policy = try policies.policy(resourceType)
        // The old root is linked by the new one (or by nothing the layer keeps): no grace.
        if let id = replacing, let old = try pin(id: id) { try stageRemove(old, txn, grace: 0, reason: nil) }
        let p = Pin(id: PinID(created: txn.now), cid: request.cid, type: .direct, status: .pinned, name: request.name,
                    resourceType: resourceType, created: txn.now, expires: nil,
                    replicationFactor: request.replicationFactor ?? policy.replicationFactor, origins: request.origins, meta: request.meta,
                    owner: request.owner, size: request.owner == nil ? nil : request.knownSize ?? 0)
        PinIndex.stagePut(p, into: txn.batch)
        try txn.adjust(p.cid.multihash, by: 1)
        return p
    }

    // MARK: removing

    /// Removes `pin` in `txn`: its index entries, its reference, and a grace period on its root.
    /// `reason` names why in the audit event (nil: none, for pins a layer moves itself).
    func stageRemove(_ pin: Pin, _ txn: CountTransaction, grace: UInt64? = nil, reason: String? = "unpin") throws {
        if let reason { Self.audit("q.pin.rm.v1", pin, txn, [("reason", .string(reason))]) }
        PinIndex.stageDelete(pin, from: txn.batch)
        if pin.holdsReference { try txn.adjust(pin.cid.multihash, by: -1) }
        let g = try grace ?? policies.policy(pin.resourceType).gracePeriod
        try txn.protect(pin.cid.multihash, until: txn.now + g)
    }

    /// The audit event of a change to `pin`.
    static func audit(_ type: String, _ pin: Pin, _ txn: CountTransaction, _ extra: [(String, IPLDNode)] = []) {
        var d: [(String, IPLDNode)] = [("pin", .string(pin.type.rawValue)), ("status", .string(pin.status.rawValue)),
                                       ("resourceType", .string(pin.resourceType))]
        if let n = pin.name { d.append(("name", .string(n))) }
        if let o = pin.owner { d.append(("owner", .string(o))) }
        if let e = pin.expires { d.append(("expires", .int(e))) }
        txn.audit(type, ref: pin.id.description, cid: pin.cid, details: d + extra)
    }

    private func checkRetention(_ pin: Pin, now: UInt64) throws {
        guard let policy = policies.policies[pin.resourceType], policy.retention > 0 else { return }
        let until = pin.created + policy.retention
        if now < until { throw PinningError.retained(pin.cid, until: until, resourceType: pin.resourceType) }
    }

    /// Kubo's `pin rm`: removes the pins on this CID (recursive ones only when `recursive`;
    /// a recursively pinned CID with `recursive: false` is an error). Returns what was removed.
    @discardableResult
    /// `owner` (a caller other than the admin): only its own pins are removed.
    public func unpin(_ cid: CID, recursive: Bool = true, owner: String? = nil) throws -> [Pin] {
        try store.transaction { txn in
            let all = try pins(of: cid.multihash).filter { $0.cid.codec == cid.codec }
            guard !all.isEmpty else { throw PinningError.notPinned(cid) }
            let on = owner.map { o in all.filter { $0.owner == o } } ?? all
            guard !on.isEmpty else { throw PinningError.notOwner(cid) }
            for p in on { try checkReserved(p, owner: owner) }
            if !recursive && on.contains(where: { $0.type == .recursive }) { throw PinningError.pinnedRecursively(cid) }
            for p in on { try checkRetention(p, now: txn.now) }
            for p in on { try stageRemove(p, txn) }
            return on
        }
    }

    /// Removes the pin with this ID (Pinning Service API `DELETE`).
    @discardableResult
    public func remove(id: PinID, owner: String? = nil) throws -> Pin {
        try store.transaction { txn in
            guard let p = try pin(id: id), owner == nil || p.owner == owner else { throw PinningError.noSuchPin(id.description) }
            try checkReserved(p, owner: owner)
            try checkRetention(p, now: txn.now)
            try stageRemove(p, txn)
            return p
        }
    }

    /// Replaces the pin with this ID by a new pin for `request` (Pinning Service API replace):
    /// the new pin is made, then the old one removed, in one batch.
    /// A caller other than the admin (`request.owner`) replaces only its own pins.
    public func replace(id: PinID, with request: Request) throws -> Pin {
        guard let old = try pin(id: id), request.owner == nil || old.owner == request.owner else { throw PinningError.noSuchPin(id.description) }
        try checkReserved(old, owner: request.owner)
        return try insert(request, merge: false, allowQueued: true, replacing: id)
    }

    /// Kubo's `pin update`: pins `to` like the recursive pin on `from` (name, resource type,
    /// metadata) and, with `unpin`, removes `from`'s pins, in one batch. The completeness walk
    /// skips every subtree `to` shares with `from` (pinned, so complete): it walks only what differs.
    ///
    /// `owner` (a caller other than the admin) updates only its own pins; the new pin is its own,
    /// with its DAG measured, and must fit in `quota` (what the owner has left, plus what the pins
    /// it unpins held).
    public func update(from: CID, to: CID, unpin: Bool = true, owner: String? = nil, quota: (available: UInt64, total: UInt64)? = nil) throws -> Pin {
        let all = try pins(of: from.multihash).filter { $0.cid.codec == from.codec && $0.type == .recursive && $0.status == .pinned }
        guard !all.isEmpty else { throw PinningError.invalid("'from' cid was not recursively pinned already") }
        let old = owner.map { o in all.filter { $0.owner == o } } ?? all
        guard let template = old.first else { throw PinningError.notOwner(from) }
        for p in old { try checkReserved(p, owner: owner) }
        // The new pin's owner (the caller's, else the template's) is charged what it keeps.
        let size = (owner ?? template.owner) == nil ? nil : try measure(to)
        let shared = try sharedSubtrees(from, to)
        let epoch = store.deletionCount
        let dag = try check(to, type: .recursive, known: { shared.contains($0) })
        return try store.transaction { txn in
            let d = store.deletionCount == epoch ? dag : try check(to, type: .recursive, known: { shared.contains($0) })
            if let m = d.missing { throw m == to ? PinningError.notFound(m) : PinningError.incompleteDAG(missing: m, root: to) }
            try recordLinks(d, txn)
            if unpin { for p in old { try checkRetention(p, now: txn.now); try stageRemove(p, txn, reason: "updated") } }
            let existing = try pins(of: to.multihash).first { $0.cid.codec == to.codec && $0.type == .recursive && $0.status == .pinned }
            if let existing { return existing }
            if let owner, let q = quota, let size {
                let freed = unpin ? old.reduce(UInt64(0)) { $0 &+ ($1.size ?? 0) } : 0
                let room = q.available.addingReportingOverflow(freed)
                if !room.overflow, size > room.partialValue {
                    throw PinningError.quotaExceeded(owner: owner, needed: size, available: room.partialValue, quota: q.total)
                }
            }
            var p = template
            p.id = PinID(created: txn.now)
            p.cid = to
            p.created = txn.now
            if let owner { p.owner = owner }
            p.size = p.owner == nil ? nil : size
            Self.audit("q.pin.update.v1", p, txn, [("from", .string(from.description))])
            PinIndex.stagePut(p, into: txn.batch)
            try txn.adjust(to.multihash, by: 1)
            return p
        }
    }

    /// CIDs under `to` that are also in `from`'s DAG, found by walking the two DAGs side by side
    /// and descending only where they differ (links paired by name for dag-pb, else by position).
    func sharedSubtrees(_ from: CID, _ to: CID) throws -> Set<CID> {
        var shared = Set<CID>()
        var pairs = [(from, to)]
        var seen = Set<[CID]>()
        while let (a, b) = pairs.popLast() {
            if a == b || (a.codec == b.codec && a.multihash == b.multihash) { shared.insert(b); continue }
            guard seen.insert([a, b]).inserted, let la = try namedLinks(a), let lb = try namedLinks(b) else { continue }
            let aSet = Set(la.map(\.1))
            var byName: [String: CID] = [:]
            for (n, c) in la where !n.isEmpty { byName[n] = c }
            for (i, (name, c)) in lb.enumerated() {
                if aSet.contains(c) { shared.insert(c); continue }
                if !name.isEmpty, let other = byName[name] { pairs.append((other, c)) } else if name.isEmpty, i < la.count { pairs.append((la[i].1, c)) }
            }
        }
        return shared
    }

    private func namedLinks(_ cid: CID) throws -> [(String, CID)]? {
        guard let data = try store.get(cid) else { return nil }
        if cid.codec == .dagPB, let node = try? DAGPB.decodeNode(data) {
            return node.links.map { ($0.name ?? "", $0.hash) }
        }
        return try store.links(of: cid)?.map { ("", $0) }
    }

    // MARK: upkeep

    /// CONDITIONAL `keepLatest`: pins of the resource type named `name` beyond the newest `n`
    /// (counting the one being added) end, in the adding transaction.
    private func enforceKeepLatest(_ n: Int, name: String, resourceType: String, adding: Pin, _ txn: CountTransaction) throws {
        var same: [Pin] = []
        try db.makeIterator().forEach(prefix: PinIndex.namePrefix(name)) { k, _ in
            if let id = PinIndex.trailingID(k), let p = try pin(id: id), p.resourceType == resourceType, p.status != .failed, p.owner == adding.owner {
                same.append(p)
            }
            return true
        }
        // Index order is creation order; the pin being added is the newest.
        for old in same.dropLast(max(0, n - 1)) { try stageRemove(old, txn, reason: "keepLatest") }
    }

    /// What one round of upkeep did.
    public struct Upkeep: Sendable, Equatable {
        /// Pins ended because they expired.
        public var expired = 0
        /// Queued pins whose blocks all arrived.
        public var completed = 0
        /// Queued pins that waited too long.
        public var failed = 0
    }

    /// When the next pin expires (ms), if any pin has an expiry: one seek in the expiry index.
    public func nextExpiry() throws -> UInt64? {
        var next: UInt64?
        try db.makeIterator().forEach(prefix: PinIndex.key(PinIndex.byExpiry)) { k, _ in
            guard k.count == 2 + 8 + 16 else { return true }
            next = k[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return false
        }
        return next
    }

    /// Ends expired pins, completes queued pins whose DAG is now present, fails those that
    /// waited longer than `queuedTimeout`. Each change is its own transaction.
    @discardableResult
    ///
    /// A queued pin with an owner is measured when it completes; if its DAG does not fit in
    /// `quota(owner)` (bytes; 0: none) beside the owner's other pins, it fails instead.
    public func maintain(now: UInt64? = nil, quota: (String) -> UInt64 = { _ in 0 }) throws -> Upkeep {
        let now = now ?? store.clock.now
        var result = Upkeep()
        var due: [PinID] = []
        try db.makeIterator().forEach(prefix: PinIndex.key(PinIndex.byExpiry)) { k, _ in
            guard k.count == 2 + 8 + 16 else { return true }
            var t: UInt64 = 0
            for b in k[2..<10] { t = t << 8 | UInt64(b) }
            guard t <= now else { return false }
            if let id = PinIndex.trailingID(k) { due.append(id) }
            return true
        }
        for id in due {
            try store.transaction { txn in
                guard let p = try pin(id: id) else { return }
                try stageRemove(p, txn, reason: "expired")
                result.expired += 1
            }
        }
        var queued: [PinID] = []
        try db.makeIterator().forEach(prefix: PinIndex.key(PinIndex.queued)) { k, _ in
            if let id = PinIndex.trailingID(k) { queued.append(id) }
            return true
        }
        for id in queued {
            guard let p = try pin(id: id), p.status == .queued else { continue }
            let epoch = store.deletionCount
            let early = try check(p.cid, type: p.type)
            let ownedBytes = p.owner == nil ? 0 : try measure(p.cid)
            let limit = p.owner.map(quota) ?? 0
            let used = limit > 0 ? try usage(of: p.owner!) : 0
            try store.transaction { txn in
                guard var q = try pin(id: id), q.status == .queued else { return }
                // Walked again (under the lock) only if something was deleted since the first walk.
                let dag = store.deletionCount == epoch ? early : try check(q.cid, type: q.type)
                if dag.missing == nil, limit > 0, used - min(used, q.size ?? 0) + ownedBytes > limit {
                    PinIndex.stageDelete(q, from: txn.batch)
                    try txn.adjust(q.cid.multihash, by: -1)
                    q.status = .failed
                    q.size = q.owner == nil ? nil : 0
                    q.info = ["reason": "its DAG (\(ownedBytes) bytes) does not fit in \(q.owner!)'s storage quota of \(limit) bytes"]
                    PinIndex.stagePut(q, into: txn.batch)
                    Self.audit("q.pin.fail.v1", q, txn, [("reason", .string(q.info["reason"] ?? ""))])
                    result.failed += 1
                } else if dag.missing == nil {
                    if q.owner != nil { q.size = ownedBytes }
                    try recordLinks(dag, txn)
                    PinIndex.stageDelete(q, from: txn.batch)
                    q.status = .pinned
                    q.info = [:]
                    PinIndex.stagePut(q, into: txn.batch)
                    Self.audit("q.pin.complete.v1", q, txn)
                    result.completed += 1
                } else if now >= q.created + queuedTimeout {
                    PinIndex.stageDelete(q, from: txn.batch)
                    try txn.adjust(q.cid.multihash, by: -1)
                    q.status = .failed
                    if q.owner != nil { q.size = 0 }
                    q.info = ["reason": "blocks did not arrive within \(formatDuration(queuedTimeout))", "missing": dag.missing!.description]
                    PinIndex.stagePut(q, into: txn.batch)
                    Self.audit("q.pin.fail.v1", q, txn, [("reason", .string(q.info["reason"] ?? ""))])
                    result.failed += 1
                } else {
                    // Still waiting: note what for.
                    if q.info["missing"] != dag.missing!.description {
                        q.info["missing"] = dag.missing!.description
                        txn.batch.put(PinIndex.recordKey(q.id), q.encode())
                    }
                }
            }
        }
        return result
    }

    // MARK: pin ls, pin verify

    /// Every CID below a recursive pin (not counting the roots themselves), each once, with a
    /// recursive root it is under (Kubo's indirect pins). Walks every recursive DAG.
    /// `layerHeads`: also below the direct pins of `walkedHeadTypes`, whose links hold their DAGs.
    /// Only the DAGs of pins `including` takes are walked.
    public func indirect(layerHeads: Bool = false, including: (Pin) -> Bool = { _ in true }, _ body: (CID, CID) throws -> Bool) throws {
        var seen = Set<CID>()
        var roots: [CID] = []
        try forEachPin { p in
            if p.status == .pinned, p.type == .recursive || (layerHeads && walkedHeadTypes.contains(p.resourceType)), including(p) {
                roots.append(p.cid)
            }
            return true
        }
        for r in roots {
            var stack = (try store.links(of: r)) ?? []
            while let c = stack.popLast() {
                guard seen.insert(c).inserted else { continue }
                guard try body(c, r) else { return }
                stack.append(contentsOf: (try store.links(of: c)) ?? [])
            }
        }
    }

    /// The recursive pin (or layer head) whose DAG holds `cid`, if any (walks their DAGs until found).
    public func recursiveRoot(containing cid: CID, including: (Pin) -> Bool = { _ in true }) throws -> CID? {
        var found: CID?
        try indirect(layerHeads: true, including: including) { c, root in
            if c.multihash == cid.multihash { found = root; return false }
            return true
        }
        return found
    }

    /// One pin's check (Kubo's `pin verify`).
    public struct Verification: Sendable {
        /// The pin's root.
        public var cid: CID
        /// Whether every block is present and matches its hash.
        public var ok: Bool
        /// Blocks missing or corrupt, with why.
        public var badNodes: [(cid: CID, error: String)]
    }

    /// Checks every pin, as Kubo's `pin verify`: a recursive pin's whole DAG, a direct pin's own
    /// block only (it promises nothing of the blocks it links to) — present, and hashing to its CID.
    public func verify(including: (Pin) -> Bool = { _ in true }, _ body: (Verification) throws -> Void) throws {
        var recursive: [CID: Bool] = [:]
        try forEachPin { p in
            if p.status == .pinned, including(p) { recursive[p.cid, default: false] = recursive[p.cid, default: false] || p.type == .recursive }
            return true
        }
        // Each block's own problem (nil: fine), and whether its links have been followed.
        var checked: [CID: (problem: String?, followed: Bool)] = [:]
        for r in recursive.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            let walk = recursive[r]!
            var bad: [(CID, String)] = []
            var stack = [r]
            var seen = Set<CID>()
            while let c = stack.popLast() {
                guard seen.insert(c).inserted else { continue }
                if let known = checked[c], known.followed || !walk {
                    if let e = known.problem { bad.append((c, e)) }
                    continue
                }
                var problem: String?
                do {
                    if let data = try store.get(c) {
                        if try !c.multihash.verify(data) { problem = "block does not match its hash" }
                        if walk { stack.append(contentsOf: try store.links(of: c) ?? Codecs.links(in: data, codec: c.codec)) }
                    } else {
                        problem = "merkledag: not found"
                    }
                } catch { problem = "\(error)" }
                checked[c] = (problem, walk)
                if let problem { bad.append((c, problem)) }
            }
            try body(Verification(cid: r, ok: bad.isEmpty, badNodes: bad))
        }
    }
}
