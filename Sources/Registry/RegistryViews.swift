import Multiformats
import Signing

/// Failures of registry operations, naming the module and what to do.
public enum RegistryError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    /// Bad input: a manifest field, a name, a range, a parameter.
    case invalid(String)
    /// `name@version` was published before (a version is never published twice).
    case exists(String)
    /// No such module or version (in the namespace asked).
    case notFound(String)
    /// The operation does not fit the version's state (a status move not allowed, a promotion of
    /// what does not verify).
    case state(String)
    /// A resolution failed: `VERSION_CONFLICT`, `DEPENDENCY_MISSING`, `DEPENDENCY_CYCLE`.
    case resolution(ResolutionError)

    public var description: String {
        switch self {
        case .invalid(let m), .exists(let m), .notFound(let m), .state(let m): m
        case .resolution(let e): e.description
        }
    }

    public var kind: ErrorKind {
        switch self {
        case .invalid: .invalidInput
        case .exists, .state, .resolution: .conflict
        case .notFound: .notFound
        }
    }

    public var code: String? {
        switch self {
        case .invalid: nil
        case .exists: "MODULE_VERSION_EXISTS"
        case .notFound: "MODULE_NOT_FOUND"
        case .state: "MODULE_STATE"
        case .resolution(let e): e.code
        }
    }
}

/// The two namespaces a version can be published into: production (what queries and resolution
/// see) and the sandbox (invisible to them until promoted).
public enum ModuleNamespace: String, Sendable, CaseIterable, Codable {
    case production, sandbox

    /// The Qindex types of a namespace: each version's pointer (`<name>@<version>`) and each
    /// module's latest-version pointer (`<name>`).
    public var versionType: String { self == .production ? "module-version" : "sandbox-module-version" }
    public var moduleType: String { self == .production ? "module" : "sandbox-module" }

    public static let pointerTypes: Set<String> = Set(allCases.flatMap { [$0.versionType, $0.moduleType] })

    public init(parameter: String?) throws {
        switch parameter {
        case nil, "", "production": self = .production
        case "sandbox": self = .sandbox
        default: throw RegistryError.invalid("namespace: production or sandbox")
        }
    }
}

/// One version as the registry holds it: its current metadata, the signed block its pointer
/// names, who signed that block, and the pointer's revision (1: as published).
public struct ModuleRelease: Sendable, Equatable {
    public var metadata: ModuleMetadata
    public var signed: CID
    public var signer: [UInt8]
    public var namespace: ModuleNamespace
    public var revision: Int64

    public init(metadata: ModuleMetadata, signed: CID, signer: [UInt8], namespace: ModuleNamespace, revision: Int64) {
        (self.metadata, self.signed, self.signer, self.namespace, self.revision) = (metadata, signed, signer, namespace, revision)
    }
}

/// A module as search and `module ls` show it: its latest version's fields, how many versions it
/// has, and how often its package and docs were fetched.
public struct ModuleSummary: Sendable, Equatable {
    public var module: String
    public var namespace: ModuleNamespace
    public var latest: SemVer
    public var description: String
    public var type: String
    public var capabilities: [String]
    public var publisher: String
    public var status: ModuleMetadata.Status
    public var versions: Int
    public var updatedAt: String
    public var dependencies: [ModuleMetadata.DependencyEntry]
    public var packageFetches: UInt64 = 0
    public var docsFetches: UInt64 = 0
    /// The name and description in lower case, as UTF-8: what text search reads.
    public let searchText: [UInt8]

    public init(_ m: ModuleMetadata, namespace: ModuleNamespace, versions: Int) {
        searchText = Array((m.module + "\n" + m.description).lowercased().utf8)
        module = m.module
        self.namespace = namespace
        latest = m.version
        description = m.description
        type = m.type
        capabilities = m.capabilities
        publisher = m.identity.squidId
        status = m.status
        self.versions = versions
        updatedAt = m.updatedAt
        dependencies = m.dependencies
    }
}

/// A search over the registry's modules (`GET /q/v1/modules`, `qstore module search`).
public struct ModuleSearch: Sendable, Equatable {
    public enum Sort: String, Sendable, CaseIterable { case name, updated, versions, fetches }

    /// Words that must all appear in the name or the description (case-insensitive).
    public var text: String?
    public var type: String?
    public var capability: String?
    /// The publisher's squid ID.
    public var publisher: String?
    public var status: ModuleMetadata.Status?
    public var namespace: ModuleNamespace = .production
    public var sort: Sort = .name
    /// `updated`, `versions` and `fetches` sort newest/most first unless `ascending`.
    public var ascending: Bool?
    public var limit = 50
    /// Where the previous page stopped (opaque to callers: the next page's `cursor`).
    public var offset = 0

    public init() {}

    /// From query parameters (`q`, `type`, `capability`, `publisher`, `status`, `namespace`,
    /// `sort`, `order`, `limit`, `cursor`); unknown ones are refused, naming them.
    public init(parameters: [(String, String)]) throws {
        for (k, v) in parameters {
            switch k {
            case "q", "text": text = v
            case "type": type = v
            case "capability": capability = v
            case "publisher": publisher = v
            case "status":
                guard let s = ModuleMetadata.Status(rawValue: v.uppercased()) else {
                    throw RegistryError.invalid("status: one of \(ModuleMetadata.Status.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                status = s
            case "namespace": namespace = try ModuleNamespace(parameter: v)
            case "sort":
                guard let s = Sort(rawValue: v) else { throw RegistryError.invalid("sort: one of \(Sort.allCases.map(\.rawValue).joined(separator: ", "))") }
                sort = s
            case "order":
                guard v == "asc" || v == "desc" else { throw RegistryError.invalid("order: asc or desc") }
                ascending = v == "asc"
            case "limit":
                guard let n = Int(v), (1...1000).contains(n), v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw RegistryError.invalid("limit: 1 to 1000") }
                limit = n
            case "cursor":
                guard let n = Int(v), n >= 0, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw RegistryError.invalid("cursor: the next value of a previous page") }
                offset = n
            default: throw RegistryError.invalid("unknown parameter \(k) (q, type, capability, publisher, status, namespace, sort, order, limit, cursor)")
            }
        }
    }

    public func matches(_ s: ModuleSummary, words: [[UInt8]]) -> Bool {
        if let type, s.type != type { return false }
        if let capability, !s.capabilities.contains(capability) { return false }
        if let publisher, s.publisher != publisher { return false }
        if let status, s.status != status { return false }
        for w in words where !Self.find(w, in: s.searchText) { return false }
        return true
    }

    /// Whether `needle` occurs in `haystack` (bytes: a search reads thousands of summaries).
    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
        guard let first = needle.first else { return true }
        guard haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                var i = 0
                let last = h.count - n.count
                outer: while i <= last {
                    if h[i] == first {
                        var j = 1
                        while j < n.count {
                            if h[i + j] != n[j] { i += 1; continue outer }
                            j += 1
                        }
                        return true
                    }
                    i += 1
                }
                return false
            }
        }
    }

    /// One page of `all`, which is sorted by name: the matching summaries sorted, with their
    /// fetch counts, and the next page's cursor. Only the page is given its counts, unless the
    /// sort is by them.
    public func page(_ all: [ModuleSummary], fetches: (String) -> (package: UInt64, docs: UInt64)) -> (modules: [ModuleSummary], next: Int?) {
        let words = (text ?? "").lowercased().split(separator: " ").map { Array($0.utf8) }
        let filtering = type != nil || capability != nil || publisher != nil || status != nil || !words.isEmpty
        var hits = filtering ? all.filter { matches($0, words: words) } : all
        let up = ascending ?? (sort == .name)
        switch sort {
        case .name: if !up { hits.reverse() }
        case .updated: hits.sort { ($0.updatedAt, $0.module) < ($1.updatedAt, $1.module) ? up : !up }
        case .versions: hits.sort { ($0.versions, $0.module) < ($1.versions, $1.module) ? up : !up }
        case .fetches:
            for i in hits.indices { (hits[i].packageFetches, hits[i].docsFetches) = fetches(hits[i].module) }
            hits.sort { ($0.packageFetches + $0.docsFetches, $0.module) < ($1.packageFetches + $1.docsFetches, $1.module) ? up : !up }
        }
        let start = min(offset, hits.count)
        let end = min(start + limit, hits.count)
        var page = Array(hits[start..<end])
        if sort != .fetches { for i in page.indices { (page[i].packageFetches, page[i].docsFetches) = fetches(page[i].module) } }
        return (page, end < hits.count ? end : nil)
    }
}

/// What `module verify` found for one version: each check by name, passed or not, with why.
public struct ModuleVerification: Sendable, Equatable {
    public struct Check: Sendable, Equatable {
        /// `signature`, `package`, `docs`, `checksum`, `dependencies`, `status`.
        public var name: String
        public var ok: Bool
        public var detail: String
        public init(_ name: String, _ ok: Bool, _ detail: String) { (self.name, self.ok, self.detail) = (name, ok, detail) }
    }

    public var module: String
    public var version: SemVer
    public var namespace: ModuleNamespace
    public var checks: [Check]
    public var ok: Bool { checks.allSatisfy(\.ok) }

    public init(module: String, version: SemVer, namespace: ModuleNamespace, checks: [Check]) {
        (self.module, self.version, self.namespace, self.checks) = (module, version, namespace, checks)
    }
}

/// A module that requires another (`module rdeps`): which of its versions, with what range, and
/// whether the required module's latest version satisfies it.
public struct ModuleDependent: Sendable, Equatable {
    public var module: String
    public var version: SemVer
    public var range: String
    public var kind: DependencyKind
    public var optional: Bool
    public var satisfiedByLatest: Bool

    public init(module: String, version: SemVer, range: String, kind: DependencyKind, optional: Bool, satisfiedByLatest: Bool) {
        (self.module, self.version, self.range, self.kind, self.optional, self.satisfiedByLatest) = (module, version, range, kind, optional, satisfiedByLatest)
    }
}

/// A change of a version's registry state (`module deprecate|yank|status`).
public struct ModuleChange: Sendable, Equatable {
    public var status: ModuleMetadata.Status?
    public var yanked: Bool?
    /// Why (kept in the metadata's `reason`); a change without one clears the previous reason.
    public var reason: String?

    public init(status: ModuleMetadata.Status? = nil, yanked: Bool? = nil, reason: String? = nil) {
        (self.status, self.yanked, self.reason) = (status, yanked, reason)
    }
}

