import Pinning
import Storage

/// The `access` section of `config.json` (Docs/access.md): signed-request window, rate limits,
/// quotas, idempotency and whether the gateway needs a `read` grant.
public struct AccessConfiguration: ConfigurationSection {
    public static let key = "access"
    /// How far `x-ts` may be from the node's clock, either way (a duration: 5m).
    public var signatureWindow = "5m"
    /// Largest body of a signed or idempotent request (the body is hashed before the request
    /// runs, so it is held in memory); larger uploads use a token.
    public var maximumSignedBody = 64 << 20
    /// Bytes of signed request bodies held at once before their signatures are checked (all
    /// clients; one client address may hold one `maximumSignedBody`); past it, 503.
    public var unverifiedBodyBudget = 256 << 20
    /// Nonces held at once (all identities); more signed requests in the window are refused.
    public var nonceCapacity = 1_000_000
    /// Limits of every identity and token without an override (0: unlimited).
    public var rateLimit = RateLimit(requestsPerSecond: 1000, requestBurst: 2000, bytesPerSecond: 268_435_456, bytesBurst: 1_073_741_824)
    /// Limits by subject: a sQuid id, `token:ID`, or `admin` (the admin token is unlimited otherwise).
    public var rateLimitOverrides: [String: RateLimit] = [:]
    /// Failed authentications (401) one client address may make (requests/s and burst; 0:
    /// unlimited): past them its requests get 429 before any signature is checked.
    public var failedAuthenticationLimit = RateLimit(requestsPerSecond: 50, requestBurst: 500)
    /// Bytes each identity may pin (0: no quota), and overrides by subject.
    public var storageQuota: UInt64 = 0
    public var storageQuotaOverrides: [String: UInt64] = [:]
    /// How long a response to an `Idempotency-Key` is kept (a duration: 24h).
    public var idempotencyTTL = "24h"
    /// Whether the gateway serves only callers with a `read` grant (bearer or signed).
    public var gatewayRequiresRead = false

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AccessConfiguration()
        signatureWindow = try c.decodeIfPresent(String.self, forKey: .signatureWindow) ?? d.signatureWindow
        maximumSignedBody = try c.decodeIfPresent(Int.self, forKey: .maximumSignedBody) ?? d.maximumSignedBody
        nonceCapacity = try c.decodeIfPresent(Int.self, forKey: .nonceCapacity) ?? d.nonceCapacity
        unverifiedBodyBudget = try c.decodeIfPresent(Int.self, forKey: .unverifiedBodyBudget) ?? d.unverifiedBodyBudget
        rateLimit = try c.decodeIfPresent(RateLimit.self, forKey: .rateLimit) ?? d.rateLimit
        // An override names what differs from the default; the fields it leaves out are the default's.
        let base = rateLimit
        rateLimitOverrides = try (c.decodeIfPresent([String: PartialRateLimit].self, forKey: .rateLimitOverrides) ?? [:])
            .mapValues { $0.over(base) }
        failedAuthenticationLimit = try c.decodeIfPresent(PartialRateLimit.self, forKey: .failedAuthenticationLimit)?
            .over(d.failedAuthenticationLimit) ?? d.failedAuthenticationLimit
        storageQuota = try c.decodeIfPresent(UInt64.self, forKey: .storageQuota) ?? 0
        storageQuotaOverrides = try c.decodeIfPresent([String: UInt64].self, forKey: .storageQuotaOverrides) ?? [:]
        idempotencyTTL = try c.decodeIfPresent(String.self, forKey: .idempotencyTTL) ?? d.idempotencyTTL
        gatewayRequiresRead = try c.decodeIfPresent(Bool.self, forKey: .gatewayRequiresRead) ?? false
    }

    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_GATEWAY_REQUIRES_READ"] {
            switch v.lowercased() {
            case "1", "true", "yes": gatewayRequiresRead = true
            case "0", "false", "no": gatewayRequiresRead = false
            default: throw RepositoryError.invalidConfiguration("QSTORE_GATEWAY_REQUIRES_READ=\(v): 1, true, yes, 0, false or no")
            }
        }
    }

    /// The checked values, durations in ms.
    struct Checked {
        var window: UInt64
        var idempotencyTTL: UInt64
    }

    func checked() throws -> Checked {
        guard let window = parseDuration(signatureWindow), window > 0 else {
            throw RepositoryError.invalidConfiguration("access.signatureWindow \"\(signatureWindow)\" is not a positive duration (e.g. 5m)")
        }
        guard let ttl = parseDuration(idempotencyTTL), ttl > 0 else {
            throw RepositoryError.invalidConfiguration("access.idempotencyTTL \"\(idempotencyTTL)\" is not a positive duration (e.g. 24h)")
        }
        guard maximumSignedBody > 0, nonceCapacity > 0, unverifiedBodyBudget > 0 else {
            throw RepositoryError.invalidConfiguration("access.maximumSignedBody, access.nonceCapacity and access.unverifiedBodyBudget must be at least 1")
        }
        do {
            _ = try rateLimit.validated("access.rateLimit")
            _ = try failedAuthenticationLimit.validated("access.failedAuthenticationLimit")
            for (k, v) in rateLimitOverrides { _ = try v.validated("access.rateLimitOverrides.\(k)") }
        } catch let e as AccessError { throw RepositoryError.invalidConfiguration("\(e)") }
        return Checked(window: window, idempotencyTTL: ttl)
    }
}

/// A rate-limit override as written: the fields it names.
struct PartialRateLimit: Decodable {
    var requestsPerSecond: Double?
    var requestBurst: Double?
    var bytesPerSecond: Double?
    var bytesBurst: Double?

    func over(_ base: RateLimit) -> RateLimit {
        RateLimit(requestsPerSecond: requestsPerSecond ?? base.requestsPerSecond, requestBurst: requestBurst ?? base.requestBurst,
                  bytesPerSecond: bytesPerSecond ?? base.bytesPerSecond, bytesBurst: bytesBurst ?? base.bytesBurst)
    }
}
