import Foundation
import Registry
import Testing
import TestSupport

/// npm's node-semver tables (`../shared/fixtures/semver/node-semver.json`): every row of every
/// table, with the row's own options — versions that parse (and their parts), versions that do
/// not, orderings, equalities, and versions in and out of ranges.
@Suite struct SemVerTests {
    nonisolated(unsafe) static let table: [String: Any] = {
        let url = Fixtures.url("semver/node-semver.json")
        return (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any] ?? [:]
    }()

    static func rows(_ name: String) -> [[String: Any]] { table[name] as? [[String: Any]] ?? [] }

    static func options(_ row: [String: Any]) -> SemVer.Options {
        SemVer.Options(loose: row["loose"] as? Bool ?? false, includePrerelease: row["includePrerelease"] as? Bool ?? false)
    }

    @Test func theTablesAreThere() {
        for name in ["rangeInclude", "rangeExclude", "comparisons", "equality", "validVersions", "invalidVersions"] {
            #expect(!Self.rows(name).isEmpty, "no \(name) rows in the fixture")
        }
    }

    @Test func rangesIncludeWhatTheyShould() {
        for row in Self.rows("rangeInclude") {
            let text = row["range"] as! String, version = row["version"] as! String
            let range = try? SemVerRange(text, options: Self.options(row))
            #expect(range?.contains(version) == true, "\(text) should include \(version) \(Self.options(row)); read as \(range.map(\.description) ?? "invalid")")
        }
    }

    @Test func rangesExcludeWhatTheyShould() {
        for row in Self.rows("rangeExclude") {
            let text = row["range"] as! String
            guard let version = row["version"] as? String else { continue }
            let range = try? SemVerRange(text, options: Self.options(row))
            #expect(range?.contains(version) != true, "\(text) should exclude \(version) \(Self.options(row)); read as \(range.map(\.description) ?? "invalid")")
        }
    }

    @Test func comparisons() throws {
        for row in Self.rows("comparisons") {
            let o = Self.options(row)
            let g = try SemVer(row["greater"] as! String, options: o), l = try SemVer(row["lesser"] as! String, options: o)
            #expect(l < g && !(g < l) && g != l, "\(g) > \(l)")
        }
    }

    @Test func equalities() throws {
        for row in Self.rows("equality") {
            let o = Self.options(row)
            let a = try SemVer(row["a"] as! String, options: o), b = try SemVer(row["b"] as! String, options: o)
            #expect(a == b && !(a < b) && !(b < a), "\(row["a"]!) == \(row["b"]!)")
        }
    }

    @Test func validVersionsParseIntoTheirParts() throws {
        for row in Self.rows("validVersions") {
            let v = try SemVer(row["value"] as! String, options: Self.options(row))
            #expect(v.major == (row["major"] as! NSNumber).uint64Value && v.minor == (row["minor"] as! NSNumber).uint64Value
                    && v.patch == (row["patch"] as! NSNumber).uint64Value, "\(row["value"]!)")
            let pre = (row["prerelease"] as! [Any]).map { p -> SemVer.Identifier in
                if let n = p as? NSNumber, !(p is String) { return .numeric(n.uint64Value) }
                return .text(p as! String)
            }
            #expect(v.prerelease == pre, "\(row["value"]!): prerelease \(v.prerelease)")
            #expect(v.build == (row["build"] as! [String]), "\(row["value"]!): build \(v.build)")
        }
    }

    @Test func invalidVersionsAreRefused() {
        for row in Self.rows("invalidVersions") {
            guard let text = row["value"] as? String else { continue }  // rows of non-strings (JavaScript types)
            #expect(throws: SemVerError.self, "\(text.prefix(40)) (\(row["reason"] ?? ""))") { try SemVer(text, options: Self.options(row)) }
        }
    }

    /// What the registry relies on beyond the tables: the highest satisfying version, and errors
    /// that say what was read.
    @Test func highestAndErrors() throws {
        let versions = try ["1.0.0", "1.2.0", "1.10.1", "2.0.0-rc.1", "2.0.0", "1.10.1-beta"].map { try SemVer($0) }
        #expect(try SemVerRange("^1.0.0").highest(of: versions)?.description == "1.10.1")
        #expect(try SemVerRange(">=2.0.0-rc.0").highest(of: versions)?.description == "2.0.0")
        #expect(try SemVerRange("~1.2").highest(of: versions)?.description == "1.2.0")
        #expect(try SemVerRange("<1.0.0").highest(of: versions) == nil)
        #expect(throws: SemVerError.self) { try SemVerRange("^^1") }
        #expect(throws: SemVerError.self) { try SemVerRange(">=1.2.3 || garbage") }
        #expect(throws: SemVerError.self) { try SemVer("1.2") }
        #expect(throws: SemVerError.self) { try SemVer("01.2.3") }
    }
}
