import Foundation
import Locking
import Storage

/// A response kept for an `Idempotency-Key`: what a retry of the same request gets back.
public struct IdempotentResponse: Codable, Sendable, Equatable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data
    /// SHA-256 of the request (method, path, canonical query, body hash), lowercase hex.
    public var fingerprint: String
    public var created: UInt64
    public var expires: UInt64

    public init(status: Int, headers: [String: String], body: Data, fingerprint: String, created: UInt64, expires: UInt64) {
        self.status = status
        self.headers = headers
        self.body = body
        self.fingerprint = fingerprint
        self.created = created
        self.expires = expires
    }
}

extension AccessControl {
    /// What to do with an idempotent request.
    public enum IdempotencyStart: Sendable {
        /// First time: run it, then `finishIdempotent` with the ticket.
        case run(IdempotencyTicket)
        /// Seen before with the same fingerprint: answer this.
        case replay(IdempotentResponse)
    }

    /// A running idempotent request.
    public struct IdempotencyTicket: Sendable {
        let subject: String
        let key: String
        let fingerprint: String
    }

    /// Checks an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
    public static func checkIdempotencyKey(_ key: String) throws {
        guard (1...255).contains(key.utf8.count), key.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            throw AccessError.invalid("Idempotency-Key: 1 to 255 visible ASCII characters")
        }
    }

    /// The request's fingerprint: SHA-256 of method, path, canonical query and body hash.
    public static func fingerprint(method: String, path: String, query: String?, bodySHA256: String) -> String {
        SignedRequest.sha256Hex(Array([method.uppercased(), path, SignedRequest.canonicalQuery(query), bodySHA256].joined(separator: "\n").utf8))
    }

    private static func recordKey(_ subject: String, _ key: String) -> [UInt8] {
        idempotencyPrefix + Array(subject.utf8) + [0] + Array(key.utf8)
    }

    private static func expiryKey(_ expires: UInt64, _ subject: String, _ key: String) -> [UInt8] {
        var k = expiryPrefix
        for shift in stride(from: 56, through: 0, by: -8) { k.append(UInt8(truncatingIfNeeded: expires >> UInt64(shift))) }
        return k + Array(subject.utf8) + [0] + Array(key.utf8)
    }

    /// Starts (or replays) the request `fingerprint` of `subject` under `key`: 422
    /// `IDEMPOTENCY_KEY_REUSED` if the key was used for another request, 409
    /// `IDEMPOTENCY_KEY_IN_USE` while the first one runs.
    public func beginIdempotent(subject: String, key: String, fingerprint: String) throws -> IdempotencyStart {
        try Self.checkIdempotencyKey(key)
        let slot = subject + "\u{0}" + key
        let now = clock.now
        return try running.locked { r in
            if let other = r[slot] {
                if other == fingerprint { throw AccessError.idempotencyInProgress("a request with this Idempotency-Key is still running; retry when it has finished") }
                throw AccessError.idempotencyMismatch("this Idempotency-Key was used for a different request (method, path, query or body)")
            }
            if let raw = try db.get(Self.recordKey(subject, key)), let kept = try? JSONDecoder().decode(IdempotentResponse.self, from: Data(raw)), kept.expires > now {
                guard kept.fingerprint == fingerprint else {
                    throw AccessError.idempotencyMismatch("this Idempotency-Key was used for a different request (method, path, query or body)")
                }
                return .replay(kept)
            }
            r[slot] = fingerprint
            return .run(IdempotencyTicket(subject: subject, key: key, fingerprint: fingerprint))
        }
    }

    /// Ends the request of `ticket`: keeps `response` (status, headers, body) for the TTL, or
    /// nothing (nil: a failure worth retrying, such as a 5xx), so a retry runs it again. Collects
    /// some expired records on the way.
    public func finishIdempotent(_ ticket: IdempotencyTicket, status: Int?, headers: [String: String] = [:], body: [UInt8] = []) {
        let slot = ticket.subject + "\u{0}" + ticket.key
        defer { _ = running.locked { $0.removeValue(forKey: slot) } }
        guard let status else { return }
        let now = clock.now
        let kept = IdempotentResponse(status: status, headers: headers, body: Data(body), fingerprint: ticket.fingerprint, created: now, expires: now + idempotencyTTL)
        let batch = WriteBatch()
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        guard let value = try? e.encode(kept) else { return }
        if let old = try? db.get(Self.recordKey(ticket.subject, ticket.key)), let o = try? JSONDecoder().decode(IdempotentResponse.self, from: Data(old)) {
            batch.delete(Self.expiryKey(o.expires, ticket.subject, ticket.key))
        }
        batch.put(Self.recordKey(ticket.subject, ticket.key), Array(value))
        batch.put(Self.expiryKey(kept.expires, ticket.subject, ticket.key), [])
        collectExpired(into: batch, now: now, limit: 64)
        try? db.write(batch, sync: true)
    }

    /// Deletes up to `limit` records whose time has passed (all of them when nil); returns how many.
    @discardableResult
    public func collectExpiredIdempotency(limit: Int? = nil) throws -> Int {
        let batch = WriteBatch()
        let n = collectExpired(into: batch, now: clock.now, limit: limit ?? .max)
        if n > 0 { try db.write(batch, sync: false) }
        return n
    }

    @discardableResult
    private func collectExpired(into batch: WriteBatch, now: UInt64, limit: Int) -> Int {
        var n = 0
        let it = db.makeIterator(fillCache: false)
        try? it.forEach(prefix: Self.expiryPrefix) { k, _ in
            guard n < limit, k.count > Self.expiryPrefix.count + 8 else { return false }
            var expires: UInt64 = 0
            for b in k[Self.expiryPrefix.count..<(Self.expiryPrefix.count + 8)] { expires = expires << 8 | UInt64(b) }
            guard expires <= now else { return false }
            batch.delete(k)
            batch.delete(Self.idempotencyPrefix + Array(k[(Self.expiryPrefix.count + 8)...]))
            n += 1
            return true
        }
        return n
    }
}
