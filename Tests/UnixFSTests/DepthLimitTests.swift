import IPLD
import Multiformats
import Storage
import Testing
@testable import UnixFS

/// A DAG built to be deep — a chain of file nodes of one link each, a chain of HAMT shards — is
/// refused with an error at the limit instead of being followed until the stack runs out; a file
/// just within the limit still reads whole.
@Suite struct DepthLimitTests {
    /// A chain of `levels` file nodes above one raw leaf; the top's CID.
    static func chain(_ levels: Int, in store: MemoryBlockStore) throws -> CID {
        let leaf = try Block(data: Array("the bottom".utf8))
        try store.put(leaf)
        var top = leaf.cid
        for _ in 0..<levels {
            let data = UnixFSData(kind: .file, fileSize: UInt64(leaf.data.count), blockSizes: [UInt64(leaf.data.count)]).encode()
            let b = try Block(data: try DAGPB.encodeNode(PBNode(links: [PBLink(hash: top, name: nil, tsize: 10)], data: data)), codec: .dagPB)
            try store.put(b)
            top = b.cid
        }
        return top
    }

    @Test func aFileDeeperThanTheLimitIsRefused() throws {
        let store = MemoryBlockStore()
        let ok = try Self.chain(FileReader.maximumDepth, in: store)
        var bytes: [UInt8] = []
        try FileReader(store: store).read(ok) { bytes += $0 }
        #expect(bytes == Array("the bottom".utf8))
        let deep = try Self.chain(FileReader.maximumDepth + 5, in: store)
        #expect(throws: UnixFSError.self) { try FileReader(store: store).read(deep) { _ in } }
    }

    @Test func aHAMTDeeperThan64LevelsIsRefused() throws {
        let store = MemoryBlockStore()
        var shard = UnixFSData(kind: .hamtShard, data: [1])
        (shard.hashType, shard.fanout) = (0x22, 256)
        let leaf = try Block(data: Array("x".utf8))
        try store.put(leaf)
        var top = try Block(data: try DAGPB.encodeNode(PBNode(links: [PBLink(hash: leaf.cid, name: "00file", tsize: 1)], data: shard.encode())), codec: .dagPB)
        try store.put(top)
        for _ in 0..<70 {
            top = try Block(data: try DAGPB.encodeNode(PBNode(links: [PBLink(hash: top.cid, name: "00", tsize: 1)], data: shard.encode())), codec: .dagPB)
            try store.put(top)
        }
        #expect(throws: UnixFSError.self) { try HAMT.entries(top.cid, store: store) }
    }
}
