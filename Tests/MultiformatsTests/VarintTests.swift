import Testing
@testable import Multiformats

struct VarintTests {
    static let examples: [(UInt64, [UInt8])] = [
        (0, [0x00]), (1, [0x01]), (127, [0x7f]), (128, [0x80, 0x01]), (255, [0xff, 0x01]),
        (300, [0xac, 0x02]), (16384, [0x80, 0x80, 0x01]), (Varint.maximumValue, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
    ]

    @Test(arguments: examples)
    func specExamples(value: UInt64, encoding: [UInt8]) throws {
        #expect(Varint.encode(value) == encoding)
        #expect(Varint.encodedLength(value) == encoding.count)
        let (v, n) = try Varint.decode(encoding)
        #expect(v == value && n == encoding.count)
    }

    @Test func rejectsNonMinimalTruncatedAndOverlong() {
        #expect(throws: VarintError.notMinimal) { try Varint.decode([0x80, 0x00]) }
        #expect(throws: VarintError.notMinimal) { try Varint.decode([0x81, 0x80, 0x00]) }
        #expect(throws: VarintError.truncated) { try Varint.decode([0x80]) }
        #expect(throws: VarintError.empty) { try Varint.decode([]) }
        #expect(throws: VarintError.tooLong) { try Varint.decode([UInt8](repeating: 0xff, count: 9) + [0x01]) }
    }

    @Test func decodesAtOffsetAndIgnoresFollowingBytes() throws {
        let (v, n) = try Varint.decode([0x00, 0xac, 0x02, 0x55], at: 1)
        #expect(v == 300 && n == 2)
    }

    @Test func roundTripsRandomValues() throws {
        var rng = SeededGenerator(seed: 1)
        for _ in 0..<10_000 {
            let v = UInt64.random(in: 0...Varint.maximumValue, using: &rng) >> UInt64.random(in: 0..<63, using: &rng)
            let e = Varint.encode(v)
            let (d, n) = try Varint.decode(e)
            #expect(d == v && n == e.count)
        }
    }
}
import TestSupport
