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

    /// Whether a pin named `name` is a drive pointer's pin this caller may not see.
    func hidesDrive(named name: String) -> Bool {
        guard !everyOwner, name.hasPrefix(Self.drivePinPrefix) else { return false }
        return owner.map { name != Self.drivePinPrefix + $0 } ?? true
    }

    /// A drive pointer's pin name: `qindex:drive/<owner>` (Qindex names its pins `qindex:<type>/<key>`).
    static let drivePinPrefix = "qindex:\(Node.drivePointerType)/"
}

extension Node {
    /// Whether `v` hides the pin of `cid` named `name`.
    func hides(_ cid: CID, named name: String, from v: Visibility, auditHead: CID?) -> Bool {
        (!v.auditLog && cid == auditHead) || v.hidesDrive(named: name)
    }

    /// The roots of the pins `v` hides (by CID: a root also pinned under another name is hidden too).
    public func hiddenPinRoots(from v: Visibility) throws -> Set<CID> {
        var hidden = Set<CID>()
        let head = audit.head
        if !v.auditLog, let head { hidden.insert(head) }
        guard !v.everyOwner else { return hidden }
        try pins.forEachListing { cid, _, _, name in
            if v.hidesDrive(named: name) { hidden.insert(cid) }
            return true
        }
        return hidden
    }

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
