/// Semantic versions (SemVer 2.0.0) and ranges as npm writes them (`^ ~ ~> >= > <= < = x X *`,
/// hyphen ranges, `||`), with npm's rules: a prerelease version satisfies a range only when a
/// comparator of the same set names a prerelease of the same `major.minor.patch`, unless
/// `includePrerelease`; `loose` accepts what npm's loose mode does (`v`/`=` prefixes with spaces,
/// a prerelease without its `-`, leading zeros). The module registry resolves dependencies with it
/// (Docs/registry.md); `Tests/RegistryTests` checks node-semver's own tables.
public struct SemVer: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// A prerelease identifier: numeric ones compare as numbers and before alphanumeric ones.
    public enum Identifier: Hashable, Sendable, Comparable, CustomStringConvertible {
        case numeric(UInt64)
        case text(String)

        public static func < (a: Identifier, b: Identifier) -> Bool {
            switch (a, b) {
            case (.numeric(let x), .numeric(let y)): x < y
            case (.numeric, .text): true
            case (.text, .numeric): false
            case (.text(let x), .text(let y)): Array(x.utf8).lexicographicallyPrecedes(Array(y.utf8))
            }
        }

        public var description: String {
            switch self {
            case .numeric(let n): String(n)
            case .text(let s): s
            }
        }
    }

    /// Parsing and matching options (npm's).
    public struct Options: Sendable, Equatable {
        public var loose = false
        public var includePrerelease = false
        public init(loose: Bool = false, includePrerelease: Bool = false) {
            (self.loose, self.includePrerelease) = (loose, includePrerelease)
        }
    }

    public var major: UInt64
    public var minor: UInt64
    public var patch: UInt64
    public var prerelease: [Identifier]
    /// Build metadata: kept, ignored by comparisons and equality.
    public var build: [String]

    /// The largest number a part may be (JavaScript's `Number.MAX_SAFE_INTEGER`, as npm).
    public static let maximumPart: UInt64 = 9_007_199_254_740_991
    /// The longest version text accepted.
    public static let maximumLength = 256

    public init(major: UInt64, minor: UInt64, patch: UInt64, prerelease: [Identifier] = [], build: [String] = []) {
        (self.major, self.minor, self.patch, self.prerelease, self.build) = (major, minor, patch, prerelease, build)
    }

    /// Parses `text` (surrounding spaces allowed; a leading `v`; with `loose`, any run of `v`,
    /// `=` and spaces first, a prerelease without `-`, numbers with leading zeros).
    public init(_ text: String, options: Options = Options()) throws(SemVerError) {
        guard text.utf8.count <= Self.maximumLength else { throw .invalidVersion(text, "longer than \(Self.maximumLength) characters") }
        var scanner = Scanner(Array(text.utf8))
        scanner.skipSpaces()
        if options.loose {
            while let c = scanner.peek, c == UInt8(ascii: "v") || c == UInt8(ascii: "=") || Scanner.isSpace(c) { scanner.index += 1 }
        } else if scanner.peek == UInt8(ascii: "v") {
            scanner.index += 1
        }
        guard let partial = scanner.partialVersion(loose: options.loose, allowX: false), let minor = partial.minor, let patch = partial.patch else {
            throw .invalidVersion(text, "not MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]")
        }
        scanner.skipSpaces()
        guard scanner.atEnd else { throw .invalidVersion(text, "not MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]") }
        guard let major = partial.major else { throw .invalidVersion(text, "not MAJOR.MINOR.PATCH") }
        self.init(major: major, minor: minor, patch: patch, prerelease: partial.prerelease, build: partial.build)
    }

    /// `M.m.p[-pre]` (build metadata left out, as npm prints a version).
    public var description: String {
        "\(major).\(minor).\(patch)" + (prerelease.isEmpty ? "" : "-" + prerelease.map(\.description).joined(separator: "."))
    }

    /// The order of SemVer 2.0.0 §11: a version with a prerelease is below the same one without.
    public static func < (a: SemVer, b: SemVer) -> Bool { compare(a, b) < 0 }

    /// Equal when they order equal (build metadata ignored).
    public static func == (a: SemVer, b: SemVer) -> Bool { compare(a, b) == 0 }

    public func hash(into h: inout Hasher) {
        h.combine(major)
        h.combine(minor)
        h.combine(patch)
        h.combine(prerelease)
    }

    /// -1, 0 or 1.
    public static func compare(_ a: SemVer, _ b: SemVer) -> Int {
        for (x, y) in [(a.major, b.major), (a.minor, b.minor), (a.patch, b.patch)] where x != y { return x < y ? -1 : 1 }
        switch (a.prerelease.isEmpty, b.prerelease.isEmpty) {
        case (true, true): return 0
        case (true, false): return 1
        case (false, true): return -1
        case (false, false): break
        }
        for (x, y) in zip(a.prerelease, b.prerelease) where x != y { return x < y ? -1 : 1 }
        return a.prerelease.count == b.prerelease.count ? 0 : (a.prerelease.count < b.prerelease.count ? -1 : 1)
    }

    /// Whether this version is in `range`.
    public func satisfies(_ range: SemVerRange) -> Bool { range.contains(self) }
}

/// A set of alternatives (`||`), each a set of comparators that must all hold.
public struct SemVerRange: Sendable, CustomStringConvertible {
    /// One condition on a version.
    public enum Comparator: Sendable, Equatable, CustomStringConvertible {
        case any
        case lessThan(SemVer)
        case atMost(SemVer)
        case greaterThan(SemVer)
        case atLeast(SemVer)
        case equal(SemVer)

        public func test(_ v: SemVer) -> Bool {
            switch self {
            case .any: true
            case .lessThan(let x): v < x
            case .atMost(let x): !(x < v)
            case .greaterThan(let x): x < v
            case .atLeast(let x): !(v < x)
            case .equal(let x): v == x
            }
        }

        var version: SemVer? {
            switch self {
            case .any: nil
            case .lessThan(let x), .atMost(let x), .greaterThan(let x), .atLeast(let x), .equal(let x): x
            }
        }

        public var description: String {
            switch self {
            case .any: "*"
            case .lessThan(let x): "<\(x)"
            case .atMost(let x): "<=\(x)"
            case .greaterThan(let x): ">\(x)"
            case .atLeast(let x): ">=\(x)"
            case .equal(let x): "=\(x)"
            }
        }
    }

    /// The alternatives; a version is in the range when it satisfies one.
    public let sets: [[Comparator]]
    public let options: SemVer.Options
    /// The text it was read from.
    public let text: String

    /// Parses a range as npm does; a malformed one is refused (with `loose`, comparators that do
    /// not read are dropped, as npm's loose mode drops them).
    public init(_ text: String, options: SemVer.Options = SemVer.Options()) throws(SemVerError) {
        guard text.utf8.count <= 1024 else { throw .invalidRange(text, "longer than 1024 characters") }
        self.text = text
        self.options = options
        var sets: [[Comparator]] = []
        for alternative in Self.split(text) {
            let set = try Self.parseSet(alternative, options, whole: text)
            if set.isEmpty { continue }  // everything in it was dropped (loose)
            sets.append(set)
        }
        guard !sets.isEmpty else { throw .invalidRange(text, "no comparator in it reads as a version") }
        self.sets = sets
    }

    public var description: String { sets.map { $0.map(\.description).joined(separator: " ") }.joined(separator: " || ") }

    /// Whether `version` is in the range (npm's `satisfies`).
    public func contains(_ version: SemVer) -> Bool {
        sets.contains { set in
            guard set.allSatisfy({ $0.test(version) }) else { return false }
            guard !version.prerelease.isEmpty, !options.includePrerelease else { return true }
            // A prerelease only where the range names one of the same version.
            return set.contains { c in
                guard let v = c.version, !v.prerelease.isEmpty else { return false }
                return (v.major, v.minor, v.patch) == (version.major, version.minor, version.patch)
            }
        }
    }

    /// Whether the version `text` (read with the range's options) is in the range; false when it
    /// is not a version.
    public func contains(_ text: String) -> Bool {
        guard let v = try? SemVer(text, options: options) else { return false }
        return contains(v)
    }

    /// Whether the range asks for `version` exactly (`1.2.3`, `=1.2.3`): what brings back a
    /// version resolution otherwise skips (yanked).
    public func isExactly(_ version: SemVer) -> Bool {
        sets.allSatisfy { set in
            guard set.count == 1, case .equal(let v) = set[0] else { return false }
            return v == version
        }
    }

    /// The highest of `versions` in the range.
    public func highest<S: Sequence>(of versions: S) -> SemVer? where S.Element == SemVer {
        versions.filter(contains).max()
    }

    // MARK: parsing

    static func split(_ text: String) -> [String] {
        text.split(separator: "||", omittingEmptySubsequences: false).map(String.init)
    }

    /// The operators a comparator may start with, longest first.
    static let operators = ["~>", ">=", "<=", ">", "<", "=", "~", "^"]

    static func parseSet(_ text: String, _ options: SemVer.Options, whole: String) throws(SemVerError) -> [Comparator] {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).map(String.init)
        // A hyphen range: `A - B`.
        if tokens.count == 3, tokens[1] == "-", let from = Self.partial(tokens[0], options), let to = Self.partial(tokens[2], options) {
            return Self.droppingLowestBound(Self.hyphen(from, to, options), options)
        }
        // An operator standing alone belongs to the version after it (`>= 1.2.3`, `~ 1`).
        var merged: [String] = []
        var i = 0
        while i < tokens.count {
            if operators.contains(tokens[i]), i + 1 < tokens.count {
                merged.append(tokens[i] + tokens[i + 1])
                i += 2
            } else {
                merged.append(tokens[i])
                i += 1
            }
        }
        if merged.isEmpty { return [.any] }
        var out: [Comparator] = []
        for token in merged {
            guard let cs = Self.comparators(token, options) else {
                if options.loose { continue }
                throw .invalidRange(whole, "\"\(token)\" is not a comparator")
            }
            out += cs
        }
        // `*` beside other comparators adds nothing.
        if out.count > 1 { out.removeAll { $0 == .any } }
        return Self.droppingLowestBound(out, options)
    }

    /// `>=0.0.0` (`>=0.0.0-0` with includePrerelease) is no condition, whether written or made by
    /// expanding `0`, `^0`, `0 - 1`…: node-semver drops it from every comparator set (its
    /// replaceGTE0), so a range and the text it prints agree.
    static func droppingLowestBound(_ set: [Comparator], _ options: SemVer.Options) -> [Comparator] {
        let lowest = SemVer(major: 0, minor: 0, patch: 0, prerelease: options.includePrerelease ? [.numeric(0)] : [])
        let out = set.filter { $0 != .atLeast(lowest) }
        // A set that held only that bound matches everything; an empty one (loose mode dropped
        // every token) still matches nothing.
        return out.isEmpty && !set.isEmpty ? [.any] : out
    }

    /// A version with parts possibly left out or written `x`, `X` or `*`.
    struct Partial {
        var major: UInt64?
        var minor: UInt64?
        var patch: UInt64?
        var prerelease: [SemVer.Identifier] = []
        var anyX: Bool { major == nil || minor == nil || patch == nil }
    }

    /// `[v=\s]*M[.m[.p[-pre][+build]]]`, the whole of `text`.
    static func partial(_ text: String, _ options: SemVer.Options) -> Partial? {
        var s = Scanner(Array(text.utf8))
        while let c = s.peek, c == UInt8(ascii: "v") || c == UInt8(ascii: "=") { s.index += 1 }
        guard let p = s.partialVersion(loose: options.loose, allowX: true), s.atEnd else { return nil }
        return Partial(major: p.major, minor: p.minor, patch: p.patch, prerelease: p.prerelease)
    }

    /// The comparators one token stands for (`^1.2`, `~1`, `>=1.x`, `1.2.3`, `*`), nil when it
    /// is not one.
    static func comparators(_ token: String, _ options: SemVer.Options) -> [Comparator]? {
        var op = ""
        for o in operators where token.hasPrefix(o) {
            op = o
            break
        }
        guard let p = partial(String(token.dropFirst(op.count)), options) else { return nil }
        let zero: [SemVer.Identifier] = [.numeric(0)]
        let z = options.includePrerelease ? zero : []
        func v(_ M: UInt64, _ m: UInt64, _ pt: UInt64, _ pre: [SemVer.Identifier] = []) -> SemVer { SemVer(major: M, minor: m, patch: pt, prerelease: pre) }
        switch op {
        case "^":
            guard let M = p.major else { return [.any] }
            guard let m = p.minor else { return [.atLeast(v(M, 0, 0, z)), .lessThan(v(M + 1, 0, 0, zero))] }
            guard let pt = p.patch else {
                return M == 0 ? [.atLeast(v(M, m, 0, z)), .lessThan(v(M, m + 1, 0, zero))] : [.atLeast(v(M, m, 0, z)), .lessThan(v(M + 1, 0, 0, zero))]
            }
            // A full version: its own prereleases are below it (with or without includePrerelease).
            let low = v(M, m, pt, p.prerelease)
            if M == 0 {
                return m == 0 ? [.atLeast(low), .lessThan(v(M, m, pt + 1, zero))] : [.atLeast(low), .lessThan(v(M, m + 1, 0, zero))]
            }
            return [.atLeast(low), .lessThan(v(M + 1, 0, 0, zero))]
        case "~", "~>":
            guard let M = p.major else { return [.any] }
            guard let m = p.minor else { return [.atLeast(v(M, 0, 0, z)), .lessThan(v(M + 1, 0, 0, zero))] }
            guard let pt = p.patch else { return [.atLeast(v(M, m, 0, z)), .lessThan(v(M, m + 1, 0, zero))] }
            return [.atLeast(v(M, m, pt, p.prerelease)), .lessThan(v(M, m + 1, 0, zero))]
        default:
            var gtlt = op
            guard p.anyX else {
                let full = v(p.major!, p.minor!, p.patch!, p.prerelease)
                switch gtlt {
                case ">": return [.greaterThan(full)]
                case ">=": return [.atLeast(full)]
                case "<": return [.lessThan(full)]
                case "<=": return [.atMost(full)]
                default: return [.equal(full)]
                }
            }
            if gtlt == "=" { gtlt = "" }
            guard var M = p.major else { return gtlt == ">" || gtlt == "<" ? [.lessThan(v(0, 0, 0, zero))] : [.any] }
            var m = p.minor ?? 0
            if gtlt.isEmpty {
                guard let m = p.minor else { return [.atLeast(v(M, 0, 0, z)), .lessThan(v(M + 1, 0, 0, zero))] }
                return [.atLeast(v(M, m, 0, z)), .lessThan(v(M, m + 1, 0, zero))]
            }
            var pr = z
            if gtlt == ">" {
                gtlt = ">="
                if p.minor == nil { M += 1; m = 0 } else { m += 1 }
            } else if gtlt == "<=" {
                gtlt = "<"
                if p.minor == nil { M += 1 } else { m += 1 }
            }
            if gtlt == "<" { pr = zero }
            let bound = v(M, m, 0, pr)
            switch gtlt {
            case ">=": return [.atLeast(bound)]
            default: return [.lessThan(bound)]
            }
        }
    }

    /// `A - B`: from A (its missing parts 0) to B (inclusive; up to the next of its last given part).
    static func hyphen(_ from: Partial, _ to: Partial, _ options: SemVer.Options) -> [Comparator] {
        let zero: [SemVer.Identifier] = [.numeric(0)]
        let z = options.includePrerelease ? zero : []
        var out: [Comparator] = []
        if let M = from.major {
            if let m = from.minor {
                if let p = from.patch {
                    out.append(.atLeast(SemVer(major: M, minor: m, patch: p, prerelease: from.prerelease.isEmpty ? z : from.prerelease)))
                } else {
                    out.append(.atLeast(SemVer(major: M, minor: m, patch: 0, prerelease: z)))
                }
            } else {
                out.append(.atLeast(SemVer(major: M, minor: 0, patch: 0, prerelease: z)))
            }
        }
        if let M = to.major {
            if let m = to.minor {
                if let p = to.patch {
                    if !to.prerelease.isEmpty {
                        out.append(.atMost(SemVer(major: M, minor: m, patch: p, prerelease: to.prerelease)))
                    } else if options.includePrerelease {
                        out.append(.lessThan(SemVer(major: M, minor: m, patch: p + 1, prerelease: zero)))
                    } else {
                        out.append(.atMost(SemVer(major: M, minor: m, patch: p)))
                    }
                } else {
                    out.append(.lessThan(SemVer(major: M, minor: m + 1, patch: 0, prerelease: zero)))
                }
            } else {
                out.append(.lessThan(SemVer(major: M + 1, minor: 0, patch: 0, prerelease: zero)))
            }
        }
        return out.isEmpty ? [.any] : out
    }
}

/// Failures reading versions and ranges, naming what was read.
public enum SemVerError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidVersion(String, String)
    case invalidRange(String, String)
    public var description: String {
        switch self {
        case .invalidVersion(let t, let why): "\"\(t.prefix(80))\" is not a semantic version: \(why)"
        case .invalidRange(let t, let why): "\"\(t.prefix(80))\" is not a version range: \(why)"
        }
    }
}

/// A cursor over ASCII bytes.
struct Scanner {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
    var atEnd: Bool { index == bytes.count }
    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d }
    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isIdentifierByte(_ c: UInt8) -> Bool { isDigit(c) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7a) || c == 0x2d }

    mutating func skipSpaces() { while let c = peek, Self.isSpace(c) { index += 1 } }

    /// Digits as a part: nil when none, when a leading zero is not allowed, or past the maximum.
    mutating func number(loose: Bool) -> UInt64? {
        let start = index
        while let c = peek, Self.isDigit(c) { index += 1 }
        let digits = bytes[start..<index]
        guard !digits.isEmpty, loose || digits.count == 1 || digits.first != 0x30, digits.count <= 16 else { index = start; return nil }
        let n = digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }
        guard n <= SemVer.maximumPart else { index = start; return nil }
        return n
    }

    /// `M[.m[.p[prerelease][build]]]`; with `allowX`, `x`/`X`/`*` (nil parts) and missing
    /// trailing parts; without, all three numbers. Prerelease and build only after the patch.
    mutating func partialVersion(loose: Bool, allowX: Bool) -> (major: UInt64?, minor: UInt64?, patch: UInt64?, prerelease: [SemVer.Identifier], build: [String])? {
        func part() -> UInt64?? {
            if allowX, let c = peek, c == UInt8(ascii: "x") || c == UInt8(ascii: "X") || c == UInt8(ascii: "*") {
                index += 1
                return .some(nil)
            }
            guard let n = number(loose: loose) else { return nil }
            return .some(n)
        }
        guard let major = part() else { return nil }
        var minor: UInt64?? = .some(nil), patch: UInt64?? = .some(nil)
        var prerelease: [SemVer.Identifier] = [], build: [String] = []
        if peek == UInt8(ascii: ".") {
            index += 1
            guard let m = part() else { return nil }
            minor = m
            if peek == UInt8(ascii: ".") {
                index += 1
                guard let p = part() else { return nil }
                patch = p
                if peek == UInt8(ascii: "-") || (loose && peek.map(Self.isIdentifierByte) == true) {
                    if peek == UInt8(ascii: "-") { index += 1 }
                    guard let pre = identifiers(loose: loose, prerelease: true) else { return nil }
                    prerelease = pre.map { Self.prereleaseIdentifier($0) }
                }
                if peek == UInt8(ascii: "+") {
                    index += 1
                    guard let b = identifiers(loose: true, prerelease: false) else { return nil }
                    build = b
                }
            } else if !allowX {
                return nil
            }
        } else if !allowX {
            return nil
        }
        return (major, minor!, patch!, prerelease, build)
    }

    /// Dot-separated identifiers of `[0-9A-Za-z-]`; a strict prerelease's numeric ones without
    /// leading zeros.
    mutating func identifiers(loose: Bool, prerelease: Bool) -> [String]? {
        var out: [String] = []
        while true {
            let start = index
            while let c = peek, Self.isIdentifierByte(c) { index += 1 }
            let id = bytes[start..<index]
            guard !id.isEmpty else { return nil }
            if prerelease, !loose, id.allSatisfy(Self.isDigit), id.count > 1, id.first == 0x30 { return nil }
            out.append(String(decoding: id, as: UTF8.self))
            guard peek == UInt8(ascii: ".") else { return out }
            index += 1
        }
    }

    static func prereleaseIdentifier(_ s: String) -> SemVer.Identifier {
        if s.utf8.allSatisfy(isDigit), s.utf8.count <= 16, let n = UInt64(s), n < SemVer.maximumPart { return .numeric(n) }
        return .text(s)
    }
}
