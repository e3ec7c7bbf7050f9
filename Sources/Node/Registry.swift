import Foundation
import IPLD
import Locking
import Multiformats
import Pinning
import Qindex
import Registry
import Signing
import Storage
import Synchronization

// MARK: the module registry (Docs/registry.md)

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

/// What a publication did.
public struct ModulePublication: Sendable {
    public var release: ModuleRelease
    /// false: this very release was published before (a rerun after an interruption completes
    /// what the first run left undone: the pins, the latest pointer).
    public var created: Bool
}

/// The registry's memory, all of it derived from the pointers and blocks and kept current by this
/// node's registry operations (a pointer import drops it):
/// - each module's summary for search and listing (built on first use), with the names sorted;
/// - each module's live version pointers (what resolution lists), per namespace;
/// - each signed metadata block's dependencies (content-addressed: never stale);
/// - the fetch counters, persisted unsynced in key space `I` (`I 01 ‖ name` → u64 package
///   fetches ‖ u64 docs fetches).
/// A reader stores what it read only when no write moved the generation meanwhile.
final class RegistryState: Sendable {
    struct Contents {
        var summaries: [ModuleNamespace: [String: ModuleSummary]] = [:]
        var sorted: [ModuleNamespace: [ModuleSummary]] = [:]
        var versions: [ModuleNamespace: [String: [(version: SemVer, head: Head)]]] = [:]
        var dependencies: [CID: [Dependency]] = [:]
        /// The release a production `name[@range]` picks (docs and package requests).
        var picked: [String: ModuleRelease] = [:]
        var generation: UInt64 = 0
        var fetches: [String: (package: UInt64, docs: UInt64)]?
    }
    let contents = Mutex(Contents())
    /// Registry writes run one at a time: a check (the version is new, no cycle, the status move
    /// is allowed) holds until its pointers have moved.
    private let writes = NSLock()

    func exclusively<R>(_ body: () throws -> R) rethrows -> R {
        writes.lock()
        defer { writes.unlock() }
        return try body()
    }
    /// At most this many signed blocks' dependencies are held (then the map starts again).
    static let dependencyEntries = 200_000

    func forget() {
        contents.locked {
            $0.summaries = [:]
            $0.sorted = [:]
            $0.versions = [:]
            $0.picked = [:]
            $0.generation += 1
        }
    }

    /// Drops what is held of one module's versions (before and after its pointers move).
    func forget(_ name: String, _ namespace: ModuleNamespace) {
        contents.locked {
            $0.versions[namespace]?[name] = nil
            $0.picked = [:]
            $0.generation += 1
        }
    }
}

extension Node {
    static let packagesType = "module-packages"
    static let docsType = "module-docs"

    /// `name[@range]` (a bare version is a range that asks for exactly it).
    public static func moduleReference(_ text: String) throws -> (name: String, range: SemVerRange?) {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        do { try ModuleMetadata.checkName(name) } catch { throw RegistryError.invalid("\(error)") }
        guard parts.count == 2 else { return (name, nil) }
        do { return (name, try SemVerRange(String(parts[1]))) } catch { throw RegistryError.invalid("\(text.prefix(80)): not a range (npm ranges: ^1.2, ~1.2.3, >=1 <2, 1.x)") }
    }

    /// `name@version`, exactly.
    public static func moduleVersion(_ text: String) throws -> (name: String, version: SemVer) {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw RegistryError.invalid("\(text.prefix(80)): expected name@version (e.g. q-docs@1.2.0)") }
        do { try ModuleMetadata.checkName(String(parts[0])) } catch { throw RegistryError.invalid("\(error)") }
        do { return (String(parts[0]), try SemVer(String(parts[1]))) } catch { throw RegistryError.invalid("\(text.prefix(80)): version: \(error)") }
    }

    /// The fields `module.json` may hold (and those of its dependencies and compliance).
    static let manifestFields: Set<String> = ["module", "version", "description", "type", "capabilities", "identitiesSupported", "integrations",
                                              "dependencies", "status", "compliance", "repository", "changelog"]
    static let dependencyFields: Set<String> = ["module", "range", "kind", "optional"]
    static let complianceFields: Set<String> = ["audit", "riskScoring", "privacyEnforced", "kycSupport", "gdprCompliant", "dataRetentionPolicy"]

    /// Reads and decodes `DIR/module.json`, errors naming the field: unknown fields and fields
    /// given twice are refused (two readers of one file must never see two modules).
    public static func readManifest(_ directory: String) throws -> (ModuleManifest, SemVer) {
        guard let data = FileManager.default.contents(atPath: directory + "/module.json") else { throw RegistryError.invalid("no module.json") }
        guard data.count <= 1 << 20 else { throw RegistryError.invalid("module.json: at most 1 MiB") }
        if let twice = JSONKeys.duplicate(in: [UInt8](data)) { throw RegistryError.invalid("module.json: \(twice) is given twice") }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw RegistryError.invalid("module.json: not a JSON object") }
        for key in object.keys.sorted() where !manifestFields.contains(key) {
            throw RegistryError.invalid("module.json: unknown field \(key.prefix(64)) (fields: \(manifestFields.sorted().joined(separator: ", ")))")
        }
        for (i, d) in ((object["dependencies"] as? [Any]) ?? []).enumerated() {
            for key in ((d as? [String: Any]) ?? [:]).keys.sorted() where !dependencyFields.contains(key) {
                throw RegistryError.invalid("module.json: dependencies[\(i)]: unknown field \(key.prefix(64)) (module, range, kind, optional)")
            }
        }
        for key in ((object["compliance"] as? [String: Any]) ?? [:]).keys.sorted() where !complianceFields.contains(key) {
            throw RegistryError.invalid("module.json: compliance: unknown field \(key.prefix(64))")
        }
        let manifest: ModuleManifest
        do { manifest = try JSONDecoder().decode(ModuleManifest.self, from: data) } catch let DecodingError.keyNotFound(key, _) {
            throw RegistryError.invalid("module.json: \(key.stringValue) is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw RegistryError.invalid("module.json: \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch { throw RegistryError.invalid("module.json: not a manifest (\(error))") }
        do { try ModuleMetadata.checkName(manifest.module) } catch { throw RegistryError.invalid("module.json: \(error)") }
        do { return (manifest, try SemVer(manifest.version)) } catch { throw RegistryError.invalid("module.json: version: \(error)") }
    }

    /// The checksum of a package: the multihash (SHA-256) of its tar stream, hashed as it is
    /// written (never held whole).
    func packageChecksum(_ package: CID, name: String, function: Multicodec = .sha2_256) throws -> Multihash {
        guard let f = HashFunction.lookup(function) else { throw RegistryError.invalid("checksum: unknown hash function \(function)") }
        var hasher = f.makeHasher()
        try tar(package, name: name) { hasher.update($0) }
        return Multihash(code: function, digest: hasher.finalize())
    }

    // MARK: publishing

    /// Publishes `DIR` into `namespace`: reads `DIR/module.json`, adds `DIR/package/` and `DIR/docs/`
    /// as UnixFS, computes the package's checksum (SHA-256 multihash of its tar stream), builds,
    /// checks and signs the metadata with the keystore key `keyName` (a key of `identity`, which
    /// defaults to the node), refuses a dependency cycle it would close, stores it, makes the
    /// pointer `<namespace>/module-version/<name>@<version>` (once: a version is never published
    /// twice, in either namespace), pins package and docs under the module-packages and
    /// module-docs policies and moves `module/<name>` to the highest version.
    ///
    /// The version pointer is the commit point. Run again after an interruption, a publication
    /// of the same release finds it and completes the rest (`created` false).
    /// `expectedModule`: the name the caller was allowed to publish (the API's path); another
    /// name in module.json is refused.
    public func publishModule(directory: String, namespace: ModuleNamespace = .production, identity: IdentityRef? = nil,
                              keyName: String = "self", expectedModule: String? = nil) throws -> ModulePublication {
        let (manifest, version) = try Self.readManifest(directory)
        if let expectedModule, manifest.module != expectedModule {
            throw RegistryError.invalid("module.json publishes \(manifest.module), not \(expectedModule) (the path names the module)")
        }
        let key = "\(manifest.module)@\(version)"
        for other in ModuleNamespace.allCases where other != namespace {
            if try pointerHead(type: other.versionType, key: key) != nil {
                throw RegistryError.exists("\(key) is published already (in \(other.rawValue)); a version is never published twice")
            }
        }
        let existing = try pointerHead(type: namespace.versionType, key: key)
        if let existing, existing.isDeleted { throw RegistryError.exists("\(key) was published and deregistered; a version is never published twice") }
        var isDirectory: ObjCBool = false
        for part in ["package", "docs"] where !(FileManager.default.fileExists(atPath: directory + "/" + part, isDirectory: &isDirectory) && isDirectory.boolValue) {
            throw RegistryError.invalid("\(part)/ is missing (a module publishes its package and its docs)")
        }
        let signer = try keystore.key(keyName)
        let publisher = identity ?? IdentityRef(squidId: self.identity.peerID)
        let now = blocks.clock.now
        if publisher.squidId == self.identity.peerID {
            guard signer.publicKey == (try keystore.key("self")).publicKey else {
                throw SigningError.invalid("key \(keyName) is not the node's: the node publishes with its own key (self)")
            }
        } else if !access.isKey(signer.publicKey, of: publisher.squidId, at: now) {
            throw SigningError.invalid("key \(keyName) is not a key of \(publisher.squidId) (register it: qstore identity rotate-key)")
        }
        return try withLease {
            // Unpinned until the version pointer holds them (the lease keeps them meanwhile).
            let package = try addTree(directory + "/package")
            let docs = try addTree(directory + "/docs")
            let checksum = try packageChecksum(package, name: manifest.module)
            var metadata = try Self.metadata(manifest, version: version, publisher: publisher, package: package, checksum: checksum, docs: docs,
                                             auditHash: audit.latestCheckpoint.map { "\($0.size) \(Data($0.rootHash).base64EncodedString())" } ?? "",
                                             time: Timestamps.format(now))
            return try registry.exclusively {
                // Read again under the registry's lock: another publication may have made it since.
                for other in ModuleNamespace.allCases where other != namespace {
                    if try pointerHead(type: other.versionType, key: key) != nil {
                        throw RegistryError.exists("\(key) is published already (in \(other.rawValue)); a version is never published twice")
                    }
                }
                let existing = try pointerHead(type: namespace.versionType, key: key)
                if let existing, existing.isDeleted { throw RegistryError.exists("\(key) was published and deregistered; a version is never published twice") }
                if let existing {
                    let current = try release(existing, namespace)
                    metadata.createdAt = current.metadata.createdAt
                    guard current.metadata.isSameRelease(as: metadata) else {
                        throw RegistryError.exists("\(key) is published already with other contents; a version is never published twice")
                    }
                    try completePublication(current)
                    return ModulePublication(release: current, created: false)
                }
                let catalog = PublishedModules(node: self, namespace: namespace)
                if let cycle = try Resolver(catalog: catalog).cycle(closedBy: manifest.module, version, dependencies: try metadata.dependencies.map { try $0.dependency() }) {
                    throw RegistryError.resolution(.cycle(cycle))
                }
                let signed = try storeSigned(metadata, key: signer, event: "q.registry.publish.v1", ref: key, details: [
                    ("namespace", .string(namespace.rawValue)), ("publisher", .string(publisher.squidId)),
                    ("package", .string(package.string)), ("documentation", .string(docs.string)), ("status", .string(metadata.status.rawValue)),
                ])
                var exact = Qindex.Update(type: namespace.versionType, key: key, target: signed, tags: Self.tags(metadata))
                exact.expectedVersion = 0
                exact.author = publisher
                let head: Head
                do { head = try putPointerBlocking(exact) } catch QindexError.versionConflict {
                    throw RegistryError.exists("\(key) is published already (a version is never published twice)")
                }
                let release = ModuleRelease(metadata: metadata, signed: signed, signer: signer.publicKey, namespace: namespace, revision: head.version)
                try completePublication(release)
                return ModulePublication(release: release, created: true)
            }
        }
    }

    /// The metadata a manifest describes.
    static func metadata(_ manifest: ModuleManifest, version: SemVer, publisher: IdentityRef, package: CID, checksum: Multihash, docs: CID,
                         auditHash: String, time: String) throws -> ModuleMetadata {
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
        guard let status = ModuleMetadata.Status(rawValue: manifest.status ?? "DEVELOPMENT"), [.development, .testing, .production].contains(status) else {
            throw RegistryError.invalid("module.json: status: DEVELOPMENT, TESTING or PRODUCTION (a version is published into one of these; DEPRECATED and SUSPENDED come later)")
        }
        let metadata = ModuleMetadata(
            module: manifest.module, version: version, description: manifest.description ?? "", identity: publisher, type: manifest.type,
            capabilities: manifest.capabilities ?? [], identitiesSupported: manifest.identitiesSupported ?? [], integrations: manifest.integrations ?? [],
            dependencies: dependencies, status: status, compliance: compliance, package: package, checksum: checksum, documentation: docs,
            repository: manifest.repository, changelog: manifest.changelog, auditHash: auditHash, createdAt: time, updatedAt: time)
        do { try metadata.check() } catch { throw RegistryError.invalid("module.json: \(error)") }
        return metadata
    }

    /// The tags a version pointer carries, so listings see its state without reading metadata.
    static func tags(_ m: ModuleMetadata) -> [String] { ["status:" + m.status.rawValue] + (m.yanked ? ["yanked"] : []) }

    /// Signs `metadata` with `key` and stores both blocks with the audit event, in one commit;
    /// returns the signed block's CID.
    func storeSigned(_ metadata: ModuleMetadata, key: SigningKey, event: String, ref: String, details: [(String, IPLDNode)]) throws -> CID {
        let bytes = try metadata.encoded()
        let metaBlock = try Block(data: bytes, codec: .dagCBOR, hash: .sha2_256)
        let signed = SignedModuleMetadata(metadata: metaBlock.cid, bytes: bytes, key: key, ts: Int64(blocks.clock.now))
        let signedBlock = try Block(data: try signed.encoded(), codec: .dagCBOR, hash: .sha2_256)
        try commits.run { txn, batch in
            batch.blocks += [metaBlock, signedBlock]
            txn.audit(event, ref: ref, cid: signedBlock.cid, details: [("module", .string(metadata.module)), ("version", .string(metadata.version.description))] + details)
        }
        return signedBlock.cid
    }

    /// What follows the version pointer: the policy pins of package and docs (named
    /// `<name>@<version>`; made once), the latest pointer, the summary.
    func completePublication(_ r: ModuleRelease) throws {
        let key = "\(r.metadata.module)@\(r.metadata.version)"
        for (cid, type) in [(r.metadata.package, Self.packagesType), (r.metadata.documentation, Self.docsType)]
        where try !pins.pins(of: cid.multihash).contains(where: { $0.resourceType == type && $0.name == key }) {
            var request = Pinner.Request(cid: cid)
            request.name = key
            request.resourceType = type
            try pins.pin(request)
        }
        try moveLatest(r.metadata.module, r.namespace)
    }

    /// Adds the directory at `path` as UnixFS (CIDv1, raw leaves), unpinned.
    func addTree(_ path: String) throws -> CID {
        var options = AddSession.Options()
        options.importing.cidVersion = 1
        options.importing.rawLeaves = true
        let session = try add(options)
        do {
            _ = try session.tree(at: path)
            guard let root = try session.finish().first else { throw RegistryError.invalid("\(path) added nothing") }
            return root
        } catch {
            session.cancel()
            throw error
        }
    }

    // MARK: reading

    /// The metadata a signed metadata block names; its signature checked unless `verified` is
    /// false (listings and resolution, which trust what the registry stored; `module verify`
    /// checks). Nil: not a signed metadata block.
    public func moduleMetadata(signed cid: CID, verified: Bool = true) throws -> ModuleMetadata? {
        try signedMetadata(cid, verified: verified)?.metadata
    }

    func signedMetadata(_ cid: CID, verified: Bool = true) throws -> (metadata: ModuleMetadata, signer: [UInt8])? {
        guard let s = try? SignedModuleMetadata(decoding: block(cid)) else { return nil }
        let bytes = try block(s.metadata)
        if verified { try s.verify(metadataBytes: bytes) }
        return (try ModuleMetadata(decoding: bytes), s.sig.pub)
    }

    /// The release a version pointer's head names.
    func release(_ head: Head, _ namespace: ModuleNamespace, verified: Bool = true) throws -> ModuleRelease {
        guard let target = head.target, let (m, signer) = try signedMetadata(target, verified: verified) else {
            throw RegistryError.notFound("\(head.type)/\(head.key) names no module metadata")
        }
        return ModuleRelease(metadata: m, signed: target, signer: signer, namespace: namespace, revision: head.version)
    }

    /// The live version pointers of `name` in `namespace`, lowest version first (held in memory
    /// between registry writes).
    func versionHeads(_ name: String, _ namespace: ModuleNamespace) throws -> [(version: SemVer, head: Head)] {
        let (held, generation) = registry.contents.locked { ($0.versions[namespace]?[name], $0.generation) }
        if let held { return held }
        let read = try readVersionHeads(name, namespace)
        registry.contents.locked { if $0.generation == generation { $0.versions[namespace, default: [:]][name] = read } }
        return read
    }

    func readVersionHeads(_ name: String, _ namespace: ModuleNamespace) throws -> [(version: SemVer, head: Head)] {
        var out: [(SemVer, Head)] = []
        var q = Qindex.Query()
        q.type = namespace.versionType
        q.prefix = name + "@"
        q.limit = 1000
        while true {
            let page = try listPointers(q)
            for h in page.heads where h.target != nil {
                if let v = try? SemVer(String(h.key.dropFirst(name.count + 1))) { out.append((v, h)) }
            }
            guard let next = page.next else { break }
            q.cursor = next
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// The version of `name` that `range` picks (the highest it admits, yanked and suspended ones
    /// only when named exactly), or the latest when no range is given.
    public func moduleRelease(_ name: String, range: SemVerRange? = nil, namespace: ModuleNamespace = .production) throws -> ModuleRelease {
        guard let range else {
            // The highest version not withdrawn (prereleases too: a name alone asks for the newest).
            guard let head = try versionHeads(name, namespace).last(where: { !Self.isWithdrawn($0.head) })?.head else {
                throw RegistryError.notFound("no module \(name)\(namespace == .sandbox ? " in the sandbox" : "") (or every version is yanked or suspended)")
            }
            return try release(head, namespace)
        }
        let catalog = PublishedModules(node: self, namespace: namespace, only: true)
        guard let all = try catalog.versions(of: name), let v = try catalog.choose(name, from: all, [range]),
              let head = try catalog.live(name).first(where: { $0.version == v })?.head else {
            throw RegistryError.notFound("no version of \(name) satisfies \(range.text)\(namespace == .sandbox ? " in the sandbox" : "")")
        }
        return try release(head, namespace)
    }

    /// Whether resolution skips a version unless it is named exactly (yanked, suspended).
    static func isWithdrawn(_ h: Head) -> Bool { h.tags.contains("yanked") || h.tags.contains("status:SUSPENDED") }

    /// Every live version of `name`, lowest first.
    public func moduleVersions(_ name: String, namespace: ModuleNamespace = .production) throws -> [ModuleRelease] {
        let heads = try versionHeads(name, namespace)
        guard !heads.isEmpty else { throw RegistryError.notFound("no module \(name)\(namespace == .sandbox ? " in the sandbox" : "")") }
        return try heads.map { try release($0.head, namespace) }
    }

    /// Resolves `module@range` over the published versions (production; the sandbox sees its own
    /// versions and production's): one version per module, the highest satisfying every
    /// requirement, or the conflict, missing module or cycle by name.
    public func resolveModule(_ module: String, range: String, namespace: ModuleNamespace = .production) throws -> Resolution {
        let r: SemVerRange
        do { r = try SemVerRange(range) } catch { throw RegistryError.invalid("range: \(error)") }
        return try resolveModule(module, r, namespace: namespace)
    }

    public func resolveModule(_ module: String, _ range: SemVerRange, namespace: ModuleNamespace = .production) throws -> Resolution {
        let catalog = PublishedModules(node: self, namespace: namespace)
        guard try catalog.versions(of: module) != nil else {
            throw RegistryError.notFound("no module \(module)\(namespace == .sandbox ? " in the sandbox or production" : "")")
        }
        do { return try Resolver(catalog: catalog).resolve(module, range) } catch let e as ResolutionError { throw RegistryError.resolution(e) }
    }

    /// The docs of the version `range` picks (production), counted as a docs fetch unless
    /// `count` is false (the gateway counts once the path was found, for GET only).
    public func moduleDocs(_ name: String, range: SemVerRange?, count: Bool = true) throws -> ModuleRelease {
        let r = try pickedRelease(name, range)
        if count { countFetch(name, docs: true) }
        return r
    }

    /// The package of the version `range` picks (production), counted as a package fetch.
    public func modulePackage(_ name: String, range: SemVerRange?) throws -> ModuleRelease {
        let r = try pickedRelease(name, range)
        countFetch(name, docs: false)
        return r
    }

    /// Counts a fetch of `name`'s docs (the gateway's docs route, once it found the file).
    public func countDocsFetch(_ name: String) { countFetch(name, docs: true) }

    /// `moduleRelease` in production, the answer held until a registry write (docs by name are
    /// asked for far more often than versions change).
    func pickedRelease(_ name: String, _ range: SemVerRange?) throws -> ModuleRelease {
        let key = name + "@" + (range?.text ?? "")
        let (held, generation) = registry.contents.locked { ($0.picked[key], $0.generation) }
        if let held { return held }
        let r = try moduleRelease(name, range: range)
        registry.contents.locked {
            guard $0.generation == generation else { return }
            if $0.picked.count >= 10_000 { $0.picked = [:] }
            $0.picked[key] = r
        }
        return r
    }

    // MARK: changing a version's state

    /// Applies `change` to `name@version`: a new metadata revision (status, yanked, reason,
    /// updatedAt; everything else as published), signed by the node's key as the registry's
    /// operator, its pointer moved (compare-and-swap on the head read), an audit event `event`.
    /// A status move the lifecycle does not allow is refused (`MODULE_STATE`); a change that
    /// changes nothing returns the release as it is.
    public func changeModule(_ name: String, _ version: SemVer, namespace: ModuleNamespace = .production, _ change: ModuleChange,
                             event: String) throws -> ModuleRelease {
        try registry.exclusively { try changeModuleExclusively(name, version, namespace: namespace, change, event: event) }
    }

    private func changeModuleExclusively(_ name: String, _ version: SemVer, namespace: ModuleNamespace, _ change: ModuleChange,
                                         event: String) throws -> ModuleRelease {
        let key = "\(name)@\(version)"
        guard let head = try pointerHead(type: namespace.versionType, key: key), !head.isDeleted else {
            throw RegistryError.notFound("no version \(key)\(namespace == .sandbox ? " in the sandbox" : "")")
        }
        let current = try release(head, namespace)
        var m = current.metadata
        if let s = change.status, s != m.status {
            guard m.status.canMove(to: s) else {
                throw RegistryError.state("\(key) is \(m.status.rawValue): it cannot become \(s.rawValue) (DEVELOPMENT → TESTING → PRODUCTION ⇄ DEPRECATED, DEVELOPMENT → PRODUCTION, TESTING → DEVELOPMENT; any → SUSPENDED → any)")
            }
            m.status = s
        }
        if let y = change.yanked { m.yanked = y }
        guard m.status != current.metadata.status || m.yanked != current.metadata.yanked || (change.reason != nil && change.reason != m.reason) else {
            return current
        }
        m.reason = change.reason
        if let reason = m.reason, reason.isEmpty || reason.utf8.count > 1024 { throw RegistryError.invalid("reason: 1 to 1024 bytes") }
        // The cycle check at publication saw withdrawn versions too, so one coming back closes none.
        m.updatedAt = Timestamps.format(blocks.clock.now)
        let signer = try keystore.key("self")
        var details: [(String, IPLDNode)] = [("namespace", .string(namespace.rawValue)), ("status", .string(m.status.rawValue)), ("yanked", .bool(m.yanked))]
        if let r = m.reason { details.append(("reason", .string(r))) }
        return try withLease {
            let signed = try storeSigned(m, key: signer, event: event, ref: key, details: details)
            var u = Qindex.Update(type: namespace.versionType, key: key, target: signed, tags: Self.tags(m))
            u.expectedHead = head.record
            defer { try? moveLatest(name, namespace) }
            let moved = try putPointerBlocking(u)
            return ModuleRelease(metadata: m, signed: signed, signer: signer.publicKey, namespace: namespace, revision: moved.version)
        }
    }

    /// Removes versions from the registry (all of `name`'s when `version` is nil): each version
    /// pointer gets a tombstone (its history stays; the version is never published again), the
    /// policy pins of package and docs go, and `module/<name>` moves to the highest version left
    /// (or is deleted). Returns the versions removed.
    public func deregisterModule(_ name: String, version: SemVer? = nil, namespace: ModuleNamespace = .production) throws -> [SemVer] {
        try registry.exclusively { try deregisterExclusively(name, version: version, namespace: namespace) }
    }

    private func deregisterExclusively(_ name: String, version: SemVer?, namespace: ModuleNamespace) throws -> [SemVer] {
        defer { try? moveLatest(name, namespace) }
        var heads = try readVersionHeads(name, namespace)
        if let version { heads = heads.filter { $0.version == version } }
        guard !heads.isEmpty else {
            throw RegistryError.notFound("no \(version.map { "version \(name)@\($0)" } ?? "module \(name)")\(namespace == .sandbox ? " in the sandbox" : "")")
        }
        for (v, head) in heads {
            let key = "\(name)@\(v)"
            let r = try? release(head, namespace, verified: false)
            var u = Qindex.Update(type: namespace.versionType, key: key, target: nil)
            u.expectedHead = head.record
            _ = try putPointerBlocking(u)
            try commits.run { txn, _ in
                txn.audit("q.registry.deregister.v1", ref: key, cid: head.target, details: [("namespace", .string(namespace.rawValue))])
            }
            if let r {
                for (cid, type) in [(r.metadata.package, Self.packagesType), (r.metadata.documentation, Self.docsType)] {
                    for p in try pins.pins(of: cid.multihash) where p.resourceType == type && p.name == key { _ = try pins.remove(id: p.id) }
                }
            }
        }
        return heads.map(\.version)
    }

    /// Moves `name@version` from the sandbox to production after a full verify in production's
    /// terms (signature chain, package and docs complete, checksum, dependencies resolvable in
    /// production, status): production's pointer starts from the publisher-signed metadata the
    /// sandbox started from, then a revision naming `activatedBy`; the sandbox pointer gets a
    /// tombstone.
    public func promoteModule(_ name: String, _ version: SemVer, by actor: IdentityRef? = nil) throws -> ModuleRelease {
        try registry.exclusively { try promoteExclusively(name, version, by: actor) }
    }

    private func promoteExclusively(_ name: String, _ version: SemVer, by actor: IdentityRef?) throws -> ModuleRelease {
        let key = "\(name)@\(version)"
        defer {
            try? moveLatest(name, .sandbox)
            try? moveLatest(name, .production)
        }
        guard let sandboxHead = try pointerHead(type: ModuleNamespace.sandbox.versionType, key: key), !sandboxHead.isDeleted else {
            throw RegistryError.notFound("no version \(key) in the sandbox")
        }
        let firstSandbox = try history(ModuleNamespace.sandbox.versionType, key).first { $0.cid != nil }?.cid
        let production = try pointerHead(type: ModuleNamespace.production.versionType, key: key)
        // A promotion cut short (its production pointer made, the sandbox's still live) is
        // finished; anything else in production is another publication.
        let resuming = try production.map { p -> Bool in
            let firstProduction = try history(ModuleNamespace.production.versionType, key).first { $0.cid != nil }?.cid
            guard !p.isDeleted, firstProduction != nil, firstProduction == firstSandbox else {
                throw RegistryError.exists("\(key) is in production already; a version is never published twice")
            }
            return true
        } ?? false
        let sandbox = try release(sandboxHead, .sandbox)
        if !resuming {
            let report = try verify(sandboxHead, .sandbox, against: .production)
            guard report.ok else {
                throw RegistryError.state("\(key) cannot be promoted: " + report.checks.filter { !$0.ok }.map { "\($0.name): \($0.detail)" }.joined(separator: "; "))
            }
        }
        let first = firstSandbox ?? sandbox.signed
        let firstStatus = try moduleMetadata(signed: first, verified: false)?.status ?? sandbox.metadata.status
        // Production's history is two revisions: the first must move to the current in one step.
        guard firstStatus == sandbox.metadata.status || firstStatus.canMove(to: sandbox.metadata.status) else {
            throw RegistryError.state("\(key) was published \(firstStatus.rawValue) and is now \(sandbox.metadata.status.rawValue), which production cannot take in one move: set its sandbox status to one \(firstStatus.rawValue) can move to, then promote")
        }
        var m = sandbox.metadata
        m.activatedBy = actor ?? IdentityRef(squidId: identity.peerID)
        m.updatedAt = Timestamps.format(blocks.clock.now)
        let signer = try keystore.key("self")
        return try withLease {
            let began: Head
            if resuming, let p = production {
                began = p
            } else {
                var start = Qindex.Update(type: ModuleNamespace.production.versionType, key: key, target: first, tags: Self.tags(sandbox.metadata))
                start.expectedVersion = 0
                start.author = sandbox.metadata.identity
                do { began = try putPointerBlocking(start) } catch QindexError.versionConflict {
                    throw RegistryError.exists("\(key) is in production already; a version is never published twice")
                }
            }
            var r: ModuleRelease
            if began.version >= 2, let current = try? release(began, .production), current.metadata.activatedBy != nil {
                r = current  // the activated revision was written before the cut
            } else {
                let signed = try storeSigned(m, key: signer, event: "q.registry.promote.v1", ref: key, details: [
                    ("activatedBy", .string(m.activatedBy!.squidId)), ("from", .string(sandbox.signed.string)),
                ])
                var u = Qindex.Update(type: ModuleNamespace.production.versionType, key: key, target: signed, tags: Self.tags(m))
                u.expectedHead = began.record
                let head = try putPointerBlocking(u)
                r = ModuleRelease(metadata: m, signed: signed, signer: signer.publicKey, namespace: .production, revision: head.version)
            }
            var end = Qindex.Update(type: ModuleNamespace.sandbox.versionType, key: key, target: nil)
            end.expectedHead = sandboxHead.record
            _ = try putPointerBlocking(end)
            try completePublication(r)
            return r
        }
    }

    /// Points `module/<name>` at the highest live version's current metadata — the highest not
    /// yanked or suspended when there is one — (deletes it when none is left) and refreshes the
    /// module's summary.
    func moveLatest(_ name: String, _ namespace: ModuleNamespace) throws {
        registry.forget(name, namespace)
        defer { registry.forget(name, namespace) }
        let heads = try readVersionHeads(name, namespace)
        let current = try pointerHead(type: namespace.moduleType, key: name)
        let live = current.flatMap { $0.isDeleted ? nil : $0 }
        if let top = heads.last(where: { !Self.isWithdrawn($0.head) }) ?? heads.last {
            if live?.target != top.head.target {
                var u = Qindex.Update(type: namespace.moduleType, key: name, target: top.head.target)
                u.expectedHead = current?.record
                if current == nil { u.expectedVersion = 0 }
                _ = try putPointerBlocking(u)
            }
        } else if let live {
            var u = Qindex.Update(type: namespace.moduleType, key: name, target: nil)
            u.expectedHead = live.record
            _ = try putPointerBlocking(u)
        }
        try refreshSummary(name, namespace, versions: heads)
    }

    /// A pointer's history, oldest first.
    func history(_ type: String, _ key: String) throws -> [IndexRecord] {
        var out: [IndexRecord] = []
        var before: Int64?
        repeat {
            let page = try pointerHistory(type: type, key: key, limit: 1000, before: before)
            out += page.records.map(\.record)
            before = page.next
        } while before != nil
        return out.reversed()
    }

    // MARK: verifying

    /// Verifies the versions of `name` that `range` admits (all when nil) in `namespace`.
    public func verifyModule(_ name: String, range: SemVerRange? = nil, namespace: ModuleNamespace = .production) throws -> [ModuleVerification] {
        let heads = try versionHeads(name, namespace).filter { v in range.map { $0.contains(v.version) || $0.isExactly(v.version) } ?? true }
        guard !heads.isEmpty else {
            throw RegistryError.notFound("no version of \(name)\(range.map { " satisfies " + $0.text } ?? "")\(namespace == .sandbox ? " in the sandbox" : "")")
        }
        return try heads.map { try verify($0.head, namespace, against: namespace) }
    }

    /// The checks of one version: `signature` (every revision in the pointer's history verifies;
    /// the first by a key of the publisher valid when it signed, later ones by the publisher or
    /// this node, each the same release with an allowed status move), `package` and `docs`
    /// (complete here, pinned under their policies), `checksum`, `dependencies` (resolvable in
    /// `against`) and `status` (not suspended, nor anything it resolves to).
    func verify(_ head: Head, _ namespace: ModuleNamespace, against: ModuleNamespace) throws -> ModuleVerification {
        let key = head.key
        let at = key.lastIndex(of: "@")!
        let name = String(key[..<at])
        let version = (try? SemVer(String(key[key.index(after: at)...]))) ?? SemVer(major: 0, minor: 0, patch: 0)
        var checks: [ModuleVerification.Check] = []
        let nodeKey = try keystore.key("self").publicKey
        let operators = try registryOperators()
        // The signature chain.
        var current: ModuleMetadata?
        do {
            let records = try history(namespace.versionType, key).filter { $0.cid != nil }
            guard !records.isEmpty else { throw RegistryError.state("the pointer has no history") }
            var first: ModuleMetadata?
            var previous: ModuleMetadata?
            for (i, record) in records.enumerated() {
                let label = "revision \(record.version)"
                let s: SignedModuleMetadata
                do { s = try SignedModuleMetadata(decoding: block(record.cid!)) } catch { throw RegistryError.state("\(label): not signed module metadata (\(error))") }
                let bytes = try block(s.metadata)
                do { try s.verify(metadataBytes: bytes) } catch { throw RegistryError.state("\(label): \(error)") }
                let m = try ModuleMetadata(decoding: bytes)
                guard m.module == name, m.version == version else { throw RegistryError.state("\(label) is the metadata of \(m.module)@\(m.version)") }
                // The publisher's key: a node's own (its peer ID is its key), or one registered for the identity.
                let byPublisher = NodeIdentity.peerID(ofPublicKey: s.sig.pub) == m.identity.squidId
                    || access.isKey(s.sig.pub, of: m.identity.squidId, at: UInt64(max(0, s.sig.ts)))
                let byOperator = s.sig.pub == nodeKey || operators.contains(NodeIdentity.peerID(ofPublicKey: s.sig.pub))
                if i == 0 {
                    // A history pruned below its first revision may start at one the node signed.
                    guard byPublisher || (record.prev != nil && byOperator) else {
                        throw RegistryError.state("\(label): not signed by a key of the publisher \(m.identity.squidId)")
                    }
                    first = m
                } else {
                    guard byPublisher || byOperator else {
                        throw RegistryError.state("\(label): signed by a key of neither the publisher nor this node (nor a node whose backup it restored)")
                    }
                    guard m.isSameRelease(as: first!) else { throw RegistryError.state("\(label) changes the release (only status, yanked, reason, activatedBy and updatedAt may change)") }
                    if let p = previous, p.status != m.status, !p.status.canMove(to: m.status) {
                        throw RegistryError.state("\(label): \(p.status.rawValue) → \(m.status.rawValue) is not an allowed move")
                    }
                }
                previous = m
            }
            guard records.last!.cid == head.target else { throw RegistryError.state("the head is not the newest revision") }
            current = previous
            checks.append(.init("signature", true, "\(records.count) revision\(records.count == 1 ? "" : "s"), the first signed by the publisher \(first!.identity.squidId)"))
        } catch {
            checks.append(.init("signature", false, "\(error)"))
        }
        guard let m = current else {
            return ModuleVerification(module: name, version: version, namespace: namespace, checks: checks)
        }
        // Package, docs, checksum.
        var packageHere = false
        for (label, cid, type) in [("package", m.package, Self.packagesType), ("docs", m.documentation, Self.docsType)] {
            let missing = try pins.missingBlock(under: cid)
            if label == "package" { packageHere = missing == nil }
            if let missing {
                checks.append(.init(label, false, "\(cid): block \(missing) is missing"))
            } else if try !pins.pins(of: cid.multihash).contains(where: { $0.resourceType == type && $0.name == key }) {
                checks.append(.init(label, false, "\(cid) is complete but not pinned under \(type) (publish it again to complete the publication)"))
            } else {
                checks.append(.init(label, true, "\(cid) complete, pinned under \(type)"))
            }
        }
        if packageHere {
            let sum = try packageChecksum(m.package, name: m.module, function: m.checksum.code)
            checks.append(.init("checksum", sum == m.checksum, sum == m.checksum ? "the package's tar stream hashes to the checksum"
                                : "the package's tar stream hashes to \(sum), the metadata says \(m.checksum)"))
        } else {
            checks.append(.init("checksum", false, "the package is incomplete"))
        }
        // Dependencies, and the status of what they resolve to.
        var resolution: Resolution?
        let catalog = PublishedModules(node: self, namespace: against, extra: (name, version, try m.dependencies.map { try $0.dependency() }))
        do {
            resolution = try Resolver(catalog: catalog).resolve(name, try SemVerRange("=" + version.description))
            let others = resolution!.versions.filter { $0.key != name }.sorted { $0.key < $1.key }
            checks.append(.init("dependencies", true, others.isEmpty ? "none" : "resolve in \(against.rawValue): " + others.map { "\($0.key)@\($0.value)" }.joined(separator: ", ")))
        } catch {
            checks.append(.init("dependencies", false, "in \(against.rawValue): \(error)"))
        }
        var statusProblems: [String] = []
        if m.status == .suspended { statusProblems.append("\(key) is SUSPENDED" + (m.reason.map { ": \($0)" } ?? "")) }
        for (dep, v) in resolution?.versions ?? [:] where dep != name {
            if let h = try catalog.live(dep).first(where: { $0.version == v })?.head, h.tags.contains("status:SUSPENDED") {
                statusProblems.append("it resolves \(dep)@\(v), which is SUSPENDED")
            }
        }
        let note = m.status.rawValue + (m.yanked ? ", yanked" : "") + (m.reason.map { " (\($0))" } ?? "")
        checks.append(.init("status", statusProblems.isEmpty, statusProblems.isEmpty ? note : statusProblems.joined(separator: "; ")))
        return ModuleVerification(module: name, version: version, namespace: namespace, checks: checks)
    }

    // MARK: discovery

    /// A page of modules matching `search`, with their fetch counts.
    public func searchModules(_ search: ModuleSearch) throws -> (modules: [ModuleSummary], next: Int?) {
        let fetches = try fetchCounts()
        return search.page(try sortedSummaries(search.namespace)) { fetches[$0] ?? (0, 0) }
    }

    /// The modules whose latest version requires `name` (any kind), with the range and whether
    /// `name`'s latest version satisfies it.
    public func moduleDependents(_ name: String, namespace: ModuleNamespace = .production) throws -> [ModuleDependent] {
        let all = try summaries(namespace)
        let latest = all[name]?.latest
        var out: [ModuleDependent] = []
        for s in all.values {
            for d in s.dependencies where d.module == name {
                let satisfied = latest.map { v in (try? SemVerRange(d.range))?.contains(v) ?? false } ?? false
                out.append(ModuleDependent(module: s.module, version: s.latest, range: d.range, kind: d.kind, optional: d.optional, satisfiedByLatest: satisfied))
            }
        }
        return out.sorted { $0.module < $1.module }
    }

    /// Every module's summary in `namespace` (without fetch counts), built from the pointers on
    /// first use.
    func summaries(_ namespace: ModuleNamespace) throws -> [String: ModuleSummary] {
        let (held, generation) = registry.contents.locked { ($0.summaries[namespace], $0.generation) }
        if let held { return held }
        var counts: [String: Int] = [:]
        var q = Qindex.Query()
        q.type = namespace.versionType
        q.limit = 1000
        while true {
            let page = try listPointers(q)
            for h in page.heads where h.target != nil {
                if let at = h.key.lastIndex(of: "@") { counts[String(h.key[..<at]), default: 0] += 1 }
            }
            guard let next = page.next else { break }
            q.cursor = next
        }
        var built: [String: ModuleSummary] = [:]
        q.type = namespace.moduleType
        q.cursor = nil
        while true {
            let page = try listPointers(q)
            for h in page.heads {
                guard let t = h.target, let m = try moduleMetadata(signed: t, verified: false) else { continue }
                built[h.key] = ModuleSummary(m, namespace: namespace, versions: counts[h.key] ?? 0)
            }
            guard let next = page.next else { break }
            q.cursor = next
        }
        registry.contents.locked { if $0.generation == generation { $0.summaries[namespace] = built } }
        return built
    }

    /// The summaries sorted by name (what a search pages through).
    func sortedSummaries(_ namespace: ModuleNamespace) throws -> [ModuleSummary] {
        if let held = registry.contents.locked({ $0.sorted[namespace] }) { return held }
        let all = try summaries(namespace)
        let sorted = all.values.sorted { $0.module < $1.module }
        registry.contents.locked { c in
            // Kept only if the summaries it was made from are still the ones held.
            if let current = c.summaries[namespace], current.count == all.count, c.sorted[namespace] == nil,
               sorted.allSatisfy({ current[$0.module] == $0 }) {
                c.sorted[namespace] = sorted
            }
        }
        return sorted
    }

    /// Brings one module's summary up to date, when summaries are held.
    func refreshSummary(_ name: String, _ namespace: ModuleNamespace, versions: [(version: SemVer, head: Head)]) throws {
        guard registry.contents.locked({ $0.summaries[namespace] != nil }) else { return }
        var summary: ModuleSummary?
        if let top = versions.last, let t = top.head.target, let m = try moduleMetadata(signed: t, verified: false) {
            summary = ModuleSummary(m, namespace: namespace, versions: versions.count)
        }
        registry.contents.locked {
            $0.summaries[namespace]?[name] = summary
            $0.sorted[namespace] = nil
        }
    }

    /// The nodes besides this one whose revisions of module metadata verify here (`I 03 ‖ peer
    /// ID`): the nodes whose backups this repository restored.
    public func registryOperators() throws -> Set<String> {
        var out = Set<String>()
        let prefix = KeySpace.registry.key([0x03])
        try repository.blocks.db.makeIterator().forEach(prefix: prefix) { k, _ in
            out.insert(String(decoding: k.dropFirst(prefix.count), as: UTF8.self))
            return true
        }
        return out
    }

    /// Trusts `peerID`'s revisions of module metadata (a restore does, for the node it restores).
    func addRegistryOperator(_ peerID: String) throws {
        guard peerID != identity.peerID else { return }
        let batch = WriteBatch()
        batch.put(KeySpace.registry.key([0x03] + Array(peerID.utf8)), [])
        try repository.blocks.db.write(batch, sync: true)
    }

    /// The fetch counters (read once from key space `I`).
    func fetchCounts() throws -> [String: (package: UInt64, docs: UInt64)] {
        if let f = registry.contents.locked({ $0.fetches }) { return f }
        var loaded: [String: (package: UInt64, docs: UInt64)] = [:]
        let prefix = KeySpace.registry.key([0x01])
        try repository.blocks.db.makeIterator().forEach(prefix: prefix) { k, v in
            if v.count == 16, let name = String(bytes: k.dropFirst(prefix.count), encoding: .utf8) { loaded[name] = (Self.u64(v, 0), Self.u64(v, 8)) }
            return true
        }
        registry.contents.locked { if $0.fetches == nil { $0.fetches = loaded } }
        return registry.contents.locked { $0.fetches ?? loaded }
    }

    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(b[at + $1]) } }

    /// Counts a fetch of `name`'s docs or package (in memory, and an unsynced write: a crash may
    /// lose the last counts, never anything else).
    func countFetch(_ name: String, docs: Bool) {
        guard (try? fetchCounts()) != nil else { return }
        let value = registry.contents.locked { c -> (UInt64, UInt64) in
            var f = c.fetches?[name] ?? (0, 0)
            if docs { f.docs += 1 } else { f.package += 1 }
            c.fetches?[name] = f
            return f
        }
        var bytes: [UInt8] = []
        for n in [value.0, value.1] { for i in (0..<8).reversed() { bytes.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) } }
        let batch = WriteBatch()
        batch.put(KeySpace.registry.key([0x01] + Array(name.utf8)), bytes)
        try? repository.blocks.db.write(batch, sync: false)
    }
}

extension Node {
    /// The dependencies a signed metadata block states (held in memory: a block never changes).
    func dependencies(signed cid: CID) throws -> [Dependency] {
        if let held = registry.contents.locked({ $0.dependencies[cid] }) { return held }
        guard let m = try moduleMetadata(signed: cid, verified: false) else { throw RegistryError.notFound("\(cid) is not module metadata") }
        let deps = try m.dependencies.map { try $0.dependency() }
        registry.contents.locked {
            if $0.dependencies.count >= RegistryState.dependencyEntries { $0.dependencies = [:] }
            $0.dependencies[cid] = deps
        }
        return deps
    }
}

/// The published versions, as the resolver reads them: a namespace's live version pointers (the
/// sandbox sees production's too), withdrawn ones (yanked, suspended) from the pointers' tags, each
/// version's dependencies from its metadata; `extra` adds a version not yet published (the one a
/// publication or promotion checks). Lists each module once.
final class PublishedModules: ModuleCatalog {
    let node: Node
    let namespaces: [ModuleNamespace]
    let extra: (module: String, version: SemVer, dependencies: [Dependency])?
    private var memo: [String: [(version: SemVer, head: Head)]] = [:]

    /// `only`: the namespace alone (a sandbox lookup that must not fall through to production).
    init(node: Node, namespace: ModuleNamespace, only: Bool = false, extra: (String, SemVer, [Dependency])? = nil) {
        self.node = node
        namespaces = namespace == .sandbox && !only ? [.sandbox, .production] : [namespace]
        self.extra = extra.map { (module: $0.0, version: $0.1, dependencies: $0.2) }
    }

    func live(_ module: String) throws -> [(version: SemVer, head: Head)] {
        if let known = memo[module] { return known }
        var all: [(version: SemVer, head: Head)] = []
        for ns in namespaces {
            for h in try node.versionHeads(module, ns) where !all.contains(where: { $0.version == h.version }) { all.append(h) }
        }
        memo[module] = all
        return all
    }

    func versions(of module: String) throws -> [SemVer]? {
        var out = try live(module).map(\.version)
        if let e = extra, e.module == module, !out.contains(e.version) { out.append(e.version) }
        return out.isEmpty ? nil : out
    }

    func withdrawn(of module: String) throws -> Set<SemVer> {
        Set(try live(module).filter { $0.head.tags.contains("yanked") || $0.head.tags.contains("status:SUSPENDED") }.map(\.version))
    }

    func dependencies(of module: String, _ version: SemVer) throws -> [Dependency] {
        if let e = extra, e.module == module, e.version == version { return e.dependencies }
        guard let head = try live(module).first(where: { $0.version == version })?.head, let target = head.target else {
            throw RegistryError.notFound("\(module)@\(version) names no module metadata")
        }
        return try node.dependencies(signed: target)
    }
}

/// Object keys given twice in a JSON text (at any depth): JSON readers disagree on which one
/// wins, so a manifest must not have any.
enum JSONKeys {
    /// The first key given twice in one object, if any (the text is assumed to be JSON; a
    /// malformed text is left to the decoder).
    static func duplicate(in b: [UInt8]) -> String? {
        var stack: [Set<[UInt8]>?] = []  // per open container: the keys seen (nil: an array)
        var expectKey = false
        var i = 0
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "{"):
                stack.append([])
                expectKey = true
            case UInt8(ascii: "["):
                stack.append(nil)
                expectKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
                expectKey = false
            case UInt8(ascii: ","):
                expectKey = stack.last.map { $0 != nil } ?? false
            case UInt8(ascii: "\""):
                var j = i + 1
                var text: [UInt8] = []
                while j < b.count, b[j] != UInt8(ascii: "\"") {
                    if b[j] == UInt8(ascii: "\\"), j + 1 < b.count { text.append(b[j]); j += 1 }
                    text.append(b[j])
                    j += 1
                }
                if expectKey, var keys = stack.last ?? nil {
                    // Escapes could spell one key two ways.
                    if text.contains(UInt8(ascii: "\\")) { return String(decoding: text.prefix(64), as: UTF8.self) + " (written with escapes)" }
                    if keys.contains(text) { return String(decoding: text.prefix(64), as: UTF8.self) }
                    keys.insert(text)
                    stack[stack.count - 1] = keys
                    expectKey = false
                }
                i = j
            default: break
            }
            i += 1
        }
        return nil
    }
}
