import IPLD
import Multiformats
import Pinning
import Signing

/// One entry of the audit log: a change (or a refusal) of one layer, who did it, and what it
/// was about. Its dag-cbor block is the log's leaf; the leaf hash is SHA-256(0x00 ‖ block).
///
/// `{type, ref, actor: {squidId, subId?, daoId?}, layer, verdict: ALLOW|DENY|WARN, details,
/// cid?, ts, requestId}` — `type` is `q.<layer>.<action>.v<N>` and names its own layer; `ts` in
/// Unix milliseconds; `details` a map of whatever the layer records (counts, names, reasons).
public struct AuditEvent: Sendable, Equatable {
    public typealias Verdict = AuditVerdict

    public var type: String
    public var ref: String
    public var actor: IdentityRef
    public var layer: String
    public var verdict: Verdict
    public var details: IPLDMap
    public var cid: CID?
    public var ts: UInt64
    public var requestId: String

    public init(type: String, ref: String, actor: IdentityRef, verdict: Verdict = .allow, details: IPLDMap = IPLDMap(),
                cid: CID? = nil, ts: UInt64, requestId: String) throws {
        self.type = type
        self.ref = ref
        self.actor = actor
        self.layer = try Self.layer(of: type)
        self.verdict = verdict
        self.details = details
        self.cid = cid
        self.ts = ts
        self.requestId = requestId
        try check()
    }

    /// The layer a type names: `q.<layer>.<action>.v<N>`, lower case.
    static func layer(of type: String) throws -> String {
        // One pass over the bytes (every event is checked when made and when read).
        let bad = SigningError.malformed("type \"\(type)\": q.<layer>.<action>.v<N>, lower case")
        let u = Array(type.utf8)
        guard u.count <= 128, u.count >= 7, u[0] == 0x71, u[1] == 0x2e else { throw bad }  // "q."
        var dots: [Int] = [1]
        for (i, b) in u.enumerated().dropFirst(2) {
            if b == 0x2e { dots.append(i); continue }
            guard (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b == 0x2d || b == 0x5f else { throw bad }
        }
        // q . layer . action [. more] . vN — every word non-empty, the last v + digits.
        guard dots.count >= 3, zip(dots, dots.dropFirst()).allSatisfy({ $1 > $0 + 1 }), let last = dots.last, last + 2 < u.count,
              u[last + 1] == 0x76, u[(last + 2)...].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw bad }
        return String(decoding: u[(dots[0] + 1)..<dots[1]], as: UTF8.self)
    }

    func check() throws {
        guard try Self.layer(of: type) == layer else { throw SigningError.malformed("layer \"\(layer)\" is not the one its type names") }
        guard !ref.isEmpty, ref.utf8.count <= 1024 else { throw SigningError.malformed("ref: 1 to 1024 bytes") }
        guard !requestId.isEmpty, requestId.utf8.count <= 128 else { throw SigningError.malformed("requestId: 1 to 128 bytes") }
        try actor.check(field: "actor")
    }

    /// The event as a dag-cbor map (absent `cid` left out). `cid` is the CID's string, not a
    /// link: the log records what a change was about without holding it (a link would keep every
    /// block ever put alive through the log, and make a walk of the log a walk of all the data).
    public var node: IPLDNode {
        var pairs: [(String, IPLDNode)] = [
            ("type", .string(type)), ("ref", .string(ref)), ("actor", actor.node), ("layer", .string(layer)),
            ("verdict", .string(verdict.rawValue)), ("details", .map(details)), ("ts", .int(ts)), ("requestId", .string(requestId)),
        ]
        if let cid { pairs.append(("cid", .string(cid.string))) }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    /// The block's bytes: deterministic dag-cbor (the log's leaf). Fails only for details dag-cbor
    /// cannot hold (a float that is not finite).
    public func encoded() throws -> [UInt8] { try DAGCBOR().encode(node) }

    /// RFC 9162's leaf hash of the event's block.
    public func leafHash() throws -> [UInt8] { MerkleHash.leaf(try encoded()) }

    /// Reads an event block (strict dag-cbor; unknown fields and bad values refused, named).
    public init(decoding bytes: [UInt8]) throws {
        let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "",
                               allowed: ["type", "ref", "actor", "layer", "verdict", "details", "cid", "ts", "requestId"])
        type = try m.string("type")
        ref = try m.string("ref")
        actor = try IdentityRef(m.map["actor"], field: "actor")
        layer = try m.string("layer")
        guard let v = Verdict(rawValue: try m.string("verdict")) else { throw SigningError.malformed("verdict: ALLOW, DENY or WARN") }
        verdict = v
        guard case .map(let d)? = m.map["details"] else { throw SigningError.malformed("details: expected a map") }
        details = d
        cid = try m.optionalString("cid").map { text in
            guard let c = try? CID(text) else { throw SigningError.malformed("cid: not a CID") }
            return c
        }
        let t = try m.integer("ts")
        guard t >= 0 else { throw SigningError.malformed("ts: Unix milliseconds") }
        ts = UInt64(t)
        requestId = try m.string("requestId")
        try check()
    }
}
