import IPLD
import Multiformats
import Signing

/// A module version's metadata (dag-cbor), as the registry stores, signs and resolves it:
/// `{module, version, description, identity, type, capabilities, identitiesSupported,
/// integrations, dependencies: [{module, range, kind, optional}], status, compliance: {audit,
/// riskScoring, privacyEnforced, kycSupport, gdprCompliant, dataRetentionPolicy}, package: Link,
/// checksum: multihash bytes, documentation: Link, repository?, changelog?, auditHash,
/// activatedBy?, createdAt, updatedAt}`. Every field is checked when made and when read; errors
/// name the field.
public struct ModuleMetadata: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable, Codable {
        case development = "DEVELOPMENT", testing = "TESTING", production = "PRODUCTION"
        case deprecated = "DEPRECATED", suspended = "SUSPENDED"

        /// The moves a version's status may make: forward through its life (DEVELOPMENT to TESTING
        /// or straight to PRODUCTION), TESTING back to DEVELOPMENT, PRODUCTION ⇄ DEPRECATED, and
        /// any status into SUSPENDED and out of it to any.
        public func canMove(to next: Status) -> Bool {
            switch (self, next) {
            case (.development, .testing), (.development, .production), (.testing, .production), (.testing, .development),
                 (.production, .deprecated), (.deprecated, .production): true
            case (_, .suspended): self != .suspended
            case (.suspended, _): true
            default: false
            }
        }
    }

    public struct Compliance: Sendable, Equatable {
        public var audit = false
        public var riskScoring = false
        public var privacyEnforced = false
        public var kycSupport = false
        public var gdprCompliant = false
        /// A retention statement (`"30d"`, `"none"`, a policy name); empty when not stated.
        public var dataRetentionPolicy = ""
        public init() {}
    }

    public struct DependencyEntry: Sendable, Equatable {
        public var module: String
        public var range: String
        public var kind: DependencyKind
        public var optional: Bool
        public init(module: String, range: String, kind: DependencyKind = .dependency, optional: Bool = false) {
            (self.module, self.range, self.kind, self.optional) = (module, range, kind, optional)
        }
        /// As the resolver takes it.
        public func dependency() throws -> Dependency { Dependency(module: module, range: try SemVerRange(range), kind: kind, optional: optional) }
    }

    public var module: String
    public var version: SemVer
    public var description: String
    /// The publisher.
    public var identity: IdentityRef
    public var type: String
    public var capabilities: [String]
    public var identitiesSupported: [String]
    public var integrations: [String]
    public var dependencies: [DependencyEntry]
    public var status: Status
    public var compliance: Compliance
    /// The package's UnixFS root.
    public var package: CID
    /// The multihash of the package as a tar stream.
    public var checksum: Multihash
    /// The documentation's UnixFS root.
    public var documentation: CID
    public var repository: String?
    public var changelog: String?
    /// The audit checkpoint the registration happened under (its signed note's root, as text).
    public var auditHash: String
    public var activatedBy: IdentityRef?
    /// Withdrawn from resolution (content stays retrievable; an exact request still gets it).
    public var yanked = false
    /// Why the status or `yanked` last changed (a deprecation's message); nil when not stated.
    public var reason: String?
    /// RFC 3339.
    public var createdAt: String
    public var updatedAt: String

    /// `^[a-z][a-z0-9-]{1,63}$`.
    public static func checkName(_ name: String, field: String = "module") throws {
        let u = Array(name.utf8)
        guard u.count >= 2, u.count <= 64, let first = u.first, first >= 0x61, first <= 0x7a,
              u.dropFirst().allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }) else {
            throw SigningError.malformed("\(field): \"\(name.prefix(80))\" is not a module name (a lower-case letter, then 1 to 63 of a-z, 0-9, -)")
        }
    }

    /// Checks every field; the first problem is thrown, naming its field.
    public func check() throws {
        try Self.checkName(module)
        guard version.description.utf8.count <= 256 else { throw SigningError.malformed("version: at most 256 characters") }
        guard description.utf8.count <= 4096 else { throw SigningError.malformed("description: at most 4096 bytes") }
        try identity.check(field: "identity")
        try activatedBy?.check(field: "activatedBy")
        guard !type.isEmpty, type.utf8.count <= 64 else { throw SigningError.malformed("type: 1 to 64 bytes") }
        for (field, list) in [("capabilities", capabilities), ("identitiesSupported", identitiesSupported), ("integrations", integrations)] {
            guard list.count <= 256 else { throw SigningError.malformed("\(field): at most 256 entries") }
            for (i, s) in list.enumerated() where s.isEmpty || s.utf8.count > 128 {
                throw SigningError.malformed("\(field)[\(i)]: 1 to 128 bytes")
            }
        }
        guard dependencies.count <= 1024 else { throw SigningError.malformed("dependencies: at most 1024 entries") }
        var seen = Set<String>()
        for (i, d) in dependencies.enumerated() {
            try Self.checkName(d.module, field: "dependencies[\(i)].module")
            guard d.module != module else { throw SigningError.malformed("dependencies[\(i)].module: a module does not depend on itself") }
            guard seen.insert(d.module).inserted else { throw SigningError.malformed("dependencies[\(i)].module: \(d.module) is listed twice") }
            do { _ = try SemVerRange(d.range) } catch { throw SigningError.malformed("dependencies[\(i)].range: \(error)") }
        }
        guard compliance.dataRetentionPolicy.utf8.count <= 256 else { throw SigningError.malformed("compliance.dataRetentionPolicy: at most 256 bytes") }
        for (field, text) in [("repository", repository), ("changelog", changelog)] {
            if let text, text.isEmpty || text.utf8.count > 2048 { throw SigningError.malformed("\(field): 1 to 2048 bytes") }
        }
        if let reason, reason.isEmpty || reason.utf8.count > 1024 { throw SigningError.malformed("reason: 1 to 1024 bytes") }
        guard auditHash.utf8.count <= 512 else { throw SigningError.malformed("auditHash: at most 512 bytes") }
        for (field, t) in [("createdAt", createdAt), ("updatedAt", updatedAt)] where RFC3339Time(rfc3339: t) == nil {
            throw SigningError.malformed("\(field): \"\(t.prefix(40))\" is not an RFC 3339 time")
        }
    }

    /// The metadata as a dag-cbor map (absent optionals left out).
    public var node: IPLDNode {
        let strings = { (l: [String]) in IPLDNode.list(l.map { .string($0) }) }
        var pairs: [(String, IPLDNode)] = [
            ("module", .string(module)), ("version", .string(version.description + (version.build.isEmpty ? "" : "+" + version.build.joined(separator: ".")))),
            ("description", .string(description)), ("identity", identity.node), ("type", .string(type)),
            ("capabilities", strings(capabilities)), ("identitiesSupported", strings(identitiesSupported)), ("integrations", strings(integrations)),
            ("dependencies", .list(dependencies.map { d in
                .map(IPLDMap(uniqueKeysWithValues: [("module", .string(d.module)), ("range", .string(d.range)), ("kind", .string(d.kind.rawValue)),
                                                    ("optional", .bool(d.optional))]))
            })),
            ("status", .string(status.rawValue)),
            ("compliance", .map(IPLDMap(uniqueKeysWithValues: [
                ("audit", .bool(compliance.audit)), ("riskScoring", .bool(compliance.riskScoring)), ("privacyEnforced", .bool(compliance.privacyEnforced)),
                ("kycSupport", .bool(compliance.kycSupport)), ("gdprCompliant", .bool(compliance.gdprCompliant)),
                ("dataRetentionPolicy", .string(compliance.dataRetentionPolicy)),
            ]))),
            ("package", .link(package)), ("checksum", .bytes(checksum.bytes)), ("documentation", .link(documentation)),
            ("auditHash", .string(auditHash)), ("createdAt", .string(createdAt)), ("updatedAt", .string(updatedAt)),
        ]
        if let repository { pairs.append(("repository", .string(repository))) }
        if let changelog { pairs.append(("changelog", .string(changelog))) }
        if let activatedBy { pairs.append(("activatedBy", activatedBy.node)) }
        if yanked { pairs.append(("yanked", .bool(true))) }
        if let reason { pairs.append(("reason", .string(reason))) }
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }

    /// Deterministic dag-cbor: what is stored and signed.
    public func encoded() throws -> [UInt8] { try DAGCBOR().encode(node) }

    public static let fields: Set<String> = [
        "module", "version", "description", "identity", "type", "capabilities", "identitiesSupported", "integrations", "dependencies",
        "status", "compliance", "package", "checksum", "documentation", "repository", "changelog", "auditHash", "activatedBy", "yanked", "reason", "createdAt", "updatedAt",
    ]

    /// Whether `other` is the same release: everything but the registry's state (status, yanked,
    /// reason, activatedBy, updatedAt) and when it was registered (auditHash) is equal. A version's
    /// metadata may only move between versions of the same release.
    public func isSameRelease(as other: ModuleMetadata) -> Bool {
        var a = self, b = other
        a.status = b.status
        a.yanked = b.yanked
        a.reason = b.reason
        a.activatedBy = b.activatedBy
        a.updatedAt = b.updatedAt
        a.auditHash = b.auditHash
        return a == b && a.version.build == b.version.build
    }

    /// Reads a metadata block (unknown fields refused; every field checked).
    public init(decoding bytes: [UInt8]) throws {
        let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "metadata", allowed: Self.fields)
        func strings(_ key: String) throws -> [String] {
            guard case .list(let items)? = m.map[key] else { throw SigningError.malformed("\(key): expected a list") }
            return try items.enumerated().map { i, n in
                guard case .string(let s) = n else { throw SigningError.malformed("\(key)[\(i)]: expected a string") }
                return s
            }
        }
        module = try m.string("module")
        do { version = try SemVer(try m.string("version")) } catch let e as SemVerError { throw SigningError.malformed("version: \(e)") }
        description = try m.string("description")
        identity = try IdentityRef(m.map["identity"], field: "identity")
        type = try m.string("type")
        capabilities = try strings("capabilities")
        identitiesSupported = try strings("identitiesSupported")
        integrations = try strings("integrations")
        guard case .list(let deps)? = m.map["dependencies"] else { throw SigningError.malformed("dependencies: expected a list") }
        dependencies = try deps.enumerated().map { i, n in
            let d = try IPLDFields(n, field: "dependencies[\(i)]", allowed: ["module", "range", "kind", "optional"])
            guard let kind = DependencyKind(rawValue: try d.string("kind")) else {
                throw SigningError.malformed("dependencies[\(i)].kind: dependency, integration or data-flow")
            }
            guard case .bool(let optional)? = d.map["optional"] else { throw SigningError.malformed("dependencies[\(i)].optional: expected a boolean") }
            return DependencyEntry(module: try d.string("module"), range: try d.string("range"), kind: kind, optional: optional)
        }
        guard let s = Status(rawValue: try m.string("status")) else {
            throw SigningError.malformed("status: one of \(Status.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        status = s
        let c = try IPLDFields(m.map["compliance"], field: "compliance",
                               allowed: ["audit", "riskScoring", "privacyEnforced", "kycSupport", "gdprCompliant", "dataRetentionPolicy"])
        func flag(_ key: String) throws -> Bool {
            guard case .bool(let b)? = c.map[key] else { throw SigningError.malformed("compliance.\(key): expected a boolean") }
            return b
        }
        compliance = Compliance()
        compliance.audit = try flag("audit")
        compliance.riskScoring = try flag("riskScoring")
        compliance.privacyEnforced = try flag("privacyEnforced")
        compliance.kycSupport = try flag("kycSupport")
        compliance.gdprCompliant = try flag("gdprCompliant")
        compliance.dataRetentionPolicy = try c.string("dataRetentionPolicy")
        package = try m.link("package")
        do { checksum = try Multihash(bytes: try m.bytes("checksum")) } catch { throw SigningError.malformed("checksum: not a multihash") }
        documentation = try m.link("documentation")
        repository = try m.optionalString("repository")
        changelog = try m.optionalString("changelog")
        auditHash = try m.string("auditHash")
        activatedBy = m.has("activatedBy") ? try IdentityRef(m.map["activatedBy"], field: "activatedBy") : nil
        if let y = m.map["yanked"] {
            guard case .bool(true) = y else { throw SigningError.malformed("yanked: true when present") }
            yanked = true
        }
        reason = try m.optionalString("reason")
        createdAt = try m.string("createdAt")
        updatedAt = try m.string("updatedAt")
        try check()
    }

    public init(module: String, version: SemVer, description: String, identity: IdentityRef, type: String, capabilities: [String] = [],
                identitiesSupported: [String] = [], integrations: [String] = [], dependencies: [DependencyEntry] = [], status: Status = .development,
                compliance: Compliance = Compliance(), package: CID, checksum: Multihash, documentation: CID, repository: String? = nil,
                changelog: String? = nil, auditHash: String, activatedBy: IdentityRef? = nil, createdAt: String, updatedAt: String) {
        self.module = module
        self.version = version
        self.description = description
        self.identity = identity
        self.type = type
        self.capabilities = capabilities
        self.identitiesSupported = identitiesSupported
        self.integrations = integrations
        self.dependencies = dependencies
        self.status = status
        self.compliance = compliance
        self.package = package
        self.checksum = checksum
        self.documentation = documentation
        self.repository = repository
        self.changelog = changelog
        self.auditHash = auditHash
        self.activatedBy = activatedBy
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// `{metadata: Link, sig: LockSig}`: the publisher's Ed25519 signature of the metadata block's
/// bytes behind the domain `qmodule-metadata:`.
public struct SignedModuleMetadata: Sendable, Equatable {
    public static let domain = "qmodule-metadata:"

    public var metadata: CID
    public var sig: LockSig

    /// Signs the metadata block `bytes` (whose CID is `metadata`) with `key` at `ts` (Unix ms).
    public init(metadata: CID, bytes: [UInt8], key: SigningKey, ts: Int64) {
        self.metadata = metadata
        var s = LockSig(unsignedBy: key, ts: ts)
        s.sig = key.sign(Signatures.message(domain: Self.domain, bytes))
        self.sig = s
    }

    /// Checks the signature against the metadata block's `bytes` (which must be the block
    /// `metadata` names): `SigningError.invalid` when it does not verify.
    public func verify(metadataBytes bytes: [UInt8]) throws {
        guard (try? Multihash.compute(bytes, function: metadata.multihash.code)) == metadata.multihash else {
            throw SigningError.invalid("the metadata bytes are not the block \(metadata)")
        }
        try sig.verify(bytes, domain: Self.domain)
    }

    public var node: IPLDNode { .map(IPLDMap(uniqueKeysWithValues: [("metadata", .link(metadata)), ("sig", sig.node)])) }
    public func encoded() throws -> [UInt8] { try DAGCBOR().encode(node) }

    public init(decoding bytes: [UInt8]) throws {
        let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "signed metadata", allowed: ["metadata", "sig"])
        metadata = try m.link("metadata")
        sig = try LockSig(m.map["sig"], field: "sig")
    }
}
