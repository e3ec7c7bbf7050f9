import Foundation
import Multiformats
import Node
import Pinning
import Registry
import Storage
import Testing
import TestSupport

/// Publishing a module from a directory: the package and docs added and pinned under their
/// policies, the checksum of the package's tar stream, signed metadata the pointers name, a
/// version never published twice, `module/<name>` on the highest version, an audit event, and
/// manifest errors naming the field.
@Suite struct RegistryPublishTests {
    static func module(_ dir: String, name: String = "q-docs", version: String, extra: String = "") throws -> String {
        let root = dir + "/\(name)-\(version)"
        try FileManager.default.createDirectory(atPath: root + "/package/lib", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/docs", withIntermediateDirectories: true)
        try Data("export const v = '\(version)'\n".utf8).write(to: URL(fileURLWithPath: root + "/package/lib/index.js"))
        try Data("# \(name) \(version)\n".utf8).write(to: URL(fileURLWithPath: root + "/docs/README.md"))
        let manifest = #"{"module": "\#(name)", "version": "\#(version)", "type": "library", "description": "docs", "dependencies": [{"module": "q-core", "range": "^1.0.0"}]\#(extra)}"#
        try Data(manifest.utf8).write(to: URL(fileURLWithPath: root + "/module.json"))
        return root
    }

    @Test func publishesSignedMetadataUnderItsPointers() throws {
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path + "/repo")
        let node = try Node(repository: try Repository(path: dir.path + "/repo", purpose: "registry tests"), clock: ManualClock())
        let first = try node.publishModule(directory: try Self.module(dir.path, version: "1.2.0"))
        #expect(first.created)
        let published = first.release
        let m = published.metadata
        #expect(m.module == "q-docs" && m.version.description == "1.2.0" && m.identity.squidId == node.identity.peerID)
        #expect(m.dependencies == [.init(module: "q-core", range: "^1.0.0")])
        // The pointers name the signed block; the metadata verifies and reads back equal.
        let exact = try node.pointer(type: "module-version", key: "q-docs@1.2.0")
        #expect(exact.target == published.signed)
        #expect(try node.pointer(type: "module", key: "q-docs").target == published.signed)
        #expect(try node.moduleMetadata(signed: published.signed) == m)
        // The checksum is the SHA-256 of the package's tar stream; package and docs are pinned.
        var tarBytes: [UInt8] = []
        try node.tar(m.package, name: "q-docs") { tarBytes.append(contentsOf: $0) }
        #expect(m.checksum == (try Multihash.compute(tarBytes, function: .sha2_256)))
        #expect(try node.pinObjects(of: m.package).map(\.resourceType) == ["module-packages"])
        #expect(try node.pinObjects(of: m.documentation).map(\.resourceType) == ["module-docs"])
        // Never twice; the latest pointer follows the highest version only.
        // The same release again is found published (a rerun); other contents are refused.
        let again = try node.publishModule(directory: try Self.module(dir.path + "/again", version: "1.2.0"))
        #expect(!again.created && again.release.signed == published.signed)
        let changed = try Self.module(dir.path + "/changed", version: "1.2.0")
        try Data("changed\n".utf8).write(to: URL(fileURLWithPath: changed + "/package/lib/index.js"))
        #expect { try node.publishModule(directory: changed) } throws: { e in (e as? RegistryError)?.code == "MODULE_VERSION_EXISTS" }
        let older = try node.publishModule(directory: try Self.module(dir.path, version: "1.1.9")).release
        #expect(try node.pointer(type: "module", key: "q-docs").target == published.signed)
        #expect(try node.pointer(type: "module-version", key: "q-docs@1.1.9").target == older.signed)
        let newer = try node.publishModule(directory: try Self.module(dir.path, version: "2.0.0")).release
        #expect(try node.pointer(type: "module", key: "q-docs").target == newer.signed)
        // Each publication is an audit event.
        var q = AuditQuery()
        q.type = "q.registry.publish.v1"
        #expect(try node.auditEvents(q).events.map(\.event.ref) == ["q-docs@1.2.0", "q-docs@1.1.9", "q-docs@2.0.0"])
        #expect(try node.verifyRepository().isClean)
    }

    /// Resolution over what was published: the highest satisfying versions; a missing
    /// dependency named.
    @Test func resolvesOverPublishedVersions() throws {
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path + "/repo")
        let node = try Node(repository: try Repository(path: dir.path + "/repo", purpose: "registry tests"), clock: ManualClock())
        func publish(_ name: String, _ version: String, deps: String) throws {
            let root = try Self.module(dir.path, name: name, version: version)
            try Data(#"{"module": "\#(name)", "version": "\#(version)", "type": "library", "dependencies": [\#(deps)]}"#.utf8)
                .write(to: URL(fileURLWithPath: root + "/module.json"))
            _ = try node.publishModule(directory: root)
        }
        for v in ["1.0.0", "1.4.2", "2.0.0"] { try publish("q-core", v, deps: "") }
        try publish("q-ui", "0.3.1", deps: #"{"module": "q-core", "range": "^1.2"}"#)
        try publish("q-app", "1.0.0", deps: #"{"module": "q-ui", "range": "~0.3"}, {"module": "q-core", "range": ">=1.0.0"}"#)
        let r = try node.resolveModule("q-app", range: "^1")
        #expect(r.versions.mapValues(\.description) == ["q-app": "1.0.0", "q-ui": "0.3.1", "q-core": "1.4.2"])
        try publish("q-lone", "1.0.0", deps: #"{"module": "q-ghost", "range": "^1"}"#)
        #expect { try node.resolveModule("q-lone", range: "*") } throws: { e in (e as? RegistryError)?.code == "DEPENDENCY_MISSING" }
    }

    @Test func manifestErrorsNameTheField() throws {
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path + "/repo")
        let node = try Node(repository: try Repository(path: dir.path + "/repo", purpose: "registry tests"), clock: ManualClock())
        let cases: [(String, String, String)] = [
            ("Bad-Name", "1.0.0", "module"), ("q-ok", "1.0", "version"), ("q-ok2", "1.0.0", "dependencies[0].kind"),
        ]
        for (name, version, field) in cases {
            let path = try Self.module(dir.path, name: name, version: version)
            if field.hasPrefix("dependencies") {
                try Data(#"{"module": "\#(name)", "version": "\#(version)", "type": "library", "dependencies": [{"module": "q-core", "range": "^1", "kind": "friend"}]}"#.utf8)
                    .write(to: URL(fileURLWithPath: path + "/module.json"))
            }
            #expect { try node.publishModule(directory: path) } throws: { e in "\(e)".contains(field) }
        }
        let missing = try Self.module(dir.path, name: "q-nodocs", version: "1.0.0")
        try FileManager.default.removeItem(atPath: missing + "/docs")
        #expect { try node.publishModule(directory: missing) } throws: { e in "\(e)".contains("docs") }
    }
}
