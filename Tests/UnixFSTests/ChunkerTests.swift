import CAR
import Foundation
import IPLD
import Multiformats
import Storage
import Testing
import TestSupport
@testable import UnixFS

/// Kubo's content-defined chunkers: the cut points of `rabin…` and `buzhash` must be those of
/// boxo/chunker, which `Vectors/chunker-cuts.json` lists for reproducible inputs (made by
/// running Kubo's chunker code; see Scripts/chunker-vectors). Same chunks + the balanced layout
/// already checked against `ipfs add` = the same CIDs.
struct ChunkerTests {
    struct Vectors: Decodable {
        struct Segment: Decodable { let kind: String; let seed: UInt64; let size: Int }
        struct Case: Decodable { let input: String; let chunker: String; let lengths: [Int] }
        let inputs: [String: [Segment]]
        let cases: [Case]
    }

    static let vectors: Vectors = {
        let url = URL(fileURLWithPath: Fixtures.repositoryRoot + "/Tests/UnixFSTests/Vectors/chunker-cuts.json")
        return try! JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }()

    /// The input's bytes: zeros, or SplitMix64 outputs as little-endian bytes (`random`) or as
    /// one of "abcd" each (`text`), exactly as make_vectors.py builds them.
    static func input(_ name: String) -> [UInt8] {
        var out: [UInt8] = []
        for s in vectors.inputs[name]! {
            var g = SeededGenerator(seed: s.seed)
            switch s.kind {
            case "zeros": out += [UInt8](repeating: 0, count: s.size)
            case "random":
                var seg: [UInt8] = []
                seg.reserveCapacity(s.size + 8)
                while seg.count < s.size { withUnsafeBytes(of: g.next().littleEndian) { seg += $0 } }
                out += seg.prefix(s.size)
            case "text": out += (0..<s.size).map { _ in UInt8(ascii: "a") + UInt8(g.next() % 4) }
            default: Issue.record("unknown input kind \(s.kind)")
            }
        }
        return out
    }

    /// Hands out at most `step` bytes per read, to move chunk ends across read boundaries.
    struct DribbleSource: ByteSource {
        let data: [UInt8]
        let step: Int
        var offset = 0
        mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let n = min(buffer.count, step, data.count - offset)
            data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
            offset += n
            return n
        }
    }

    static func lengths<S: ByteSource>(_ source: S, _ chunking: Chunking) throws -> [Int] {
        var chunker = Chunker(source: source, chunking: chunking)
        var out: [Int] = []
        while try !chunker.atEnd() { out.append(try chunker.withNext { $0.count }) }
        return out
    }

    @Test func cutPointsAreKubos() throws {
        #expect(!Self.vectors.cases.isEmpty)
        var inputs: [String: [UInt8]] = [:]
        for c in Self.vectors.cases {
            let data = inputs[c.input] ?? Self.input(c.input)
            inputs[c.input] = data
            #expect(data.count == c.lengths.reduce(0, +), "\(c.input): the rebuilt input has the vector's length")
            let chunking = try Chunking(spec: c.chunker)
            #expect(try Self.lengths(BytesSource(data), chunking) == c.lengths, "\(c.input) with \(c.chunker)")
            #expect(try Self.lengths(DribbleSource(data: data, step: 4093), chunking) == c.lengths, "\(c.input) with \(c.chunker), small reads")
        }
    }

    /// Files cut by rabin and buzhash import, read back whole and in ranges, and their leaves
    /// are the chunks; trickle and CIDv1 too.
    @Test(arguments: ["rabin-5000", "buzhash", "rabin-min:100-avg:1000-max:3000"])
    func contentDefinedImportsReadBack(spec: String) throws {
        let data = Self.input("mixed")
        let expected = try Self.lengths(BytesSource(data), try Chunking(spec: spec))
        for (trickle, cidVersion) in [(false, 0), (false, 1), (true, 1)] {
            var o = ImportOptions()
            try o.chunker(spec)
            o.trickle = trickle
            o.cidVersion = cidVersion
            let store = MemoryBlockStore()
            var pending: [Block] = []
            let file = try FileImporter(options: o) { pending.append($0) }.importFile(BytesSource(data))
            try store.putMany(pending)
            #expect(file.size == UInt64(data.count))
            var back: [UInt8] = []
            try FileReader(store: store).read(file.cid) { back += $0 }
            #expect(back == data)
            var part: [UInt8] = []
            try FileReader(store: store).read(file.cid, offset: 699_990, length: 30) { part += $0 }
            #expect(part == Array(data[699_990..<700_020]))
            if cidVersion == 1 {
                // Raw leaves, emitted in file order: exactly the chunks.
                #expect(pending.filter { $0.cid.codec == .raw }.map(\.data.count) == expected, "trickle \(trickle)")
            }
        }
    }

    /// The same bytes shifted by an insertion keep most chunks with a content-defined chunker
    /// (the reason to use one), and lose nearly all with fixed-size chunks.
    @Test func insertionsKeepMostChunks() throws {
        let data = Self.input("random-3MB")
        let edited = Array(data[..<1000]) + [1, 2, 3] + Array(data[1000...])
        func chunks(_ bytes: [UInt8], _ c: Chunking) throws -> Set<[UInt8]> {
            var chunker = Chunker(source: BytesSource(bytes), chunking: c)
            var out = Set<[UInt8]>()
            while try !chunker.atEnd() { out.insert(try chunker.withNext { Array($0) }) }
            return out
        }
        for c in [Chunking.rabin(min: 1666, average: 5000, max: 7500), .buzhash] {
            let a = try chunks(data, c), b = try chunks(edited, c)
            #expect(Double(a.intersection(b).count) / Double(a.count) > 0.9, "\(c.spec)")
        }
        let a = try chunks(data, .fixed(5000)), b = try chunks(edited, .fixed(5000))
        #expect(a.intersection(b).count <= 1)
    }
}
