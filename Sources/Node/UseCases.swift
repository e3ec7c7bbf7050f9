import Access
import CAR
import Foundation
import Multiformats
import Pinning
import Storage
import UnixFS

// The node's use cases that are thin over one service: pins, the repository's facts, UnixFS
// entries for the gateway and CAR responses. Transports call these, never the services.

extension Node {
    // MARK: pins (Kubo's pin commands)

    /// Kubo's `pin add`: `progress` is told the blocks walked, every 1,000 and at the end.
    @discardableResult
    public func pin(_ request: Pinner.Request, progress: (Int) throws -> Void = { _ in }) throws -> Pin {
        try pins.pin(try withQuota(request), progress: progress)
    }

    /// `request` with its owner's storage left, when the owner has a quota (`access.storageQuota`):
    /// the pin is refused (507 `QDRIVE_STORAGE_FULL`) if its DAG holds more. Concurrent pins of
    /// one owner are each checked against the usage before them, so together they may pass the
    /// quota by at most one pin each.
    func withQuota(_ request: Pinner.Request) throws -> Pinner.Request {
        guard let owner = request.owner else { return request }
        let quota = access.storageQuota(of: owner)
        guard quota > 0 else { return request }
        var r = request
        let used = try pins.usage(of: owner)
        r.quota = (available: quota > used ? quota - used : 0, total: quota)
        return r
    }

    /// The bytes `owner`'s pins hold, and its quota (0: none).
    public func storageUsage(of owner: String) throws -> (used: UInt64, quota: UInt64) {
        (try pins.usage(of: owner), access.storageQuota(of: owner))
    }

    /// Kubo's `pin rm`: the pins removed.
    @discardableResult
    /// `owner` (a caller other than the admin) removes only its own pins.
    public func unpin(_ cid: CID, recursive: Bool = true, owner: String? = nil) throws -> [Pin] { try pins.unpin(cid, recursive: recursive, owner: owner) }

    /// Kubo's `pin update`: the new pin.
    @discardableResult
    /// `owner` (a caller other than the admin) updates only its own pin, within its quota.
    public func updatePin(from: CID, to: CID, unpin: Bool = true, owner: String? = nil) throws -> Pin {
        var request = Pinner.Request(cid: to)
        request.owner = owner
        return try pins.update(from: from, to: to, unpin: unpin, owner: owner, quota: try withQuota(request).quota)
    }

    /// Kubo's `pin verify`: each pin's verdict (recursive pins' DAGs, direct pins' own blocks).
    /// Pins `visibility` hides are left out (`Visibility`).
    public func verifyPins(visibility: Visibility = .everything, _ body: (Pinner.Verification) throws -> Void) throws {
        try pins.verify(including: { !visibility.hides(pinNamed: $0.name ?? "") }, body)
    }

    /// The pinning policies in force.
    public var pinningPolicies: PolicySet { pins.policies }

    // MARK: pins (the Pinning Service API's pin objects)

    /// A new pin object (queued while its blocks are missing).
    public func addPinObject(_ request: Pinner.Request) throws -> Pin { try pins.add(try withQuota(request)) }

    /// The pin object `id`, nil when there is none.
    public func pinObject(_ id: PinID) throws -> Pin? { try pins.pin(id: id) }

    /// Replaces pin object `id` with `request`, in one batch.
    public func replacePinObject(_ id: PinID, with request: Pinner.Request) throws -> Pin { try pins.replace(id: id, with: try withQuota(request)) }

    /// Removes pin object `id`.
    @discardableResult
    public func removePinObject(_ id: PinID, owner: String? = nil) throws -> Pin { try pins.remove(id: id, owner: owner) }

    /// The pins on `cid`'s multihash.
    public func pinObjects(of cid: CID) throws -> [Pin] { try pins.pins(of: cid.multihash) }

    /// Every pin object (newest first, strictly before `before` when given) until `body` returns false.
    public func forEachPinObject(newestFirst: Bool = false, before: UInt64? = nil, _ body: (Pin) throws -> Bool) throws {
        try pins.forEachPin(newestFirst: newestFirst, before: before, body)
    }

    /// When the next pin expires (ms), if any does.
    public func nextPinExpiry() throws -> UInt64? {
        // Drive files with a TTL end on the same clock.
        [try pins.nextExpiry(), try nextDriveExpiry()].compactMap { $0 }.min()
    }

    /// Ends expired pins, completes queued ones whose blocks arrived, fails those past their timeout.
    @discardableResult
    public func maintainPins() throws -> Pinner.Upkeep {
        var upkeep = try pins.maintain(quota: { self.access.storageQuota(of: $0) })
        upkeep.expired += try expireDriveFiles()
        return upkeep
    }

    // MARK: the repository

    /// The node's peer identity.
    public var identity: NodeIdentity { repository.identity }

    /// The repository directory.
    public var repositoryPath: String { repository.path }

    /// The daemon's bearer token.
    public func apiToken() throws -> String { try repository.apiToken() }

    /// Block counts and bytes of the repository.
    public func repositoryStat() throws -> RepositoryStat { try repository.stat() }

    // MARK: UnixFS for the gateway

    /// What a UnixFS entry is, for the path gateway (a sharded directory's entries gathered).
    public enum FileEntry: Sendable {
        /// A file of `size` bytes (or a raw block).
        case file(size: UInt64)
        /// A directory and its entries (plain or HAMT-sharded).
        case directory([DirectoryEntry])
        /// A symbolic link.
        case symlink(target: String)
    }

    /// The UnixFS entry at `cid`; `NodeError.notFound` when a block of it is missing.
    public func fileEntry(_ cid: CID) throws -> FileEntry {
        do {
            switch try UnixFSNode.load(cid, from: blocks) {
            case .file(let size): return .file(size: size)
            case .directory(let entries): return .directory(entries)
            case .shardedDirectory: return .directory(try HAMT.entries(cid, store: blocks))
            case .symlink(let target): return .symlink(target: target)
            }
        } catch UnixFSError.missingBlock(let c) { throw NodeError.notFound(c) }
    }

    /// Writes the CAR response for `root`/`path` (IPIP-402/412, see `carBlocks`) to `sink`.
    public func exportCAR<S: ByteSink>(root: CID, path: [String], scope: DAGScope, duplicates: Bool,
                                       entityBytes: (from: Int64, to: Int64?)? = nil, to sink: S) throws -> S {
        var w = try CARWriter(roots: [root], sink: sink)
        try carBlocks(root: root, path: path, scope: scope, duplicates: duplicates, entityBytes: entityBytes) { c, d in try w.write(cid: c, data: d) }
        return try w.finish()
    }
}
