import Multiformats
import Pinning

/// One line of `pin ls`: a CID, Kubo's pin type (`recursive`, `direct`, `indirect`, or
/// `indirect through <root>` for a CID asked about), and the pin's name.
public struct PinListing: Sendable, Equatable {
    /// The CID.
    public var cid: CID
    /// Kubo's type string.
    public var type: String
    /// The pin's name ("" when none).
    public var name: String
}

extension Node {
    /// Kubo's `pin ls` without arguments: pins of `type` (all, recursive, direct, indirect),
    /// one line per CID and type; indirect CIDs come from walking the recursive DAGs.
    ///
    /// `showingAuditLog` false (a caller without `audit:read`): the audit log's pin is left out —
    /// its head is the way into every event.
    public func listPins(type: String = "all", nameContains: String? = nil, showingAuditLog: Bool = true, _ body: (PinListing) throws -> Void) throws {
        guard ["all", "recursive", "direct", "indirect"].contains(type) else {
            throw NodeError.badInput("invalid type '\(type)', must be one of {direct, indirect, recursive, all}")
        }
        var last: (CID, PinType)?
        var roots = Set<Multihash>()
        let hidden = showingAuditLog ? nil : audit.head
        // The multihash index lists pins without decoding records; entries of one CID are adjacent.
        try pins.forEachListing { cid, pinType, status, name in
            guard status == .pinned, cid != hidden else { return true }
            if pinType == .recursive { roots.insert(cid.multihash) }
            guard type == "all" || type == pinType.rawValue else { return true }
            if let nameContains, !name.contains(nameContains) { return true }
            if let last, last.0 == cid, last.1 == pinType { return true }
            last = (cid, pinType)
            try body(PinListing(cid: cid, type: pinType.rawValue, name: name))
            return true
        }
        guard type == "all" || type == "indirect", nameContains == nil else { return }
        try pins.indirect { c, _ in
            if !roots.contains(c.multihash) { try body(PinListing(cid: c, type: "indirect", name: "")) }
            return true
        }
    }

    /// Kubo's `pin ls <cid>`: how `cid` is pinned, or nil when it is not (in the way asked).
    /// `showingAuditLog` false: the audit log's head is answered as not pinned (see `listPins`).
    public func pinListing(of cid: CID, type: String = "all", showingAuditLog: Bool = true) throws -> PinListing? {
        if !showingAuditLog, cid == audit.head { return nil }
        let on = try pins.pins(of: cid.multihash).filter { $0.status == .pinned && $0.cid.codec == cid.codec }
        if let p = on.first(where: { $0.type == .recursive }) ?? on.first, type == "all" || type == p.type.rawValue {
            return PinListing(cid: cid, type: p.type.rawValue, name: p.name ?? "")
        }
        if type == "all" || type == "indirect", let root = try pins.recursiveRoot(containing: cid) {
            return PinListing(cid: cid, type: "indirect through \(root)", name: "")
        }
        return nil
    }
}
