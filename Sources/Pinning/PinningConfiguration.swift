import Foundation
import Storage

/// The `pinning` section of `config.json`: which policies govern pins, and how long a queued pin
/// waits for its blocks.
public struct PinningConfiguration: ConfigurationSection {
    public static let key = "pinning"
    /// A folder of policy files to use instead of the built-in ones (the project's `Pinning/`).
    public var policies: String?
    /// How long a queued pin (Pinning Service API) waits for its blocks before it fails.
    public var queuedTimeout = "24h"

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        policies = try c.decodeIfPresent(String.self, forKey: .policies)
        queuedTimeout = try c.decodeIfPresent(String.self, forKey: .queuedTimeout) ?? queuedTimeout
    }

    /// `QSTORE_POLICIES` (empty: the built-in policies).
    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_POLICIES"] { policies = v.isEmpty ? nil : v }
    }

    /// The policies in force: the folder's, else the built-in ones (invalid files are named by file and field).
    public func policySet() throws -> PolicySet {
        try policies.map { try PolicySet.load(directory: $0) } ?? PolicySet.builtIn()
    }

    /// `queuedTimeout` in milliseconds.
    public func queuedTimeoutMilliseconds() throws -> UInt64 {
        guard let ms = parseDuration(queuedTimeout) else {
            throw RepositoryError.invalidConfiguration("pinning.queuedTimeout \"\(queuedTimeout)\" is not a duration (e.g. 90s, 1h30m, 7d)")
        }
        return ms
    }
}

/// The `gc` section of `config.json`: the background collector and pack compaction.
public struct GCConfiguration: ConfigurationSection {
    public static let key = "gc"
    /// How often the background collector runs (`0s`: never; `qstore repo gc` still works).
    public var interval = "1h"
    /// Blocks deleted per transaction.
    public var batchSize = 256
    /// A sealed pack file is compacted (its live blocks copied on, the file removed) after a
    /// collection when at least this share of it is dead (0 < share ≤ 1; 1: only wholly dead packs).
    public var packCompactionThreshold = 0.5

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        interval = try c.decodeIfPresent(String.self, forKey: .interval) ?? interval
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        packCompactionThreshold = try c.decodeIfPresent(Double.self, forKey: .packCompactionThreshold) ?? packCompactionThreshold
    }

    /// `QSTORE_GC_INTERVAL`.
    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_GC_INTERVAL"] { interval = v }
    }

    /// The section checked: the interval in milliseconds, the batch size and the threshold in range.
    public func validated() throws -> (interval: UInt64, batchSize: Int, packCompactionThreshold: Double) {
        guard let ms = parseDuration(interval) else {
            throw RepositoryError.invalidConfiguration("gc.interval \"\(interval)\" is not a duration (e.g. 90s, 1h30m, 7d)")
        }
        guard batchSize > 0 else { throw RepositoryError.invalidConfiguration("gc.batchSize \(batchSize) is not a positive integer") }
        guard packCompactionThreshold > 0 && packCompactionThreshold <= 1 else {
            throw RepositoryError.invalidConfiguration("gc.packCompactionThreshold \(packCompactionThreshold) is not a share in (0, 1]")
        }
        return (ms, batchSize, packCompactionThreshold)
    }
}
