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
        try checkIndex(fx, reader, blocks, manifest: m)
        try checkReencodes(fx, reader, blocks, complete: iterationError == nil && !options.zeroLengthSectionAsEOF)
    }

    private func checkLinks(_ b: CARBlock, _ links: Any?) throws {
        guard let links = links as? [Any], [Multicodec.dagPB, .dagCBOR, .dagJSON].contains(b.cid.codec) else { return }
        let expected = links.compactMap { ($0 as? [String: Any])?["Hash"] as? String ?? $0 as? String }
        #expect(try Codecs.links(in: b.data, codec: b.cid.codec).map(\.string) == expected, "links of \(b.cid)")
    }

    /// A CARv2 index in a known multicodec format (the manifest's `indexCodec`) finds every
    /// indexed block at its section's offset in the payload and re-encodes byte for byte. Any
    /// other index (go-car's legacy formats) is reported as an error of its own, while the data
    /// payload reads as the manifest says (checked above), as go-car does.
    private func checkIndex(_ fx: CARFixture, _ reader: CARReader<FileSource>, _ blocks: [CARBlock], manifest m: [String: Any]) throws {
        guard let header = reader.v2Header, header.indexOffset != 0 else { return }
        let codec = ((m["v2Header"] as? [String: Any])?["indexCodec"] as? NSNumber)?.uint64Value
        guard let codec, [Multicodec.carIndexSorted, .carMultihashIndexSorted].contains(Multicodec(codec)) else {
            #expect(throws: CARError.self, "\(fx.testDescription): index codec \(codec.map { String($0, radix: 16) } ?? "?")") { _ = try reader.readIndex() }
            return
        }
        let index = try #require(try reader.readIndex())
        #expect(index.format == Multicodec(codec))
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

    /// Each stand-alone `.carindex` is the index of a CAR of the family, found by its data (not
    /// by name): every block it indexes is at the offset it gives in that CAR's payload, and it
    /// holds all of the CAR's blocks, or all but the identity ones (go-car's MultihashIndexSorted
    /// leaves those out). It re-encodes byte for byte.
    @Test func standaloneIndexesMatchTheirCAR() throws {
        let indexes = Fixtures.files(under: "car", suffix: ".carindex")
        let cars = CARFixture.load().filter { (try? $0.json())?["readable"] as? Bool == true }
        for url in indexes {
            let bytes = try Fixtures.bytes(url)
            let index = try CARIndex(bytes: bytes)
            #expect([Multicodec.carIndexSorted, .carMultihashIndexSorted].contains(index.format))
            #expect(index.encode() == bytes)
            var matches: [String] = []
            for fx in cars {
                guard var reader = try? CARReader(path: fx.car.path) else { continue }
                let base = reader.v2Header?.dataOffset ?? 0
                var all = 0, identity = 0, found = 0
                while let b = try? reader.next() {
                    all += 1
                    if b.cid.multihash.code == .identity { identity += 1 }
                    if index.offset(of: b.cid.multihash) == b.sectionOffset - base { found += 1 }
                }
                if all > 0, index.count == found, found == all || found == all - identity { matches.append(fx.testDescription) }
            }
            // Several CARs may share one payload (a CARv1 and the same data wrapped as CARv2).
            #expect(!matches.isEmpty, "\(url.lastPathComponent) is the index of no CAR of the family")
        }
    }
}
