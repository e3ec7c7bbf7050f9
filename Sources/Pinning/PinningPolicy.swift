import Foundation
import IPLD

/// One resource type's pinning policy (a file in `Pinning/`, schema `Pinning/policy.schema.json`).
public struct PinningPolicy: Sendable, Equatable, Codable {
    /// How long pins of the type live.
    public enum Strategy: String, Sendable, Codable {
        /// Until removed.
        case permanent = "PERMANENT"
        /// `ttl` after creation (or sooner when the pin asks).
        case temporary = "TEMPORARY"
        /// While `condition` holds.
        case conditional = "CONDITIONAL"
    }

    /// How the data is read (advisory: recorded for caching and replication).
    public enum AccessPattern: String, Sendable, Codable {
        case hot = "HOT", warm = "WARM", cold = "COLD"
    }

    /// What keeps a CONDITIONAL pin in force.
    public struct Condition: Sendable, Equatable, Codable {
        /// The newest N pins of the resource type sharing a name stay; older ones end.
        public var keepLatest: Int
    }

    /// The resource type (the file's name without `.json`).
    public var resourceType: String
    /// What the policy is for.
    public var description: String?
    /// How long pins live.
    public var pinningStrategy: Strategy
    /// TEMPORARY: a pin's lifetime (ms).
    public var ttl: UInt64?
    /// CONDITIONAL: what keeps a pin.
    public var condition: Condition?
    /// The default replication target of a pin.
    public var replicationFactor: Int
    /// How the data is read.
    public var accessPattern: AccessPattern
    /// How long a DAG stays after its pin ends before collection (ms).
    public var gracePeriod: UInt64
    /// How long a pin must exist before it may be removed by hand (ms).
    public var retention: UInt64

    /// Parses and validates one policy file; errors name the file and the field.
    public static func parse(_ data: Data, file: String) throws -> PinningPolicy {
        func bad(_ field: String, _ problem: String) -> PinningError { .invalidPolicy(file: file, field: field, problem: problem) }
        let object: IPLDMap
        do {
            guard case .map(let m) = try DAGJSON(strict: false).decode([UInt8](data)) else { throw bad("(document)", "not a JSON object") }
            object = m
        } catch let e as PinningError { throw e } catch { throw bad("(document)", "not valid JSON: \(error)") }
        let known: Set = ["$schema", "resourceType", "description", "pinningStrategy", "ttl", "condition", "replicationFactor",
                          "accessPattern", "gracePeriod", "retention"]
        for key in object.keys where !known.contains(key) { throw bad(key, "unknown field") }
        func string(_ field: String, required: Bool = true) throws -> String? {
            guard let v = object[field] else {
                if required { throw bad(field, "missing") }
                return nil
            }
            guard case .string(let s) = v else { throw bad(field, "must be a string") }
            return s
        }
        func integer(_ value: IPLDNode?, _ field: String, range: ClosedRange<Int>) throws -> Int {
            guard let value else { throw bad(field, "missing") }
            guard case .integer(let n) = value, let i = n.int else { throw bad(field, "must be an integer") }
            guard range.contains(i) else { throw bad(field, "must be between \(range.lowerBound) and \(range.upperBound)") }
            return i
        }
        func duration(_ field: String, required: Bool = true) throws -> UInt64? {
            guard let s = try string(field, required: required) else { return nil }
            guard let ms = parseDuration(s) else { throw bad(field, "\"\(s)\" is not a duration (e.g. 90s, 1h30m, 7d)") }
            return ms
        }
        let resourceType = try string("resourceType")!
        func lowerOrDigit(_ b: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) }
        let name = resourceType.utf8
        guard (1...63).contains(name.count), lowerOrDigit(name.first!), name.allSatisfy({ lowerOrDigit($0) || $0 == UInt8(ascii: "-") }) else {
            throw bad("resourceType", "\"\(resourceType)\" must be lowercase letters, digits and dashes")
        }
        let stem = (file as NSString).lastPathComponent.replacingOccurrences(of: ".json", with: "")
        guard stem == resourceType else { throw bad("resourceType", "\"\(resourceType)\" does not match the file name \(stem).json") }
        let strategyText = try string("pinningStrategy")!
        guard let strategy = Strategy(rawValue: strategyText) else { throw bad("pinningStrategy", "\"\(strategyText)\" is not PERMANENT, TEMPORARY or CONDITIONAL") }
        let accessText = try string("accessPattern")!
        guard let access = AccessPattern(rawValue: accessText) else { throw bad("accessPattern", "\"\(accessText)\" is not HOT, WARM or COLD") }
        let ttl = try duration("ttl", required: false)
        var condition: Condition?
        if let c = object["condition"] {
            guard case .map(let co) = c else { throw bad("condition", "must be an object") }
            for key in co.keys where key != "keepLatest" { throw bad("condition.\(key)", "unknown field") }
            condition = Condition(keepLatest: try integer(co["keepLatest"], "condition.keepLatest", range: 1...1_000_000))
        }
        switch strategy {
        case .temporary:
            if ttl == nil { throw bad("ttl", "required when pinningStrategy is TEMPORARY") }
            if condition != nil { throw bad("condition", "only for CONDITIONAL policies") }
        case .conditional:
            if condition == nil { throw bad("condition", "required when pinningStrategy is CONDITIONAL") }
            if ttl != nil { throw bad("ttl", "only for TEMPORARY policies") }
        case .permanent:
            if ttl != nil { throw bad("ttl", "only for TEMPORARY policies") }
            if condition != nil { throw bad("condition", "only for CONDITIONAL policies") }
        }
        return PinningPolicy(
            resourceType: resourceType, description: try string("description", required: false), pinningStrategy: strategy,
            ttl: ttl, condition: condition, replicationFactor: try integer(object["replicationFactor"], "replicationFactor", range: 1...64),
            accessPattern: access, gracePeriod: try duration("gracePeriod")!, retention: try duration("retention")!)
    }
}

/// The longest duration `parseDuration` accepts: 1,000 years (so a time that far from now is
/// still far from overflowing, and formats as a four-digit year).
public let maximumDuration: UInt64 = 1000 * 365 * 86_400_000

/// Parses `90s`, `1h30m`, `7d` (whole numbers with units s, m, h, d) into milliseconds; nil when
/// malformed or longer than `maximumDuration`.
public func parseDuration(_ text: String) -> UInt64? {
    // Read byte by byte: one or more groups of 1 to 9 ASCII digits and a unit. (A regular
    // expression here loaded ICU into every process that opens a node: megabytes of memory.)
    // One line break at the end is allowed (a value read from a file), as the expression allowed.
    var bytes = Substring(text).utf8[...]
    if bytes.last == UInt8(ascii: "\n") {
        bytes = bytes.dropLast()
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
    }
    var total: UInt64 = 0
    var number: UInt64 = 0
    var digits = 0
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            digits += 1
            guard digits <= 9 else { return nil }
            number = number * 10 + UInt64(byte - UInt8(ascii: "0"))
        default:
            let unit: UInt64
            switch byte {
            case UInt8(ascii: "s"): unit = 1000
            case UInt8(ascii: "m"): unit = 60_000
            case UInt8(ascii: "h"): unit = 3_600_000
            case UInt8(ascii: "d"): unit = 86_400_000
            default: return nil
            }
            guard digits > 0 else { return nil }
            let (part, o1) = number.multipliedReportingOverflow(by: unit)
            let (sum, o2) = total.addingReportingOverflow(part)
            guard !o1, !o2, sum <= maximumDuration else { return nil }
            total = sum
            number = 0
            digits = 0
        }
    }
    guard digits == 0, !bytes.isEmpty else { return nil }  // a number without a unit, or nothing
    return total
}

/// Formats milliseconds the way policy files write durations.
public func formatDuration(_ ms: UInt64) -> String {
    if ms == 0 { return "0s" }
    var rest = ms / 1000
    var out = ""
    for (unit, size) in [("d", UInt64(86_400)), ("h", 3_600), ("m", 60), ("s", 1)] where rest >= size {
        out += "\(rest / size)\(unit)"
        rest %= size
    }
    return out.isEmpty ? "0s" : out
}

/// The policies in force, by resource type; always has `default`.
public struct PolicySet: Sendable {
    /// Policies by resource type.
    public let policies: [String: PinningPolicy]
    /// Where they came from (a folder, or "built-in").
    public let source: String

    /// Parses policy files; errors name the file and field. A `default` policy is required.
    public init(files: [(name: String, contents: Data)], source: String) throws {
        var p: [String: PinningPolicy] = [:]
        for f in files {
            let policy = try PinningPolicy.parse(f.contents, file: f.name)
            p[policy.resourceType] = policy
        }
        guard p["default"] != nil else { throw PinningError.invalidPolicy(file: source + "/default.json", field: "(file)", problem: "missing: a default policy is required") }
        policies = p
        self.source = source
    }

    /// The policies compiled from the project's `Pinning/` folder.
    public static func builtIn() throws -> PolicySet {
        try PolicySet(files: defaultPolicyFiles.map { ($0.name, Data($0.contents.utf8)) }, source: "built-in")
    }

    /// Every `*.json` file of `directory` except the schema.
    public static func load(directory: String) throws -> PolicySet {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw PinningError.invalidPolicy(file: directory, field: "(folder)", problem: "cannot read: \(error.localizedDescription)")
        }
        var files: [(String, Data)] = []
        for n in names.sorted() where n.hasSuffix(".json") && !n.hasSuffix(".schema.json") {
            let path = directory + "/" + n
            guard let d = FileManager.default.contents(atPath: path) else {
                throw PinningError.invalidPolicy(file: path, field: "(file)", problem: "cannot read")
            }
            files.append((path, d))
        }
        return try PolicySet(files: files, source: directory)
    }

    /// The policy for `resourceType`.
    public func policy(_ resourceType: String) throws -> PinningPolicy {
        guard let p = policies[resourceType] else { throw PinningError.unknownResourceType(resourceType, known: policies.keys.sorted()) }
        return p
    }

    /// The default policy.
    public var defaultPolicy: PinningPolicy { policies["default"]! }
}
