import Crypto
import Foundation
import Locking
import Multiformats
import Synchronization

/// A request signed with a key of a sQuid identity (Qlock request signatures; Docs/access.md).
///
/// The signature is Ed25519 over the UTF-8 canonical string of eight lines joined by `\n`:
/// method (upper case), path (as sent, percent-encoding kept), the query parameters sorted by
/// name then value and joined `k=v&…` (as sent; empty line if none), `x-ts`, `x-nonce`, the
/// lowercase hex SHA-256 of the body, `x-squid-id`, `x-subid` (empty if absent).
public struct SignedRequest: Sendable {
    public var method: String
    public var path: String
    /// The query as sent, without `?` (nil or empty: none).
    public var query: String?
    public var squidId: String
    public var subId: String?
    public var timestamp: String
    public var nonce: String
    public var signature: String
    /// Lowercase hex SHA-256 of the body.
    public var bodySHA256: String

    public init(method: String, path: String, query: String?, squidId: String, subId: String?, timestamp: String,
                nonce: String, signature: String, bodySHA256: String) {
        self.method = method
        self.path = path
        self.query = query
        self.squidId = squidId
        self.subId = subId
        self.timestamp = timestamp
        self.nonce = nonce
        self.signature = signature
        self.bodySHA256 = bodySHA256
    }

    /// The lowercase hex SHA-256 of `bytes`.
    /// (The project's SHA-256: OpenSSL on the CPU's SHA extensions, through `Multihash.compute`.)
    public static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String { Base16.encode(sha256(bytes)) }

    public static func sha256Hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { sha256Hex($0) } }

    /// The SHA-256 digest of `bytes`.
    static func sha256(_ bytes: UnsafeRawBufferPointer) -> ArraySlice<UInt8> {
        // sha2-256 is always computed: compute throws only for identity or unknown functions.
        ArraySlice((try! Multihash.compute(bytes, function: .sha2_256)).digest)
    }

    /// The SHA-256 of an empty body.
    public static let emptyBodySHA256 = sha256Hex([UInt8]())

    /// The query's parameters as sent, sorted by name then value, joined `k=v&…` (a parameter
    /// without `=` counts as `k=`; empty parameters from `&&` are dropped).
    public static func canonicalQuery(_ query: String?) -> String {
        guard let query, !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&", omittingEmptySubsequences: true).map { part -> (Substring, Substring) in
            if let eq = part.firstIndex(of: "=") { return (part[..<eq], part[part.index(after: eq)...]) }
            return (part, "")
        }
        return pairs.sorted { $0.0 != $1.0 ? Array($0.0.utf8).lexicographicallyPrecedes($1.0.utf8) : Array($0.1.utf8).lexicographicallyPrecedes($1.1.utf8) }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// The eight lines that are signed.
    public var canonicalString: String {
        [method.uppercased(), path, Self.canonicalQuery(query), timestamp, nonce, bodySHA256, squidId, subId ?? ""].joined(separator: "\n")
    }

    /// Checks the headers' shapes; returns the timestamp (ms) and the 64 signature bytes.
    public func parsed() throws -> (ms: UInt64, signature: [UInt8]) {
        // Canonical decimal (no leading zero): one timestamp has one spelling, as it is signed.
        guard timestamp.utf8.count <= 16, timestamp.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let ms = UInt64(timestamp), String(ms) == timestamp else {
            throw AccessError.signatureInvalid("x-ts: Unix time in milliseconds (decimal digits, no leading zero)")
        }
        guard (16...64).contains(nonce.utf8.count), nonce.unicodeScalars.allSatisfy({
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_")
        }) else { throw AccessError.signatureInvalid("x-nonce: 16 to 64 characters of A-Z a-z 0-9 _ -") }
        guard let sig = Data(base64Encoded: signature), sig.count == 64 else {
            throw AccessError.signatureInvalid("x-sig: standard base64 of the 64-byte Ed25519 signature")
        }
        if let subId, subId.utf8.count > 128 || subId.unicodeScalars.contains(where: {
            [.control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned].contains($0.properties.generalCategory)
        }) {
            throw AccessError.signatureInvalid("x-subid: at most 128 bytes, no control, format or separator characters")
        }
        return (ms, [UInt8](sig))
    }

    /// Whether `signature` is `key`'s over the canonical string.
    static func verify(_ signature: [UInt8], key: [UInt8], message: [UInt8]) -> Bool {
        guard let k = try? Curve25519.Signing.PublicKey(rawRepresentation: key) else { return false }
        return k.isValidSignature(signature, for: message)
    }
}

/// Nonces seen inside the signature window, per identity: a nonce is refused again until its
/// request's timestamp has left the window. Bounded: when full, signed requests are refused
/// (503-like `RATE_LIMIT_EXCEEDED`) rather than forgetting nonces still in the window.
final class NonceCache: Sendable {
    private struct State {
        var seen: [String: UInt64] = [:]
        /// When expired nonces are next swept (every 10 s).
        var nextSweep: UInt64 = 0
        /// When the cache was last swept: a full one is swept at most once a second, so a flood
        /// of refused requests cannot make each one scan it.
        var lastSweep: UInt64 = 0
    }
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Records `nonce` of `squidId` until `until` (ms); false if it is already there.
    func insert(_ nonce: String, of squidId: String, until: UInt64, now: UInt64) throws -> Bool {
        try state.locked { s in
            if now >= s.nextSweep || (s.seen.count >= capacity && now >= s.lastSweep + 1_000) {
                s.seen = s.seen.filter { $0.value > now }
                s.lastSweep = now
                s.nextSweep = now + 10_000
            }
            let key = squidId + "\u{0}" + nonce
            if let expiry = s.seen[key], expiry > now { return false }
            guard s.seen.count < capacity else {
                throw AccessError.rateLimited("too many signed requests in the window (\(capacity) nonces held); try again", retryAfter: 1)
            }
            s.seen[key] = until
            return true
        }
    }

    /// Whether `nonce` of `squidId` is held (seen within the window); records nothing.
    func contains(_ nonce: String, of squidId: String, now: UInt64) -> Bool {
        state.locked { ($0.seen[squidId + "\u{0}" + nonce] ?? 0) > now }
    }

    var count: Int { state.locked { $0.seen.count } }
}
