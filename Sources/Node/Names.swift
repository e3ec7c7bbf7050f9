import Multiformats
import Pinning
import Qindex
import Signing
import Storage

/// IPNS use cases: the keystore, publishing and resolving names, records made elsewhere.
extension Node {
    /// Every key, `self` first.
    public func keys() throws -> [Keystore.Entry] { try keystore.list() }

    /// A new Ed25519 key (`type` must be `ed25519`: no other kind is made here).
    public func generateKey(_ name: String, type: String = "ed25519") throws -> Keystore.Entry {
        guard type.lowercased() == "ed25519" else { throw NodeError.unsupported("key type \(type) (ed25519 is the only one)") }
        let e = try keystore.generate(name)
        try auditAlone(AuditEntry("q.key.gen.v1", ref: name, details: [("id", .string(e.id))]))
        return e
    }

    public func renameKey(_ old: String, to new: String, force: Bool) throws -> (entry: Keystore.Entry, overwrote: Bool) {
        let r = try keystore.rename(old, to: new, force: force)
        try auditAlone(AuditEntry("q.key.rename.v1", ref: new, details: [("from", .string(old)), ("id", .string(r.entry.id)), ("overwrote", .bool(r.overwrote))]))
        return r
    }

    public func removeKeys(_ names: [String]) throws -> [Keystore.Entry] {
        let removed = try keystore.remove(names)
        for e in removed { try auditAlone(AuditEntry("q.key.rm.v1", ref: e.name, details: [("id", .string(e.id))])) }
        return removed
    }

    /// What `name publish` made: the name and the value it now points at.
    public struct Publication: Sendable {
        public var name: String
        public var value: String
        public var sequence: UInt64
        public var record: IPNSRecord
    }

    /// Signs a record pointing the name of key `keyName` at `value` (`/ipfs/…`, `/ipns/…`, or a
    /// bare CID), valid for `lifetime` ns, cached for `ttl` ns. With `resolve`, an `/ipfs/` value
    /// must resolve here (its blocks present), as Kubo checks before publishing.
    public func publishName(_ value: String, key keyName: String = "self", lifetime: UInt64, ttl: UInt64, resolve: Bool = true) throws -> Publication {
        let path = try Self.ipnsValue(value)
        let key = try keystore.key(keyName)
        // A name may not lead back to itself (directly, or through the names its value follows).
        let own = Libp2pKey.name(key.publicKey).multihash
        var step = path
        for _ in 0...32 {
            let parts = step.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: true)
            guard parts.count >= 2, parts[0] == "ipns", let next = try? IPNSName.multihash(String(parts[1])) else { break }
            if next == own { throw NodeError.badInput("\(value) leads back to \(IPNSName.string(own)): a name cannot point at itself") }
            guard let record = try? names.verifiedRecord(next) else { break }
            step = record.value
        }
        if resolve { _ = try resolveContentPath(path) }
        let (name, record) = try names.publish(value: path, key: key, lifetime: lifetime, ttl: ttl)
        return Publication(name: IPNSName.string(name), value: path, sequence: record.sequence, record: record)
    }

    /// Publishes a Qindex pointer's head as an IPNS name: its target is the value, its version the
    /// sequence (a name already past that version is a conflict).
    public func publishPointer(type: String, key pointerKey: String, key keyName: String = "self", lifetime: UInt64, ttl: UInt64) throws -> Publication {
        let head = try index.current(type: type, key: pointerKey)
        let key = try keystore.key(keyName)
        let value = "/ipfs/" + head.target!.string
        let (name, record) = try names.publish(value: value, key: key, lifetime: lifetime, ttl: ttl, sequence: UInt64(head.version))
        return Publication(name: IPNSName.string(name), value: value, sequence: record.sequence, record: record)
    }

    /// The value of an IPNS name (`/ipns/<name>` or `<name>`) from its verified record here;
    /// `recursive` follows `/ipns/` values until an `/ipfs/` path (at most 32 steps).
    public func resolveName(_ name: String, recursive: Bool = true) throws -> String {
        var path = name.hasPrefix("/ipns/") ? name : "/ipns/" + name
        for _ in 0...32 {  // 32 names, then the /ipfs/ path they end at
            let parts = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: true)
            guard parts.count >= 2, parts[0] == "ipns" else { return path }
            let record = try names.verifiedRecord(try IPNSName.multihash(String(parts[1])))
            path = record.value + (parts.count > 2 ? "/" + parts[2] : "")
            if !recursive { return path }
        }
        throw NodeError.badInput("\(name): more than 32 IPNS names in a row (a loop?)")
    }

    /// The verified record of a name, as stored (protobuf bytes).
    public func nameRecord(_ name: String) throws -> IPNSRecord { try names.verifiedRecord(try Self.nameMultihash(name)) }

    /// Stores a record made elsewhere for `name` once it verifies; false when a newer one is held.
    @discardableResult
    public func importNameRecord(_ name: String, _ bytes: [UInt8]) throws -> Bool {
        try names.importRecord(bytes, name: try Self.nameMultihash(name))
    }

    /// The multihash of `<name>` or `/ipns/<name>`.
    static func nameMultihash(_ name: String) throws -> Multihash {
        try IPNSName.multihash(name.hasPrefix("/ipns/") ? String(name.dropFirst(6)) : name)
    }

    /// Every name this node holds a record for, with the record (not re-verified).
    public func heldNames() throws -> [(name: String, record: IPNSRecord)] {
        try names.all().map { (IPNSName.string($0.name), $0.record) }
    }

    /// An `/ipfs/` or `/ipns/` path (`<cid>` alone means `/ipfs/<cid>`), checked.
    static func ipnsValue(_ value: String) throws -> String {
        let path = value.hasPrefix("/") ? value : "/ipfs/" + value
        try IPNSPaths.check(path)
        return path
    }

    /// The root and segments of an `/ipfs/<cid>/…` or `/ipns/<name>/…` path, names resolved.
    public func contentPath(_ path: String) throws -> (root: CID, segments: [String]) {
        var p = path
        if p.hasPrefix("/ipns/") { p = try resolveName(p) }
        let parts = p.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard parts.count >= 2, parts[0] == "ipfs" else { throw NodeError.badInput("\(path) is not an /ipfs/ or /ipns/ path") }
        let root: CID
        do { root = try CID(parts[1]) } catch { throw NodeError.badInput("\(path): \(error)") }
        return (root, Array(parts.dropFirst(2)))
    }

    /// Resolves a content path to its terminal block (which must be here).
    public func resolveContentPath(_ path: String) throws -> ResolvedPath {
        let (root, segments) = try contentPath(path)
        let resolved = try resolve(root, path: segments)
        _ = try blockSize(resolved.terminal)
        return resolved
    }
}
