import CAR
import Foundation
import IPLD
import Multiformats
import Storage
import Testing
import TestSupport
@testable import UnixFS

struct ImportReadTests {
    func importBytes(_ data: [UInt8], options: ImportOptions, into store: MemoryBlockStore) throws -> ImportedFile {
        var pending: [Block] = []
        let result = try FileImporter(options: options) { pending.append($0) }.importFile(BytesSource(data))
        try store.putMany(pending)
        return result
    }

    /// Kubo's balanced layout puts at most 174 links in a node, by default: 174 chunks hang from
    /// the root, the 175th makes the root a node of two subtrees (174 leaves, then 1).
    @Test(arguments: [(174, [174]), (175, [174, 1]), (174 * 2 + 1, [174, 174, 1])])
    func balancedNodesHoldAtMost174Links(chunks: Int, expected: [Int]) throws {
        var o = ImportOptions()
        o.chunking = .fixed(16)
        #expect(o.maximumLinks == 174, "Kubo's default width")
        let store = MemoryBlockStore()
        let file = try importBytes([UInt8](repeating: 1, count: chunks * 16), options: o, into: store)
        let root = try DAGPB.decodeNode(try #require(try store.get(file.cid)))
        if expected.count == 1 {
            #expect(root.links.count == expected[0])
        } else {
            let widths = try root.links.map { try DAGPB.decodeNode(try #require(try store.get($0.hash))).links.count }
            // A subtree of one chunk is that chunk itself (no node above it).
            #expect(widths.dropLast() == expected.dropLast() && root.links.count == expected.count, "root links \(root.links.count), subtree widths \(widths)")
        }
    }

    @Test(arguments: [(0, 0), (1, 1), (2, 0), (2, 1), (3, 1)])
    func rangesReadBackExactly(depthHint: Int, cidVersion: Int) throws {
        // Small chunks and few links per node give deep trees from little data.
        var o = ImportOptions()
        o.chunking = .fixed(7)
        o.maximumLinks = 3
        o.cidVersion = cidVersion
        var rng = SeededGenerator(seed: UInt64(depthHint * 10 + cidVersion))
        let data = rng.bytes([0, 5, 100, 1000][depthHint])
        let store = MemoryBlockStore()
        let file = try importBytes(data, options: o, into: store)
        #expect(file.size == UInt64(data.count))
        let reader = FileReader(store: store)
        #expect(try reader.size(of: file.cid) == UInt64(data.count))
        var all: [UInt8] = []
        try reader.read(file.cid) { all += $0 }
        #expect(all == data)
        for _ in 0..<50 where !data.isEmpty {
            let offset = Int.random(in: 0..<data.count, using: &rng)
            let length = Int.random(in: 0...(data.count - offset + 3), using: &rng)
            var part: [UInt8] = []
            try reader.read(file.cid, offset: UInt64(offset), length: UInt64(length)) { part += $0 }
            #expect(part == Array(data[offset..<min(data.count, offset + length)]))
        }
    }

    @Test(arguments: [false, true])
    func trickleAndInlinedDAGsReadBack(rawLeaves: Bool) throws {
        var o = ImportOptions()
        o.chunking = .fixed(5)
        o.maximumLinks = 3
        o.trickle = true
        o.rawLeaves = rawLeaves
        o.inlineLimit = 16
        var rng = SeededGenerator(seed: rawLeaves ? 1 : 2)
        let data = rng.bytes(2000)
        let store = MemoryBlockStore()
        let file = try importBytes(data, options: o, into: store)
        var all: [UInt8] = []
        try FileReader(store: store).read(file.cid) { all += $0 }
        #expect(all == data)
        var part: [UInt8] = []
        try FileReader(store: store).read(file.cid, offset: 777, length: 333) { part += $0 }
        #expect(part == Array(data[777..<1110]))
        // Leaves of 5 bytes fit the inline limit: none of them is stored as a block.
        var stored = 0
        try store.forEach { _ in stored += 1; return true }
        #expect(stored > 0 && stored < 400)
    }

    @Test func everyBlockOfTheDAGIsEmittedAndLinksAreRecorded() throws {
        var o = ImportOptions()
        o.chunking = .fixed(1000)
        let store = MemoryBlockStore()
        var rng = SeededGenerator(seed: 4)
        let data = rng.bytes(50_000)
        let file = try importBytes(data, options: o, into: store)
        // The exported DAG holds the root and 50 leaves.
        var w = try CARWriter(roots: [file.cid], sink: ArraySink())
        try DAGTransfer.export(root: file.cid, from: store, to: &w)
        var r = try CARReader(BytesSource(try w.finish().bytes))
        var count = 0
        while try r.next() != nil { count += 1 }
        #expect(count == 51)
        #expect(try store.links(of: file.cid)?.count == 50)
        let root = try DAGPB.decodeNode(try #require(try store.get(file.cid)))
        let fs = try UnixFSData(bytes: try #require(root.data))
        #expect(fs.kind == .file && fs.fileSize == 50_000 && fs.blockSizes.count == 50)
        #expect(root.links.allSatisfy { $0.name == "" })
    }

    @Test func chunkerSpecsAndErrors() throws {
        var o = ImportOptions()
        try o.chunker("size-1024")
        #expect(o.chunking == .fixed(1024))
        try o.chunker(nil)
        #expect(o.chunking == .fixed(1024), "nil keeps what was set")
        // Kubo's specs and its derived bounds.
        let parsed: [(String, Chunking)] = [
            ("default", .fixed(262_144)), ("", .fixed(262_144)), ("size-1048576", .fixed(1 << 20)),
            ("rabin", .rabin(min: 87_381, average: 262_144, max: 393_216)), ("rabin-1000", .rabin(min: 333, average: 1000, max: 1500)),
            ("rabin-512-1024-2048", .rabin(min: 512, average: 1024, max: 2048)),
            ("rabin-min:16-avg:64-max:128", .rabin(min: 16, average: 64, max: 128)),
            ("buzhash", .buzhash), ("buzhash-x", .buzhash),
        ]
        for (spec, expected) in parsed { #expect(try Chunking(spec: spec) == expected, "\(spec)") }
        #expect(try Chunking(spec: Chunking.rabin(min: 20, average: 40, max: 80).spec) == .rabin(min: 20, average: 40, max: 80))
        for bad in ["size-0", "size-x", "size-1048577", "size-1-2", "rabin-15-64-128", "rabin-64-64-128", "rabin-16-128-128",
                    "rabin-16-64-1048577", "rabin-47", "rabin-700000", "rabin-1-2", "rabin-foo:16-64-128", "fastcdc", "size"] {
            #expect(throws: UnixFSError.self, "\(bad)") { try Chunking(spec: bad) }
        }
        let store = MemoryBlockStore()
        let raw = try store.put(data: [1, 2, 3])
        let cbor = try store.put(data: DAGCBOR().encode(["a": 1]), codec: .dagCBOR)
        #expect(throws: UnixFSError.self) { try FileReader(store: store).read(cbor) { _ in } }
        var got: [UInt8] = []
        try FileReader(store: store).read(raw) { got += $0 }
        #expect(got == [1, 2, 3])
    }

    @Test func unixFSDataRoundTrips() throws {
        var d = UnixFSData(kind: .file, data: [1, 2], fileSize: 10, blockSizes: [4, 4])
        d.mode = 0o644
        d.mtime = (1_700_000_000, 5)
        #expect(try UnixFSData(bytes: d.encode()) == d)
        #expect(throws: UnixFSError.self) { try UnixFSData(bytes: [0x12, 0x05, 0x01]) }
    }
}
