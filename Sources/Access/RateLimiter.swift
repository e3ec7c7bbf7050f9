import Locking
import Synchronization

/// A subject's limits: requests per second and bytes per second, each a token bucket with a
/// burst (0: unlimited).
public struct RateLimit: Codable, Sendable, Equatable {
    public var requestsPerSecond: Double = 0
    public var requestBurst: Double = 0
    public var bytesPerSecond: Double = 0
    public var bytesBurst: Double = 0

    public init(requestsPerSecond: Double = 0, requestBurst: Double = 0, bytesPerSecond: Double = 0, bytesBurst: Double = 0) {
        self.requestsPerSecond = requestsPerSecond
        self.requestBurst = requestBurst
        self.bytesPerSecond = bytesPerSecond
        self.bytesBurst = bytesBurst
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requestsPerSecond = try c.decodeIfPresent(Double.self, forKey: .requestsPerSecond) ?? 0
        requestBurst = try c.decodeIfPresent(Double.self, forKey: .requestBurst) ?? 0
        bytesPerSecond = try c.decodeIfPresent(Double.self, forKey: .bytesPerSecond) ?? 0
        bytesBurst = try c.decodeIfPresent(Double.self, forKey: .bytesBurst) ?? 0
    }

    func validated(_ field: String) throws -> RateLimit {
        for (name, v) in [("requestsPerSecond", requestsPerSecond), ("requestBurst", requestBurst), ("bytesPerSecond", bytesPerSecond), ("bytesBurst", bytesBurst)] {
            guard v >= 0, v.isFinite else { throw AccessError.invalid("\(field).\(name) must be a number ≥ 0") }
        }
        return self
    }

    /// The burst in force: as configured, else one second's worth (at least 1).
    var requestCapacity: Double { requestBurst > 0 ? requestBurst : max(requestsPerSecond, 1) }
    var byteCapacity: Double { bytesBurst > 0 ? bytesBurst : max(bytesPerSecond, 1) }
}

/// Token buckets per subject. A request takes one request token and, when it declares its body
/// size, that many byte tokens; a response is charged after the fact (whole, or as it streams) and
/// may take the bucket below zero, delaying the next request. Request bodies of undeclared length
/// (chunked uploads) are not counted in bytes (only as requests).
final class RateLimiter: Sendable {
    private struct Bucket {
        var requests: Double
        var bytes: Double
        var last: ContinuousClock.Instant
    }
    private let buckets = Mutex([String: Bucket]())
    /// When the bucket table was last swept of idle buckets (at most once a second).
    private let lastSweep = Mutex(ContinuousClock.Instant.now)
    /// Now (monotonic); tests give their own.
    private let now: @Sendable () -> ContinuousClock.Instant

    init(now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) { self.now = now }

    /// Takes a request (and `bytes`) for `subject` under `limit`; throws `RATE_LIMIT_EXCEEDED`
    /// with the whole seconds until it would pass.
    func admit(_ subject: String, limit: RateLimit, bytes: Int) throws {
        if limit.requestsPerSecond == 0 && limit.bytesPerSecond == 0 { return }
        try buckets.locked { all in
            // Read under the lock: a time read before it could be older than the bucket's.
            let now = self.now()
            var b = all[subject] ?? Bucket(requests: limit.requestCapacity, bytes: limit.byteCapacity, last: now)
            refill(&b, limit: limit, now: now)
            if limit.requestsPerSecond > 0, b.requests < 1 {
                all[subject] = b
                let wait = (1 - b.requests) / limit.requestsPerSecond
                throw AccessError.rateLimited("\(subject) is over its rate limit of \(Self.format(limit.requestsPerSecond)) requests/s", retryAfter: max(1, Int(wait.rounded(.up))))
            }
            if limit.bytesPerSecond > 0, b.bytes < min(Double(bytes), limit.byteCapacity) || b.bytes < 0 {
                all[subject] = b
                let need = min(Double(bytes), limit.byteCapacity) - b.bytes
                throw AccessError.rateLimited("\(subject) is over its rate limit of \(Self.format(limit.bytesPerSecond)) bytes/s", retryAfter: max(1, Int((need / limit.bytesPerSecond).rounded(.up))))
            }
            if limit.requestsPerSecond > 0 { b.requests -= 1 }
            // At most one burst is charged for what is only declared (a Content-Length the body
            // may never match): a lie cannot lock the subject out for longer than a burst takes.
            if limit.bytesPerSecond > 0 { b.bytes -= min(Double(bytes), limit.byteCapacity) }
            all[subject] = b
            if all.count > 100_000, lastSweep.locked({ last in
                guard now - last >= .seconds(1) else { return false }
                last = now
                return true
            }) {
                // Idle a minute: full again (a debt older than that is forgiven).
                all = all.filter { now - $0.value.last < .seconds(60) }
            }
        }
    }

    /// Whether `subject` has a request token left (nil), else the whole seconds until it will;
    /// takes nothing.
    func peek(_ subject: String, limit: RateLimit) -> Int? {
        guard limit.requestsPerSecond > 0 else { return nil }
        return buckets.locked { all -> Int? in
            guard var b = all[subject] else { return nil }
            refill(&b, limit: limit, now: self.now())
            all[subject] = b
            return b.requests >= 1 ? nil : max(1, Int(((1 - b.requests) / limit.requestsPerSecond).rounded(.up)))
        }
    }

    /// Charges `bytes` learnt after the request was admitted.
    func charge(_ subject: String, limit: RateLimit, bytes: Int) {
        guard limit.bytesPerSecond > 0, bytes > 0 else { return }
        buckets.locked { all in
            let now = self.now()
            guard var b = all[subject] else { return }
            refill(&b, limit: limit, now: now)
            b.bytes -= Double(bytes)
            all[subject] = b
        }
    }

    private func refill(_ b: inout Bucket, limit: RateLimit, now: ContinuousClock.Instant) {
        let elapsed = now - b.last
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        b.requests = min(limit.requestCapacity, b.requests + seconds * limit.requestsPerSecond)
        b.bytes = min(limit.byteCapacity, b.bytes + seconds * limit.bytesPerSecond)
        b.last = now
    }

    private static func format(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
}
