import Access
import Audit
import CAR
import Foundation
import IPLD
import Logging
import Multiformats
import Pinning
import Qindex
import Signing
import Storage

/// One node: a repository and the services over it. The HTTP layer and the
/// daemon call this; it owns no transport.
///
/// Every method is synchronous and may block on disk (LevelDB, pack files,
/// fsync): callers in async code run them off the cooperative pool.
public final class Node: Sendable {
    /// The build's version, as `version` reports it.
    public static let version = "0.1.0"

    /// The repository.
    package let repository: Repository
    /// When the node started.
    public let startedAt: Date
    /// The node's log.
    public let logger: Logger
    /// Group commit for concurrent writes (block puts, Qindex updates).
    package let commits: GroupCommit<BlockPuts>
    /// The block store, counting references (every write of the node goes through it).
    package let blocks: CountedBlockStore
    /// Pins and the policies in force.
    package let pins: Pinner
    /// The garbage collector.
    package let collector: GarbageCollector
    /// Qindex pointers.
    package let index: Qindex
    /// The event stream every layer publishes to (`/q/v1/events`).
    package let events: EventLog
    /// The IPNS records held (own and imported).
    package let names: IPNSNames
    /// The named keys (`self` is the node identity).
    package let keystore: Keystore
    /// Identities, grants, tokens, rate limits and idempotency records: every request's decision.
    public let access: AccessControl
    /// The Qerberos audit log (every change and refusal, signed checkpoints).
    package let audit: AuditLog
    /// Whether changes are logged (`audit.enabled`).
    public let auditEnabled: Bool
    /// The registry's summaries and fetch counters (Registry.swift).
    let registry = RegistryState()
    /// Serializes making the keys the node holds for drive owners (Drive.swift).
    let driveKeyLock = NSLock()
    /// Held while a variant made on first request goes into its asset: two made at once both stay.
    let mediaAssetLock = NSLock()
    /// The cluster the daemon joined (Cluster.swift).
    let clusterSlot = ClusterSlot()
    /// How often the daemon collects garbage in the background (ms; 0: never).
    public let gcInterval: UInt64
    /// The dead share at which a collection compacts a pack file.
    public let packCompactionThreshold: Double

    /// A node over an open repository: loads the pinning policies (refusing invalid ones, named
    /// by file and field) and, on a repository made before reference counting, computes the counts.
    /// `clock` gives every time the node stores and compares (puts, pins, leases, expiries).
    public init(repository: Repository, logger: Logger = Logger(label: "qstore.node"), clock: any WallClock = SystemClock()) throws {
        self.repository = repository
        self.startedAt = Date()
        self.logger = logger
        let pinning = try repository.configuration.section(PinningConfiguration.self)
        let gc = try repository.configuration.section(GCConfiguration.self).validated()
        let policies = try pinning.policySet()
        blocks = CountedBlockStore(base: repository.blocks, putGracePeriod: policies.defaultPolicy.gracePeriod, clock: clock)
        pins = Pinner(store: blocks, policies: policies, queuedTimeout: try pinning.queuedTimeoutMilliseconds(),
                      reservedTypes: [Qindex.resourceType, AuditLog.resourceType], walkedHeadTypes: [Qindex.resourceType])
        collector = GarbageCollector(store: blocks, batchSize: gc.batchSize)
        gcInterval = gc.interval
        packCompactionThreshold = gc.packCompactionThreshold
        commits = GroupCommit(store: blocks, label: "qstore.block-writes")
        events = EventLog(db: repository.blocks.db)
        let auditing = try repository.configuration.section(AuditConfiguration.self)
        audit = try AuditLog(store: blocks, pins: pins, events: events, key: SigningKey(repository.identity),
                             origin: Self.auditOrigin(repository.identity.peerID), nodeActor: IdentityRef(squidId: repository.identity.peerID),
                             checkpointEvery: auditing.checkpointEvery, interval: try auditing.checkedInterval(),
                             recording: auditing.enabled, clock: clock)
        auditEnabled = auditing.enabled
        // Set even when off: entries are then dropped, but checkpoints still cover what is there.
        blocks.setAuditSink(audit)
        access = try AccessControl(db: repository.blocks.db, store: blocks, clock: clock,
                                   configuration: try repository.configuration.section(AccessConfiguration.self),
                                   adminToken: try repository.apiToken())
        index = Qindex(store: blocks, pins: pins, nodeKey: SigningKey(repository.identity),
                       nodeAuthor: IdentityRef(squidId: repository.identity.peerID), authority: RegisteredKeys(access: access), events: events)
        names = IPNSNames(index: index)
        keystore = Keystore(directory: repository.path + "/keystore", nodeKey: SigningKey(repository.identity))
        try initializeCounts()
        // Events a crash left without a checkpoint are covered now (whether or not logging is on:
        // until then only the put grace period keeps them from garbage collection).
        if audit.checkpointDue { try audit.checkpointNow() }
    }

    // MARK: blocks

    /// Stores `data` as a block of `codec` hashed with `hash` (truncated to `hashLength`), pinned
    /// recursively with `pin`; returns it once durable. Puts from concurrent callers are committed
    /// together (one LevelDB batch and fsync: `GroupCommit`), so callers on the storage threads
    /// wait for one commit.
    public func putBlock(_ data: [UInt8], codec: Multicodec, hash: Multicodec, hashLength: Int?, pin: Bool = false) throws -> Block {
        let block = try Block(data: data, codec: codec, hash: hash, hashLength: hashLength)
        try withLease {
            let event = try auditPut(block, "q.block.put.v1")
            try commits.run { txn, batch in
                batch.blocks.append(block)
                txn.audit(event)
            }
            if pin { try pins.pin(Pinner.Request(cid: block.cid)) }
        }
        return block
    }

    /// The event of a block stored by a caller, prepared on the caller's thread (the commit only
    /// places it in the log).
    func auditPut(_ block: Block, _ type: String) throws -> AuditItem? {
        try blocks.prepareAudit(AuditEntry(type, ref: block.cid.description, cid: block.cid,
                                           details: [("codec", .string(block.cid.codec.name)), ("size", .int(block.data.count))]))
    }

    /// `putBlock` for async callers (the RPC), without the pin: the block is hashed on the
    /// caller's task and joins the group commit without holding a thread while it waits — the
    /// blocking form would hold a storage thread per put for the commit (measured: block/put 11%
    /// slower). A put then pinned runs both inside `withLease`, then `pin`.
    public func putBlock(_ data: [UInt8], codec: Multicodec, hash: Multicodec, hashLength: Int?) async throws -> Block {
        try await putBlocks([data], codec: codec, hash: hash, hashLength: hashLength)[0]
    }

    /// `putBlock` of several blocks as one operation of the group commit: all of them are
    /// checked and hashed first, then stored together (each with its audit event), durable when
    /// this returns — or none is stored.
    public func putBlocks(_ datas: [[UInt8]], codec: Multicodec, hash: Multicodec, hashLength: Int?) async throws -> [Block] {
        let blocks = try datas.map { try Block(data: $0, codec: codec, hash: hash, hashLength: hashLength) }
        let events = try blocks.map { try auditPut($0, "q.block.put.v1") }
        try await commits.run { txn, batch in
            batch.blocks += blocks
            for e in events { txn.audit(e) }
        }
        return blocks
    }

    /// Stores `data` as the block `cid` names, refusing data that does not hash to it
    /// (`PUT /ipfs/{cid}`).
    public func putBlock(_ data: [UInt8], as cid: CID) async throws -> Block {
        let block = try Block(cid: cid, data: data)
        let event = try auditPut(block, "q.block.put.v1")
        try await commits.run { txn, batch in
            batch.blocks.append(block)
            txn.audit(event)
        }
        return block
    }

    /// Stores blocks as one batch, unverified beyond what `Block` checked (`debug write-load`).
    public func putBlocks(_ blocks: [Block]) throws { try self.blocks.putMany(blocks) }

    /// A block's bytes; `NodeError.notFound` when absent.
    public func block(_ cid: CID) throws -> [UInt8] {
        guard let data = try blocks.get(cid) else { throw NodeError.notFound(cid) }
        return data
    }

    /// A block's bytes if they are in memory (small blocks the gateway read recently): never
    /// touches the disk, so a handler can try it before going to the storage threads.
    public func hotBlock(_ cid: CID) -> [UInt8]? { blocks.base.hotBlock(cid) }

    /// What LevelDB says it holds in memory: its memtables and block cache (bytes; nil if it does not say).
    public var storeMemoryBytes: Int? { repository.db.property("leveldb.approximate-memory-usage").flatMap { Int($0) } }

    /// The in-memory small blocks: entries, bytes, and lookups answered and not.
    public var hotBlockStats: (entries: Int, bytes: Int, hits: Int, misses: Int) { blocks.base.hot.stats }

    /// `block`, keeping a small block in memory for `hotBlock`.
    public func blockKeepingHot(_ cid: CID) throws -> [UInt8] {
        guard let data = try blocks.base.getKeepingHot(cid) else { throw NodeError.notFound(cid) }
        return data
    }

    /// A block's size; `NodeError.notFound` when absent.
    public func blockSize(_ cid: CID) throws -> Int {
        guard let n = try blocks.size(cid) else { throw NodeError.notFound(cid) }
        return n
    }

    /// Removes a block; `NodeError.notFound` when absent, `PinningError.pinned` when a pin protects
    /// it (directly, or as part of a recursive pin's DAG, as Kubo refuses).
    public func removeBlock(_ cid: CID) throws {
        if cid == audit.head { throw PinningError.pinned(cid, how: "by the audit log") }
        let on = try pins.pins(of: cid.multihash).filter { $0.status == .pinned }
        if let p = on.first { throw PinningError.pinned(cid, how: p.type.rawValue) }
        let count = try blocks.countRecord(cid.multihash)?.count ?? 0
        if count > UInt64(on.count), let root = try pins.recursiveRoot(containing: cid) {
            throw PinningError.pinned(cid, how: "indirect through \(root)")
        }
        if let bytes = try blocks.get(cid), try audit.holds(cid, bytes: bytes, referenced: count > UInt64(on.count)) {
            throw PinningError.pinned(cid, how: "by the audit log")
        }
        let removed = try cid.multihash.code != .identity && blocks.transaction { txn in
            guard let size = try blocks.stageDelete(cid.multihash, in: txn) else { return false }
            txn.audit("q.block.rm.v1", ref: cid.description, cid: cid, details: [("size", .int(size))])
            return true
        }
        guard removed else { throw NodeError.notFound(cid) }
    }

    // MARK: DAGs

    /// `putDAG` for async callers, without the pin (see the async `putBlock`); `pinPut` pins it.
    public func putDAG(_ data: [UInt8], input: Multicodec, store: Multicodec, hash: Multicodec) async throws -> CID {
        let block = try encodeDAG(data, input: input, store: store, hash: hash)
        let event = try auditPut(block, "q.dag.put.v1")
        try await commits.run { txn, batch in
            batch.blocks.append(block)
            txn.audit(event)
        }
        return block.cid
    }

    /// Decodes `data` with `input` (dag-json leniently), encodes it canonically with `store`, stores
    /// it, and pins it recursively with `pin` (its DAG must then be complete).
    public func putDAG(_ data: [UInt8], input: Multicodec, store: Multicodec, hash: Multicodec, pin: Bool = false) throws -> CID {
        let block = try encodeDAG(data, input: input, store: store, hash: hash)
        try withLease {
            let event = try auditPut(block, "q.dag.put.v1")
            try commits.run { txn, batch in
                batch.blocks.append(block)
                txn.audit(event)
            }
            if pin { try pinPut(block.cid) }
        }
        return block.cid
    }

    /// Pins what `dag put --pin=true` stored: recursively when its DAG is complete; when its
    /// children are not all here yet (a client putting them later), as a queued pin that completes
    /// when they arrive, instead of refusing the put (Kubo's default is not to pin at all).
    @discardableResult
    public func pinPut(_ cid: CID, owner: String? = nil) throws -> Pin {
        var r = Pinner.Request(cid: cid)
        r.owner = owner
        return try pins.pin(try withQuota(r), queueIfIncomplete: true)
    }

    /// The block `putDAG` would store: `data` decoded with `input`, encoded canonically with `store`.
    func encodeDAG(_ data: [UInt8], input: Multicodec, store: Multicodec, hash: Multicodec) throws -> Block {
        let decoder: any IPLDCodec = input == .dagJSON ? DAGJSON(strict: false) : try Codecs.codec(for: input)
        let node: IPLDNode
        do { node = try decoder.decode(data) } catch { throw NodeError.badInput("cannot decode \(input.name): \(error)") }
        let bytes: [UInt8]
        do { bytes = try Codecs.codec(for: store).encode(node) } catch { throw NodeError.badInput("cannot encode \(store.name): \(error)") }
        return try Block(data: bytes, codec: store, hash: hash)
    }

    /// The value at `root`/`path`, encoded with `output`.
    public func getDAG(_ root: CID, path: [String], output: Multicodec) throws -> [UInt8] {
        let node: IPLDNode
        do { node = try DAGPath.resolve(root, path, in: blocks) } catch DAGTransferError.missingBlock(let c) { throw NodeError.notFound(c) }
        do { return try Codecs.codec(for: output).encode(node) } catch { throw NodeError.badInput("cannot encode as \(output.name): \(error)") }
    }

    /// Writes the DAG under `root` as a CARv1 to `sink`; `progress` is told the blocks and bytes written.
    public func exportDAG<S: ByteSink>(_ root: CID, to sink: S, progress: (Int, UInt64) -> Void = { _, _ in }) throws -> S {
        var w = try CARWriter(roots: [root], sink: sink)
        do { try DAGTransfer.export(root: root, from: blocks, to: &w, progress: progress) } catch DAGTransferError.missingBlock(let c) { throw NodeError.notFound(c) }
        return try w.finish()
    }

    /// Imports a CAR from `source`. Callers that pin the roots afterwards run both inside
    /// `withLease`, so nothing imported is collected in between.
    public func importCAR<Source: ByteSource>(_ source: Source, fileSize: UInt64? = nil,
                                              progress: (_ blocks: Int, _ bytes: UInt64) -> Void = { _, _ in }) throws -> ImportSummary {
        var reader: CARReader<Source>
        do { reader = try CARReader(source, fileSize: fileSize) } catch let e as CARError { throw NodeError.badInput("\(e)") }
        let summary: ImportSummary
        var stored = (blocks: 0, bytes: UInt64(0))
        do {
            summary = try DAGTransfer.import(from: &reader, into: blocks) { n, b in
                stored = (n, b)
                progress(n, b)
            }
        } catch {
            // What was stored before the failure stays (unpinned: garbage after the grace period);
            // the log says so.
            try? auditAlone(AuditEntry("q.dag.import.v1", ref: reader.roots.map(\.description).joined(separator: ","), verdict: .warn, cid: reader.roots.first,
                                       details: [("roots", .list(reader.roots.map { .string($0.description) })), ("blocks", .int(stored.blocks)),
                                                 ("bytes", .int(stored.bytes)), ("error", .string(String("\(error)".utf8.prefix(256)) ?? ""))]))
            if let e = error as? CARError { throw NodeError.badInput("\(e)") }
            throw error
        }
        try auditAlone(AuditEntry("q.dag.import.v1", ref: summary.roots.map(\.description).joined(separator: ","), cid: summary.roots.first, details: [
            ("roots", .list(summary.roots.map { .string($0.description) })), ("blocks", .int(summary.blocks)), ("bytes", .int(summary.bytes)),
        ]))
        return summary
    }

    /// Kubo's `dag import --pin-roots`: pins each root recursively; returns, per root that could
    /// not be pinned, why.
    public func pinRoots(_ roots: [CID], owner: String? = nil) throws -> [CID: String] {
        var errors: [CID: String] = [:]
        for r in roots {
            var request = Pinner.Request(cid: r)
            request.owner = owner
            do { try pins.pin(try withQuota(request)) } catch let e as PinningError { errors[r] = "\(e)" }
        }
        return errors
    }

    // MARK: node

    /// The node's clock (ms since 1970).
    public var clock: any WallClock { blocks.clock }

    /// Seconds since start.
    public var uptime: TimeInterval { Date().timeIntervalSince(startedAt) }

    /// Whether the store answers (a read of a key that need not exist).
    public var storeIsHealthy: Bool { repository.isHealthy }

    /// LevelDB's reopens after a full disk, and whether writes are refused until the next one.
    public var storeRecovery: (reopens: Int, refusingWrites: Bool) { (repository.db.reopenCount, repository.db.isWaitingToReopen) }
}

/// Failures of node operations, in terms the transports map to statuses.
public enum NodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A block that is not in the repository.
    case notFound(CID)
    /// The request's data is unusable (undecodable, wrong shape).
    case badInput(String)
    /// A path segment that does not exist below a block.
    case noSuchPath(String, in: CID)
    /// Something this build does not do yet, named.
    case unsupported(String)

    public var description: String {
        switch self {
        // Kubo's words, which its users and scripts know.
        case .notFound(let c): "block was not found locally (offline): ipld: could not find \(c)"
        case .badInput(let m): m
        case .noSuchPath(let s, let c): "no link named \"\(s)\" under \(c)"
        case .unsupported(let what): "not supported yet: \(what)"
        }
    }
}

extension NodeError: KindedError {
    public var kind: ErrorKind {
        switch self {
        case .notFound, .noSuchPath: .notFound
        case .badInput: .invalidInput
        case .unsupported: .unsupported
        }
    }
}
