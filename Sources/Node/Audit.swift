import Audit
import CAR
import Foundation
import IPLD
import Multiformats
import Pinning
import Qindex
import Signing
import Storage

// MARK: the Qerberos audit log (`qstore audit …`, /q/v1/audit/…)

extension Node {
    /// The checkpoints' origin line (and signing key name) of the node `peerID`.
    static func auditOrigin(_ peerID: String) -> String { "qstore.audit/" + peerID }

    /// The checkpoints' origin line.
    public var auditOrigin: String { audit.origin }

    /// The C2SP verifier key of the node's checkpoints (`NAME+KEYID+KEY`).
    public var auditVerifierKey: String { SignedNote.verifierKey(name: audit.origin, publicKey: audit.publicKey) }

    /// Events appended.
    public var auditSize: UInt64 { audit.size }

    /// The latest checkpoint; made now when events are not covered yet and `fresh`.
    public func auditCheckpoint(fresh: Bool = false) throws -> AuditLog.Latest {
        if fresh, audit.size > (audit.latestCheckpoint?.size ?? 0) { try audit.checkpointNow() }
        guard let c = audit.latestCheckpoint else { throw AuditError.notFound("no audit checkpoint yet (the log is empty)") }
        return c
    }

    /// Every checkpoint kept after size `after`, oldest first.
    public func auditCheckpoints(after: UInt64 = 0, limit: Int = 1000) throws -> [AuditLog.Latest] { try audit.checkpoints(after: after, limit: limit) }

    /// Signs a checkpoint when one is due (the daemon's timer).
    public func auditCheckpointIfDue() throws {
        if audit.checkpointDue { try audit.checkpointNow() }
    }

    public func auditInclusionProof(index: UInt64, size: UInt64?) throws -> (size: UInt64, leafHash: [UInt8], hashes: [[UInt8]]) {
        let n = try size ?? auditCheckpoint().size
        let p = try audit.inclusionProof(index: index, size: n)
        return (n, p.leafHash, p.hashes)
    }

    public func auditConsistencyProof(from: UInt64, to: UInt64?) throws -> (to: UInt64, hashes: [[UInt8]]) {
        let n = try to ?? auditCheckpoint().size
        return (n, try audit.consistencyProof(from: from, to: n))
    }

    /// The bytes of tile `coordinate` (`width` hashes of a partial one; nil: the full tile).
    public func auditTile(_ coordinate: TileCoordinate, width: Int?) throws -> [UInt8] {
        let size = audit.size
        guard let hashes = try audit.tileHashes(coordinate, size: size) else { throw AuditError.notFound("no \(coordinate) in a log of \(size) events") }
        if let width {
            guard width >= 1, width < 256, width <= hashes.count else {
                throw AuditError.notFound("\(coordinate) has \(hashes.count) hashes, not a partial width of \(width)")
            }
            return Array(hashes.prefix(width).joined())
        }
        guard hashes.count == 256 else { throw AuditError.notFound("\(coordinate) is partial (\(hashes.count) hashes): ask for \(coordinate).p/\(hashes.count)") }
        return Array(hashes.joined())
    }

    /// A page of events (see `AuditQuery`).
    public func auditEvents(_ query: AuditQuery) throws -> (events: [AuditRecord], cursor: UInt64?) {
        var from = query.from ?? 0
        var to = min(query.to ?? .max, audit.size)
        if let t = query.since { from = max(from, try audit.index(atOrAfter: t)) }
        if let t = query.until { to = min(to, try audit.index(atOrAfter: t)) }
        if let c = query.cursor { from = max(from, c) }
        let limit = max(1, min(query.limit, 1000))
        var out: [AuditRecord] = []
        var i = from
        var scanned = 0
        while i < to, out.count < limit, scanned < limit * 64 {
            guard let (cid, bytes) = try audit.event(at: i) else { break }
            let event = try AuditEvent(decoding: bytes)
            if query.matches(event) { out.append(AuditRecord(index: i, cid: cid, event: event)) }
            i += 1
            scanned += 1
        }
        return (out, i < to ? i : nil)
    }

    /// Recomputes the log from the stored events and checks every checkpoint (`audit verify`).
    public func verifyAudit(progress: (UInt64) -> Void = { _ in }) throws -> AuditVerification { try audit.verify(progress: progress) }

    /// Writes the log (events, tiles, checkpoints; a head for the log as it is now as the root) as
    /// a CARv1 to `sink`; a checkpoint is made first when events are not covered yet.
    public func exportAudit<S: ByteSink>(to sink: S) throws -> S {
        _ = try auditCheckpoint(fresh: true)
        guard let head = try audit.currentHead() else { throw AuditError.notFound("no audit checkpoint yet (the log is empty)") }
        var w = try CARWriter(roots: [head.cid], sink: sink)
        try w.write(cid: head.cid, data: head.data)
        // Depth first with an explicit stack (the chain of checkpoints is as deep as it is long).
        var seen = Set<CID>()
        var stack = Array(try DAGCBOR().decode(head.data).links.reversed())
        while let cid = stack.popLast() {
            guard seen.insert(cid).inserted else { continue }
            guard let bytes = try blocks.get(cid) else { throw AuditError.corrupt("block \(cid) of the log is missing") }
            try w.write(cid: cid, data: bytes)
            if cid.codec != .raw { stack.append(contentsOf: try DAGCBOR().decode(bytes).links.reversed()) }
        }
        return try w.finish()
    }

    /// Records a refusal (DENY: not allowed; WARN: a credential that failed) in a transaction of
    /// its own; it joins the block writes' group commit.
    public func auditRefusal(_ entry: AuditEntry) async {
        guard auditEnabled else { return }
        do { try await commits.run { txn, _ in txn.audit(entry) } } catch { logger.warning("audit: refusal not recorded: \(error)") }
    }

    /// Appends `entry` alone (a change that spans transactions: imports, adds, GC runs, keys).
    func auditAlone(_ entry: AuditEntry) throws {
        guard auditEnabled else { return }
        try blocks.transaction { txn in txn.audit(entry) }
    }
}

/// One event as queries return it.
public struct AuditRecord: Sendable {
    public var index: UInt64
    public var cid: CID
    public var event: AuditEvent
}

/// A query of the audit log: a range of indices or times, and filters.
public struct AuditQuery: Sendable {
    /// First index (inclusive) / last (exclusive).
    public var from: UInt64?
    public var to: UInt64?
    /// Times (ms): events at or after `since`, before `until`.
    public var since: UInt64?
    public var until: UInt64?
    /// Type, exact or a prefix ending in `*`.
    public var type: String?
    /// The actor's sQuid id (or `admin`, `token:ID`, `anonymous`).
    public var actor: String?
    public var verdict: AuditVerdict?
    public var ref: String?
    public var limit = 100
    /// Where the previous page ended.
    public var cursor: UInt64?

    public init() {}

    /// The query of the parameters `get` gives (`GET /q/v1/audit/events`, `qstore audit ls`):
    /// `from`/`to` (an event index, or a time in RFC 3339 — a date alone is its midnight UTC; `to`
    /// exclusive), `type` (exact or `prefix*`), `actor`, `verdict`, `ref`, `limit` (1–1000), `cursor`.
    public init(parameters get: (String) -> String?) throws {
        for (name, index, time) in [("from", \AuditQuery.from, \AuditQuery.since), ("to", \AuditQuery.to, \AuditQuery.until)] {
            guard let v = get(name), !v.isEmpty else { continue }
            if v.allSatisfy({ $0.isASCII && $0.isNumber }) { self[keyPath: index] = try Self.number(v, name) } else { self[keyPath: time] = try Self.time(v, name) }
        }
        type = get("type").flatMap { $0.isEmpty ? nil : $0 }
        actor = get("actor").flatMap { $0.isEmpty ? nil : $0 }
        if let v = get("verdict"), !v.isEmpty {
            guard let verdict = AuditVerdict(rawValue: v.uppercased()) else { throw AuditError.invalid("verdict: ALLOW, DENY or WARN") }
            self.verdict = verdict
        }
        ref = get("ref").flatMap { $0.isEmpty ? nil : $0 }
        if let l = try Self.number(get("limit"), "limit") {
            guard (1...1000).contains(l) else { throw AuditError.invalid("limit: 1 to 1000") }
            limit = Int(l)
        }
        cursor = try Self.number(get("cursor"), "cursor")
    }

    /// Decimal digits only (no sign, no spaces).
    public static func number(_ text: String?, _ name: String) throws -> UInt64? {
        guard let text else { return nil }
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt64(text) else {
            throw AuditError.invalid("\(name): an integer ≥ 0 (decimal digits)")
        }
        return v
    }

    /// RFC 3339 (a date alone: its midnight UTC), in ms.
    public static func time(_ text: String, _ name: String) throws -> UInt64 {
        // The reading every other time parameter gets (`Timestamps.parse`, as `?at=`).
        if let ms = Timestamps.parse(text.utf8.count == 10 ? text + "T00:00:00Z" : text) { return ms }
        throw AuditError.invalid("\(name): an event index, or a time in RFC 3339 (2026-12-05T10:00:00Z, or 2026-12-05)")
    }

    func matches(_ e: AuditEvent) -> Bool {
        if let type {
            if type.hasSuffix("*") { guard e.type.hasPrefix(type.dropLast()) else { return false } } else if e.type != type { return false }
        }
        if let actor, e.actor.squidId != actor { return false }
        if let verdict, e.verdict != verdict { return false }
        if let ref, e.ref != ref { return false }
        return true
    }
}
