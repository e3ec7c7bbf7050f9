import Foundation
import Signing
import Testing
import TestSupport

/// The keystore never overwrites a key it was not asked to replace, and lists what it can read.
@Suite struct KeystoreTests {
    func store() throws -> (Keystore, TemporaryDirectory) {
        let dir = TemporaryDirectory()
        return (Keystore(directory: dir.path, nodeKey: SigningKey()), dir)
    }

    @Test func keysAreNeverOverwrittenUnlessForced() throws {
        let (ks, dir) = try store()
        let tmpNamed = try ks.generate("a.tmp")
        let a = try ks.generate("a")
        #expect(try ks.key("a.tmp") == tmpNamed.key && ks.key("a") == a.key, "two keys, neither overwritten")
        #expect(throws: KeystoreError.exists("a")) { try ks.generate("a") }
        #expect(throws: KeystoreError.exists("a")) { try ks.rename("a.tmp", to: "a", force: false) }
        #expect(try ks.key("a") == a.key && ks.key("a.tmp") == tmpNamed.key)
        let forced = try ks.rename("a.tmp", to: "a", force: true)
        #expect(try forced.overwrote && ks.key("a") == tmpNamed.key)
        #expect(throws: KeystoreError.notFound("a.tmp")) { try ks.key("a.tmp") }
        #expect(throws: KeystoreError.selfKey) { try ks.remove(["self"]) }
        for bad in ["", ".hidden", "a/b", String(repeating: "x", count: 65), "ü"] {
            #expect(throws: KeystoreError.invalidName(bad)) { try ks.generate(bad) }
        }
        // Stray files (a bad name, not a key, a temporary file) are left out of the list.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir.path + "/key-broken"))
        try Data().write(to: URL(fileURLWithPath: dir.path + "/key-"))
        try Data(repeating: 7, count: 32).write(to: URL(fileURLWithPath: dir.path + "/.tmp-leftover"))
        #expect(try ks.list().map(\.name) == ["self", "a"])
        // Written with mode 0600.
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/key-a")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func concurrentGenerationOfOneNameMakesOneKey() async throws {
        let (ks, dir) = try store()
        defer { withExtendedLifetime(dir) {} }
        let made = await withTaskGroup(of: Keystore.Entry?.self) { group in
            for _ in 0..<16 { group.addTask { try? ks.generate("race") } }
            return await group.reduce(into: [Keystore.Entry]()) { if let e = $1 { $0.append(e) } }
        }
        #expect(made.count == 1)
        #expect(try ks.key("race") == made.first?.key, "the key stored is the one reported")
    }
}
