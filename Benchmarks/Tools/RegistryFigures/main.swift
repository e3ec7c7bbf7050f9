// Registry figures (Docs/benchmarks.md, "Registry"): dependency resolution of a graph of N
// modules × V versions (each version depending on up to 5 lower-numbered modules by caret and
// comparator ranges), from a root requiring every module, in memory; and range matching.
//
//   swift run -c release RegistryFigures [MODULES (default 1000)] [VERSIONS (default 10)]
import Foundation
import Registry

let args = CommandLine.arguments
let modules = args.count > 1 ? Int(args[1])! : 1000
let perModule = args.count > 2 ? Int(args[2])! : 10

struct Catalog: ModuleCatalog {
    var versions: [String: [SemVer]] = [:]
    var deps: [String: [SemVer: [Dependency]]] = [:]
    func versions(of module: String) throws -> [SemVer]? { versions[module] }
    func dependencies(of module: String, _ version: SemVer) throws -> [Dependency] { deps[module]?[version] ?? [] }
}

var rng = SystemRandomNumberGenerator()
var catalog = Catalog()
for i in 0..<modules {
    let name = "m\(i)"
    var vs: [SemVer] = []
    for j in 0..<perModule {
        let v = SemVer(major: UInt64(j / 4 + 1), minor: UInt64(j % 4), patch: UInt64(j % 3))
        vs.append(v)
        var ds: [Dependency] = []
        if i > 0 {
            for _ in 0..<min(5, i) {
                let t = Int.random(in: 0..<i, using: &rng)
                guard !ds.contains(where: { $0.module == "m\(t)" }) else { continue }
                let range = Bool.random(using: &rng) ? "^1.0.0 || ^2.0.0 || ^3.0.0" : ">=1.0.0 <4.0.0"
                ds.append(Dependency(module: "m\(t)", range: try SemVerRange(range)))
            }
        }
        catalog.deps[name, default: [:]][v] = ds
    }
    catalog.versions[name] = vs
}
// A root that requires every module: the whole graph is resolved.
let rootVersion = SemVer(major: 1, minor: 0, patch: 0)
catalog.versions["root"] = [rootVersion]
catalog.deps["root"] = [rootVersion: try (0..<modules).map { Dependency(module: "m\($0)", range: try SemVerRange(">=1.0.0")) }]
let resolver = Resolver(catalog: catalog)
var times: [Double] = []
var reached = 0
for _ in 0..<20 {
    let start = DispatchTime.now().uptimeNanoseconds
    let r = try resolver.resolve("root", try SemVerRange("*"))
    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    reached = r.versions.count
}
times.sort()
print(String(format: "resolve: %d modules x %d versions, %d modules reached: median %.2f ms, max %.2f ms", modules, perModule, reached, times[times.count / 2], times.last!))
let range = try SemVerRange("^1.2.3 || ~2.4 || >=3.0.0-rc.1 <3.1.0")
let probe = try (0..<10_000).map { try SemVer("\($0 % 5).\($0 % 7).\($0 % 11)") }
let start = DispatchTime.now().uptimeNanoseconds
var hits = 0
for _ in 0..<20 { for v in probe where range.contains(v) { hits += 1 } }
let ns = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(20 * probe.count)
print(String(format: "range match: %.0f ns per version (%d hits)", ns, hits))
