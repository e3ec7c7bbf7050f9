import Foundation
import Pinning
import Storage

/// The `backup` section of `config.json`: backups the daemon takes by itself (Docs/backup.md).
///
/// `schedule` is a duration (`6h`: every six hours from the daemon's start) or `daily HH:MM`
/// (UTC); empty (the default): no scheduled backups. Every `fullEvery`-th scheduled set is full,
/// the others incremental; after each, sets are pruned by the `keep…` rules when any is set.
public struct BackupConfiguration: ConfigurationSection {
    public static let key = "backup"
    public var directory = ""
    public var schedule = ""
    public var fullEvery = 7
    public var partSize = "1GiB"
    public var keepLast = 0
    public var keepDaily = 0
    public var keepWeekly = 0

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BackupConfiguration()
        directory = try c.decodeIfPresent(String.self, forKey: .directory) ?? d.directory
        schedule = try c.decodeIfPresent(String.self, forKey: .schedule) ?? d.schedule
        fullEvery = try c.decodeIfPresent(Int.self, forKey: .fullEvery) ?? d.fullEvery
        partSize = try c.decodeIfPresent(String.self, forKey: .partSize) ?? d.partSize
        keepLast = try c.decodeIfPresent(Int.self, forKey: .keepLast) ?? d.keepLast
        keepDaily = try c.decodeIfPresent(Int.self, forKey: .keepDaily) ?? d.keepDaily
        keepWeekly = try c.decodeIfPresent(Int.self, forKey: .keepWeekly) ?? d.keepWeekly
    }

    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_BACKUP_SCHEDULE"] { schedule = v }
        if let v = env["QSTORE_BACKUP_DIR"], directory.isEmpty { directory = v }
    }

    /// When the next scheduled backup is due after `ms` (Unix ms), or nil when none are
    /// scheduled; refuses a schedule or a setting that cannot work, naming it.
    public func next(after ms: UInt64) throws -> UInt64? {
        let s = schedule.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { return nil }
        guard directory.hasPrefix("/") else { throw RepositoryError.invalidConfiguration("backup.directory: an absolute path (scheduled backups need one)") }
        guard fullEvery >= 1 else { throw RepositoryError.invalidConfiguration("backup.fullEvery: at least 1") }
        guard keepLast >= 0, keepDaily >= 0, keepWeekly >= 0 else { throw RepositoryError.invalidConfiguration("backup.keep…: not negative") }
        _ = try checkedPartSize()
        if s.hasPrefix("daily ") {
            let hm = s.dropFirst(6).split(separator: ":")
            guard hm.count == 2, let h = UInt64(hm[0]), let m = UInt64(hm[1]), h < 24, m < 60 else {
                throw RepositoryError.invalidConfiguration("backup.schedule \"\(s)\": daily HH:MM (UTC), or a duration such as 6h")
            }
            let day: UInt64 = 86_400_000
            let at = (h * 60 + m) * 60_000
            let today = ms / day * day + at
            return today > ms ? today : today + day
        }
        guard let every = parseDuration(s), every >= 1000 else {
            throw RepositoryError.invalidConfiguration("backup.schedule \"\(s)\": a duration of at least 1s (6h, 1d), or daily HH:MM (UTC)")
        }
        return ms + every
    }

    public func checkedPartSize() throws -> UInt64 {
        guard let n = Self.size(partSize), n >= 1 << 20 else {
            throw RepositoryError.invalidConfiguration("backup.partSize \"\(partSize)\": a size of at least 1MiB (512MiB, 1GiB)")
        }
        return n
    }

    /// A byte size: digits, then `GiB`/`G`, `MiB`/`M`, `KiB`/`K` or nothing (bytes); nil when
    /// it is not one (or is 0).
    public static func size(_ text: String) -> UInt64? {
        let units: [(String, UInt64)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("", 1)]
        for (u, m) in units where text.hasSuffix(u) {
            let digits = text.dropLast(u.count)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let n = UInt64(digits), n > 0, n <= UInt64.max / m else { continue }
            return n * m
        }
        return nil
    }
}
