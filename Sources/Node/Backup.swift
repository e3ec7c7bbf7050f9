import Audit
import Backup
import CAR
import Foundation
import IPLD
import Multiformats
import Pinning
import Qindex
import Signing
import Storage

/// What a backup made.
public struct BackupCreated: Sendable {
    public var manifest: BackupManifest
    public var directory: String
}

/// What a restore did.
public struct BackupRestored: Sendable {
    public var sets: [String] = []
    /// Blocks read from the parts; of them, those this repository did not have.
    public var blocks: UInt64 = 0
    public var added: UInt64 = 0
    public var bytes: UInt64 = 0
    public var pinsRestored = 0
    public var pinsPresent = 0
    /// Pins whose ID another pin held here: both kept, the restored one under `restoredAs`.
    public var conflicts: [(id: String, restoredAs: String)] = []
    /// Pins not restored, and why.
    public var pinFailures: [(id: String, error: String)] = []
    public var headsMerged = 0
    public var headFailures: [(pointer: String, error: String)] = []
}

extension Node {
    /// A section of the repository's configuration (with its environment overrides).
    public func repositoryConfiguration<S: ConfigurationSection>(_ type: S.Type) throws -> S { try repository.configuration.section(type) }

    /// Every block stored, by CID (one per codec it is stored under).
    public func forEachBlock(_ body: (CID) throws -> Bool) throws { try blocks.base.forEach(body) }

    /// Every Qindex head, deleted ones too.
    public func forEachHead(_ body: (Head) throws -> Bool) throws { try index.forEachHead(body) }

    /// Puts back one pin as a backup holds it (`Pinner.restore`).
    public func restorePin(_ pin: Pin) throws -> Pinner.Restoration { try pins.restore(pin) }

    /// Writes a backup set of this repository into `directory`: every block stored (with
    /// `incremental`, only those no set of the newest complete set's chain holds, as their CARv2
    /// indexes say), in CARv2 parts of at most `partSize` bytes, then the signed manifest — every
    /// pin with all its fields, the pinning configuration, every Qindex head (the registry's
    /// pointers among them), the audit checkpoint, counts and each part's SHA-256 — written last.
    /// With `selection`, only the pins it matches, the heads those pins hold and their DAGs.
    ///
    /// Consistent while writers and the collector run: the pins and heads are read first, under
    /// a lease, so nothing they reach is collected before the set is written (a block whose
    /// count falls to zero later waits for the lease); blocks that were already garbage and go
    /// meanwhile are left out. An audit event `q.backup.create.v1` records it.
    public func createBackup(to directory: String, incremental: Bool = false, partSize: UInt64 = 1 << 30, pins selection: PinSelector? = nil,
                             progress: (UInt64, UInt64) -> Void = { _, _ in }) throws -> BackupCreated {
        let target = BackupDirectory(directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let lease = blocks.lease()
        defer { lease.release() }
        var parent: BackupManifest?
        var known = Set<Multihash>()
        if incremental {
            guard let p = try target.latest() else { throw BackupError.notFound("--incremental: no complete backup in \(directory) to build on") }
            guard p.node == identity.peerID else { throw BackupError.invalid("--incremental: the newest backup in \(directory) is of node \(p.node), not this one") }
            parent = p
            known = try target.multihashes(in: try target.chain(p.id))
        }
        let content = try backupContent(selection)
        let id = BackupManifest.newID(at: content.time, after: try? target.sets().last?.id)
        let writer = try PartWriter(directory: directory, id: id, partSize: partSize)
        try readBackupBlocks(content, skipping: known) { batch in
            for b in batch.raw { try writer.write(b.cid, b.data) }
            progress(writer.blocks, writer.bytes)
        }
        let parts = try writer.finish()
        progress(writer.blocks, writer.bytes)
        let manifest = try sealBackup(content, id: id, parent: parent?.id, blocks: writer.blocks, bytes: writer.bytes, parts: parts, selection: selection)
        try target.writeManifest(manifest)
        try auditBackup(manifest, to: directory)
        return BackupCreated(manifest: manifest, directory: directory + "/" + id)
    }

    /// Writes a backup set as one stream (`backup create --to -`, `BackupStream`): a CARv1 of
    /// every block (or those of `selection`'s pins) with the signed manifest as its last block.
    /// Returns the manifest and the sink (flush it).
    public func streamBackup<S: ByteSink>(to sink: S, pins selection: PinSelector? = nil,
                                          progress: (UInt64, UInt64) -> Void = { _, _ in }) throws -> (manifest: BackupManifest, sink: S) {
        let lease = blocks.lease()
        defer { lease.release() }
        let content = try backupContent(selection)
        let id = BackupManifest.newID(at: content.time)
        var car = try CARWriter(roots: [try BackupStream.root(id)], sink: sink)
        var (count, bytes): (UInt64, UInt64) = (0, 0)
        try readBackupBlocks(content, skipping: []) { batch in
            for b in batch.raw {
                try car.write(cid: b.cid, data: b.data)
                count += 1
                bytes += UInt64(b.data.count)
            }
            progress(count, bytes)
        }
        let manifest = try sealBackup(content, id: id, parent: nil, blocks: count, bytes: bytes, parts: [], selection: selection)
        let encoded = try manifest.encoded()
        try car.write(cid: try Block(data: encoded, codec: .dagCBOR).cid, data: encoded)
        let out = try car.finish()
        try auditBackup(manifest, to: "-")
        return (manifest, out)
    }

    /// What a backup holds, read under the caller's lease before any block.
    private struct BackupContent {
        var pins: [Pin]
        var heads: [BackupManifest.Head]
        /// The DAGs to copy (each root, and whether its links are followed); nil: every block stored.
        var roots: [(cid: CID, whole: Bool)]?
        var checkpoint: AuditLog.Latest?
        var time: UInt64
    }

    private func backupContent(_ selection: PinSelector?) throws -> BackupContent {
        // Checkpoint first, so the log's head in the set covers every event so far.
        let checkpoint = try? auditCheckpoint(fresh: true)
        var pinList: [Pin] = []
        try pins.forEachPin { p in
            if selection?.matches(p) ?? true { pinList.append(p) }
            return true
        }
        let chosen = Set(pinList.map(\.id))
        var heads: [BackupManifest.Head] = []
        try index.forEachHead { h in
            // A head comes with the pin that holds its record.
            if selection == nil || h.pin.map(chosen.contains) == true {
                heads.append(BackupManifest.Head(type: h.type, key: h.key, record: h.record, version: h.version))
            }
            return true
        }
        let roots = selection.map { _ in pinList.map { ($0.cid, $0.type == .recursive || pins.walkedHeadTypes.contains($0.resourceType)) } }
        return BackupContent(pins: pinList, heads: heads, roots: roots, checkpoint: checkpoint, time: blocks.clock.now)
    }

    /// Reads the blocks of `content` not in `skip` on a thread of its own, handing each batch to
    /// `write` while the next is read: the two halves overlap on two cores.
    private func readBackupBlocks(_ content: BackupContent, skipping skip: Set<Multihash>, write: (RestoreBatch) throws -> Void) throws {
        let channel = BatchChannel(capacity: 1)
        let roots = content.roots
        let reader = Thread { [blocks] in
            defer { channel.exited() }
            do {
                var seen = Set<CID>()
                var batch = RestoreBatch()
                func take(_ cid: CID) throws -> Bool {
                    guard !channel.isCancelled else { return false }
                    guard cid.multihash.code != .identity, !skip.contains(cid.multihash), seen.insert(cid).inserted else { return true }
                    guard let data = try blocks.base.get(cid) else { return true }  // garbage collected meanwhile, or not here (a queued pin)
                    batch.raw.append((cid, data))
                    batch.size += data.count
                    if batch.full {
                        guard channel.put(batch) else { return false }
                        batch = RestoreBatch()
                    }
                    return true
                }
                if let roots {
                    var walked = Set<CID>()
                    outer: for root in roots {
                        var stack = [root.cid]
                        while let c = stack.popLast() {
                            guard walked.insert(c).inserted else { continue }
                            guard try take(c) else { break outer }
                            if root.whole { stack += (try blocks.links(of: c)) ?? [] }
                        }
                    }
                } else {
                    try blocks.base.forEach(take)
                }
                _ = channel.put(batch)
                channel.finish(nil)
            } catch {
                channel.finish(error)
            }
        }
        reader.start()
        defer { channel.cancelAndWait() }
        while let batch = try channel.take() { try write(batch) }
    }

    /// The signed manifest of a set.
    private func sealBackup(_ c: BackupContent, id: String, parent: String?, blocks count: UInt64, bytes: UInt64, parts: [BackupManifest.Part],
                            selection: PinSelector?) throws -> BackupManifest {
        let policies = String(decoding: (try? JSONEncoder().encode(try repository.configuration.section(PinningConfiguration.self))) ?? Data("{}".utf8), as: UTF8.self)
        var manifest = BackupManifest(
            id: id, parent: parent, created: Timestamps.format(c.time), node: identity.peerID, repositoryVersion: repository.configuration.version,
            pins: c.pins, policies: policies, heads: c.heads,
            audit: c.checkpoint.map { .init(size: $0.size, root: $0.rootHash, checkpoint: $0.cid) },
            blocks: count, bytes: bytes, parts: parts)
        manifest.selection = selection?.description
        try manifest.sign(with: try keystore.key("self"), ts: Int64(c.time))
        return manifest
    }

    private func auditBackup(_ m: BackupManifest, to directory: String) throws {
        var details: [(String, IPLDNode)] = [
            ("directory", .string(directory)), ("parent", m.parent.map { .string($0) } ?? .null), ("blocks", .int(m.blocks)),
            ("bytes", .int(m.bytes)), ("parts", .int(m.parts.count)), ("pins", .int(m.pins.count)), ("heads", .int(m.heads.count)),
        ]
        if let s = m.selection { details.append(("selection", .string(s))) }
        let all = details
        try commits.run { txn, _ in txn.audit("q.backup.create.v1", ref: m.id, cid: nil, details: all) }
    }

    /// Restores set `id` (the newest complete one when nil) and its parents into this
    /// repository, empty or live: every block (each checked against its CID), then every pin of
    /// the set with its ID, name and expiry (a pin already there is left; another pin holding
    /// the ID keeps it and the restored one gets a new ID — both said), then every Qindex head
    /// merged by Qindex's rule (the registry's pointers among them). Run again after an
    /// interruption it goes on from what is there and ends complete. An audit event
    /// `q.backup.restore.v1` records it.
    /// Blocks the calling thread (a storage thread, or the CLI's) for its whole run.
    public func restoreBackup(from directory: String, id: String? = nil, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws -> BackupRestored {
        let source = BackupDirectory(directory)
        guard let setID = try id ?? source.latest()?.id else { throw BackupError.notFound("no complete backup in \(directory)") }
        let chain = try source.chain(setID)
        for m in chain {
            do { try m.verifySignature() } catch { throw BackupError.corrupt("\(m.id): manifest signature: \(error)") }
            guard m.node == chain.last!.node else { throw BackupError.corrupt("\(m.id) was taken on node \(m.node), its child on \(chain.last!.node)") }
        }
        var result = BackupRestored()
        result.sets = chain.map(\.id)
        let lease = blocks.lease()
        defer { lease.release() }
        // Read and checked on a thread of its own while the previous batch is written: the
        // two halves of a restore overlap on two cores.
        let channel = BatchChannel(capacity: 1)
        let reader = Thread { [blocks] in
            defer { channel.exited() }
            do {
                for m in chain {
                    for p in m.parts {
                        let file = "\(directory)/\(m.id)/\(p.name)"
                        guard FileManager.default.fileExists(atPath: file) else { throw BackupError.corrupt("\(m.id)/\(p.name) is missing") }
                        var options = CARReader<FileSource>.Options()
                        options.verifyBlocks = false
                        var reader = try CARReader(FileSource(path: file), options: options)
                        var batch = RestoreBatch()
                        var inPart = 0
                        while !channel.isCancelled {
                            let next: CARBlock?
                            do { next = try reader.next() } catch { throw BackupError.corrupt("\(m.id)/\(p.name): unreadable after \(inPart) blocks: \(error)") }
                            inPart += 1
                            guard let b = next else { break }
                            let block: Block
                            do { block = try Block(cid: b.cid, data: b.data) } catch {
                                throw BackupError.corrupt("\(m.id)/\(p.name): block \(b.cid) does not hash to its CID")
                            }
                            try batch.add(block, new: !blocks.has(b.cid))
                            if batch.full {
                                guard channel.put(batch) else { return }
                                batch = RestoreBatch()
                            }
                        }
                        guard channel.put(batch) else { return }
                    }
                }
                channel.finish(nil)
            } catch {
                channel.finish(error)
            }
        }
        reader.start()
        defer { channel.cancelAndWait() }
        while let batch = try channel.take() {
            try store(batch, &result)
            progress(result.blocks, result.bytes)
        }
        progress(result.blocks, result.bytes)
        try restoreState(chain.last!, from: directory, &result)
        return result
    }

    /// Restores a streamed set (`backup restore -`, `BackupStream`): its blocks as they arrive,
    /// then — once the manifest at its end is there and its signature checks — its pins and heads
    /// as `restoreBackup(from:)` does. A stream cut short restores blocks but no pin (run it again
    /// whole).
    public func restoreBackup<S: ByteSource>(stream source: S, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws -> BackupRestored {
        var result = BackupRestored()
        let lease = blocks.lease()
        defer { lease.release() }
        var batch = RestoreBatch()
        let manifest = try BackupStream.read(source) { block in
            try batch.add(block, new: !blocks.has(block.cid))
            if batch.full {
                try store(batch, &result)
                batch = RestoreBatch()
                progress(result.blocks, result.bytes)
            }
        }
        try store(batch, &result)
        progress(result.blocks, result.bytes)
        do { try manifest.verifySignature() } catch { throw BackupError.corrupt("\(manifest.id): manifest signature: \(error)") }
        result.sets = [manifest.id]
        try restoreState(manifest, from: "-", &result)
        return result
    }

    /// Stores a batch of restored blocks — again even when here: the put protects them for the
    /// grace period (a block that was garbage must not go before its pin is back).
    private func store(_ batch: RestoreBatch, _ result: inout BackupRestored) throws {
        if !batch.blocks.isEmpty { try putBlocks(batch.blocks) }
        result.added += batch.new
        result.blocks += batch.read
        result.bytes += batch.bytes
    }

    /// The pins and heads of a restored set's newest manifest, once its blocks are here.
    private func restoreState(_ last: BackupManifest, from directory: String, _ result: inout BackupRestored) throws {
        for pin in last.pins {
            // The layers' own pins come back with their layers: Qindex's with the merge below.
            // The audit log's: this node's own log goes on (the set's head is an ancestor of
            // its head); another node's log is kept here as it was, pinned, so it still verifies.
            guard pin.resourceType != Qindex.resourceType, pin.resourceType != AuditLog.resourceType || last.node != identity.peerID else { continue }
            do {
                switch try pins.restore(pin) {
                case .restored: result.pinsRestored += 1
                case .present: result.pinsPresent += 1
                case .conflict(_, let restoredAs):
                    result.pinsRestored += 1
                    result.conflicts.append((pin.id.description, restoredAs.id.description))
                }
            } catch {
                result.pinFailures.append((pin.id.description, "\(error)"))
            }
        }
        for h in last.heads {
            do {
                _ = try index.mergeBlocking(roots: [h.record], allowingTruncatedHistory: true)
                result.headsMerged += 1
            } catch {
                result.headFailures.append(("\(h.type)/\(h.key)", "\(error)"))
            }
        }
        // The source node's revisions of module metadata verify here from now on.
        try addRegistryOperator(last.node)
        registry.forget()
        var details: [(String, IPLDNode)] = [
            ("directory", .string(directory)), ("sets", .int(result.sets.count)), ("blocks", .int(result.blocks)), ("added", .int(result.added)),
            ("pins", .int(result.pinsRestored)), ("conflicts", .int(result.conflicts.count)), ("heads", .int(result.headsMerged)),
            ("from", .string(last.node)),
        ]
        // The source's log, as far as the set holds it: this node's log names where it ended.
        if let a = last.audit { details += [("sourceLogSize", .int(a.size)), ("sourceCheckpoint", .string(a.checkpoint.string))] }
        if let s = last.selection { details.append(("selection", .string(s))) }
        let all = details
        try commits.run { txn, _ in txn.audit("q.backup.restore.v1", ref: last.id, cid: nil, details: all) }
    }
}


/// A batch between a backup's (or restore's) reader and writer: the blocks to store and how many
/// were read; for a backup, the blocks read from the store.
struct RestoreBatch: Sendable {
    var blocks: [Block] = []
    /// Of `blocks`, those that were not here.
    var new: UInt64 = 0
    var raw: [(cid: CID, data: [UInt8])] = []
    var size = 0
    var read: UInt64 = 0
    var bytes: UInt64 = 0

    mutating func add(_ block: Block, new: Bool) {
        read += 1
        bytes += UInt64(block.data.count)
        if new { self.new += 1 }
        blocks.append(block)
        size += block.data.count
    }

    var full: Bool { read >= 512 || size >= 4 << 20 || raw.count >= 512 }
}

/// One batch in flight between a backup's (or restore's) reader and its writer.
typealias BatchChannel = OrderedWork<RestoreBatch, RestoreBatch>
