import Audit
import Multiformats
import Pinning
import Storage

/// What a caller is shown of the node's private ways in, wherever a listing could name them:
/// `pin ls`, `pin verify` and the event stream. Blocks are served to anyone who names their CID
/// (the gateway), so these CIDs are what keeps the data behind them to those allowed:
/// - the audit log's head, the way into every event: callers with `audit:read`;
/// - a drive's pointer (`qindex:drive/<owner>`), the way into that owner's files and media: the
///   owner, or the admin;
/// - media events (owners, ids and CIDs) and the audit log's own events: the admin, and callers
///   with `audit:read`.
/// Everything else is listed to any reader, as Kubo does.
public struct Visibility: Sendable {
    /// The audit log's pin and its `q.qerberos.*` events.
    public var auditLog: Bool
    /// Every owner's drive pointer and media events (the admin); else only `owner`'s drive.
    public var everyOwner: Bool
    /// The caller's own drive, when not every owner's is shown.
    public var owner: String?

    public init(auditLog: Bool = true, everyOwner: Bool = true, owner: String? = nil) {
        self.auditLog = auditLog
        self.everyOwner = everyOwner
        self.owner = owner
    }

    /// Everything (the node itself, the command line on the repository).
    public static let everything = Visibility()

    /// Whether a pin named `name` is one this caller may not see: the audit log's, or another
    /// owner's drive pointer. Decided by the pin itself, in the pass that lists it (a CID read
    /// apart would go stale while a drive write or a checkpoint moves the pin).
    public func hides(pinNamed name: String) -> Bool {
        if !auditLog && name == AuditLog.pinName { return true }
        guard !everyOwner, name.hasPrefix(Self.drivePinPrefix) else { return false }
        return owner.map { name != Self.drivePinPrefix + $0 } ?? true
    }

    /// A drive pointer's pin name: `qindex:drive/<owner>` (Qindex names its pins `qindex:<type>/<key>`).
    static let drivePinPrefix = "qindex:\(Node.drivePointerType)/"
}

extension Node {
    /// Whether the event stream shows `event` to a caller with `v`.
    public func shows(_ event: EventLog.Event, to v: Visibility) -> Bool {
        if event.topic.hasPrefix("q.qerberos.") { return v.auditLog }
        if event.topic.hasPrefix("q.qpic.") { return v.everyOwner }
        if !v.everyOwner, event.topic.hasPrefix("q.qindex."), case .string(Self.drivePointerType)? = event.data["type"] {
            guard let owner = v.owner, case .string(let key)? = event.data["key"] else { return false }
            return key == owner
        }
        return true
    }
}
