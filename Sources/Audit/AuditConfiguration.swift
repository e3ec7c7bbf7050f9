import Pinning
import Storage

/// The `audit` section of `config.json` (Docs/audit.md).
public struct AuditConfiguration: ConfigurationSection {
    public static let key = "audit"
    /// Whether changes are logged at all (off: no events, no checkpoints; the log already kept
    /// stays and still verifies).
    public var enabled = true
    /// A checkpoint is signed once this many events were appended since the last one…
    public var checkpointEvery: UInt64 = 1000
    /// …or when this long has passed with events not yet covered (a duration: 10s).
    public var checkpointInterval = "10s"

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AuditConfiguration()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        checkpointEvery = try c.decodeIfPresent(UInt64.self, forKey: .checkpointEvery) ?? d.checkpointEvery
        checkpointInterval = try c.decodeIfPresent(String.self, forKey: .checkpointInterval) ?? d.checkpointInterval
    }

    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_AUDIT"] {
            switch v.lowercased() {
            case "1", "true", "yes", "on": enabled = true
            case "0", "false", "no", "off": enabled = false
            default: throw RepositoryError.invalidConfiguration("QSTORE_AUDIT=\(v): on or off")
            }
        }
    }

    /// The checkpoint interval in ms; refuses values that cannot work.
    public func checkedInterval() throws -> UInt64 {
        guard checkpointEvery >= 1 else { throw RepositoryError.invalidConfiguration("audit.checkpointEvery must be at least 1") }
        guard let ms = parseDuration(checkpointInterval), ms >= 1000 else {
            throw RepositoryError.invalidConfiguration("audit.checkpointInterval \"\(checkpointInterval)\" is not a duration of at least 1s (e.g. 10s)")
        }
        return ms
    }
}
