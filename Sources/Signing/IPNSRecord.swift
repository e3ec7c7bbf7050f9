import Foundation
import IPLD
import Multiformats

/// An IPNS record: the `IpnsEntry` protobuf of the IPNS record spec (`specs/ipfs/ipns-record.md`),
/// version 2 — the signed dag-cbor `data` map `{Value, Validity, ValidityType, Sequence, TTL}` and
/// `signatureV2` over `"ipns-signature:" ‖ data` — with the V1 fields (`value`, `validity`,
/// `validityType`, `sequence`, `ttl`, `signatureV1`) kept equal for old readers.
///
/// `parse` reads any record without trusting it; `verify(name:now:)` is the spec's record
/// verification (size, V2 signature by the name's key, V1 fields equal to the signed data,
/// validity in the future). Only verified records may be resolved.
public struct IPNSRecord: Sendable, Equatable {
    /// The most a record may be (the spec's 10 KiB).
    public static let maximumSize = 10 * 1024
    /// The domain `signatureV2` signs under.
    public static let signatureDomain = "ipns-signature:"

    /// The serialized protobuf.
    public let bytes: [UInt8]
    /// The signed dag-cbor `data`.
    public let data: [UInt8]
    public let signatureV2: [UInt8]
    /// `pubKey` (a libp2p public-key protobuf), when the record carries one.
    public let publicKey: [UInt8]?
    /// From the signed data: the path the name points at (`/ipfs/…` or `/ipns/…`).
    public let value: String
    /// From the signed data: the RFC 3339 end of validity (ValidityType 0, EOL).
    public let validity: String
    public let validityType: UInt64
    public let sequence: UInt64
    /// From the signed data: how long a resolver may cache it, in nanoseconds.
    public let ttl: UInt64
    /// The V1 fields, when present (to check against the signed data).
    let v1: V1Fields

    struct V1Fields: Sendable, Equatable {
        var value: [UInt8]?
        var signature: [UInt8]?
        var validityType: UInt64?
        var validity: [UInt8]?
        var sequence: UInt64?
        var ttl: UInt64?
        var any: Bool { value != nil || signature != nil }
    }

    /// A new record for `value`, signed by `key`, valid until `validity` (ns since 1970), with V1
    /// fields and signature for old readers.
    public static func create(value: String, sequence: UInt64, validUntil validity: RFC3339Time, ttl: UInt64, key: SigningKey) throws -> IPNSRecord {
        let validityText = validity.rfc3339
        let data = try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: [
            ("Value", .bytes(Array(value.utf8))), ("Validity", .bytes(Array(validityText.utf8))),
            ("ValidityType", .int(0)), ("Sequence", .int(sequence)), ("TTL", .int(ttl)),
        ])))
        let v2 = key.sign(Signatures.message(domain: signatureDomain, data))
        let v1 = key.sign(Array(value.utf8) + Array(validityText.utf8) + Array("EOL".utf8))
        var w = ProtobufWriter()
        w.bytes(1, Array(value.utf8))
        w.bytes(2, v1)
        w.varint(3, 0)
        w.bytes(4, Array(validityText.utf8))
        w.varint(5, sequence)
        w.varint(6, ttl)
        w.bytes(8, v2)
        w.bytes(9, data)
        let record = try parse(w.out)
        guard record.bytes.count <= maximumSize else { throw IPNSError.tooLarge(record.bytes.count) }
        return record
    }

    /// Reads a record's fields (nothing is verified but its shape).
    public static func parse(_ bytes: [UInt8]) throws -> IPNSRecord {
        guard bytes.count <= maximumSize else { throw IPNSError.tooLarge(bytes.count) }
        var v1 = V1Fields()
        var pub: [UInt8]?
        var sig2: [UInt8]?
        var dataBytes: [UInt8]?
        var r = ProtobufReader(bytes)
        while let (field, value) = try r.next() {
            switch (field, value) {
            case (1, .bytes(let b)): v1.value = b
            case (2, .bytes(let b)): v1.signature = b
            case (3, .varint(let v)): v1.validityType = v
            case (4, .bytes(let b)): v1.validity = b
            case (5, .varint(let v)): v1.sequence = v
            case (6, .varint(let v)): v1.ttl = v
            case (7, .bytes(let b)): pub = b
            case (8, .bytes(let b)): sig2 = b
            case (9, .bytes(let b)): dataBytes = b
            case (1...9, _): throw IPNSError.malformed("IpnsEntry field \(field) has the wrong wire type")
            default: break  // unknown fields are skipped, as protobuf readers do
            }
        }
        guard let sig2, !sig2.isEmpty, let dataBytes, !dataBytes.isEmpty else {
            throw IPNSError.malformed("signatureV2 and data are required (a V1-only record is not accepted)")
        }
        let node: IPLDNode
        do { node = try DAGCBOR().decode(dataBytes) } catch { throw IPNSError.malformed("data is not canonical DAG-CBOR: \(error)") }
        guard case .map(let m) = node else { throw IPNSError.malformed("data: expected a map") }
        func bytesField(_ k: String) throws -> [UInt8] {
            guard case .bytes(let b)? = m[k] else { throw IPNSError.malformed("data.\(k): expected bytes") }
            return b
        }
        func uintField(_ k: String) throws -> UInt64 {
            guard case .integer(.unsigned(let v))? = m[k] else { throw IPNSError.malformed("data.\(k): expected an unsigned integer") }
            return v
        }
        guard let value = String(validating: try bytesField("Value"), as: UTF8.self),
              let validity = String(validating: try bytesField("Validity"), as: UTF8.self)
        else { throw IPNSError.malformed("data.Value and data.Validity must be UTF-8") }
        return IPNSRecord(bytes: bytes, data: dataBytes, signatureV2: sig2, publicKey: pub, value: value, validity: validity,
                          validityType: try uintField("ValidityType"), sequence: try uintField("Sequence"), ttl: try uintField("TTL"), v1: v1)
    }

    /// The record verified for `name` (the libp2p-key multihash of the IPNS name) at `now`, per the
    /// spec's steps: the V2 signature by the key the name inlines (or the record's `pubKey`, whose
    /// hash must be the name), V1 fields equal to the signed data, an EOL validity after `now`.
    public func verify(name: Multihash, now: RFC3339Time) throws {
        let key: [UInt8]
        if let pub = publicKey {
            guard let k = Libp2pKey.ed25519Key(fromProtobuf: pub) else { throw IPNSError.unsupportedKey("pubKey is not an Ed25519 key") }
            guard name.code == .identity, Array(name.digest) == pub else { throw IPNSError.signatureInvalid("pubKey is not the key of the name") }
            key = k
        } else {
            guard name.code == .identity, let k = Libp2pKey.ed25519Key(fromProtobuf: Array(name.digest)) else {
                throw IPNSError.unsupportedKey("the name does not inline an Ed25519 key and the record carries none")
            }
            key = k
        }
        guard Signatures.isValid(signatureV2, of: data, domain: Self.signatureDomain, publicKey: key) else {
            throw IPNSError.signatureInvalid("signatureV2 does not verify with the name's key")
        }
        if v1.any {
            if v1.value != Array(value.utf8) { throw IPNSError.v1Mismatch("value") }
            if v1.validity != Array(validity.utf8) { throw IPNSError.v1Mismatch("validity") }
            if (v1.validityType ?? 0) != validityType { throw IPNSError.v1Mismatch("validityType") }
            if (v1.sequence ?? 0) != sequence { throw IPNSError.v1Mismatch("sequence") }
            if (v1.ttl ?? 0) != ttl { throw IPNSError.v1Mismatch("ttl") }
        }
        guard validityType == 0 else { throw IPNSError.malformed("ValidityType \(validityType) is unknown (0, EOL, is the only one)") }
        guard let end = RFC3339Time(rfc3339: validity) else { throw IPNSError.malformed("Validity \"\(validity)\" is not an RFC 3339 time") }
        guard end > now else { throw IPNSError.expired(validity) }
    }

    /// The end of validity.
    public var validUntil: RFC3339Time? { RFC3339Time(rfc3339: validity) }
}

/// An instant with nanoseconds, read from and written as RFC 3339 (IPNS validity times are Go's
/// RFC3339Nano; Qindex's createdAt and `at=` use it too).
public struct RFC3339Time: Sendable, Comparable, Hashable {
    /// Seconds since 1970 (UTC).
    public var seconds: Int64
    /// 0 ..< 1_000_000_000.
    public var nanoseconds: Int64

    public init(seconds: Int64, nanoseconds: Int64 = 0) {
        self.seconds = seconds + nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000).quotient
        self.nanoseconds = nanoseconds % 1_000_000_000
    }

    /// From milliseconds since 1970.
    public init(milliseconds ms: UInt64) { self.init(seconds: Int64(ms / 1000), nanoseconds: Int64(ms % 1000) * 1_000_000) }

    public static func < (a: RFC3339Time, b: RFC3339Time) -> Bool { (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds) }

    /// `self` plus `ns` nanoseconds.
    public func adding(nanoseconds ns: UInt64) -> RFC3339Time {
        let (s, n) = ns.quotientAndRemainder(dividingBy: 1_000_000_000)
        return RFC3339Time(seconds: seconds &+ Int64(clamping: s), nanoseconds: nanoseconds + Int64(n))
    }

    /// `2026-12-04T20:21:00.123456789Z`, trailing zeros of the fraction dropped (none when whole).
    public var rfc3339: String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let rem = seconds - days * 86_400
        let (y, mo, d) = Self.civil(days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var s = "\(String(repeating: "0", count: max(0, 4 - String(y).count)))\(y)-\(two(mo))-\(two(d))T\(two(rem / 3600)):\(two(rem / 60 % 60)):\(two(rem % 60))"
        if nanoseconds > 0 {
            var frac = String(nanoseconds)
            frac = String(repeating: "0", count: 9 - frac.count) + frac
            while frac.hasSuffix("0") { frac.removeLast() }
            s += "." + frac
        }
        return s + "Z"
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` as Go's RFC 3339 parser does (upper-case
    /// `T` and `Z`, real calendar days, seconds 0–59); nil for anything else.
    public init?(rfc3339 text: String) {
        let u = Array(text.utf8)
        func num(_ from: Int, _ n: Int) -> Int64? {
            guard from + n <= u.count else { return nil }
            var v: Int64 = 0
            for c in u[from..<from + n] {
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        guard u.count >= 20, u[4] == 0x2d, u[7] == 0x2d, u[10] == 0x54, u[13] == 0x3a, u[16] == 0x3a,
              let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2), let s = num(17, 2),
              (1...12).contains(mo), d >= 1, d <= Self.daysIn(month: mo, year: y), h < 24, mi < 60, s < 60
        else { return nil }
        var i = 19
        var nanos: Int64 = 0
        if u[i] == 0x2e {
            i += 1
            var digits = 0
            while i < u.count, u[i] >= 0x30, u[i] <= 0x39 {
                if digits < 9 { nanos = nanos * 10 + Int64(u[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { nanos *= 10 }
        }
        guard i < u.count else { return nil }
        var offset: Int64 = 0
        if u[i] == 0x5a {
            guard i + 1 == u.count else { return nil }
        } else {
            guard u[i] == 0x2b || u[i] == 0x2d, i + 6 == u.count, u[i + 3] == 0x3a, let oh = num(i + 1, 2), let om = num(i + 4, 2) else { return nil }
            offset = (oh * 3600 + om * 60) * (u[i] == 0x2b ? 1 : -1)
        }
        self.init(seconds: Self.days(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset, nanoseconds: nanos)
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    public static func civil(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Why an IPNS record or name was refused.
public enum IPNSError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(Int)
    case malformed(String)
    case unsupportedKey(String)
    case signatureInvalid(String)
    /// A V1 field differs from the signed V2 data.
    case v1Mismatch(String)
    case expired(String)
    /// Not an IPNS name (a `libp2p-key` CID or a peer ID).
    case invalidName(String)

    public var description: String {
        switch self {
        case .tooLarge(let n): "IPNS record of \(n) bytes is over the 10 KiB limit"
        case .malformed(let m): "malformed IPNS record: \(m)"
        case .unsupportedKey(let m): "IPNS record: \(m)"
        case .signatureInvalid(let m): "IPNS record signature invalid: \(m)"
        case .v1Mismatch(let f): "IPNS record invalid: the V1 field \(f) differs from the signed data"
        case .expired(let v): "IPNS record expired (valid until \(v))"
        case .invalidName(let n): "\"\(n)\" is not an IPNS name (a libp2p-key CID or a peer ID)"
        }
    }
}

extension IPNSError: KindedError {
    public var kind: ErrorKind {
        switch self {
        case .tooLarge: .tooLarge
        default: .invalidInput
        }
    }
    public var code: String? {
        switch self {
        case .signatureInvalid: "SIGNATURE_INVALID"
        case .expired: "IPNS_RECORD_EXPIRED"
        default: nil
        }
    }
}

/// IPNS names: the multihash a `libp2p-key` CID (any base) or a base58btc peer ID carries.
public enum IPNSName {
    /// The name's multihash.
    public static func multihash(_ name: String) throws -> Multihash {
        if let c = try? CID(name) {
            guard c.codec == .libp2pKey else { throw IPNSError.invalidName(name) }
            return c.multihash
        }
        if let bytes = try? Multibase.base58btc.decodeWithoutPrefix(Substring(name)), let mh = try? Multihash(bytes: bytes),
           mh.code == .identity || mh.code == .sha2_256 { return mh }
        throw IPNSError.invalidName(name)
    }

    /// The canonical string of a name: a CIDv1 `libp2p-key` in base36 (`k51…`).
    public static func string(_ mh: Multihash) -> String {
        (try? CID(codec: .libp2pKey, multihash: mh).string(base: .base36)) ?? CID(codec: .libp2pKey, multihash: mh).string
    }
}

/// The few protobuf wire forms an `IpnsEntry` uses (varint, length-delimited).
struct ProtobufWriter {
    var out: [UInt8] = []
    mutating func tag(_ field: Int, _ wire: UInt8) { Varint.append(UInt64(field) << 3 | UInt64(wire), to: &out) }
    mutating func varint(_ field: Int, _ v: UInt64) {
        tag(field, 0)
        Varint.append(v, to: &out)
    }
    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        tag(field, 2)
        Varint.append(UInt64(b.count), to: &out)
        out += b
    }
}

struct ProtobufReader {
    enum Value { case varint(UInt64), bytes([UInt8]), fixed }
    let bytes: [UInt8]
    var at = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func readVarint() throws -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard at < bytes.count else { throw IPNSError.malformed("truncated protobuf") }
            let b = bytes[at]
            at += 1
            guard shift < 64 else { throw IPNSError.malformed("protobuf varint too long") }
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
    }

    /// The next field, nil at the end.
    mutating func next() throws -> (Int, Value)? {
        guard at < bytes.count else { return nil }
        let key = try readVarint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0 else { throw IPNSError.malformed("protobuf field number 0") }
        switch key & 7 {
        case 0: return (field, .varint(try readVarint()))
        case 2:
            let n = try readVarint()
            guard n <= UInt64(bytes.count - at) else { throw IPNSError.malformed("truncated protobuf field \(field)") }
            defer { at += Int(n) }
            return (field, .bytes(Array(bytes[at..<at + Int(n)])))
        case 1:
            guard bytes.count - at >= 8 else { throw IPNSError.malformed("truncated protobuf field \(field)") }
            at += 8
            return (field, .fixed)
        case 5:
            guard bytes.count - at >= 4 else { throw IPNSError.malformed("truncated protobuf field \(field)") }
            at += 4
            return (field, .fixed)
        default: throw IPNSError.malformed("protobuf wire type \(key & 7) is not supported")
        }
    }
}
