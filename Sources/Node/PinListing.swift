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
    /// Pins `visibility` hides (the audit log's, other owners' drives: `Visibility`) are left out,
    /// and so are the DAGs of those that are recursive.
    public func listPins(type: String = "all", nameContains: String? = nil, visibility: Visibility = .everything, _ body: (PinListing) throws -> Void) throws {
        guard ["all", "recursive", "direct", "indirect"].contains(type) else {
            throw NodeError.badInput("invalid type '\(type)', must be one of {direct, indirect, recursive, all}")
        }
        var last: (CID, PinType)?
        var roots = Set<Multihash>()
        // The multihash index lists pins without decoding records; entries of one CID are adjacent.
        try pins.forEachListing { cid, pinType, status, name in
            guard status == .pinned, !visibility.hides(pinNamed: name) else { return true }
            if pinType == .recursive { roots.insert(cid.multihash) }
            guard type == "all" || type == pinType.rawValue else { return true }
            if let nameContains, !name.contains(nameContains) { return true }
            if let last, last.0 == cid, last.1 == pinType { return true }
            last = (cid, pinType)
            try body(PinListing(cid: cid, type: pinType.rawValue, name: name))
            return true
        }
        guard type == "all" || type == "indirect", nameContains == nil else { return }
        try pins.indirect(including: { !visibility.hides(pinNamed: $0.name ?? "") }) { c, _ in
            if !roots.contains(c.multihash) { try body(PinListing(cid: c, type: "indirect", name: "")) }
            return true
        }
    }

    /// Kubo's `pin ls <cid>`: how `cid` is pinned, or nil when it is not (in the way asked).
    /// Pins `visibility` hides are answered as absent, and never named as the root a CID is
    /// pinned through (see `listPins`).
    public func pinListing(of cid: CID, type: String = "all", visibility: Visibility = .everything) throws -> PinListing? {
        let shown = { (p: Pin) in !visibility.hides(pinNamed: p.name ?? "") }
        let on = try pins.pins(of: cid.multihash).filter { $0.status == .pinned && $0.cid.codec == cid.codec && shown($0) }
        if let p = on.first(where: { $0.type == .recursive }) ?? on.first, type == "all" || type == p.type.rawValue {
            return PinListing(cid: cid, type: p.type.rawValue, name: p.name ?? "")
        }
        if type == "all" || type == "indirect", let root = try pins.recursiveRoot(containing: cid, including: shown) {
            return PinListing(cid: cid, type: "indirect through \(root)", name: "")
        }
        return nil
    }
}
