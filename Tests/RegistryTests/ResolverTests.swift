import Registry
import Testing

/// Dependency resolution over an in-memory catalog: the highest satisfying versions, a choice
/// revised when a later requirement rules it out, conflicts, missing modules and cycles named.
@Suite struct ResolverTests {
    struct Catalog: ModuleCatalog {
        /// module → version → its dependencies ("name range kind?").
        var modules: [String: [String: [String]]]
        func versions(of module: String) throws -> [SemVer]? { try modules[module].map { try $0.keys.map { try SemVer($0) } } }
        func dependencies(of module: String, _ version: SemVer) throws -> [Dependency] {
            try (modules[module]?[version.description] ?? []).map { line in
                let parts = line.split(separator: " ").map(String.init)
                let kind = parts.count > 2 ? DependencyKind(rawValue: parts[2].replacingOccurrences(of: "?", with: ""))! : .dependency
                return Dependency(module: parts[0], range: try SemVerRange(parts[1]), kind: kind, optional: line.hasSuffix("?"))
            }
        }
    }

    func resolve(_ c: Catalog, _ root: String, _ range: String) throws -> [String: String] {
        try Resolver(catalog: c).resolve(root, try SemVerRange(range)).versions.mapValues(\.description)
    }

    @Test func highestSatisfyingVersionsAcrossTheGraph() throws {
        let c = Catalog(modules: [
            "app": ["1.0.0": ["lib ^2.0.0", "log ~1.1"], "1.5.0": ["lib ^2.1.0", "log ~1.1"], "2.0.0-beta.1": []],
            "lib": ["2.0.0": [], "2.1.0": ["log >=1.0.0"], "2.3.1": ["log >=1.1.0"], "3.0.0": []],
            "log": ["1.0.0": [], "1.1.0": [], "1.1.7": [], "1.2.0": []],
        ])
        #expect(try resolve(c, "app", "^1.0.0") == ["app": "1.5.0", "lib": "2.3.1", "log": "1.1.7"])
        #expect(try resolve(c, "app", "1.0.0") == ["app": "1.0.0", "lib": "2.3.1", "log": "1.1.7"])
        let r = try Resolver(catalog: c).resolve("app", try SemVerRange("^1"))
        #expect(Set(r.edges.map { "\($0.from)>\($0.to)" }) == ["app>lib", "app>log", "lib>log"])
    }

    /// `log` is first chosen at its highest (1.2.0, by `lib`), then `tool` asks for ~1.1: the
    /// resolution starts again and settles on 1.1.7, which satisfies both.
    @Test func aChoiceIsRevisedWhenALaterRequirementRulesItOut() throws {
        let c = Catalog(modules: [
            "app": ["1.0.0": ["lib ^1", "tool ^1"]],
            "lib": ["1.0.0": ["log ^1.0.0"]],
            "tool": ["1.0.0": ["log ~1.1.0"]],
            "log": ["1.1.7": [], "1.2.0": []],
        ])
        #expect(try resolve(c, "app", "*")["log"] == "1.1.7")
    }

    @Test func conflictsMissingModulesAndCyclesAreNamed() throws {
        let conflict = Catalog(modules: [
            "app": ["1.0.0": ["a ^1", "b ^1"]], "a": ["1.0.0": ["log ^1"]], "b": ["1.0.0": ["log ^2"]],
            "log": ["1.0.0": [], "2.0.0": []],
        ])
        #expect {
            try resolve(conflict, "app", "*")
        } throws: { e in
            guard let e = e as? ResolutionError, case .conflict(let m, _, _) = e else { return false }
            return m == "log" && e.code == "VERSION_CONFLICT" && e.description.contains("^1") && e.description.contains("^2")
        }
        let missing = Catalog(modules: ["app": ["1.0.0": ["ghost ^1"]]])
        #expect {
            try resolve(missing, "app", "*")
        } throws: { e in (e as? ResolutionError)?.code == "DEPENDENCY_MISSING" && "\(e)".contains("ghost") && "\(e)".contains("app@1.0.0") }
        let cycle = Catalog(modules: ["a": ["1.0.0": ["b ^2"]], "b": ["2.1.0": ["c *"]], "c": ["0.1.0": ["a ^1"]]])
        #expect {
            try resolve(cycle, "a", "^1")
        } throws: { e in "\(e)" == "dependency cycle: a@1.0.0 → b@2.1.0 → c@0.1.0 → a" }
        // Integration and data-flow edges may go both ways; an optional dependency that is not
        // there is left out.
        let soft = Catalog(modules: [
            "a": ["1.0.0": ["b ^1 integration", "ghost ^1 dependency?"]], "b": ["1.0.0": ["a ^1 data-flow"]],
        ])
        #expect(try resolve(soft, "a", "*") == ["a": "1.0.0", "b": "1.0.0"])
        // Prereleases only when asked for.
        let pre = Catalog(modules: ["a": ["1.0.0": [], "1.1.0-rc.1": []]])
        #expect(try resolve(pre, "a", "^1")["a"] == "1.0.0")
        #expect(try resolve(pre, "a", "^1.1.0-rc.0")["a"] == "1.1.0-rc.1")
    }
}
