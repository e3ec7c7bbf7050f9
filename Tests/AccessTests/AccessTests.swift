import Synchronization
import Crypto
import Foundation
import Multiformats
import Pinning
import Signing
import Storage
import Testing
import TestSupport
@testable import Access

/// A fresh access store over its own LevelDB, with a clock the test moves.
final class AccessHarness: @unchecked Sendable {
    let dir = TemporaryDirectory()
    let clock: ManualClock
    var db: LevelDB
    var access: AccessControl
    let adminToken = "admin-secret-token"
    var configuration: AccessConfiguration

    init(start: UInt64 = SystemClock().now, configuration: AccessConfiguration = AccessConfiguration()) throws {
        clock = ManualClock(start: start)
        self.configuration = configuration
        db = try LevelDB(path: dir.path + "/db", options: LevelDB.Options())
        access = try AccessControl(db: db, clock: clock, configuration: configuration, adminToken: adminToken)
    }

    /// Authenticates a signed request and records its nonce, as the middleware does once admitted.
    func accept(_ r: SignedRequest) throws -> Principal {
        let p = try access.authenticate(r)
        try access.recordNonce(r)
        return p
    }

    /// Closes and opens the store again (what a restart sees).
    func reopen() throws {
        db.close()
        db = try LevelDB(path: dir.path + "/db", options: LevelDB.Options())
        access = try AccessControl(db: db, clock: clock, configuration: configuration, adminToken: adminToken)
    }

    /// A signed request of `key` over the canonical string, at the clock's now unless `ts` is given.
    func signed(_ key: Curve25519.Signing.PrivateKey, squid: String, method: String = "GET", path: String = "/q/v1/whoami",
                query: String? = nil, body: [UInt8] = [], subId: String? = nil, ts: UInt64? = nil, nonce: String? = nil) throws -> SignedRequest {
        var r = SignedRequest(method: method, path: path, query: query, squidId: squid, subId: subId, timestamp: String(ts ?? clock.now),
                              nonce: nonce ?? "n" + UUID().uuidString.replacingOccurrences(of: "-", with: ""), signature: "",
                              bodySHA256: SignedRequest.sha256Hex(body))
        r.signature = try key.signature(for: Array(r.canonicalString.utf8)).base64EncodedString()
        return r
    }
}

extension Curve25519.Signing.PrivateKey {
    var publicBase64: String { publicKey.rawRepresentation.base64EncodedString() }
}

@Suite struct ScopeTests {
    @Test func coverage() throws {
        func covers(_ g: String, _ r: String) throws -> Bool { try Scope(g).covers(Scope(r)) }
        #expect(try covers("admin", "index:write:profile/alice"))
        #expect(try covers("index:write", "index:write:profile/alice"))
        #expect(try covers("index:write:profile", "index:write:profile/alice"))
        #expect(try covers("index:write:profile/al", "index:write:profile/alice"))
        #expect(try !covers("index:write:profile/al", "index:write:profile/bob"))
        #expect(try !covers("index:write:prof", "index:write:profile/alice"))
        #expect(try !covers("index:write:profile", "index:write:profile2/x"))
        #expect(try covers("drive:*", "drive:read"))
        #expect(try !covers("drive:read", "drive:write"))
        #expect(try !covers("write", "read"))
        #expect(try !covers("read", "write"))
        #expect(try covers("registry:publish", "registry:publish:qindex"))
        #expect(try !covers("registry:publish:qindex", "registry:publish:qdrive"))
        #expect(try !covers("pin", "gc"))
    }

    @Test func unknownAndMalformedScopesAreRefused() throws {
        for bad in ["", "reed", "admin:all", "index:write:", "index:write:/key", "index:write:NOTES", "index:write:n*", "index:write:-x/k",
                    "index:write:" + String(repeating: "t", count: 65), "drive:erase", "read write", "read,pin", "gc\u{0}"] {
            #expect(throws: AccessError.self, "\(bad)") { try Scope(bad) }
        }
        for good in ["index:write:notes", "index:write:my-type.v2_x/any*key", "index:write:" + String(repeating: "t", count: 64)] {
            #expect(throws: Never.self, "\(good)") { try Scope(good) }
        }
        #expect(throws: AccessError.self) { try Scope.list("read,,pin") }
        #expect(try Scope.list("pin, read,pin").map(\.value) == ["pin", "read"])
    }
}

@Suite struct SignedRequestTests {
    struct Vectors: Decodable {
        struct Request: Decodable {
            let method, path, query, body, squidId, ts, nonce, canonical, sig: String
            let subId: String?
        }
        let publicKey: String
        let requests: [Request]
    }

    static let vectors: Vectors = {
        let url = URL(fileURLWithPath: Fixtures.repositoryRoot + "/Tests/AccessTests/Vectors/signed-requests.json")
        return try! JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }()

    /// Vectors signed by an independent implementation (Python `cryptography`): our canonical
    /// string is theirs byte for byte, their signatures verify, and any change to what is signed
    /// (body, query value, path, subidentity, timestamp) makes verification fail; reordering the
    /// query does not.
    @Test(arguments: vectors.requests.indices) func vector(_ i: Int) throws {
        let v = Self.vectors.requests[i]
        let h = try AccessHarness(start: UInt64(v.ts)!)
        _ = try h.access.addIdentity(v.squidId, key: Self.vectors.publicKey)
        let body = [UInt8](Data(base64Encoded: v.body)!)
        func request(_ change: (inout SignedRequest) -> Void = { _ in }) -> SignedRequest {
            var r = SignedRequest(method: v.method, path: v.path, query: v.query, squidId: v.squidId, subId: v.subId, timestamp: v.ts,
                                  nonce: v.nonce, signature: v.sig, bodySHA256: SignedRequest.sha256Hex(body))
            change(&r)
            return r
        }
        #expect(request().canonicalString == v.canonical)
        // Grant nothing: authentication succeeds with no scopes.
        let p = try h.accept(request())
        #expect(p.identity?.squidId == v.squidId && p.identity?.subId == v.subId && p.scopes.isEmpty)
        // The same nonce again: a replay.
        #expect(throws: AccessError.self) { try h.accept(request()) }
        let reordered = v.query.split(separator: "&").reversed().joined(separator: "&")
        let fresh = { (r: inout SignedRequest) in r.nonce = "other-nonce-" + UUID().uuidString.prefix(8) }
        // What is signed covers the nonce: a fresh nonce with the old signature fails…
        #expect(throws: AccessError.signatureInvalid("the signature does not verify with the keys of \(v.squidId) (check the canonical string: Docs/access.md)")) {
            try h.accept(request(fresh))
        }
        // …so each change below is checked against a request otherwise valid.
        #expect(request { $0.query = reordered }.canonicalString == v.canonical)
        for (name, change) in [
            ("body", { (r: inout SignedRequest) in r.bodySHA256 = SignedRequest.sha256Hex(body + [0x20]) }),
            ("path", { (r: inout SignedRequest) in r.path += "x" }),
            ("query", { (r: inout SignedRequest) in r.query = (r.query ?? "") + "&z=1" }),
            ("method", { (r: inout SignedRequest) in r.method = r.method == "GET" ? "POST" : "GET" }),
            ("subId", { (r: inout SignedRequest) in r.subId = (r.subId ?? "") + "x" }),
            ("timestamp", { (r: inout SignedRequest) in r.timestamp = String(UInt64(r.timestamp)! + 1) }),
        ] as [(String, (inout SignedRequest) -> Void)] {
            #expect(request(change).canonicalString != v.canonical, "\(name)")
            let h2 = try AccessHarness(start: UInt64(v.ts)!)
            _ = try h2.access.addIdentity(v.squidId, key: Self.vectors.publicKey)
            #expect(throws: AccessError.self, "\(name)") { try h2.accept(request(change)) }
            #expect(try h2.accept(request()).identity?.squidId == v.squidId, "the unchanged request still verifies")
        }
    }

    @Test func wrongKeyStaleTimeAndMalformedHeaders() throws {
        let h = try AccessHarness()
        let alice = Curve25519.Signing.PrivateKey(), mallory = Curve25519.Signing.PrivateKey()
        _ = try h.access.addIdentity("alice", key: alice.publicBase64)
        // A key signs from its registration on: a request dated before it is refused.
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "alice", ts: h.clock.now - 1)) }
        h.clock.advance(by: .milliseconds(Int64(h.access.window + 10)))
        #expect(throws: AccessError.self) { try h.accept(h.signed(mallory, squid: "alice")) }
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "bob")) }
        let window = h.access.window
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "alice", ts: h.clock.now - window - 1)) }
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "alice", ts: h.clock.now + window + 1)) }
        #expect(try h.accept(h.signed(alice, squid: "alice", ts: h.clock.now - window)).identity?.squidId == "alice")
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "alice", nonce: "short")) }
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "alice", nonce: String(repeating: "a", count: 65))) }
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "alice", nonce: "has space in the nonce")) }
        var r = try h.signed(alice, squid: "alice")
        r.signature = "not base64!"
        #expect(throws: AccessError.self) { try h.accept(r) }
    }

    /// Nonces are kept in memory only: after a restart, requests dated before it are refused, so
    /// one seen by the earlier process cannot be replayed to the new one.
    @Test func noReplayAcrossARestart() throws {
        let h = try AccessHarness()
        let alice = Curve25519.Signing.PrivateKey()
        _ = try h.access.addIdentity("alice", key: alice.publicBase64)
        let r = try h.signed(alice, squid: "alice")
        _ = try h.accept(r)
        h.clock.advance(by: .milliseconds(1))
        try h.reopen()
        #expect(throws: AccessError.self) { try h.accept(r) }
        _ = try h.accept(h.signed(alice, squid: "alice"))
    }

    /// Durations past 1000 years (or past UInt64) are refused, never wrapped or trapped on.
    @Test func durationsAreBounded() throws {
        #expect(parseDuration("90s") == 90_000 && parseDuration("1h30m") == 5_400_000)
        #expect(parseDuration("365000d") == maximumDuration && parseDuration("365001d") == nil)
        #expect(parseDuration(String(repeating: "999999999d", count: 214)) == nil)
        let h = try AccessHarness()
        #expect(throws: AccessError.self) { try h.access.expiry("3000000d") }
        #expect(throws: AccessError.self) { try AccessControl.duration("999999999d999999999d", fallback: 0, field: "overlap") }
    }

    /// A nonce is remembered until its request's time leaves the window, then forgotten (and the
    /// request is then refused for its time anyway).
    @Test func replayWindow() throws {
        let h = try AccessHarness()
        let alice = Curve25519.Signing.PrivateKey()
        _ = try h.access.addIdentity("alice", key: alice.publicBase64)
        let r = try h.signed(alice, squid: "alice", nonce: "replayed-nonce-0001")
        _ = try h.accept(r)
        h.clock.advance(by: .milliseconds(Int64(h.access.window)))
        #expect(throws: AccessError.signatureInvalid("x-nonce was already used (a replayed request)")) { try h.accept(r) }
        h.clock.advance(by: .milliseconds(Int64(2)))
        #expect(throws: AccessError.self) { try h.accept(r) }
        // The same nonce from another identity is not a replay.
        let bob = Curve25519.Signing.PrivateKey()
        _ = try h.access.addIdentity("bob", key: bob.publicBase64)
        _ = try h.accept(h.signed(bob, squid: "bob", nonce: "replayed-nonce-0001"))
    }
}

@Suite struct IdentityAndGrantTests {
    /// A rotated-out key signs during the overlap, not after; what it signed while valid stays
    /// verifiable (`isKey` at that time), and the new key signs from the rotation on.
    @Test func keyRotationWithOverlap() throws {
        let h = try AccessHarness()
        let old = Curve25519.Signing.PrivateKey(), new = Curve25519.Signing.PrivateKey()
        _ = try h.access.addIdentity("alice", key: old.publicBase64)
        let before = h.clock.now
        h.clock.advance(by: .milliseconds(Int64(1000)))
        let rotated = try h.access.rotateKey("alice", key: new.publicBase64, overlap: 60_000)
        #expect(rotated.keys.count == 2 && rotated.keys[0].notAfter == h.clock.now + 60_000)
        _ = try h.accept(h.signed(old, squid: "alice"))
        _ = try h.accept(h.signed(new, squid: "alice"))
        h.clock.advance(by: .milliseconds(Int64(60_001)))
        #expect(throws: AccessError.self) { try h.accept(h.signed(old, squid: "alice")) }
        _ = try h.accept(h.signed(new, squid: "alice"))
        #expect(h.access.isKey(Array(old.publicKey.rawRepresentation), of: "alice", at: before + 10))
        #expect(!h.access.isKey(Array(old.publicKey.rawRepresentation), of: "alice", at: h.clock.now))
        #expect(!h.access.isKey(Array(new.publicKey.rawRepresentation), of: "alice", at: before))
    }

    /// Grants and revocations take effect on the next authentication and survive a restart;
    /// expired grants give nothing.
    @Test func grantsRevocationAndPersistence() throws {
        let h = try AccessHarness()
        let alice = Curve25519.Signing.PrivateKey()
        _ = try h.access.addIdentity("alice", key: alice.publicBase64, label: "Alice's laptop")
        #expect(throws: AccessError.self) { try h.access.addGrant(to: "nobody", scopes: [.read], expires: nil, by: "admin") }
        let g = try h.access.addGrant(to: "alice", scopes: [.read, Scope("index:write:notes")], expires: nil, by: "admin")
        let short = try h.access.addGrant(to: "alice", scopes: [.pin], expires: h.clock.now + 1000, by: "admin")
        var p = try h.accept(h.signed(alice, squid: "alice"))
        #expect(p.allows(.read) && p.allows(.indexWrite(type: "notes", key: "x")) && p.allows(.pin) && !p.allows(.write))
        #expect(throws: AccessError.denied(required: .write, subject: "alice", grantTo: "alice")) { try p.require(.write) }
        h.clock.advance(by: .milliseconds(Int64(1000)))
        p = try h.accept(h.signed(alice, squid: "alice"))
        #expect(!p.allows(.pin))
        #expect(h.access.grants(subject: "alice").map(\.id) == [g.id])
        #expect(Set(h.access.grants(subject: "alice", all: true).map(\.id)) == [g.id, short.id])
        _ = try h.access.revokeGrant(g.id)
        p = try h.accept(h.signed(alice, squid: "alice"))
        #expect(p.scopes.isEmpty)
        _ = try h.access.addGrant(to: "alice", scopes: [.read], expires: nil, by: "admin")
        try h.reopen()
        p = try h.accept(h.signed(alice, squid: "alice"))
        #expect(p.scopes == [.read])
        #expect(try h.access.identity("alice").label == "Alice's laptop")
        _ = try h.access.revokeIdentity("alice")
        try h.reopen()
        #expect(throws: AccessError.self) { try h.accept(h.signed(alice, squid: "alice")) }
        // A revoked name is not registered again, and the refusal says so (not "rotate its key",
        // which a revoked identity cannot).
        #expect(throws: AccessError.exists("identity alice was revoked; a revoked name is not used again (register the new key under another name)")) {
            try h.access.addIdentity("alice", key: Curve25519.Signing.PrivateKey().publicBase64)
        }
    }

    /// Only the token's hash is stored; a token acts with its scopes (and grants to `token:ID`),
    /// as its identity when it has one; revocation and expiry end it at once.
    @Test func tokens() throws {
        let h = try AccessHarness()
        _ = try h.access.addIdentity("alice", key: Curve25519.Signing.PrivateKey().publicBase64)
        let (secret, record) = try h.access.createToken(scopes: [.read], identity: "alice", expires: h.clock.now + 10_000, label: "ci")
        let (other, plain) = try h.access.createToken(scopes: [.pin], identity: nil, expires: nil, label: nil)
        #expect(secret.hasPrefix("qst_") && secret != other)
        // Nothing in the database holds the secret.
        var leaked = false
        try h.db.makeIterator().forEach(prefix: KeySpace.access.prefix) { _, v in
            if String(decoding: v, as: UTF8.self).contains(String(secret.dropFirst(4))) { leaked = true }
            return true
        }
        #expect(!leaked)
        var p = try h.access.authenticate(bearer: Substring(secret))
        #expect(p.identity?.squidId == "alice" && p.subject == "alice" && p.scopes == [.read] && p.credential == .token(id: record.id))
        _ = try h.access.addGrant(to: "token:\(plain.id)", scopes: [.gc], expires: nil, by: "admin")
        p = try h.access.authenticate(bearer: Substring(other))
        #expect(p.identity == nil && p.subject == "token:\(plain.id)" && Set(p.scopes) == [.pin, .gc])
        #expect(try h.access.authenticate(bearer: Substring(h.adminToken)).allows(.admin))
        #expect(throws: AccessError.self) { try h.access.authenticate(bearer: Substring(secret + "x")) }
        _ = try h.access.revokeToken(plain.id)
        #expect(throws: AccessError.self) { try h.access.authenticate(bearer: Substring(other)) }
        h.clock.advance(by: .milliseconds(Int64(10_000)))
        #expect(throws: AccessError.self) { try h.access.authenticate(bearer: Substring(secret)) }
        try h.reopen()
        #expect(h.access.tokens().isEmpty && h.access.tokens(all: true).count == 2)
    }
}

@Suite struct IdempotencyTests {
    @Test func replayMismatchInProgressAndExpiry() throws {
        let h = try AccessHarness()
        let f1 = AccessControl.fingerprint(method: "POST", path: "/pins", query: nil, bodySHA256: SignedRequest.emptyBodySHA256)
        let f2 = AccessControl.fingerprint(method: "POST", path: "/pins", query: "a=1", bodySHA256: SignedRequest.emptyBodySHA256)
        guard case .run(let ticket) = try h.access.beginIdempotent(subject: "alice", key: "k1", fingerprint: f1) else { Issue.record("first run"); return }
        #expect(throws: AccessError.self) { try h.access.beginIdempotent(subject: "alice", key: "k1", fingerprint: f1) }
        #expect(throws: AccessError.self) { try h.access.beginIdempotent(subject: "alice", key: "k1", fingerprint: f2) }
        // Another subject's key of the same name is its own.
        guard case .run(let other) = try h.access.beginIdempotent(subject: "bob", key: "k1", fingerprint: f2) else { Issue.record("bob"); return }
        h.access.finishIdempotent(other, status: nil)
        h.access.finishIdempotent(ticket, status: 202, headers: ["Content-Type": "application/json"], body: Array("{\"ok\":1}".utf8))
        try h.reopen()
        guard case .replay(let kept) = try h.access.beginIdempotent(subject: "alice", key: "k1", fingerprint: f1) else { Issue.record("replay"); return }
        #expect(kept.status == 202 && kept.body == Data("{\"ok\":1}".utf8))
        #expect(throws: AccessError.idempotencyMismatch("this Idempotency-Key was used for a different request (method, path, query or body)")) {
            try h.access.beginIdempotent(subject: "alice", key: "k1", fingerprint: f2)
        }
        // bob's failed (unkept) run may run again.
        guard case .run = try h.access.beginIdempotent(subject: "bob", key: "k1", fingerprint: f2) else { Issue.record("bob again"); return }
        h.clock.advance(by: .milliseconds(Int64(24 * 3_600_000)))
        #expect(try h.access.collectExpiredIdempotency() == 1)
        var left = 0
        try h.db.makeIterator().forEach(prefix: AccessControl.idempotencyPrefix) { _, _ in left += 1; return true }
        #expect(left == 0)
        guard case .run = try h.access.beginIdempotent(subject: "alice", key: "k1", fingerprint: f2) else { Issue.record("after expiry"); return }
        #expect(throws: AccessError.self) { try h.access.beginIdempotent(subject: "alice", key: String(repeating: "k", count: 256), fingerprint: f1) }
    }
}

@Suite struct RateLimiterTests {
    /// 32 concurrent callers every millisecond for 3 s (a clock the test moves): exactly burst +
    /// rate × time are admitted, for requests and for bytes.
    @Test(arguments: [(200.0, 20.0), (1000.0, 1.0), (7.5, 3.0)])
    func bucketUnderContention(rate: Double, burst: Double) async throws {
        let offset = Atomic<Int64>(0)
        let base = ContinuousClock.now
        let limiter = RateLimiter(now: { base + .nanoseconds(offset.load(ordering: .relaxed)) })
        let limit = RateLimit(requestsPerSecond: rate, requestBurst: burst)
        var admitted = 0
        for _ in 0..<3000 {
            offset.add(1_000_000, ordering: .relaxed)
            admitted += await withTaskGroup(of: Int.self) { group in
                for _ in 0..<32 { group.addTask { (try? limiter.admit("s", limit: limit, bytes: 0)) != nil ? 1 : 0 } }
                return await group.reduce(0, +)
            }
        }
        // The bucket starts full at the first request (at 1 ms).
        let expected = burst + rate * 2.999
        #expect(abs(Double(admitted) - expected) <= 1.5, "admitted \(admitted), expected \(expected)")
        // Bytes: 1 MB/s with a 64 KiB burst, 4 KiB requests.
        let bytes = RateLimit(bytesPerSecond: 1_000_000, bytesBurst: 65_536)
        var sent = 0
        for _ in 0..<1000 {
            offset.add(1_000_000, ordering: .relaxed)
            for _ in 0..<4 where (try? limiter.admit("b", limit: bytes, bytes: 4096)) != nil { sent += 4096 }
        }
        #expect(abs(Double(sent) - (65_536 + 1_000_000 * 0.999)) <= 4096, "sent \(sent)")
    }

    /// A declared length is charged at most one burst's worth: a lie cannot lock a subject out
    /// for longer than a burst takes to refill.
    @Test func aDeclaredLengthCostsAtMostABurst() throws {
        let offset = Atomic<Int64>(0)
        let base = ContinuousClock.now
        let limiter = RateLimiter(now: { base + .nanoseconds(offset.load(ordering: .relaxed)) })
        let limit = RateLimit(bytesPerSecond: 1000, bytesBurst: 1000)
        try limiter.admit("s", limit: limit, bytes: Int.max)
        #expect(throws: AccessError.self) { try limiter.admit("s", limit: limit, bytes: 1) }
        offset.add(1_000_000_001, ordering: .relaxed)
        try limiter.admit("s", limit: limit, bytes: 1000)
    }

    /// Bytes learnt after admission (a response) are charged: the next request waits for them.
    @Test func chargesAfterTheFactDelayTheNextRequest() throws {
        let offset = Atomic<Int64>(0)
        let base = ContinuousClock.now
        let limiter = RateLimiter(now: { base + .nanoseconds(offset.load(ordering: .relaxed)) })
        let limit = RateLimit(bytesPerSecond: 1000, bytesBurst: 1000)
        try limiter.admit("s", limit: limit, bytes: 0)
        limiter.charge("s", limit: limit, bytes: 3000)
        do { try limiter.admit("s", limit: limit, bytes: 0); Issue.record("admitted in debt") } catch AccessError.rateLimited(_, let retry) {
            #expect(retry == 2)
        }
        offset.add(2_000_000_001, ordering: .relaxed)
        try limiter.admit("s", limit: limit, bytes: 0)
    }
}
