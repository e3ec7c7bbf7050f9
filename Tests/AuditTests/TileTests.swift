import Foundation
import Testing
@testable import Audit

/// Tiles answer every complete subtree as the full tree does, across level-1 tiles (past 65,536
/// leaves), so roots and proofs computed from tiles are the tree's.
@Suite struct TileTests {
    final class Store: TileReader {
        var tiles: [TileCoordinate: [[UInt8]]] = [:]
        func tile(_ c: TileCoordinate) throws -> [[UInt8]]? { tiles[c] }
    }

    @Test func tilesAnswerAsTheTreeDoes() throws {
        let n = 70_000
        var edge = TileEdge()
        var memory = MemoryHashes()
        let store = Store()
        var sizes: [UInt64: [UInt8]] = [:]
        let checkpoints: Set<Int> = [1, 255, 256, 257, 65_535, 65_536, 65_537, n]
        for i in 0..<n {
            let leaf = MerkleHash.leaf(Array("leaf \(i)".utf8))
            memory.append(leafHash: leaf)
            for (c, hashes) in edge.append(leafHash: leaf) {
                #expect(store.tiles[c] == nil, "a full tile is written once: \(c)")
                store.tiles[c] = hashes
            }
            if checkpoints.contains(i + 1) {
                // The partial tiles of this size, as a log serves them.
                let withPartials = Store()
                withPartials.tiles = store.tiles
                for (c, hashes) in edge.partialTiles { withPartials.tiles[c] = hashes }
                let size = UInt64(i + 1)
                let root = try MerkleTree.root(of: size, TiledHashes(withPartials))
                #expect(root == (try MerkleTree.root(of: size, memory)), "size \(size)")
                sizes[size] = root
                for index in [0, size / 2, size - 1] {
                    let proof = try MerkleTree.inclusionProof(index: index, size: size, TiledHashes(withPartials))
                    #expect(proof == (try MerkleTree.inclusionProof(index: index, size: size, memory)))
                    #expect(MerkleTree.verifyInclusion(leafHash: try memory.hash(level: 0, index: index), index: index, size: size, proof: proof, root: root))
                }
            }
        }
        // Full tiles: 273 of level 0 (70,000 / 256), 1 of level 1.
        #expect(store.tiles.keys.filter { $0.level == 0 }.count == n / 256)
        #expect(store.tiles.keys.filter { $0.level == 1 }.count == n / 65_536)
        let last = Store()
        last.tiles = store.tiles
        for (c, hashes) in edge.partialTiles { last.tiles[c] = hashes }
        for (old, oldRoot) in sizes {
            let proof = try MerkleTree.consistencyProof(from: old, to: UInt64(n), TiledHashes(last))
            #expect(MerkleTree.verifyConsistency(from: old, to: UInt64(n), proof: proof, oldRoot: oldRoot, newRoot: sizes[UInt64(n)]!), "\(old)")
        }
    }

    @Test func tilePaths() {
        #expect(TileCoordinate(level: 0, index: 5).description == "tile/0/005")
        #expect(TileCoordinate(level: 1, index: 1_234_067).description == "tile/1/x001/x234/067")
    }
}
