import Foundation
import Multiformats
import Node
import Pinning
import Qindex
import Registry
import Signing
import Storage
import Testing
import TestSupport

/// The registry's life cycle over a real repository: sandbox and promotion, yank, deprecation and
/// status moves, deregistration, cycles refused at publication, tampering found by verify, search
/// and reverse dependencies, and a rerun that completes an interrupted publication.
@Suite struct RegistryLifecycleTests {
    final class Registry {
        let dir = TemporaryDirectory()
        let node: Node
        init() throws {
            try Repository.initialize(at: dir.path + "/repo")
            node = try Node(repository: try Repository(path: dir.path + "/repo", purpose: "registry tests"), clock: ManualClock())
        }

        /// Writes a module directory; `deps` as `module.json` writes them.
        func directory(_ name: String, _ version: String, deps: String = "", extra: String = "") throws -> String {
            let root = dir.path + "/src/\(name)-\(version)-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: root + "/package", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: root + "/docs/guide", withIntermediateDirectories: true)
            try Data("module.exports = '\(name)@\(version)'\n".utf8).write(to: URL(fileURLWithPath: root + "/package/index.js"))
            try Data("<h1>\(name) \(version)</h1>\n".utf8).write(to: URL(fileURLWithPath: root + "/docs/index.html"))
            try Data("# Guide of \(name)\n".utf8).write(to: URL(fileURLWithPath: root + "/docs/guide/start.md"))
            // `extra` fields replace the defaults.
            var fields = try JSONSerialization.jsonObject(with: Data(#"{"type": "library", "description": "the \#(name) module"\#(extra)}"#.utf8)) as! [String: Any]
            fields["module"] = name
            fields["version"] = version
            fields["dependencies"] = try JSONSerialization.jsonObject(with: Data("[\(deps)]".utf8))
            try JSONSerialization.data(withJSONObject: fields).write(to: URL(fileURLWithPath: root + "/module.json"))
            return root
        }

        @discardableResult
        func publish(_ name: String, _ version: String, deps: String = "", extra: String = "", sandbox: Bool = false) throws -> ModuleRelease {
            try node.publishModule(directory: try directory(name, version, deps: deps, extra: extra), namespace: sandbox ? .sandbox : .production).release
        }
    }

    static func code(_ e: any Error) -> String? { (e as? RegistryError)?.code }

    @Test func sandboxIsInvisibleUntilPromoted() throws {
        let r = try Registry()
        try r.publish("q-core", "1.0.0", extra: #", "status": "PRODUCTION""#)
        let staged = try r.publish("q-ui", "1.0.0", deps: #"{"module": "q-core", "range": "^1"}"#, sandbox: true)
        // Production queries and resolution do not see it; the sandbox does (with production's modules).
        #expect { try r.node.moduleRelease("q-ui") } throws: { Self.code($0) == "MODULE_NOT_FOUND" }
        #expect { try r.node.resolveModule("q-ui", range: "^1") } throws: { Self.code($0) == "MODULE_NOT_FOUND" }
        #expect(try r.node.searchModules(ModuleSearch()).modules.map(\.module) == ["q-core"])
        var inSandbox = ModuleSearch()
        inSandbox.namespace = .sandbox
        #expect(try r.node.searchModules(inSandbox).modules.map(\.module) == ["q-ui"])
        #expect(try r.node.resolveModule("q-ui", range: "^1", namespace: .sandbox).versions.mapValues(\.description) == ["q-ui": "1.0.0", "q-core": "1.0.0"])
        // A sandbox module whose dependency exists only in the sandbox cannot be promoted.
        try r.publish("q-lib", "0.1.0", sandbox: true)
        try r.publish("q-app", "0.1.0", deps: #"{"module": "q-lib", "range": "^0.1"}"#, sandbox: true)
        #expect { try r.node.promoteModule("q-app", try SemVer("0.1.0")) } throws: { e in
            Self.code(e) == "MODULE_STATE" && "\(e)".contains("dependencies") && "\(e)".contains("q-lib")
        }
        // Promotion: production starts from the publisher-signed block, then names who activated it.
        let promoted = try r.node.promoteModule("q-ui", try SemVer("1.0.0"))
        #expect(promoted.metadata.activatedBy?.squidId == r.node.identity.peerID)
        #expect(promoted.metadata.isSameRelease(as: staged.metadata))
        let history = try r.node.pointerHistory(type: "module-version", key: "q-ui@1.0.0", limit: 10, before: nil).records
        #expect(history.map(\.record.cid) == [promoted.signed, staged.signed])
        #expect(try r.node.pointerHead(type: "sandbox-module-version", key: "q-ui@1.0.0")?.isDeleted == true)
        #expect(try r.node.moduleRelease("q-ui").signed == promoted.signed)
        #expect(try r.node.verifyModule("q-ui").allSatisfy(\.ok))
        // Once in production, never again in either namespace.
        #expect { try r.node.promoteModule("q-ui", try SemVer("1.0.0")) } throws: { Self.code($0) == "MODULE_NOT_FOUND" }
        #expect { try r.publish("q-ui", "1.0.0", sandbox: true) } throws: { Self.code($0) == "MODULE_VERSION_EXISTS" }
    }

    @Test func yankedVersionsAreSkippedUnlessAskedForExactly() throws {
        let r = try Registry()
        for v in ["1.0.0", "1.1.0"] { try r.publish("q-core", v) }
        try r.publish("q-app", "1.0.0", deps: #"{"module": "q-core", "range": "^1"}"#)
        #expect(try r.node.resolveModule("q-app", range: "1.0.0").versions["q-core"]?.description == "1.1.0")
        let yanked = try r.node.changeModule("q-core", try SemVer("1.1.0"), ModuleChange(yanked: true, reason: "breaks q-app"), event: "q.registry.yank.v1")
        #expect(yanked.metadata.yanked && yanked.metadata.reason == "breaks q-app" && yanked.revision == 2)
        #expect(try r.node.resolveModule("q-app", range: "1.0.0").versions["q-core"]?.description == "1.0.0")
        #expect(try r.node.moduleRelease("q-core", range: try SemVerRange("^1")).metadata.version.description == "1.0.0")
        // Asked for exactly, it is still there; its content stays retrievable.
        #expect(try r.node.moduleRelease("q-core", range: try SemVerRange("1.1.0")).metadata.version.description == "1.1.0")
        #expect(try r.node.resolveModule("q-core", range: "=1.1.0").versions["q-core"]?.description == "1.1.0")
        _ = try r.node.fileEntry(yanked.metadata.package)
        _ = try r.node.changeModule("q-core", try SemVer("1.1.0"), ModuleChange(yanked: false), event: "q.registry.unyank.v1")
        #expect(try r.node.resolveModule("q-app", range: "1.0.0").versions["q-core"]?.description == "1.1.0")
        #expect(try r.node.verifyModule("q-core").allSatisfy(\.ok))
    }

    @Test func statusMovesFollowTheLifeCycle() throws {
        let r = try Registry()
        try r.publish("q-core", "1.0.0")
        let v = try SemVer("1.0.0")
        // DEVELOPMENT cannot be deprecated; it goes through PRODUCTION first.
        #expect { try r.node.changeModule("q-core", v, ModuleChange(status: .deprecated, reason: "old"), event: "q.registry.deprecate.v1") } throws: {
            Self.code($0) == "MODULE_STATE"
        }
        _ = try r.node.changeModule("q-core", v, ModuleChange(status: .production), event: "q.registry.status.v1")
        let deprecated = try r.node.changeModule("q-core", v, ModuleChange(status: .deprecated, reason: "use q-core2"), event: "q.registry.deprecate.v1")
        #expect(deprecated.metadata.status == .deprecated && deprecated.metadata.reason == "use q-core2" && deprecated.revision == 3)
        // The latest pointer names the new revision; search shows the new status.
        #expect(try r.node.pointer(type: "module", key: "q-core").target == deprecated.signed)
        #expect(try r.node.searchModules(ModuleSearch()).modules.first?.status == .deprecated)
        // The same change again changes nothing.
        #expect(try r.node.changeModule("q-core", v, ModuleChange(status: .deprecated, reason: "use q-core2"), event: "q.registry.deprecate.v1").revision == 3)
        let report = try #require(try r.node.verifyModule("q-core").first)
        #expect(report.ok && report.checks.first { $0.name == "status" }?.detail.contains("DEPRECATED") == true)
        var q = AuditQuery()
        q.type = "q.registry.deprecate.v1"
        #expect(try r.node.auditEvents(q).events.map(\.event.ref) == ["q-core@1.0.0"])
    }

    @Test func deregisteredVersionsKeepTheirHistoryAndAreNeverReused() throws {
        let r = try Registry()
        let one = try r.publish("q-core", "1.0.0")
        let two = try r.publish("q-core", "2.0.0")
        #expect(try r.node.pointer(type: "module", key: "q-core").target == two.signed)
        #expect(try r.node.deregisterModule("q-core", version: try SemVer("2.0.0")).map(\.description) == ["2.0.0"])
        #expect(try r.node.pointer(type: "module", key: "q-core").target == one.signed)
        #expect(try r.node.pointerHistory(type: "module-version", key: "q-core@2.0.0", limit: 10, before: nil).records.count == 2)
        #expect(try r.node.pinObjects(of: two.metadata.package).filter { $0.resourceType == "module-packages" && $0.name == "q-core@2.0.0" }.isEmpty)
        #expect { try r.publish("q-core", "2.0.0") } throws: { Self.code($0) == "MODULE_VERSION_EXISTS" }
        _ = try r.node.deregisterModule("q-core")
        #expect(try r.node.pointerHead(type: "module", key: "q-core")?.isDeleted == true)
        #expect { try r.node.moduleRelease("q-core") } throws: { Self.code($0) == "MODULE_NOT_FOUND" }
        #expect(try r.node.searchModules(ModuleSearch()).modules.isEmpty)
        #expect(try r.node.verifyRepository().isClean)
    }

    @Test func aPublicationThatClosesACycleIsRefused() throws {
        let r = try Registry()
        try r.publish("q-b", "1.0.0")
        try r.publish("q-a", "1.0.0", deps: #"{"module": "q-b", "range": "^1"}"#)
        try r.publish("q-c", "1.0.0", deps: #"{"module": "q-a", "range": "^1"}"#)
        #expect { try r.publish("q-b", "1.1.0", deps: #"{"module": "q-c", "range": "^1"}"#) } throws: { e in
            Self.code(e) == "DEPENDENCY_CYCLE" && "\(e)".contains("q-b@1.1.0 → q-c@1.0.0 → q-a@1.0.0 → q-b")
        }
        // An integration edge is no cycle; nor is a range the new version is outside of.
        try r.publish("q-b", "1.2.0", deps: #"{"module": "q-c", "range": "^1", "kind": "integration"}"#)
        try r.publish("q-b", "2.0.0", deps: #"{"module": "q-c", "range": "^1"}"#)
        #expect(try r.node.pointerHead(type: "module-version", key: "q-b@1.1.0") == nil)
    }

    @Test func verifyFindsTamperedMetadataAndSignatures() async throws {
        let r = try Registry()
        let good = try r.publish("q-core", "1.0.0")
        #expect(try r.node.verifyModule("q-core").allSatisfy(\.ok))
        // Metadata changed and signed by a key that is not the publisher's.
        var forged = good.metadata
        forged.description = "something else"
        let bytes = try forged.encoded()
        let metaCID = try r.node.putBlock(bytes, codec: .dagCBOR, hash: .sha2_256, hashLength: nil, pin: false).cid
        let stranger = SigningKey()
        let bySomeoneElse = SignedModuleMetadata(metadata: metaCID, bytes: bytes, key: stranger, ts: 1)
        let forgedCID = try r.node.putBlock(try bySomeoneElse.encoded(), codec: .dagCBOR, hash: .sha2_256, hashLength: nil, pin: false).cid
        var u = Qindex.Update(type: "module-version", key: "q-core@1.0.0", target: forgedCID)
        _ = try r.node.putPointerBlocking(u)
        var report = try #require(try r.node.verifyModule("q-core").first)
        #expect(!report.ok && report.checks.first { $0.name == "signature" }?.ok == false)
        #expect(report.checks.first { $0.name == "signature" }?.detail.contains("revision 2: signed by a key of neither the publisher nor this node") == true)
        // The original signature over other metadata bytes.
        let other = try r.publish("q-two", "1.0.0")
        var altered = other.metadata
        altered.dependencies = [.init(module: "q-core", range: "*")]
        let alteredBytes = try altered.encoded()
        var resigned = try SignedModuleMetadata(decoding: try r.node.block(other.signed))
        resigned.metadata = try r.node.putBlock(alteredBytes, codec: .dagCBOR, hash: .sha2_256, hashLength: nil, pin: false).cid
        u = Qindex.Update(type: "module-version", key: "q-two@1.0.0", target: try r.node.putBlock(try resigned.encoded(), codec: .dagCBOR, hash: .sha2_256, hashLength: nil, pin: false).cid)
        _ = try r.node.putPointerBlocking(u)
        report = try #require(try r.node.verifyModule("q-two").first)
        #expect(report.checks.first { $0.name == "signature" }.map { !$0.ok && $0.detail.contains("revision 2") && $0.detail.contains("signature") } == true)
        // The generic pointer API does not move the registry's pointers.
        await #expect { try await r.node.putPointer(Qindex.Update(type: "module", key: "q-core", target: good.signed)) } throws: { "\($0)".contains("registry") }
    }

    @Test func searchSortsFiltersPagesAndCountsFetches() throws {
        let r = try Registry()
        try r.publish("q-auth", "1.0.0", extra: #", "capabilities": ["login"], "description": "sign in with squid""#)
        try r.publish("q-auth", "1.1.0", extra: #", "capabilities": ["login", "mfa"], "description": "sign in with squid""#)
        try r.publish("q-store", "0.9.0", deps: #"{"module": "q-auth", "range": "^1.1"}"#, extra: #", "type": "service""#)
        try r.publish("q-pay", "2.0.0", deps: #"{"module": "q-auth", "range": "^2", "kind": "integration"}"#, extra: #", "type": "service""#)
        var q = ModuleSearch()
        q.text = "SQUID"
        #expect(try r.node.searchModules(q).modules.map(\.module) == ["q-auth"])
        #expect(try r.node.searchModules(q).modules.first.map { "\($0.versions) \($0.latest) \($0.capabilities)" } == #"2 1.1.0 ["login", "mfa"]"#)
        q = try ModuleSearch(parameters: [("type", "service"), ("limit", "1")])
        let first = try r.node.searchModules(q)
        #expect(first.modules.map(\.module) == ["q-pay"] && first.next == 1)
        q.offset = first.next!
        #expect(try r.node.searchModules(q).modules.map(\.module) == ["q-store"] && r.node.searchModules(q).next == nil)
        q = try ModuleSearch(parameters: [("capability", "mfa")])
        #expect(try r.node.searchModules(q).modules.map(\.module) == ["q-auth"])
        #expect { try ModuleSearch(parameters: [("sort", "stars")]) } throws: { "\($0)".contains("sort") }
        // Fetches count, persist, and sort.
        for _ in 0..<3 { _ = try r.node.moduleDocs("q-store", range: nil) }
        _ = try r.node.modulePackage("q-pay", range: nil)
        q = try ModuleSearch(parameters: [("sort", "fetches")])
        let ranked = try r.node.searchModules(q).modules
        #expect(ranked.map(\.module) == ["q-store", "q-pay", "q-auth"] && ranked[0].docsFetches == 3 && ranked[1].packageFetches == 1)
        // Reverse dependencies: who requires q-auth, and whether its latest satisfies them.
        let dependents = try r.node.moduleDependents("q-auth")
        #expect(dependents.map { "\($0.module) \($0.range) \($0.kind.rawValue) \($0.satisfiedByLatest)" } == ["q-pay ^2 integration false", "q-store ^1.1 dependency true"])
        // A new publication shows up in a search made before it (the summaries are kept current).
        try r.publish("q-mail", "0.1.0", extra: #", "description": "mail for squid users""#)
        q = ModuleSearch()
        q.text = "squid"
        #expect(try r.node.searchModules(q).modules.map(\.module) == ["q-auth", "q-mail"])
    }

    @Test func aRerunCompletesAnInterruptedPublication() throws {
        let r = try Registry()
        let dir = try r.directory("q-core", "1.0.0")
        let published = try r.node.publishModule(directory: dir).release
        // As if the process died after the version pointer: no policy pins, no latest pointer.
        for cid in [published.metadata.package, published.metadata.documentation] {
            for p in try r.node.pinObjects(of: cid) where p.resourceType.hasPrefix("module-") { _ = try r.node.removePinObject(p.id) }
        }
        let report = try #require(try r.node.verifyModule("q-core").first)
        #expect(report.checks.first { $0.name == "package" }.map { !$0.ok && $0.detail.contains("not pinned") } == true)
        let rerun = try r.node.publishModule(directory: dir)
        #expect(!rerun.created && rerun.release.signed == published.signed)
        #expect(try r.node.verifyModule("q-core").allSatisfy(\.ok))
    }
}

/// What review and probing found: one manifest read one way, the lifecycle kept through
/// promotion, cycles through withdrawn versions, names that skip yanked versions.
@Suite struct RegistryHardeningTests {
    typealias Registry = RegistryLifecycleTests.Registry

    @Test func aManifestIsReadOneWay() throws {
        let r = try Registry()
        let dir = try r.directory("q-evil", "1.0.0")
        func manifest(_ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/module.json")) }
        // Two readers of a duplicated key disagree on the name: refused.
        try manifest(#"{"module": "q-core", "module": "q-evil", "version": "9.9.0", "type": "library"}"#)
        #expect { try r.node.publishModule(directory: dir, expectedModule: "q-evil") } throws: { "\($0)".contains("module is given twice") }
        try manifest(#"{"\u006dodule": "q-core", "module": "q-evil", "version": "9.9.0", "type": "library"}"#)
        #expect { try r.node.publishModule(directory: dir, expectedModule: "q-evil") } throws: { "\($0)".contains("escapes") }
        // The name the caller may publish is checked against the name decoded.
        try manifest(#"{"module": "q-core", "version": "9.9.0", "type": "library"}"#)
        #expect { try r.node.publishModule(directory: dir, expectedModule: "q-evil") } throws: { "\($0)".contains("not q-evil") }
        // A typo is no silent omission; a version is not born deprecated.
        try manifest(#"{"module": "q-evil", "version": "1.0.0", "type": "library", "dependecies": []}"#)
        #expect { try r.node.publishModule(directory: dir) } throws: { "\($0)".contains("unknown field dependecies") }
        try manifest(#"{"module": "q-evil", "version": "1.0.0", "type": "library", "dependencies": [{"module": "q-x", "rnage": "^1"}]}"#)
        #expect { try r.node.publishModule(directory: dir) } throws: { "\($0)".contains("dependencies[0]: unknown field rnage") }
        try manifest(#"{"module": "q-evil", "version": "1.0.0", "type": "library", "status": "DEPRECATED"}"#)
        #expect { try r.node.publishModule(directory: dir) } throws: { "\($0)".contains("status") }
        #expect(try r.node.pointerHead(type: "module", key: "q-core") == nil && r.node.pointerHead(type: "module", key: "q-evil") == nil)
        // The node publishes with its own key only.
        _ = try r.node.generateKey("other")
        try manifest(#"{"module": "q-evil", "version": "1.0.0", "type": "library"}"#)
        #expect { try r.node.publishModule(directory: dir, keyName: "other") } throws: { "\($0)".contains("own key") }
    }

    @Test func promotionKeepsTheLifeCycleAndFinishesWhatWasCut() throws {
        let r = try Registry()
        try r.publish("q-mod", "1.0.0", sandbox: true)
        let v = try SemVer("1.0.0")
        _ = try r.node.changeModule("q-mod", v, namespace: .sandbox, ModuleChange(status: .suspended), event: "q.registry.status.v1")
        _ = try r.node.changeModule("q-mod", v, namespace: .sandbox, ModuleChange(status: .deprecated), event: "q.registry.status.v1")
        // DEVELOPMENT (as published) cannot become DEPRECATED in one move: refused before anything moves.
        #expect { try r.node.promoteModule("q-mod", v) } throws: { RegistryLifecycleTests.code($0) == "MODULE_STATE" }
        #expect(try r.node.pointerHead(type: "module-version", key: "q-mod@1.0.0") == nil)
        _ = try r.node.changeModule("q-mod", v, namespace: .sandbox, ModuleChange(status: .suspended), event: "q.registry.status.v1")
        _ = try r.node.changeModule("q-mod", v, namespace: .sandbox, ModuleChange(status: .testing), event: "q.registry.status.v1")
        // A promotion cut after production's first revision: promoting again finishes it.
        let first = try #require(try r.node.pointerHistory(type: "sandbox-module-version", key: "q-mod@1.0.0", limit: 10, before: nil).records.last?.record.cid)
        var start = Qindex.Update(type: "module-version", key: "q-mod@1.0.0", target: first)
        start.expectedVersion = 0
        _ = try r.node.putPointerBlocking(start)
        let promoted = try r.node.promoteModule("q-mod", v)
        #expect(promoted.metadata.status == .testing && promoted.metadata.activatedBy != nil)
        #expect(try r.node.pointerHead(type: "sandbox-module-version", key: "q-mod@1.0.0")?.isDeleted == true)
        #expect(try r.node.verifyModule("q-mod").allSatisfy(\.ok))
        #expect(try r.node.moduleRelease("q-mod").signed == promoted.signed)
    }

    @Test func aYankedVersionCannotHideACycle() throws {
        let r = try Registry()
        try r.publish("q-a", "1.0.0", deps: #"{"module": "q-b", "range": "^1"}"#)
        try r.publish("q-b", "1.0.0")
        _ = try r.node.changeModule("q-a", try SemVer("1.0.0"), ModuleChange(yanked: true), event: "q.registry.yank.v1")
        #expect { try r.publish("q-b", "1.1.0", deps: #"{"module": "q-a", "range": "^1"}"#) } throws: { RegistryLifecycleTests.code($0) == "DEPENDENCY_CYCLE" }
    }

    @Test func aNameAlonePicksTheHighestVersionNotWithdrawn() throws {
        let r = try Registry()
        let one = try r.publish("q-core", "1.0.0")
        try r.publish("q-core", "1.1.0")
        _ = try r.node.changeModule("q-core", try SemVer("1.1.0"), ModuleChange(yanked: true), event: "q.registry.yank.v1")
        #expect(try r.node.moduleRelease("q-core").signed == one.signed)
        #expect(try r.node.moduleDocs("q-core", range: nil).metadata.documentation == one.metadata.documentation)
        #expect(try r.node.pointer(type: "module", key: "q-core").target == one.signed)
        _ = try r.node.changeModule("q-core", try SemVer("1.0.0"), ModuleChange(yanked: true), event: "q.registry.yank.v1")
        #expect { try r.node.moduleRelease("q-core") } throws: { RegistryLifecycleTests.code($0) == "MODULE_NOT_FOUND" }
        // Named exactly, a yanked version is still there.
        #expect(try r.node.moduleRelease("q-core", range: try SemVerRange("1.1.0")).metadata.yanked)
    }
}
