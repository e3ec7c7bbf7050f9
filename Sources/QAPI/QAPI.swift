import Foundation
import IPLD
import Multiformats
import Qindex
import Signing

// The wire types of the Q API (`/q/v1`): the daemon encodes them, the CLI decodes them (through
// a daemon) or builds them from the node (without one), so both print the same. Every reply is
// the Q envelope, whose five fields are always there (`data` and `cid` may be null). Inside
// `data`, a pointer's `cid` is null when it was deleted and a list's `next` null on its last
// page; fields a record may not have at all (`merged`, `sig`, `updatedAt`, `author.subId`,
// `author.daoId`, a merge outcome's `action`/`root`) are left out when absent.

/// `{"status": "ok"|"error", "code", "message", "data", "cid"}`.
public struct QEnvelope<T: Codable & Sendable>: Codable, Sendable {
    public var status: String
    public var code: String
    public var message: String
    public var data: T?
    /// The object the reply is about (the head record for pointer replies).
    public var cid: String?

    public init(ok data: T, cid: String? = nil) { (status, code, message, self.data, self.cid) = ("ok", "OK", "", data, cid) }

    /// An error reply: `data` the details a caller acts on (nil: null), `cid` null.
    public init(error code: String, message: String, data: T? = nil) { (status, self.code, self.message, self.data, cid) = ("error", code, message, data, nil) }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(status, forKey: .status)
        try c.encode(code, forKey: .code)
        try c.encode(message, forKey: .message)
        try c.encode(data, forKey: .data)
        try c.encode(cid, forKey: .cid)
    }
}

/// An error reply's envelope (`data` carries details, e.g. the current head of a conflict).
public struct QErrorReply: Codable, Sendable, Error, CustomStringConvertible {
    public var status: String
    public var code: String
    public var message: String
    public var description: String { message }
}

/// Who made a record.
public struct AuthorInfo: Codable, Sendable, Equatable {
    public var squidId: String
    public var subId: String?
    public var daoId: String?
    public init(_ r: IdentityRef) { (squidId, subId, daoId) = (r.squidId, r.subId, r.daoId) }
}

/// A record's signature: `pub`, `sig` and `nonce` in standard base64, `ts` in Unix ms.
public struct SignatureInfo: Codable, Sendable, Equatable {
    public var alg: String
    public var pub: String
    public var sig: String
    public var ts: Int64
    public var nonce: String
    public init(_ s: LockSig) {
        (alg, pub, sig, ts, nonce) = (s.alg, Data(s.pub).base64EncodedString(), Data(s.sig).base64EncodedString(), s.ts, Data(s.nonce).base64EncodedString())
    }
}

/// One record of a pointer's history; as a head (`GET`, `PUT`, `DELETE` replies) it also says
/// when the head moved there (`updatedAt`).
public struct PointerRecord: Codable, Sendable, Equatable {
    public var type: String
    public var key: String
    /// The target; null for a tombstone (`deleted`).
    public var cid: String?
    public var version: Int64
    /// This record's CID.
    public var record: String
    public var prev: String?
    public var tags: [String]
    public var createdAt: String
    public var author: AuthorInfo
    public var deleted: Bool
    /// The other heads a merge record joins (merge records only; they carry no signature).
    public var merged: [String]?
    public var sig: SignatureInfo?
    public var updatedAt: String?

    public init(_ r: IndexRecord, cid: CID, head: Head? = nil) {
        (type, key, self.cid, version, record) = (r.type, r.key, r.cid?.string, r.version, cid.string)
        (prev, tags, createdAt, author, deleted) = (r.prev?.string, r.tags, r.createdAt, AuthorInfo(r.author), r.isTombstone)
        merged = r.isMerge ? r.merged.map(\.string) : nil
        sig = r.sig.map(SignatureInfo.init)
        updatedAt = head.map { Timestamps.format($0.updatedAt) }
    }

    enum CodingKeys: String, CodingKey { case type, key, cid, version, record, prev, tags, createdAt, author, deleted, merged, sig, updatedAt }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(key, forKey: .key)
        try c.encode(cid, forKey: .cid)
        try c.encode(version, forKey: .version)
        try c.encode(record, forKey: .record)
        try c.encode(prev, forKey: .prev)
        try c.encode(tags, forKey: .tags)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(author, forKey: .author)
        try c.encode(deleted, forKey: .deleted)
        try c.encodeIfPresent(merged, forKey: .merged)
        try c.encodeIfPresent(sig, forKey: .sig)
        try c.encodeIfPresent(updatedAt, forKey: .updatedAt)
    }
}

/// A pointer's head as lists show it.
public struct PointerSummary: Codable, Sendable, Equatable {
    public var type: String
    public var key: String
    public var cid: String?
    public var version: Int64
    public var record: String
    public var tags: [String]
    public var updatedAt: String
    public var deleted: Bool
    /// Imports only: what the merge did (created, fast-forward, merged, unchanged) and the foreign head.
    public var action: String?
    public var root: String?

    public init(_ h: Head) {
        (type, key, cid, version, record) = (h.type, h.key, h.target?.string, h.version, h.record.string)
        (tags, updatedAt, deleted) = (h.tags, Timestamps.format(h.updatedAt), h.isDeleted)
    }

    public init(_ o: Qindex.MergeOutcome) {
        self.init(o.head)
        (action, root) = (o.action.rawValue, o.root.string)
    }

    enum CodingKeys: String, CodingKey { case type, key, cid, version, record, tags, updatedAt, deleted, action, root }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(key, forKey: .key)
        try c.encode(cid, forKey: .cid)
        try c.encode(version, forKey: .version)
        try c.encode(record, forKey: .record)
        try c.encode(tags, forKey: .tags)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(deleted, forKey: .deleted)
        try c.encodeIfPresent(action, forKey: .action)
        try c.encodeIfPresent(root, forKey: .root)
    }
}

/// `GET …/{type}/{key}/history`: newest first; `next` is the cursor of the next page (null: none).
public struct PointerHistory: Codable, Sendable, Equatable {
    public var records: [PointerRecord]
    public var next: String?
    public init(records: [PointerRecord], next: String?) { (self.records, self.next) = (records, next) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(records, forKey: .records)
        try c.encode(next, forKey: .next)
    }
}

/// `GET /q/v1/index`: a page of live pointers.
public struct PointerList: Codable, Sendable, Equatable {
    public var pointers: [PointerSummary]
    public var next: String?
    public init(pointers: [PointerSummary], next: String?) { (self.pointers, self.next) = (pointers, next) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(pointers, forKey: .pointers)
        try c.encode(next, forKey: .next)
    }
}

/// `POST /q/v1/index/import`: what happened to each pointer.
public struct PointerMerge: Codable, Sendable, Equatable {
    public var merged: [PointerSummary]
    public init(merged: [PointerSummary]) { self.merged = merged }
}

/// The body of `PUT /q/v1/index/{type}/{key}`.
public struct PointerUpdate: Codable, Sendable, Equatable {
    public var cid: String
    public var tags: [String]?
    public var expectedVersion: Int64?
    public var expectedHead: String?
    public var allowMissing: Bool?
    /// A record the client signed: its dag-cbor in standard base64.
    public var record: String?
    public init(cid: String, tags: [String]? = nil, expectedVersion: Int64? = nil, expectedHead: String? = nil, allowMissing: Bool? = nil, record: String? = nil) {
        (self.cid, self.tags, self.expectedVersion, self.expectedHead, self.allowMissing, self.record) = (cid, tags, expectedVersion, expectedHead, allowMissing, record)
    }
}

/// `POST /q/v1/index/{type}/{key}/publish`: the IPNS name a pointer was published as.
public struct NamePublication: Codable, Sendable, Equatable {
    /// The IPNS name (`k51…`).
    public var name: String
    /// What it resolves to (`/ipfs/<target>`).
    public var value: String
    /// The record's sequence (the pointer's version).
    public var sequence: UInt64
    public init(name: String, value: String, sequence: UInt64) { (self.name, self.value, self.sequence) = (name, value, sequence) }
}

/// List cursors: opaque bytes as base64url without padding.
public enum QCursor {
    public static func encode(_ bytes: [UInt8]) -> String { Multibase.base64url.encodeWithoutPrefix(bytes) }
    public static func decode(_ text: String) -> [UInt8]? { try? Multibase.base64url.decodeWithoutPrefix(Substring(text)) }
}

/// Encoding of Q replies: keys sorted, so equal values give equal bytes.
public enum QJSON {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = [UInt8]((try? encoder.encode(value)) ?? Data("{}".utf8))
        bytes.append(0x0a)
        return bytes
    }

    /// The `data` of an ok reply, or the error an error reply carries (an ok reply is parsed
    /// once: a listing of 100k pins is 11 MB).
    public static func data<T: Codable & Sendable>(_ type: T.Type, from body: Data) throws -> T {
        let decoded = Result { try JSONDecoder().decode(QEnvelope<T>.self, from: body) }
        if case .success(let envelope) = decoded, envelope.status == "ok", let data = envelope.data { return data }
        if let e = try? JSONDecoder().decode(QErrorReply.self, from: body), e.status == "error" { throw e }
        guard let data = try decoded.get().data else { throw QErrorReply(status: "error", code: "INTERNAL", message: "the reply has no data") }
        return data
    }

    /// An ok envelope around `data`, JSON already encoded as `encode` would have (keys sorted):
    /// the same bytes `encode(QEnvelope(ok:cid:))` gives, for listings too large for JSONEncoder
    /// to be quick.
    public static func envelope(rawData data: [UInt8], cid: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 80)
        out += Array("{\"cid\":".utf8)
        if let cid { DAGJSON.writeString(cid, to: &out) } else { out += Array("null".utf8) }
        out += Array(",\"code\":\"OK\",\"data\":".utf8)
        out += data
        out += Array(",\"message\":\"\",\"status\":\"ok\"}\n".utf8)
        return out
    }

    /// The bytes of an ok reply's `data`, as the node wrote them (`--json` output passes them
    /// through), or the error an error reply carries. Only the top level is read.
    public static func rawData(from body: Data) throws -> Data {
        let bytes = [UInt8](body)
        var scan = TopLevelScan(bytes: bytes)
        let fields = scan.fields()
        guard let fields, let status = fields["status"], let data = fields["data"] else {
            if let e = try? JSONDecoder().decode(QErrorReply.self, from: body), e.status == "error" { throw e }
            throw QErrorReply(status: "error", code: "INTERNAL", message: "the reply is not a Q envelope")
        }
        guard bytes[status] == Array("\"ok\"".utf8)[...] else {
            throw (try? JSONDecoder().decode(QErrorReply.self, from: body)) ?? QErrorReply(status: "error", code: "INTERNAL", message: "the reply is not ok")
        }
        return Data(bytes[data])
    }

    /// The byte ranges of a JSON object's top-level values, found without parsing them.
    struct TopLevelScan {
        let bytes: [UInt8]
        var i = 0

        mutating func fields() -> [String: Range<Int>]? {
            var out: [String: Range<Int>] = [:]
            space()
            guard next(UInt8(ascii: "{")) else { return nil }
            space()
            if next(UInt8(ascii: "}")) { return out }
            while true {
                space()
                let start = i
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), skipValue(depth: 0) else { return nil }
                let key = String(decoding: bytes[(start + 1)..<(i - 1)], as: UTF8.self)
                space()
                guard next(UInt8(ascii: ":")) else { return nil }
                space()
                let v = i
                guard skipValue(depth: 0) else { return nil }
                out[key] = v..<i
                space()
                if next(UInt8(ascii: ",")) { continue }
                return next(UInt8(ascii: "}")) ? out : nil
            }
        }

        mutating func space() {
            while i < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 }
        }

        mutating func next(_ b: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == b else { return false }
            i += 1
            return true
        }

        /// Moves past one value: a string (escapes honoured), a nested object or array, or a
        /// scalar up to the next delimiter.
        mutating func skipValue(depth: Int) -> Bool {
            guard i < bytes.count, depth < 512 else { return false }
            switch bytes[i] {
            case UInt8(ascii: "\""):
                i += 1
                while i < bytes.count {
                    switch bytes[i] {
                    case UInt8(ascii: "\\"): i += 2
                    case UInt8(ascii: "\""):
                        i += 1
                        return true
                    default: i += 1
                    }
                }
                return false
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close = bytes[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                i += 1
                while true {
                    space()
                    guard i < bytes.count else { return false }
                    if bytes[i] == close {
                        i += 1
                        return true
                    }
                    if bytes[i] == UInt8(ascii: ",") || bytes[i] == UInt8(ascii: ":") {
                        i += 1
                        continue
                    }
                    guard skipValue(depth: depth + 1) else { return false }
                }
            default:
                let start = i
                while i < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 }
                return i > start
            }
        }
    }
}
