import Foundation
import Testing
import TestSupport
import Multiformats
@testable import CAR

/// Broken CARs never crash the reader, and fail with the reader's own error: every truncation
/// of each small fixture, and thousands of seeded mutations.
struct CARFuzzTests {
    /// The readable fixture CARs of at most 64 KiB (enough to make every truncation cheap).
    static let seeds: [(name: String, bytes: [UInt8])] = CARFixture.load().compactMap { fx in
        guard (try? fx.json())?["readable"] as? Bool == true, let b = try? Fixtures.bytes(fx.car), b.count <= 64 << 10 else { return nil }
        return (fx.testDescription, b)
    }

    /// Reads a whole CAR (and its CARv2 index); the blocks read before it ended or failed, and the error.
    static func readAll(_ bytes: [UInt8]) -> (blocks: Int, error: (any Error)?) {
        var blocks = 0
        do {
            var r = try CARReader(BytesSource(bytes), fileSize: UInt64(bytes.count))
            while try r.next() != nil { blocks += 1 }
            return (blocks, nil)
        } catch {
            return (blocks, error)
        }
    }

    @Test func everyTruncationFailsCleanly() throws {
        try #require(!Self.seeds.isEmpty)
        for (name, bytes) in Self.seeds {
            // Some fixtures fail part way (as their manifests say); a cut never reads past that.
            let whole = Self.readAll(bytes)
            for n in 0..<bytes.count {
                let cut = Self.readAll(Array(bytes.prefix(n)))
                // A cut CAR never yields more than the whole, and anything short of a section end is an error.
                #expect(cut.blocks <= whole.blocks, "\(name) cut at \(n)")
                if let e = cut.error { #expect(e is CARError, "\(name) cut at \(n): \(type(of: e)) \(e)") }
            }
        }
    }

    @Test func mutationsFailWithCARErrors() throws {
        var rng = SeededGenerator(seed: 7)
        var failed = 0
        for (name, bytes) in Self.seeds {
            for m in Mutations.of(bytes, count: 500, using: &rng) {
                if let e = Self.readAll(m).error {
                    failed += 1
                    #expect(e is CARError, "\(name) mutated: \(type(of: e)) \(e)")
                }
            }
        }
        #expect(failed > 0, "some mutants must fail, or nothing was checked")
    }

    /// A section longer than `maximumSectionLength` is refused by its length alone, before its
    /// bytes are read or allocated: a claim of 1 TiB in a 60-byte file fails on the cap, not on the
    /// missing bytes, and a real block one byte over a small cap fails the same way.
    @Test func sectionLengthIsCapped() throws {
        let data = [UInt8](repeating: 7, count: 100)
        let cid = CID(codec: .raw, multihash: try Multihash.compute(data))
        var w = try CARWriter(roots: [cid], sink: ArraySink())
        try w.write(cid: cid, data: data)
        let car = try w.finish().bytes
        let headerEnd = car.count - (cid.bytes.count + data.count + 1)  // one byte of varint for a 136-byte section
        func failure(_ bytes: [UInt8], cap: UInt64) -> String {
            var options = CARReader<BytesSource>.Options()
            options.maximumSectionLength = cap
            do {
                var r = try CARReader(BytesSource(bytes), options: options)
                while try r.next() != nil {}
                return "no error"
            } catch { return "\(error)" }
        }
        let section = UInt64(cid.bytes.count + data.count)
        #expect(failure(car, cap: section) == "no error")
        #expect(failure(car, cap: section - 1).contains("exceeds the \(section - 1)-byte limit"))
        let huge = Array(car[..<headerEnd]) + Varint.encode(1 << 40) + [UInt8](repeating: 0, count: 8)
        #expect(failure(huge, cap: 32 << 20).contains("exceeds the"), "\(failure(huge, cap: 32 << 20))")
    }
}
