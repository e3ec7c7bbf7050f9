import Foundation
import Testing
import TestSupport
@testable import Multiformats

/// One row of multiformats' multihash test_cases.csv.
struct MultihashCase: Sendable, CustomTestStringConvertible {
    let algorithm: String
    let bits: Int
    let input: String
    let multihash: String
    var testDescription: String { "\(algorithm)/\(bits) \(input.prefix(16))" }

    static func load() -> [MultihashCase] {
        let url = Fixtures.url("multiformats/multihash/test_cases.csv")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(whereSeparator: \.isNewline).dropFirst().compactMap { line in
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 4, let bits = Int(f[1]) else { return nil }
            return MultihashCase(algorithm: f[0], bits: bits, input: f[2], multihash: f[3])
        }
    }

    /// The fixture's algorithm names: `sha3` is sha3-512 (0x14); the rest are multicodec table names.
    var function: Multicodec? {
        algorithm == "sha3" ? Multicodec(0x14) : Multicodec(name: algorithm)
    }
}

struct MultihashTests {
    @Test func fixturesArePresent() { #expect(!MultihashCase.load().isEmpty, "no rows in \(Fixtures.root.path)") }

    @Test(arguments: MultihashCase.load())
    func fixtureRow(_ row: MultihashCase) throws {
        let expected = try Base16.decode(row.multihash)
        // Every row must parse, whatever its function.
        let parsed = try Multihash(bytes: expected)
        #expect(parsed.digestLength == row.bits / 8)
        guard let function = row.function, HashFunction.lookup(function) != nil else { return }
        #expect(parsed.code == function)
        // The fixture hashes the ASCII text of `input`, keeping the first bits/8 bytes.
        let computed = try Multihash.compute(Array(row.input.utf8), function: function, length: row.bits / 8)
        #expect(computed.hex == row.multihash.lowercased())
        #expect(try parsed.verify(Array(row.input.utf8)))
    }

    @Test func knownDigests() throws {
        // Empty-input digests from the functions' own standards.
        let empty: [UInt8] = []
        #expect(try Multihash.compute(empty).hex == "1220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Base16.encode(try Multihash.compute(empty, function: .blake2b_256).digest)
            == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
        #expect(Base16.encode(try Multihash.compute(Array("abc".utf8), function: Multicodec(0xb260)).digest)
            == "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982")
        #expect(Base16.encode(try Multihash.compute(Array("abc".utf8), function: Multicodec(0xb240)).digest)
            == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
    }

    @Test func blake2MultiBlockMatchesStreaming() throws {
        // 1000 bytes crosses several 128- and 64-byte blocks; streaming in odd pieces must agree with one shot.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for code in [UInt64(0xb220), 0xb240, 0xb260, 0x12, 0x14, 0x18] {
            let f = HashFunction.lookup(Multicodec(code))!
            var h = f.makeHasher()
            var i = 0
            while i < data.count { let n = min(37, data.count - i); h.update(Array(data[i..<i + n])); i += n }
            #expect(h.finalize() == Array(try Multihash.compute(data, function: Multicodec(code)).digest))
        }
    }

    @Test func identityAndErrors() throws {
        let id = try Multihash.compute([1, 2, 3], function: .identity)
        #expect(id.bytes == [0x00, 0x03, 1, 2, 3])
        #expect(throws: MultihashError.self) { try Multihash.compute([UInt8](repeating: 0, count: 129), function: .identity) }
        #expect(throws: MultihashError.unsupportedFunction(Multicodec(0x1b))) { try Multihash.compute([1], function: Multicodec(0x1b)) }
        #expect(throws: MultihashError.self) { try Multihash(bytes: [0x12, 0x20, 1, 2]) }
        #expect(throws: MultihashError.trailingBytes(1)) { try Multihash(bytes: [0x00, 0x01, 7, 8]) }
        // An unknown function still parses.
        let unknown = try Multihash(bytes: [0xa0, 0xe4, 0x02, 0x02, 0xab, 0xcd])
        #expect(unknown.code == Multicodec(0xb220) && unknown.digestLength == 2)
    }

    @Test func randomBytesNeverCrashTheParser() {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<20_000 {
            let b = rng.bytes(Int.random(in: 0..<40, using: &rng))
            _ = try? Multihash(bytes: b)
        }
    }
}
