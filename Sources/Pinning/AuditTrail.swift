import IPLD
import Multiformats
import Signing
import Storage
import Synchronization

/// How every layer reports its changes to the audit log (DESIGN.md, "Audit"): a layer describes a
/// change where it stages it (`CountTransaction.audit`), the caller's identity and request come
/// from the ambient `AuditContext`, and the store hands the transaction's entries to its
/// `AuditSink` (the Audit layer, wired by Node) inside the same batch — so an acknowledged change
/// always has its event and a failed one has none.
///
/// It lives here, not in Signing, because the transaction it rides on is this layer's.

/// An event's verdict.
public enum AuditVerdict: String, Sendable, CaseIterable, Codable {
    case allow = "ALLOW", deny = "DENY", warn = "WARN"
}

/// One change (or refusal) as a layer describes it; who and which request are filled in from
/// `AuditContext` when it is recorded.
public struct AuditEntry: Sendable {
    /// `q.<layer>.<action>.v<N>`.
    public var type: String
    /// What it is about (a CID, a pin id, an index key, a token id).
    public var ref: String
    public var verdict: AuditVerdict
    public var details: IPLDMap
    public var cid: CID?
    /// Who acted; nil: the node itself.
    public var actor: IdentityRef?
    /// The request it belongs to; nil: one is made up for the transaction.
    public var requestId: String?

    public init(_ type: String, ref: String, verdict: AuditVerdict = .allow, cid: CID? = nil, details: [(String, IPLDNode)] = [],
                actor: IdentityRef? = nil, requestId: String? = nil) {
        self.type = type
        self.ref = ref
        self.verdict = verdict
        self.details = IPLDMap(uniqueKeysWithValues: details)
        self.cid = cid
        self.actor = actor
        self.requestId = requestId
    }
}

/// Who is acting and in which request, for the code running on their behalf: bound by the HTTP
/// middleware per request, by the CLI per command, carried onto storage threads and group commits.
public struct AuditContext: Sendable, Equatable {
    public var actor: IdentityRef
    public var requestId: String

    public init(actor: IdentityRef, requestId: String) {
        self.actor = actor
        self.requestId = requestId
    }

    /// The context of the code running now (nil: the node's own work).
    @TaskLocal public static var current: AuditContext?

    /// A new request id: 16 random hex digits (not guessable from the ids before it).
    public static func newRequestID(prefix: String = "") -> String {
        var g = SystemRandomNumberGenerator()
        let hex = String(g.next() as UInt64, radix: 16)
        return prefix + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    /// The prefixes of the ids the node makes; a client's `X-Request-Id` may not use them.
    public static let reservedPrefixes = ["req-", "node-", "cli-"]
}

/// An entry as the transaction holds it: as recorded, or already prepared by the sink (encoded
/// and hashed on the caller's thread, off the writer lock: `CountedBlockStore.prepareAudit`).
public enum AuditItem: @unchecked Sendable {
    case entry(AuditEntry)
    /// What `AuditSink.prepare` returned.
    case prepared(any Sendable)
}

/// Where a transaction's audit entries go: staged into its batch under the writer lock, then told
/// whether the batch was written. Exactly one `settle` follows each `stage` that returned, before
/// the writer lock is released, so an implementation may keep its in-memory state as "committed"
/// plus "what this batch would make it".
public protocol AuditSink: Sendable {
    /// Whether entries are kept (false: they are dropped; checkpoints are still made when asked).
    var isRecording: Bool { get }
    /// Does ahead of the transaction what does not depend on the log's state (encoding, hashing),
    /// for an entry of time `ts` whose actor and request are filled in.
    func prepare(_ entry: AuditEntry, at ts: UInt64) throws -> any Sendable
    /// Stages `items` (and a checkpoint when `checkpoint`, or when its own rules say) into `txn`.
    func stage(_ items: [AuditItem], checkpoint: Bool, in txn: CountTransaction, store: CountedBlockStore) throws -> any Sendable
    /// The batch holding what `stage` returned was written (`true`) or abandoned.
    func settle(_ staged: any Sendable, written: Bool)
}

extension AuditEntry {
    /// The entry with its actor and request from `AuditContext.current` where it names none.
    func inContext() -> AuditEntry {
        var e = self
        if let c = AuditContext.current {
            if e.actor == nil { e.actor = c.actor }
            if e.requestId == nil { e.requestId = c.requestId }
        }
        return e
    }
}

extension CountedBlockStore {
    /// `entry` (in the caller's `AuditContext`) prepared for a later `CountTransaction.audit(_:)`
    /// on this thread, so the transaction — under the writer lock every writer waits on — does
    /// only what needs the log's state; nil when nothing is logged.
    public func prepareAudit(_ entry: AuditEntry) throws -> AuditItem? {
        guard let sink = currentAuditSink, sink.isRecording else { return nil }
        return .prepared(try sink.prepare(entry.inContext(), at: clock.now))
    }
}

extension CountTransaction {
    /// Records a change of this transaction for the audit log, as done by the caller of
    /// `AuditContext.current` (or the node).
    public func audit(_ entry: AuditEntry) { auditItems.append(.entry(entry.inContext())) }

    /// Records an entry prepared ahead (`CountedBlockStore.prepareAudit`); nil: nothing.
    public func audit(_ item: AuditItem?) { if let item { auditItems.append(item) } }

    /// `audit(AuditEntry(...))`.
    public func audit(_ type: String, ref: String, verdict: AuditVerdict = .allow, cid: CID? = nil, details: [(String, IPLDNode)] = []) {
        audit(AuditEntry(type, ref: ref, verdict: verdict, cid: cid, details: details))
    }

    /// Asks for a checkpoint of the audit log in this transaction (when it has grown since the last).
    public func requestAuditCheckpoint() { auditCheckpoint = true }
}
