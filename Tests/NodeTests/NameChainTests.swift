import Foundation
import Multiformats
import Node
import Pinning
import Storage
import Testing
import TestSupport

/// IPNS names resolve through chains of up to 32 names, as Kubo's depth does; one more is refused.
@Suite struct NameChainTests {
    @Test func chainsOfThirtyTwoNamesResolve() throws {
        let f = try NodeTests.Fixture()
        let target = try f.node.putBlock(Array("end of the chain".utf8), codec: .raw, hash: .sha2_256, hashLength: nil).cid
        var keys: [(name: String, id: String)] = []
        for i in 0..<33 {
            let k = try f.node.generateKey("k\(i)")
            keys.append((k.name, k.id))
        }
        // k0 → k1 → … → k32 → /ipfs/target
        for (i, k) in keys.enumerated() {
            let value = i + 1 < keys.count ? "/ipns/" + keys[i + 1].id : "/ipfs/" + target.string
            _ = try f.node.publishName(value, key: k.name, lifetime: 3_600_000_000_000, ttl: 60_000_000_000, resolve: false)
        }
        #expect(try f.node.resolveName(keys[1].id) == "/ipfs/" + target.string, "32 names")
        #expect(throws: NodeError.self) { try f.node.resolveName(keys[0].id) }
        #expect(try f.node.resolveName(keys[0].id, recursive: false) == "/ipns/" + keys[1].id)
        // A loop is refused when it would be made: the last name pointed at the first, or at itself.
        #expect(throws: NodeError.self) { try f.node.publishName("/ipns/" + keys[0].id, key: keys[32].name, lifetime: 3_600_000_000_000, ttl: 1, resolve: false) }
        #expect(throws: NodeError.self) { try f.node.publishName("/ipns/" + keys[5].id, key: keys[5].name, lifetime: 3_600_000_000_000, ttl: 1) }
        #expect(try f.node.resolveName(keys[1].id) == "/ipfs/" + target.string, "nothing changed")
    }
}
