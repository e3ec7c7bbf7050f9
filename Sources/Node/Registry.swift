import Foundation
import IPLD
import Multiformats
import Pinning
import Qindex
import Registry
import Signing
import Storage

// MARK: the module registry (issue 15, in progress: publishing; Docs/registry.md)

/// `module.json`: the metadata fields a person writes.
public struct ModuleManifest: Decodable, Sendable {
    public struct DependencyLine: Decodable, Sendable {
        public var module: String
        public var range: String
        public var kind: String?
        public var optional: Bool?
    }
    public struct ComplianceFields: Decodable, Sendable {
        public var audit: Bool?
        public var riskScoring: Bool?
        public var privacyEnforced: Bool?
        public var kycSupport: Bool?
        public var gdprCompliant: Bool?
        public var dataRetentionPolicy: String?
    }
    public var module: String
    public var version: String
    public var description: String?
    public var type: String
    public var capabilities: [String]?
    public var identitiesSupported: [String]?
    public var integrations: [String]?
    public var dependencies: [DependencyLine]?
    public var status: String?
    public var compliance: ComplianceFields?
    public var repository: String?
    public var changelog: String?
}

/// What a publication made.
public struct PublishedModule: Sendable {
    public var metadata: ModuleMetadata
    /// The metadata block and the signed one (what the pointers name).
    public var metadataCID: CID
    public var signedCID: CID
}

/// Failures of registry operations, naming the module and what to do.
public enum RegistryError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    case invalid(String)
    case exists(String)
    public var description: String {
        switch self {
        case .invalid(let m), .exists(let m): m
        }
    }
    public var kind: ErrorKind {
        switch self {
        case .invalid: .invalidInput
        case .exists: .conflict
        }
    }
    public var code: String? {
        switch self {
        case .invalid: nil
        case .exists: "MODULE_VERSION_EXISTS"
        }
    }
}

extension Node {
    /// The Qindex type of each published version (`<name>@<version>`, never moved again) and of
    /// each module's latest version.
    static let moduleVersionType = "module-version"
    static let moduleType = "module"

    /// Publishes `DIR`: reads `DIR/module.json`, adds `DIR/package/` and `DIR/docs/` as UnixFS
    /// (pinned under the module-packages and module-docs policies), computes the package's
    /// checksum (SHA-256 multihash of its tar stream), builds, checks and signs the metadata with
    /// the keystore key `keyName` (a key of `identity`, which defaults to the node), stores it,
    /// and moves the pointers `module-version/<name>@<version>` (made once: a version is never
    /// published twice) and `module/<name>` (when this is the highest version).
    public func publishModule(directory: String, identity: IdentityRef? = nil, keyName: String = "self") throws -> PublishedModule {
        let manifestPath = directory + "/module.json"
        guard let data = FileManager.default.contents(atPath: manifestPath) else { throw RegistryError.invalid("no \(manifestPath)") }
        let manifest: ModuleManifest
        do { manifest = try JSONDecoder().decode(ModuleManifest.self, from: data) } catch let DecodingError.keyNotFound(key, _) {
            throw RegistryError.invalid("module.json: \(key.stringValue) is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw RegistryError.invalid("module.json: \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch { throw RegistryError.invalid("module.json: \(error)") }
        do { try ModuleMetadata.checkName(manifest.module) } catch { throw RegistryError.invalid("module.json: \(error)") }
        let version: SemVer
        do { version = try SemVer(manifest.version) } catch { throw RegistryError.invalid("module.json: version: \(error)") }
        let key = "\(manifest.module)@\(version)"
        if try pointerHead(type: Self.moduleVersionType, key: key) != nil {
            throw RegistryError.exists("\(key) is published already (a version is never published twice)")
        }
        var isDirectory: ObjCBool = false
        for part in ["package", "docs"] where !(FileManager.default.fileExists(atPath: directory + "/" + part, isDirectory: &isDirectory) && isDirectory.boolValue) {
            throw RegistryError.invalid("\(directory)/\(part)/ is missing (a module publishes its package and its docs)")
        }
        let signer = try keystore.key(keyName)
        let publisher = identity ?? IdentityRef(squidId: self.identity.peerID)
        let now = blocks.clock.now
        if publisher.squidId != self.identity.peerID, !access.isKey(signer.publicKey, of: publisher.squidId, at: now) {
            throw SigningError.invalid("key \(keyName) is not a key of \(publisher.squidId) (register it: qstore identity rotate-key)")
        }
        let package = try addTree(directory + "/package", name: key, resourceType: "module-packages")
        let docs = try addTree(directory + "/docs", name: key, resourceType: "module-docs")
        var tarBytes: [UInt8] = []
        try tar(package, name: manifest.module) { tarBytes.append(contentsOf: $0) }
        let checksum = try Multihash.compute(tarBytes, function: .sha2_256)
        var compliance = ModuleMetadata.Compliance()
        if let c = manifest.compliance {
            compliance.audit = c.audit ?? false
            compliance.riskScoring = c.riskScoring ?? false
            compliance.privacyEnforced = c.privacyEnforced ?? false
            compliance.kycSupport = c.kycSupport ?? false
            compliance.gdprCompliant = c.gdprCompliant ?? false
            compliance.dataRetentionPolicy = c.dataRetentionPolicy ?? ""
        }
        var dependencies: [ModuleMetadata.DependencyEntry] = []
        for (i, d) in (manifest.dependencies ?? []).enumerated() {
            guard let kind = DependencyKind(rawValue: d.kind ?? "dependency") else {
                throw RegistryError.invalid("module.json: dependencies[\(i)].kind: dependency, integration or data-flow")
            }
            dependencies.append(.init(module: d.module, range: d.range, kind: kind, optional: d.optional ?? false))
        }
        guard let status = ModuleMetadata.Status(rawValue: manifest.status ?? "DEVELOPMENT") else {
            throw RegistryError.invalid("module.json: status: one of \(ModuleMetadata.Status.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let checkpoint = audit.latestCheckpoint.map { "\($0.size) \(Data($0.rootHash).base64EncodedString())" } ?? ""
        let time = Timestamps.format(now)
        let metadata = ModuleMetadata(
            module: manifest.module, version: version, description: manifest.description ?? "", identity: publisher, type: manifest.type,
            capabilities: manifest.capabilities ?? [], identitiesSupported: manifest.identitiesSupported ?? [], integrations: manifest.integrations ?? [],
            dependencies: dependencies, status: status, compliance: compliance, package: package, checksum: checksum, documentation: docs,
            repository: manifest.repository, changelog: manifest.changelog, auditHash: checkpoint, createdAt: time, updatedAt: time)
        do { try metadata.check() } catch { throw RegistryError.invalid("module.json: \(error)") }
        let bytes = try metadata.encoded()
        let metaBlock = try Block(data: bytes, codec: .dagCBOR, hash: .sha2_256)
        let signed = SignedModuleMetadata(metadata: metaBlock.cid, bytes: bytes, key: signer, ts: Int64(now))
        let signedBlock = try Block(data: try signed.encoded(), codec: .dagCBOR, hash: .sha2_256)
        try withLease {
            try commits.run { txn, batch in
                batch.blocks += [metaBlock, signedBlock]
                txn.audit("q.registry.publish.v1", ref: key, cid: signedBlock.cid, details: [
                    ("module", .string(manifest.module)), ("version", .string(version.description)), ("publisher", .string(publisher.squidId)),
                    ("package", .string(package.string)), ("documentation", .string(docs.string)), ("status", .string(status.rawValue)),
                ])
            }
            var exact = Qindex.Update(type: Self.moduleVersionType, key: key, target: signedBlock.cid)
            exact.expectedVersion = 0
            exact.author = publisher
            do { _ = try putPointerBlocking(exact) } catch QindexError.versionConflict {
                throw RegistryError.exists("\(key) is published already (a version is never published twice)")
            }
            // `module/<name>` names the highest version published.
            let latest = try pointerHead(type: Self.moduleType, key: manifest.module)
            let latestVersion = try latest?.target.flatMap { try moduleMetadata(signed: $0)?.version }
            if latestVersion.map({ $0 < version }) ?? true {
                var u = Qindex.Update(type: Self.moduleType, key: manifest.module, target: signedBlock.cid)
                u.expectedHead = latest?.record
                if latest == nil { u.expectedVersion = 0 }
                u.author = publisher
                _ = try putPointerBlocking(u)
            }
        }
        return PublishedModule(metadata: metadata, metadataCID: metaBlock.cid, signedCID: signedBlock.cid)
    }

    /// Adds the directory at `path` as UnixFS, pinned as `name` under `resourceType`.
    func addTree(_ path: String, name: String, resourceType: String) throws -> CID {
        var options = AddSession.Options()
        options.importing.cidVersion = 1
        options.importing.rawLeaves = true
        options.pin = { cid in
            var r = Pinner.Request(cid: cid)
            r.name = name
            r.resourceType = resourceType
            return r
        }
        let session = add(options)
        do {
            _ = try session.tree(at: path)
            guard let root = try session.finish().first else { throw RegistryError.invalid("\(path) added nothing") }
            return root
        } catch {
            session.cancel()
            throw error
        }
    }

    /// The verified metadata a signed metadata block names (nil: not a signed metadata block).
    public func moduleMetadata(signed cid: CID) throws -> ModuleMetadata? {
        guard let s = try? SignedModuleMetadata(decoding: block(cid)) else { return nil }
        let bytes = try block(s.metadata)
        try s.verify(metadataBytes: bytes)
        return try ModuleMetadata(decoding: bytes)
    }
}

/// The published versions, as the resolver reads them: `module-version/<name>@<version>`
/// pointers (deleted ones left out), each version's dependencies from its verified metadata.
struct PublishedModules: ModuleCatalog {
    let node: Node

    func versions(of module: String) throws -> [SemVer]? {
        var out: [SemVer] = []
        var q = Qindex.Query()
        q.type = Node.moduleVersionType
        q.prefix = module + "@"
        q.limit = 1000
        while true {
            let page = try node.listPointers(q)
            for h in page.heads where h.target != nil {
                if let v = try? SemVer(String(h.key.dropFirst(module.count + 1))) { out.append(v) }
            }
            guard let next = page.next else { break }
            q.cursor = next
        }
        return out.isEmpty ? nil : out
    }

    func dependencies(of module: String, _ version: SemVer) throws -> [Dependency] {
        let head = try node.pointer(type: Node.moduleVersionType, key: "\(module)@\(version)")
        guard let target = head.target, let m = try node.moduleMetadata(signed: target) else {
            throw RegistryError.invalid("\(module)@\(version) names no module metadata")
        }
        return try m.dependencies.map { try $0.dependency() }
    }
}

extension Node {
    /// Resolves `module@range` over the published versions: one version per module (the highest
    /// satisfying every requirement), or the conflict, missing module or cycle by name.
    public func resolveModule(_ module: String, range: String) throws -> Resolution {
        let r: SemVerRange
        do { r = try SemVerRange(range) } catch { throw RegistryError.invalid("range: \(error)") }
        return try Resolver(catalog: PublishedModules(node: self)).resolve(module, r)
    }
}
