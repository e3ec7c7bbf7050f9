/// Dependency resolution for the module registry: a module's dependency graph resolved to one
/// exact version per module — the highest that satisfies every requirement on it — with cycles,
/// missing modules and incompatible requirements reported by name.
public enum DependencyKind: String, Sendable, CaseIterable, Codable {
    /// Needed to run: resolved, part of cycle detection.
    case dependency
    /// Works with: resolved when present, never a cycle.
    case integration
    /// Exchanges data with: resolved when present, never a cycle.
    case dataFlow = "data-flow"
}

/// One requirement of a module version on another module.
public struct Dependency: Sendable, Equatable {
    public var module: String
    public var range: SemVerRange
    public var kind: DependencyKind
    /// An optional dependency that cannot be resolved is left out instead of failing.
    public var optional: Bool

    public init(module: String, range: SemVerRange, kind: DependencyKind = .dependency, optional: Bool = false) {
        (self.module, self.range, self.kind, self.optional) = (module, range, kind, optional)
    }

    public static func == (a: Dependency, b: Dependency) -> Bool {
        a.module == b.module && a.range.text == b.range.text && a.kind == b.kind && a.optional == b.optional
    }
}

/// What a resolver may choose from: a module's versions (any order) and what each requires.
public protocol ModuleCatalog {
    /// The versions of `module` a resolution may pick (nil: no such module).
    func versions(of module: String) throws -> [SemVer]?
    /// What `module@version` requires.
    func dependencies(of module: String, _ version: SemVer) throws -> [Dependency]
    /// The versions of `module` resolution skips unless a requirement names one exactly (yanked).
    func withdrawn(of module: String) throws -> Set<SemVer>
}

extension ModuleCatalog {
    public func withdrawn(of module: String) throws -> Set<SemVer> { [] }

    /// The highest version of `module` satisfying every range, skipping withdrawn versions that
    /// none of them names exactly.
    public func choose(_ module: String, from all: [SemVer], _ ranges: [SemVerRange]) throws -> SemVer? {
        let withdrawn = try self.withdrawn(of: module)
        return all.filter { v in
            ranges.allSatisfy { $0.contains(v) } && (!withdrawn.contains(v) || ranges.contains { $0.isExactly(v) })
        }.max()
    }
}

/// A resolved graph.
public struct Resolution: Sendable, Equatable {
    public struct Edge: Sendable, Equatable, Hashable {
        public var from: String
        public var to: String
        public var kind: DependencyKind
    }

    /// The version chosen for each module reached.
    public var versions: [String: SemVer]
    /// Every edge between chosen versions, in the order met.
    public var edges: [Edge]
}

/// Why a graph does not resolve, naming the modules and requirements.
public enum ResolutionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No version of `module` satisfies `range` (as `requiredBy` asks), or no such module.
    case missing(module: String, range: String, requiredBy: String)
    /// Two requirements on `module` no version satisfies together.
    case conflict(module: String, first: (range: String, by: String), second: (range: String, by: String))
    /// A cycle of `dependency` edges, as a path `a@1.0.0 → b@2.1.0 → a`.
    case cycle([String])

    public static func == (a: ResolutionError, b: ResolutionError) -> Bool { a.description == b.description }

    public var code: String {
        switch self {
        case .missing: "DEPENDENCY_MISSING"
        case .conflict: "VERSION_CONFLICT"
        case .cycle: "DEPENDENCY_CYCLE"
        }
    }

    public var description: String {
        switch self {
        case .missing(let m, let r, let by): "\(by) requires \(m)@\(r): no such version"
        case .conflict(let m, let a, let b): "\(m): \(a.by) requires \(a.range), \(b.by) requires \(b.range); no version satisfies both"
        case .cycle(let path): "dependency cycle: " + path.joined(separator: " → ")
        }
    }
}

public struct Resolver {
    public let catalog: any ModuleCatalog
    /// Resolutions stop (as a conflict) after this many restarts.
    public var maximumRounds = 64

    public init(catalog: any ModuleCatalog) { self.catalog = catalog }

    /// Resolves `root@range`: each module reached gets the highest version satisfying every
    /// requirement on it; a requirement that the version chosen so far does not satisfy makes the
    /// resolution start again preferring one that satisfies both, or fails as a conflict.
    public func resolve(_ root: String, _ range: SemVerRange) throws -> Resolution {
        // Requirements that made a resolution start again, kept for the next round.
        var extra: [String: [(range: SemVerRange, by: String)]] = [:]
        for _ in 0..<maximumRounds {
            var constraints: [String: [(range: SemVerRange, by: String)]] = extra
            constraints[root, default: []].append((range, "the request"))
            var chosen: [String: SemVer] = [:]
            var edges: [Resolution.Edge] = []
            var queue = [root]
            var restart = false
            var head = 0
            while head < queue.count, !restart {
                let module = queue[head]
                head += 1
                guard chosen[module] == nil else { continue }
                let wanted = constraints[module] ?? []
                guard let all = try catalog.versions(of: module), !all.isEmpty else {
                    let w = wanted.last!
                    throw ResolutionError.missing(module: module, range: w.range.text, requiredBy: w.by)
                }
                guard let version = try catalog.choose(module, from: all, wanted.map(\.range)) else {
                    // Which two disagree: the first requirement no version shares with another.
                    for (i, a) in wanted.enumerated() {
                        for b in wanted[(i + 1)...] where !all.contains(where: { a.range.contains($0) && b.range.contains($0) }) {
                            throw ResolutionError.conflict(module: module, first: (a.range.text, a.by), second: (b.range.text, b.by))
                        }
                    }
                    let w = wanted.last!
                    throw ResolutionError.missing(module: module, range: w.range.text, requiredBy: w.by)
                }
                chosen[module] = version
                let by = "\(module)@\(version)"
                for dep in try catalog.dependencies(of: module, version) {
                    if dep.optional || dep.kind != .dependency {
                        // Resolved when it can be; never a reason to fail.
                        guard let vs = try catalog.versions(of: dep.module), try catalog.choose(dep.module, from: vs, [dep.range]) != nil else { continue }
                    }
                    edges.append(Resolution.Edge(from: module, to: dep.module, kind: dep.kind))
                    constraints[dep.module, default: []].append((dep.range, by))
                    if let current = chosen[dep.module] {
                        guard !dep.range.contains(current) else { continue }
                        // Chosen too early: start again with this requirement known from the start.
                        extra[dep.module, default: []].append((dep.range, by))
                        restart = true
                        break
                    }
                    queue.append(dep.module)
                }
            }
            if restart { continue }
            let resolution = Resolution(versions: chosen, edges: edges)
            if let cycle = Self.cycle(in: resolution) { throw ResolutionError.cycle(cycle) }
            return resolution
        }
        throw ResolutionError.conflict(module: root, first: (range.text, "the request"), second: ("(no stable choice)", "\(maximumRounds) rounds"))
    }

    /// The cycle of `dependency` edges that publishing `module@version` with `dependencies` would
    /// close, as a path (`a@1.0.0 → b@2.1.0 → a`), or nil. Each requirement is followed to the
    /// highest version it admits, withdrawn ones included (a yanked version may come back);
    /// modules that are not there end a path.
    public func cycle(closedBy module: String, _ version: SemVer, dependencies: [Dependency]) throws -> [String]? {
        var visited = Set<String>()
        var path = ["\(module)@\(version)"]
        func follow(_ deps: [Dependency]) throws -> [String]? {
            for d in deps where d.kind == .dependency {
                if d.module == module {
                    if d.range.contains(version) { return path + [module] }
                    continue
                }
                // Withdrawn versions count: one that comes back (unyanked) must not close a cycle.
                guard let all = try catalog.versions(of: d.module), let v = all.filter(d.range.contains).max() else { continue }
                let name = "\(d.module)@\(v)"
                guard visited.insert(name).inserted else { continue }
                path.append(name)
                if let c = try follow(try catalog.dependencies(of: d.module, v)) { return c }
                path.removeLast()
            }
            return nil
        }
        return try follow(dependencies)
    }

    /// A cycle of `dependency` edges as a path of `name@version` ending in the first name again.
    public static func cycle(in r: Resolution) -> [String]? {
        var next: [String: [String]] = [:]
        for e in r.edges where e.kind == .dependency { next[e.from, default: []].append(e.to) }
        var state: [String: Int] = [:]  // 1: on the path, 2: done
        var path: [String] = []
        func visit(_ m: String) -> [String]? {
            state[m] = 1
            path.append(m)
            for n in next[m] ?? [] {
                if state[n] == 1 {
                    let start = path.firstIndex(of: n)!
                    return path[start...].map { "\($0)@\(r.versions[$0].map(\.description) ?? "?")" } + [n]
                }
                if state[n] == nil, let c = visit(n) { return c }
            }
            path.removeLast()
            state[m] = 2
            return nil
        }
        for m in r.versions.keys.sorted() where state[m] == nil {
            if let c = visit(m) { return c }
        }
        return nil
    }
}
