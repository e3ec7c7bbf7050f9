import Foundation
import Multiformats
import Registry
import Signing

// The wire types of `/q/v1/modules` (daemon and CLI share them).

public struct ModuleDependencyInfo: Codable, Sendable, Equatable {
    public var module: String
    public var range: String
    /// `dependency`, `integration` or `data-flow`.
    public var kind: String
    public var optional: Bool
    public init(_ d: ModuleMetadata.DependencyEntry) { (module, range, kind, optional) = (d.module, d.range, d.kind.rawValue, d.optional) }
}

public struct ModuleComplianceInfo: Codable, Sendable, Equatable {
    public var audit: Bool
    public var riskScoring: Bool
    public var privacyEnforced: Bool
    public var kycSupport: Bool
    public var gdprCompliant: Bool
    public var dataRetentionPolicy: String
    public init(_ c: ModuleMetadata.Compliance) {
        (audit, riskScoring, privacyEnforced, kycSupport, gdprCompliant, dataRetentionPolicy) =
            (c.audit, c.riskScoring, c.privacyEnforced, c.kycSupport, c.gdprCompliant, c.dataRetentionPolicy)
    }
}

/// One version: its metadata's fields, the signed block its pointer names, who signed it.
public struct ModuleInfo: Codable, Sendable, Equatable {
    public var module: String
    public var version: String
    public var namespace: String
    public var status: String
    public var yanked: Bool
    public var reason: String?
    public var description: String
    /// The publisher's squid ID.
    public var publisher: String
    public var type: String
    public var capabilities: [String]
    public var identitiesSupported: [String]
    public var integrations: [String]
    public var dependencies: [ModuleDependencyInfo]
    public var compliance: ModuleComplianceInfo
    /// The package's UnixFS root.
    public var package: String
    /// The multihash of the package's tar stream, base16 multibase (`f1220` + the SHA-256 digest in hex).
    public var checksum: String
    /// The documentation's UnixFS root.
    public var documentation: String
    public var repository: String?
    public var changelog: String?
    public var auditHash: String
    public var activatedBy: String?
    public var createdAt: String
    public var updatedAt: String
    /// The signed metadata block the version's pointer names (its `cid` in the envelope too).
    public var signed: String
    /// The Ed25519 public key that signed this revision, base64.
    public var signer: String
    /// The pointer's revision (1: as published).
    public var revision: Int64

    public init(_ r: ModuleRelease) {
        let m = r.metadata
        module = m.module
        version = m.version.description
        namespace = r.namespace.rawValue
        status = m.status.rawValue
        yanked = m.yanked
        reason = m.reason
        description = m.description
        publisher = m.identity.squidId
        type = m.type
        capabilities = m.capabilities
        identitiesSupported = m.identitiesSupported
        integrations = m.integrations
        dependencies = m.dependencies.map(ModuleDependencyInfo.init)
        compliance = ModuleComplianceInfo(m.compliance)
        package = m.package.string
        checksum = "f" + m.checksum.bytes.map { String(format: "%02x", $0) }.joined()
        documentation = m.documentation.string
        repository = m.repository
        changelog = m.changelog
        auditHash = m.auditHash
        activatedBy = m.activatedBy?.squidId
        createdAt = m.createdAt
        updatedAt = m.updatedAt
        signed = r.signed.string
        signer = Data(r.signer).base64EncodedString()
        revision = r.revision
    }
}

/// `GET /q/v1/modules/{name}[@range]`: the module's versions (with a range: the one it picks).
public struct ModuleVersionsInfo: Codable, Sendable, Equatable {
    public var module: String
    public var namespace: String
    public var versions: [ModuleInfo]
    public init(module: String, namespace: ModuleNamespace, versions: [ModuleInfo]) {
        (self.module, self.namespace, self.versions) = (module, namespace.rawValue, versions)
    }
}

/// `POST /q/v1/modules/{name}`.
public struct ModulePublished: Codable, Sendable, Equatable {
    /// false: this release was published before (a rerun completed it).
    public var created: Bool
    public var module: ModuleInfo
    public init(created: Bool, module: ModuleInfo) { (self.created, self.module) = (created, module) }
}

public struct ModuleFetches: Codable, Sendable, Equatable {
    public var package: UInt64
    public var docs: UInt64
}

/// A module in a search or listing.
public struct ModuleSummaryInfo: Codable, Sendable, Equatable {
    public var module: String
    public var namespace: String
    public var latest: String
    public var description: String
    public var type: String
    public var capabilities: [String]
    public var publisher: String
    public var status: String
    public var versions: Int
    public var updatedAt: String
    public var fetches: ModuleFetches

    public init(_ s: ModuleSummary) {
        module = s.module
        namespace = s.namespace.rawValue
        latest = s.latest.description
        description = s.description
        type = s.type
        capabilities = s.capabilities
        publisher = s.publisher
        status = s.status.rawValue
        versions = s.versions
        updatedAt = s.updatedAt
        fetches = ModuleFetches(package: s.packageFetches, docs: s.docsFetches)
    }
}

/// `GET /q/v1/modules`: a page; `next` is the following page's `cursor`.
public struct ModulePage: Codable, Sendable, Equatable {
    public var modules: [ModuleSummaryInfo]
    public var next: String?
    public init(modules: [ModuleSummaryInfo], next: Int?) { (self.modules, self.next) = (modules, next.map(String.init)) }
}

public struct ModuleCheckInfo: Codable, Sendable, Equatable {
    public var name: String
    public var ok: Bool
    public var detail: String
}

public struct ModuleVerificationInfo: Codable, Sendable, Equatable {
    public var module: String
    public var version: String
    public var namespace: String
    public var ok: Bool
    public var checks: [ModuleCheckInfo]
    public init(_ v: ModuleVerification) {
        (module, version, namespace, ok) = (v.module, v.version.description, v.namespace.rawValue, v.ok)
        checks = v.checks.map { ModuleCheckInfo(name: $0.name, ok: $0.ok, detail: $0.detail) }
    }
}

/// `GET /q/v1/modules/{name}[@range]/verify`.
public struct ModuleVerifyReport: Codable, Sendable, Equatable {
    public var ok: Bool
    public var versions: [ModuleVerificationInfo]
    public init(_ vs: [ModuleVerification]) { (ok, versions) = (vs.allSatisfy(\.ok), vs.map(ModuleVerificationInfo.init)) }
}

public struct ModuleGraphNode: Codable, Sendable, Equatable {
    public var module: String
    public var version: String
}

public struct ModuleGraphEdge: Codable, Sendable, Equatable {
    public var from: String
    public var to: String
    public var kind: String
}

/// `GET /q/v1/modules/{name}[@range]/graph`: the resolved graph (one version per module).
public struct ModuleGraphInfo: Codable, Sendable, Equatable {
    public var root: String
    public var range: String
    public var namespace: String
    public var nodes: [ModuleGraphNode]
    public var edges: [ModuleGraphEdge]
    public init(root: String, range: String, namespace: ModuleNamespace, _ r: Resolution) {
        (self.root, self.range, self.namespace) = (root, range, namespace.rawValue)
        nodes = r.versions.sorted { $0.key < $1.key }.map { ModuleGraphNode(module: $0.key, version: $0.value.description) }
        edges = r.edges.map { ModuleGraphEdge(from: $0.from, to: $0.to, kind: $0.kind.rawValue) }
    }
}

public struct ModuleDependentInfo: Codable, Sendable, Equatable {
    public var module: String
    public var version: String
    public var range: String
    public var kind: String
    public var optional: Bool
    public var satisfiedByLatest: Bool
    public init(_ d: ModuleDependent) {
        (module, version, range, kind, optional, satisfiedByLatest) = (d.module, d.version.description, d.range, d.kind.rawValue, d.optional, d.satisfiedByLatest)
    }
}

/// `GET /q/v1/modules/{name}/rdeps`.
public struct ModuleDependents: Codable, Sendable, Equatable {
    public var module: String
    public var dependents: [ModuleDependentInfo]
    public init(module: String, _ ds: [ModuleDependent]) { (self.module, dependents) = (module, ds.map(ModuleDependentInfo.init)) }
}

/// `GET /q/v1/modules/{name}[@range]/docs`: the docs the name resolves to now.
public struct ModuleDocsInfo: Codable, Sendable, Equatable {
    public var module: String
    public var version: String
    public var cid: String
    /// The immutable path (`/ipfs/<cid>`).
    public var path: String
    public init(_ r: ModuleRelease) {
        module = r.metadata.module
        version = r.metadata.version.description
        cid = r.metadata.documentation.string
        path = "/ipfs/" + cid
    }
}

/// `PATCH /q/v1/modules/{name}@{version}` (and the body of deprecate and yank).
public struct ModuleChangeRequest: Codable, Sendable, Equatable {
    public var status: String?
    public var yanked: Bool?
    public var reason: String?
    public init(status: String? = nil, yanked: Bool? = nil, reason: String? = nil) { (self.status, self.yanked, self.reason) = (status, yanked, reason) }
}

extension ModuleChangeRequest {
    /// The change an action asks for (`deprecate`, `yank`, or nil: a status change) and the audit
    /// event it is logged as; bad fields refused by name.
    public func change(action: String?) throws -> (ModuleChange, event: String) {
        var c = ModuleChange(reason: reason)
        switch action {
        case "deprecate":
            guard reason != nil else { throw RegistryError.invalid("reason: a deprecation says why (and what to use instead)") }
            c.status = .deprecated
            return (c, "q.registry.deprecate.v1")
        case "yank":
            c.yanked = yanked ?? true
            return (c, c.yanked! ? "q.registry.yank.v1" : "q.registry.unyank.v1")
        default:
            if let status {
                guard let s = ModuleMetadata.Status(rawValue: status) else {
                    throw RegistryError.invalid("status: one of \(ModuleMetadata.Status.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                c.status = s
            }
            c.yanked = yanked
            guard c.status != nil || c.yanked != nil else { throw RegistryError.invalid("the body changes nothing: {status?, yanked?, reason?}") }
            return (c, "q.registry.status.v1")
        }
    }
}

/// `DELETE /q/v1/modules/{name}[@version]`.
public struct ModuleDeregistered: Codable, Sendable, Equatable {
    public var module: String
    public var namespace: String
    public var versions: [String]
    public init(module: String, namespace: ModuleNamespace, versions: [SemVer]) {
        (self.module, self.namespace, self.versions) = (module, namespace.rawValue, versions.map(\.description))
    }
}
