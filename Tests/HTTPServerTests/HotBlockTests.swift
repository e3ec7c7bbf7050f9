import Foundation
import Storage
import Testing

/// The gateway answers small blocks it read recently from memory (`HotBlocks`), and a deleted
/// block is not answered from there: GET, GET again (from memory: a hit counted), `block/rm`,
/// GET → 404. Fails if a deletion does not evict the block.
@Suite struct HotBlockTests {
    @Test func aBlockServedFromMemoryIsGoneOnceDeleted() async throws {
        try await DaemonHarness.run { h in
            let data = Array("a block read twice, then removed".utf8)
            let (body, type) = DaemonHarness.multipart([data])
            let put = try await h.request("/api/v0/block/put?pin=false", method: "POST", api: true, headers: ["Content-Type": type], body: body)
            let cid = try #require(try put.json()["Key"] as? String)
            let hits = h.repository.blocks.hot.stats.hits
            for _ in 0..<3 {
                let r = try await h.request("/ipfs/\(cid)?format=raw")
                #expect(r.status == 200 && r.body == data)
            }
            #expect(h.repository.blocks.hot.stats.hits >= hits + 2, "the second and third GETs came from memory")
            #expect(try await h.rpc("block/rm?arg=\(cid)").status == 200)
            let gone = try await h.request("/ipfs/\(cid)?format=raw")
            #expect(gone.status == 404, "a removed block answered \(gone.status)")
        }
    }
}
