import Audit
import Foundation
import IPLD
import Multiformats
import Qindex

// The wire types of `/q/v1/audit` (daemon and CLI share them).

/// The latest checkpoint: the signed note and what it says.
public struct AuditCheckpointInfo: Codable, Sendable, Equatable {
    public var origin: String
    public var size: UInt64
    /// Standard base64 of the root hash.
    public var rootHash: String
    /// The C2SP signed note, as `GET /q/v1/audit/checkpoint` serves it in text.
    public var note: String
    /// The checkpoint block.
    public var cid: String
    /// The C2SP verifier key of the node's checkpoints (`NAME+KEYID+KEY`).
    public var verifierKey: String

    public init(_ c: AuditLog.Latest, origin: String, verifierKey: String) {
        self.origin = origin
        size = c.size
        rootHash = Data(c.rootHash).base64EncodedString()
        note = c.note
        cid = c.cid.string
        self.verifierKey = verifierKey
    }
}

/// `GET /q/v1/audit/proof/inclusion`.
public struct AuditInclusionProof: Codable, Sendable, Equatable {
    public var index: UInt64
    public var size: UInt64
    public var leafHash: String
    public var hashes: [String]
    public init(index: UInt64, size: UInt64, leafHash: [UInt8], hashes: [[UInt8]]) {
        (self.index, self.size) = (index, size)
        self.leafHash = Data(leafHash).base64EncodedString()
        self.hashes = hashes.map { Data($0).base64EncodedString() }
    }
}

/// `GET /q/v1/audit/proof/consistency`.
public struct AuditConsistencyProof: Codable, Sendable, Equatable {
    public var from: UInt64
    public var to: UInt64
    public var hashes: [String]
    public init(from: UInt64, to: UInt64, hashes: [[UInt8]]) {
        (self.from, self.to) = (from, to)
        self.hashes = hashes.map { Data($0).base64EncodedString() }
    }
}

/// An event as JSON: its fields, `details` in the DAG-JSON data model (links `{"/": cid}`,
/// bytes `{"/": {"bytes": base64}}`), and `time` (RFC 3339) beside `ts`.
public struct AuditEventInfo: Codable, Sendable, Equatable {
    public var type: String
    public var ref: String
    public var actor: AuthorInfo
    public var layer: String
    public var verdict: String
    public var details: JSONValue
    public var cid: String?
    public var ts: UInt64
    public var time: String
    public var requestId: String

    public init(_ e: AuditEvent) {
        type = e.type
        ref = e.ref
        actor = AuthorInfo(e.actor)
        layer = e.layer
        verdict = e.verdict.rawValue
        details = JSONValue(.map(e.details))
        cid = e.cid?.string
        ts = e.ts
        time = Timestamps.format(e.ts)
        requestId = e.requestId
    }
}

/// One event of a page.
public struct AuditEntryInfo: Codable, Sendable, Equatable {
    public var index: UInt64
    public var cid: String
    public var event: AuditEventInfo
    public init(index: UInt64, cid: CID, event: AuditEvent) {
        self.index = index
        self.cid = cid.string
        self.event = AuditEventInfo(event)
    }
}

/// `GET /q/v1/audit/events`: a page, and where the next one starts (null: none).
public struct AuditEventPage: Codable, Sendable, Equatable {
    public var events: [AuditEntryInfo]
    public var cursor: UInt64?
    public init(events: [AuditEntryInfo], cursor: UInt64?) { (self.events, self.cursor) = (events, cursor) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(events, forKey: .events)
        try c.encode(cursor, forKey: .cursor)
    }
}
