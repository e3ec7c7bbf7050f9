import Foundation
import Testing
import TestSupport
import IPLD
import Multiformats
@testable import CAR

/// A CAR fixture and its manifest.
struct CARFixture: Sendable, CustomTestStringConvertible {
    let car: URL
    let manifest: URL
    var testDescription: String { car.path.replacingOccurrences(of: Fixtures.root.path + "/", with: "") }

    static func load() -> [CARFixture] {
        (Fixtures.files(under: "car", suffix: ".car.manifest.json") + Fixtures.files(under: "gateway-conformance", suffix: ".car.manifest.json"))
            .map { m in CARFixture(car: URL(fileURLWithPath: String(m.path.dropLast(".manifest.json".count))), manifest: m) }
    }

    func json() throws -> [String: Any] { try #require(try Fixtures.json(manifest) as? [String: Any]) }
}

struct CARFixtureTests {
    @Test func fixturesArePresent() { #expect(!CARFixture.load().isEmpty) }

    @Test(arguments: CARFixture.load())
    func readsAsTheManifestSays(_ fx: CARFixture) throws {
        let m = try fx.json()
        guard m["readable"] as? Bool == true else {
            #expect(throws: (any Error).self, "\(fx.testDescription) must not open") { _ = try CARReader(path: fx.car.path) }
            return
        }
        var options = CARReader<FileSource>.Options()
        options.verifyBlocks = false  // checked block by block below, against the manifest
        options.zeroLengthSectionAsEOF = m["zeroLengthSectionOffset"] != nil
        var reader = try CARReader(path: fx.car.path, options: options)
        #expect(reader.version == m["carVersion"] as? Int)
        #expect(reader.roots.map(\.string) == (m["roots"] as? [String] ?? []))
        if let h = m["v2Header"] as? [String: Any] {
            let v2 = try #require(reader.v2Header)
            #expect(v2.dataOffset == (h["dataOffset"] as? NSNumber)?.uint64Value)
            #expect(v2.dataSize == (h["dataSize"] as? NSNumber)?.uint64Value)
            #expect(v2.indexOffset == (h["indexOffset"] as? NSNumber)?.uint64Value)
            #expect(v2.fullyIndexed == h["fullyIndexed"] as? Bool)
        }
        let expected = m["blocks"] as? [[String: Any]] ?? []
        var blocks: [CARBlock] = []
        var iterationError: (any Error)?
        do {
            while let b = try reader.next() { blocks.append(b) }
        } catch { iterationError = error }
        #expect(blocks.count == expected.count)
        #expect((m["blocksError"] is NSNull || m["blocksError"] == nil) == (iterationError == nil), "\(String(describing: iterationError))")
        for (b, e) in zip(blocks, expected) {
            #expect(b.cid.string == e["cid"] as? String)
            #expect(b.sectionOffset == (e["offset"] as? NSNumber)?.uint64Value)
            #expect(b.sectionLength == (e["length"] as? NSNumber)?.uint64Value)
            #expect(b.blockOffset == (e["blockOffset"] as? NSNumber)?.uint64Value)
            #expect(b.data.count == e["blockLength"] as? Int)
            if e["hashVerified"] as? Bool == true { #expect(try b.cid.multihash.verify(b.data)) }
            if e["hashVerified"] as? Bool == false { #expect(try !b.cid.multihash.verify(b.data)) }
            try checkLinks(b, e["links"])
        }
        // A zero-length section is an error unless the option says it ends the data.
        if options.zeroLengthSectionAsEOF {
            var strict = try CARReader(path: fx.car.path)
            #expect(throws: CARError.self) { while try strict.next() != nil {} }
        }
        try checkIndex(fx, reader, blocks)
        try checkReencodes(fx, reader, blocks, complete: iterationError == nil && !options.zeroLengthSectionAsEOF)
    }

    private func checkLinks(_ b: CARBlock, _ links: Any?) throws {
        guard let links = links as? [Any], [Multicodec.dagPB, .dagCBOR, .dagJSON].contains(b.cid.codec) else { return }
        let expected = links.compactMap { ($0 as? [String: Any])?["Hash"] as? String ?? $0 as? String }
        #expect(try Codecs.links(in: b.data, codec: b.cid.codec).map(\.string) == expected, "links of \(b.cid)")
    }

    /// A CARv2 index finds every indexed block at its section's offset in the payload.
    private func checkIndex(_ fx: CARFixture, _ reader: CARReader<FileSource>, _ blocks: [CARBlock]) throws {
        guard let header = reader.v2Header, let index = try reader.readIndex() else { return }
        for b in blocks where b.cid.multihash.code != .identity || header.fullyIndexed {
            #expect(index.offset(of: b.cid.multihash) == b.sectionOffset - header.dataOffset)
        }
        let file = try Fixtures.bytes(fx.car)
        #expect(index.encode() == Array(file[Int(header.indexOffset)...]))
    }

    /// Writing the roots and blocks back gives the same file (CARv1) or the same payload (CARv2).
    private func checkReencodes(_ fx: CARFixture, _ reader: CARReader<FileSource>, _ blocks: [CARBlock], complete: Bool) throws {
        guard complete else { return }
        var w = try CARWriter(roots: reader.roots, sink: ArraySink())
        for b in blocks { try w.write(cid: b.cid, data: b.data) }
        let out = try w.finish().bytes
        let file = try Fixtures.bytes(fx.car)
        if let h = reader.v2Header {
            #expect(out == Array(file[Int(h.dataOffset)..<Int(h.dataOffset + h.dataSize)]))
        } else {
            #expect(out == file, "\(fx.testDescription) re-encodes byte for byte")
        }
    }

    @Test func standaloneIndexSortedMatchesTheCARv1Offsets() throws {
        for url in Fixtures.files(under: "car", suffix: ".carindex") {
            let bytes = try Fixtures.bytes(url)
            let index = try CARIndex(bytes: bytes)
            #expect(index.format == .carIndexSorted)
            #expect(index.encode() == bytes)
            // The index names the CAR it was made from: sample-index ↔ sample-v1.car.
            let carURL = url.deletingLastPathComponent().appendingPathComponent("sample-v1.car")
            guard FileManager.default.fileExists(atPath: carURL.path) else { continue }
            var reader = try CARReader(path: carURL.path)
            var n = 0
            while let b = try reader.next() {
                #expect(index.offset(of: b.cid.multihash) == b.sectionOffset)
                n += 1
            }
            #expect(index.count == n)
        }
    }
}

struct CARWriterTests {
    func blocks(_ n: Int) throws -> [(CID, [UInt8])] {
        try (0..<n).map { i in
            let data = Array("block \(i)".utf8)
            let codec: Multicodec = i % 2 == 0 ? .raw : .dagCBOR
            let bytes = codec == .raw ? data : try DAGCBOR().encode(["i": .int(i)])
            let fn: Multicodec = i % 5 == 4 ? .identity : (i % 3 == 0 ? .blake2b_256 : .sha2_256)
            return (CID(codec: codec, multihash: try Multihash.compute(bytes, function: fn)), bytes)
        }
    }

    @Test(arguments: [Multicodec.carMultihashIndexSorted, .carIndexSorted])
    func writesAnIndexedCARv2ThatReadsBack(format: Multicodec) throws {
        let input = try blocks(200)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-\(UUID()).car").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var w = try CARWriter(v2Roots: [input[0].0], sink: try FileSink(path: path), index: format)
        for (c, d) in input { try w.write(cid: c, data: d) }
        try w.finish().flush()
        var r = try CARReader(path: path)
        #expect(r.version == 2 && r.roots == [input[0].0])
        let index = try #require(try r.readIndex())
        #expect(index.format == format)
        let h = try #require(r.v2Header)
        var i = 0
        while let b = try r.next() {
            #expect(b.cid == input[i].0 && b.data == input[i].1)
            if b.cid.multihash.code != .identity { #expect(index.offset(of: b.cid.multihash) == b.sectionOffset - h.dataOffset) }
            i += 1
        }
        #expect(i == input.count)
        #expect(index.count == input.filter { $0.0.multihash.code != .identity }.count)
    }

    @Test func readerRejectsAHashMismatch() throws {
        var w = try CARWriter(roots: [], sink: ArraySink())
        let cid = CID(codec: .raw, multihash: try Multihash.compute([1, 2, 3]))
        try w.write(cid: cid, data: [1, 2, 4])
        var r = try CARReader(BytesSource(try w.finish().bytes))
        #expect(throws: CARError.hashMismatch(cid, offset: 18)) { _ = try r.next() }
    }

    @Test func truncatedAndMutatedCARsNeverCrash() throws {
        var w = try CARWriter(roots: [try blocks(1)[0].0], sink: ArraySink())
        for (c, d) in try blocks(12) { try w.write(cid: c, data: d) }
        let car = try w.finish().bytes
        // Every truncation either reads cleanly to a shorter end or fails with a CARError.
        for n in 0..<car.count {
            do {
                var r = try CARReader(BytesSource(Array(car.prefix(n))))
                while try r.next() != nil {}
            } catch is CARError {
            }
        }
        var rng = SeededGenerator(seed: 21)
        for m in Mutations.of(car, count: 3000, using: &rng) {
            do {
                var r = try CARReader(BytesSource(m))
                while try r.next() != nil {}
            } catch {}
        }
        for _ in 0..<3000 {
            _ = try? CARIndex(bytes: rng.bytes(Int.random(in: 0..<80, using: &rng)))
        }
    }
}
