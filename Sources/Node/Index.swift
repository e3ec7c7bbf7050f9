import Pinning
import Access
import CAR
import Multiformats
import Qindex
import Registry
import Signing
import Storage

/// Qindex use cases: signed mutable pointers with history.
extension Node {
    /// Applies a pointer update (put, or delete with a nil target); returns the new head once durable.
    /// The registry's pointer types are moved by the registry only (`qstore module …`).
    /// In a cluster, the head moves by an etcd transaction first, so updates are linearizable
    /// across nodes (ClusterIndex.swift).
    public func putPointer(_ update: Qindex.Update) async throws -> Head {
        guard !ModuleNamespace.pointerTypes.contains(update.type) else {
            throw QindexError.invalid("\(update.type) pointers are the module registry's: change them with qstore module (or /q/v1/modules)")
        }
        guard update.type != Self.drivePointerType else {
            throw QindexError.invalid("drive pointers are Qdrive's: change them with qstore drive (or /q/v1/drive)")
        }
        if let c = cluster { return try await putPointer(update, in: c) }
        return try await index.put(update)
    }

    /// For an update made by `owner` (a caller other than the admin): the head's pin is counted
    /// for it, with the target DAG's bytes, and must fit in its storage quota (the pin it replaces,
    /// if the owner's, makes room). Walks the target: run it off the cooperative pool.
    ///
    /// A deletion keeps the charge of the head it replaces: the tombstone's pin still keeps the
    /// history, and its targets, alive.
    public func chargePointer(_ update: inout Qindex.Update, to owner: String, enforceQuota: Bool = true) throws {
        let head = try index.head(type: update.type, key: update.key)
        let old = try head?.pin.flatMap { try pins.pin(id: $0) }
        let kept = old?.owner == owner ? old?.size ?? 0 : 0
        let bytes = try update.target.map { try pins.measure($0) } ?? kept
        update.owner = (owner, bytes)
        let quota = access.storageQuota(of: owner)
        guard quota > 0, enforceQuota else { return }
        var used = try pins.usage(of: owner)
        used -= min(used, kept)
        guard used + bytes <= quota else {
            throw PinningError.quotaExceeded(owner: owner, needed: bytes, available: quota > used ? quota - used : 0, quota: quota)
        }
    }

    /// `putPointer` for threads that may block (it waits for the group commit).
    public func putPointerBlocking(_ update: Qindex.Update) throws -> Head { try index.putBlocking(update) }

    /// The live head of a pointer (`QINDEX_NOT_FOUND` when absent or deleted).
    public func pointer(type: String, key: String) throws -> Head { try index.current(type: type, key: key) }

    /// The pointer's head whether deleted or not (nil: it never existed).
    public func pointerHead(type: String, key: String) throws -> Head? { try index.head(type: type, key: key) }

    /// The record stored as `cid`.
    public func indexRecord(_ cid: CID) throws -> IndexRecord { try index.record(cid) }

    /// The main chain's record of `version`, or the newest at `at` (ms).
    public func pointerRecord(type: String, key: String, version: Int64? = nil, at: UInt64? = nil) throws -> (cid: CID, record: IndexRecord) {
        if let version { return try index.record(type: type, key: key, version: version) }
        if let at { return try index.record(type: type, key: key, at: at) }
        let h = try index.current(type: type, key: key)
        return (h.record, try index.record(h.record))
    }

    /// A page of a pointer's history, newest first.
    public func pointerHistory(type: String, key: String, limit: Int, before: Int64?) throws -> (records: [(cid: CID, record: IndexRecord)], next: Int64?) {
        try index.history(type: type, key: key, limit: limit, before: before)
    }

    /// A page of live pointers.
    public func listPointers(_ query: Qindex.Query) throws -> (heads: [Head], next: [UInt8]?) { try index.list(query) }

    /// Imports a CAR of records and merges the histories its roots head (under a lease, so
    /// nothing imported is collected before the heads hold it).
    /// The registry's pointers merge only when `registryAllowed` (an admin's import): they are
    /// the registry's to move, and a merged history could publish a module by another way than
    /// `registry:publish`.
    public func importPointers<Source: ByteSource>(_ source: Source, registryAllowed: Bool = true) async throws -> [Qindex.MergeOutcome] {
        try await withLease {
            let summary = try importCAR(source)
            guard !summary.roots.isEmpty else { throw NodeError.badInput("the CAR names no roots (the heads to merge)") }
            if !registryAllowed {
                for root in summary.roots {
                    if let r = try? index.record(root), ModuleNamespace.pointerTypes.contains(r.type) || r.type == Self.drivePointerType {
                        throw QindexError.invalid("\(r.type)/\(r.key): the registry's and the drives' pointers are merged by an admin only")
                    }
                }
            }
            registry.forget()
            let outcomes = try await index.merge(roots: summary.roots)
            // Merged versions move the modules' latest pointers as the registry's own writes do.
            var touched = Set<String>()
            for o in outcomes {
                for ns in ModuleNamespace.allCases where o.head.type == ns.versionType {
                    if let at = o.head.key.lastIndex(of: "@") { touched.insert(ns.rawValue + " " + String(o.head.key[..<at])) }
                }
            }
            for t in touched.sorted() {
                let parts = t.split(separator: " ", maxSplits: 1).map(String.init)
                try registry.exclusively { try moveLatest(parts[1], ModuleNamespace(rawValue: parts[0])!) }
            }
            registry.forget()
            return outcomes
        }
    }

    /// The public key records of this node are signed with.
    public var indexKey: [UInt8] { index.nodeKey.publicKey }
}
