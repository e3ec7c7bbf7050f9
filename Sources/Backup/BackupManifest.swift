import Foundation
import IPLD
import Multiformats
import Pinning
import Qindex
import Signing
import Storage

/// A backup set's manifest: what the set holds and the repository's state when it was taken,
/// signed by the node key. Stored as dag-cbor (the root of the set's `manifest.car`, written last:
/// a set is complete only when it is there) and as `manifest.json` for people.
///
/// `{v: 1, id, parent?, created, node, repositoryVersion, pins: [...], policies (the pinning
/// configuration, JSON text), heads: [{type, key, record, version}], audit?: {size, root,
/// checkpoint}, blocks, bytes, parts: [{name, size, sha256, blocks}], selection?, sig}`.
/// `selection`: the `--pins` filter when the set holds only some pins (and their DAGs).
/// A streamed set (`--to -`) has no parts: its manifest is the stream's last block.
public struct BackupManifest: Sendable, Equatable {
    public static let domain = "qstore-backup:"

    public struct Head: Sendable, Equatable {
        public var type: String
        public var key: String
        public var record: CID
        public var version: Int64
        public init(type: String, key: String, record: CID, version: Int64) { (self.type, self.key, self.record, self.version) = (type, key, record, version) }
    }

    public struct Part: Sendable, Equatable {
        /// The file's name in the set's directory (`part-0001.car`).
        public var name: String
        public var size: UInt64
        public var sha256: [UInt8]
        public var blocks: UInt64
        public init(name: String, size: UInt64, sha256: [UInt8], blocks: UInt64) { (self.name, self.size, self.sha256, self.blocks) = (name, size, sha256, blocks) }
    }

    public struct AuditState: Sendable, Equatable {
        public var size: UInt64
        public var root: [UInt8]
        public var checkpoint: CID
        public init(size: UInt64, root: [UInt8], checkpoint: CID) { (self.size, self.root, self.checkpoint) = (size, root, checkpoint) }
    }

    public var id: String
    public var parent: String?
    /// RFC 3339.
    public var created: String
    /// The node's peer ID (its key signs the manifest).
    public var node: String
    public var repositoryVersion: Int
    public var pins: [Pin]
    /// The pinning configuration in force (JSON).
    public var policies: String
    /// Every Qindex head (the registry's pointers among them).
    public var heads: [Head]
    public var audit: AuditState?
    /// Blocks and bytes in this set's parts (not its parents').
    public var blocks: UInt64
    public var bytes: UInt64
    public var parts: [Part]
    /// The `--pins` filter the set was made with; nil: the whole repository.
    public var selection: String?
    public var sig: LockSig?

    public init(id: String, parent: String?, created: String, node: String, repositoryVersion: Int, pins: [Pin], policies: String,
                heads: [Head], audit: AuditState?, blocks: UInt64, bytes: UInt64, parts: [Part]) {
        self.id = id
        self.parent = parent
        self.created = created
        self.node = node
        self.repositoryVersion = repositoryVersion
        self.pins = pins
        self.policies = policies
        self.heads = heads
        self.audit = audit
        self.blocks = blocks
        self.bytes = bytes
        self.parts = parts
    }

    /// A backup id: the UTC time to the millisecond (ids sort as the sets were made) and 6
    /// random hex digits: `YYYYMMDDTHHMMSSmmmZ-xxxxxx`. `after`: an id the new one must sort
    /// after (the newest in the directory).
    public static func newID(at ms: UInt64, after: String? = nil) -> String {
        var t = ms
        if let after, let previous = time(of: after), previous >= t { t = previous + 1 }
        // YYYY-MM-DDTHH:MM:SS.mmmZ → YYYYMMDDTHHMMSSmmmZ
        let stamp = Timestamps.format(t).filter { $0 != "-" && $0 != ":" && $0 != "." }
        return stamp + "-" + String(format: "%06x", UInt32.random(in: 0..<0x100_0000))
    }

    /// `^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$`: what a set's directory is named.
    public static func isID(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 26, u[8] == UInt8(ascii: "T"), u[18] == UInt8(ascii: "Z"), u[19] == UInt8(ascii: "-") else { return false }
        let digits = u[0..<8] + u[9..<18]
        return digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && u[20...].allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// When the set `id` was made (ms since 1970).
    public static func time(of id: String) -> UInt64? {
        guard isID(id) else { return nil }
        let u = Array(id.utf8)
        let text = String(decoding: u[0..<4], as: UTF8.self) + "-" + String(decoding: u[4..<6], as: UTF8.self) + "-" + String(decoding: u[6..<8], as: UTF8.self)
            + "T" + String(decoding: u[9..<11], as: UTF8.self) + ":" + String(decoding: u[11..<13], as: UTF8.self) + ":" + String(decoding: u[13..<15], as: UTF8.self)
            + "." + String(decoding: u[15..<18], as: UTF8.self) + "Z"
        return Timestamps.parse(text)
    }

    // MARK: dag-cbor

    static func pinNode(_ p: Pin) -> IPLDNode {
        var pairs: [(String, IPLDNode)] = [
            ("id", .string(p.id.description)), ("cid", .link(p.cid)), ("type", .string(p.type.rawValue)), ("status", .string(p.status.rawValue)),
            ("resourceType", .string(p.resourceType)), ("created", .int(p.created)), ("replicationFactor", .int(p.replicationFactor)),
            ("origins", .list(p.origins.map { .string($0) })),
            ("meta", .map(IPLDMap(uniqueKeysWithValues: p.meta.sorted { $0.key < $1.key }.map { ($0.key, IPLDNode.string($0.value)) }))),
        ]
        if let n = p.name { pairs.append(("name", .string(n))) }
        if let e = p.expires { pairs.append(("expires", .int(e))) }
        if let o = p.owner { pairs.append(("owner", .string(o))) }
        if let s = p.size { pairs.append(("size", .int(s))) }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    static func pin(_ node: IPLDNode, _ i: Int) throws -> Pin {
        let f = try IPLDFields(node, field: "pins[\(i)]", allowed: ["id", "cid", "type", "status", "resourceType", "created", "replicationFactor",
                                                                     "origins", "meta", "name", "expires", "owner", "size"])
        guard let id = PinID(try f.string("id")) else { throw SigningError.malformed("pins[\(i)].id: not a pin id") }
        guard let type = PinType(rawValue: try f.string("type")) else { throw SigningError.malformed("pins[\(i)].type: recursive or direct") }
        guard let status = PinStatus(rawValue: try f.string("status")) else { throw SigningError.malformed("pins[\(i)].status: unknown") }
        guard case .map(let meta)? = f.map["meta"] else { throw SigningError.malformed("pins[\(i)].meta: expected a map") }
        var m: [String: String] = [:]
        for e in meta {
            guard case .string(let s) = e.value else { throw SigningError.malformed("pins[\(i)].meta.\(e.key): expected a string") }
            m[e.key] = s
        }
        func unsigned(_ k: String) throws -> UInt64? {
            guard f.has(k) else { return nil }
            let v = try f.integer(k)
            guard v >= 0 else { throw SigningError.malformed("pins[\(i)].\(k): not negative") }
            return UInt64(v)
        }
        return Pin(id: id, cid: try f.link("cid"), type: type, status: status, name: try f.optionalString("name"), resourceType: try f.string("resourceType"),
                   created: try unsigned("created") ?? 0, expires: try unsigned("expires"), replicationFactor: Int(try f.integer("replicationFactor")),
                   origins: try f.strings("origins"), meta: m, owner: try f.optionalString("owner"), size: try unsigned("size"))
    }

    /// The manifest without its signature: what is signed.
    public var unsignedNode: IPLDNode {
        var pairs: [(String, IPLDNode)] = [
            ("v", .int(1)), ("id", .string(id)), ("created", .string(created)), ("node", .string(node)), ("repositoryVersion", .int(repositoryVersion)),
            ("pins", .list(pins.map(Self.pinNode))), ("policies", .string(policies)),
            ("heads", .list(heads.map { h in
                .map(IPLDMap(uniqueKeysWithValues: [("type", .string(h.type)), ("key", .string(h.key)), ("record", .link(h.record)), ("version", .int(h.version))]))
            })),
            ("blocks", .int(blocks)), ("bytes", .int(bytes)),
            ("parts", .list(parts.map { p in
                .map(IPLDMap(uniqueKeysWithValues: [("name", .string(p.name)), ("size", .int(p.size)), ("sha256", .bytes(p.sha256)), ("blocks", .int(p.blocks))]))
            })),
        ]
        if let parent { pairs.append(("parent", .string(parent))) }
        if let selection { pairs.append(("selection", .string(selection))) }
        if let a = audit {
            pairs.append(("audit", .map(IPLDMap(uniqueKeysWithValues: [("size", .int(a.size)), ("root", .bytes(a.root)), ("checkpoint", .link(a.checkpoint))]))))
        }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    public var ipld: IPLDNode {
        guard case .map(let m) = unsignedNode, let sig else { return unsignedNode }
        return .map(IPLDMap(uniqueKeysWithValues: m.map { ($0.key, $0.value) } + [("sig", sig.node)]))
    }

    public func encoded() throws -> [UInt8] { try DAGCBOR().encode(ipld) }

    /// Signs with the node's key.
    public mutating func sign(with key: SigningKey, ts: Int64) throws {
        var s = LockSig(unsignedBy: key, ts: ts)
        s.sig = key.sign(Signatures.message(domain: Self.domain, try DAGCBOR().encode(unsignedNode)))
        sig = s
    }

    /// Checks the signature, and that its key is the node's the manifest names.
    public func verifySignature() throws {
        guard let sig else { throw SigningError.invalid("the manifest is not signed") }
        try sig.verify(try DAGCBOR().encode(unsignedNode), domain: Self.domain)
        guard NodeIdentity.peerID(ofPublicKey: sig.pub) == node else { throw SigningError.invalid("the manifest is signed by \(NodeIdentity.peerID(ofPublicKey: sig.pub)), not by the node \(node) it names") }
    }

    public init(decoding bytes: [UInt8]) throws {
        let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "manifest", allowed: [
            "v", "id", "parent", "created", "node", "repositoryVersion", "pins", "policies", "heads", "audit", "blocks", "bytes", "parts", "selection", "sig",
        ])
        guard try m.integer("v") == 1 else { throw SigningError.malformed("v: this build reads manifests of version 1") }
        id = try m.string("id")
        guard Self.isID(id) else { throw SigningError.malformed("id: not a backup id") }
        parent = try m.optionalString("parent")
        if let p = parent, !Self.isID(p) { throw SigningError.malformed("parent: not a backup id") }
        created = try m.string("created")
        node = try m.string("node")
        repositoryVersion = Int(try m.integer("repositoryVersion"))
        guard case .list(let ps)? = m.map["pins"] else { throw SigningError.malformed("pins: expected a list") }
        pins = try ps.enumerated().map { try Self.pin($1, $0) }
        policies = try m.string("policies")
        guard case .list(let hs)? = m.map["heads"] else { throw SigningError.malformed("heads: expected a list") }
        heads = try hs.enumerated().map { i, n in
            let h = try IPLDFields(n, field: "heads[\(i)]", allowed: ["type", "key", "record", "version"])
            return Head(type: try h.string("type"), key: try h.string("key"), record: try h.link("record"), version: try h.integer("version"))
        }
        if m.has("audit") {
            let a = try IPLDFields(m.map["audit"], field: "audit", allowed: ["size", "root", "checkpoint"])
            audit = AuditState(size: UInt64(max(0, try a.integer("size"))), root: try a.bytes("root"), checkpoint: try a.link("checkpoint"))
        }
        blocks = UInt64(max(0, try m.integer("blocks")))
        self.bytes = UInt64(max(0, try m.integer("bytes")))
        guard case .list(let parts)? = m.map["parts"] else { throw SigningError.malformed("parts: expected a list") }
        self.parts = try parts.enumerated().map { i, n in
            let p = try IPLDFields(n, field: "parts[\(i)]", allowed: ["name", "size", "sha256", "blocks"])
            let name = try p.string("name")
            guard name.hasPrefix("part-"), name.hasSuffix(".car"), !name.contains("/") else { throw SigningError.malformed("parts[\(i)].name: part-NNNN.car") }
            return Part(name: name, size: UInt64(max(0, try p.integer("size"))), sha256: try p.bytes("sha256"), blocks: UInt64(max(0, try p.integer("blocks"))))
        }
        selection = try m.optionalString("selection")
        sig = m.has("sig") ? try LockSig(m.map["sig"], field: "sig") : nil
    }

    /// The manifest for people (`manifest.json`).
    public func json() throws -> Data {
        var pinsJSON: [[String: Any]] = []
        for p in pins {
            var d: [String: Any] = ["id": p.id.description, "cid": p.cid.string, "type": p.type.rawValue, "status": p.status.rawValue,
                                    "resourceType": p.resourceType, "created": p.created, "replicationFactor": p.replicationFactor,
                                    "origins": p.origins, "meta": p.meta]
            if let n = p.name { d["name"] = n }
            if let e = p.expires { d["expires"] = e }
            if let o = p.owner { d["owner"] = o }
            pinsJSON.append(d)
        }
        var d: [String: Any] = [
            "v": 1, "id": id, "created": created, "node": node, "repositoryVersion": repositoryVersion, "pins": pinsJSON, "policies": policies,
            "heads": heads.map { ["type": $0.type, "key": $0.key, "record": $0.record.string, "version": $0.version] as [String: Any] },
            "blocks": blocks, "bytes": bytes,
            "parts": parts.map { ["name": $0.name, "size": $0.size, "sha256": $0.sha256.map { String(format: "%02x", $0) }.joined(), "blocks": $0.blocks] as [String: Any] },
        ]
        if let parent { d["parent"] = parent }
        if let selection { d["selection"] = selection }
        if let a = audit { d["audit"] = ["size": a.size, "root": Data(a.root).base64EncodedString(), "checkpoint": a.checkpoint.string] }
        if let sig { d["sig"] = ["pub": Data(sig.pub).base64EncodedString(), "sig": Data(sig.sig).base64EncodedString(), "ts": sig.ts] }
        return try JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }
}
