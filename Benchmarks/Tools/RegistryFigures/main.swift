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

// MARK: the registry in a repository (`store` after the sizes): publication rate, search over the
// modules published, and resolution through the node (versions from the pointers, dependencies
// from the stored metadata).
//
//   swift run -c release RegistryFigures 1000 10 store [SEARCH_MODULES (default 10000)]
import Node
import Storage

if args.count > 3, args[3] == "store" {
    let searchModules = args.count > 4 ? Int(args[4])! : 10_000
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-registry-figures-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try Repository.initialize(at: dir + "/repo")
    let repository = try Repository(path: dir + "/repo", purpose: "registry figures")
    let node = try Node(repository: repository)
    let fm = FileManager.default
    /// A small module: a 2 KiB package file and a 1 KiB doc.
    func write(_ name: String, _ version: String, deps: [(String, String)], type: String = "library", description: String) throws -> String {
        let d = dir + "/src/\(name)@\(version)"
        try fm.createDirectory(atPath: d + "/package", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: d + "/docs", withIntermediateDirectories: true)
        try Data(String(repeating: "export const x = '\(name)@\(version)'\n", count: 40).prefix(2048).utf8).write(to: URL(fileURLWithPath: d + "/package/index.js"))
        try Data(String(repeating: "docs of \(name) \(version). ", count: 40).prefix(1024).utf8).write(to: URL(fileURLWithPath: d + "/docs/index.md"))
        let m: [String: Any] = ["module": name, "version": version, "type": type, "description": description, "capabilities": ["cap\(name.count % 7)"],
                                "dependencies": deps.map { ["module": $0.0, "range": $0.1] }]
        try JSONSerialization.data(withJSONObject: m).write(to: URL(fileURLWithPath: d + "/module.json"))
        return d
    }
    // The graph: MODULES × VERSIONS, each version requiring up to 5 lower-numbered modules.
    var dirs: [String] = []
    for i in 0..<modules {
        for j in 0..<perModule {
            var deps: [(String, String)] = []
            if i > 0 {
                for k in 0..<min(5, i) where !deps.contains(where: { $0.0 == "g\((i * 31 + k * 17) % i)" }) {
                    deps.append(("g\((i * 31 + k * 17) % i)", k % 2 == 0 ? "^1.0.0 || ^2.0.0 || ^3.0.0" : ">=1.0.0 <4.0.0"))
                }
            }
            dirs.append(try write("g\(i)", "\(j / 4 + 1).\(j % 4).\(j % 3)", deps: deps, description: "graph module \(i)"))
        }
    }
    var start = DispatchTime.now().uptimeNanoseconds
    for d in dirs { _ = try node.publishModule(directory: d) }
    var seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    print(String(format: "publish (graph, with dependencies): %d versions in %.1f s: %.0f versions/s", dirs.count, seconds, Double(dirs.count) / seconds))
    // Resolution through the node: a root requiring every graph module.
    let root = try write("groot", "1.0.0", deps: (0..<modules).map { ("g\($0)", ">=1.0.0") }, description: "the root")
    _ = try node.publishModule(directory: root)
    var ts: [Double] = []
    var reachedInStore = 0
    for _ in 0..<10 {
        let s = DispatchTime.now().uptimeNanoseconds
        reachedInStore = try node.resolveModule("groot", range: "*").versions.count
        ts.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
    }
    ts.sort()
    print(String(format: "resolve through the node: %d modules reached: median %.1f ms, max %.1f ms", reachedInStore, ts[ts.count / 2], ts.last!))
    // Search: SEARCH_MODULES more modules (one version each, no dependencies).
    var more: [String] = []
    for i in 0..<searchModules {
        more.append(try write("s\(i)", "1.0.\(i % 10)", deps: [], type: ["library", "service", "ui", "tool"][i % 4],
                              description: "search module \(i) with words \(["alpha", "beta", "gamma", "delta", "epsilon"][i % 5]) and more"))
    }
    start = DispatchTime.now().uptimeNanoseconds
    for d in more { _ = try node.publishModule(directory: d) }
    seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    print(String(format: "publish (no dependencies): %d modules in %.1f s: %.0f modules/s", more.count, seconds, Double(more.count) / seconds))
    // The first search builds the summaries; later ones page through them.
    start = DispatchTime.now().uptimeNanoseconds
    _ = try node.searchModules(ModuleSearch())
    print(String(format: "first search (summaries built for %d modules): %.0f ms", modules + 1 + searchModules, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6))
    for (label, parameters) in [("by name, first page of 50", [("limit", "50")]), ("text \"gamma\"", [("q", "gamma")]),
                                ("type=service, sorted by fetches", [("type", "service"), ("sort", "fetches")]),
                                ("text + capability, sorted by updated", [("q", "module"), ("capability", "cap3"), ("sort", "updated")]),
                                ("page 100 (cursor 5000)", [("cursor", "5000")])] {
        let q = try ModuleSearch(parameters: parameters)
        var t: [Double] = []
        for _ in 0..<20 {
            let s = DispatchTime.now().uptimeNanoseconds
            _ = try node.searchModules(q)
            t.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
        }
        t.sort()
        print(String(format: "search %@: median %.2f ms, max %.2f ms", label, t[t.count / 2], t.last!))
    }
    repository.close()
}
