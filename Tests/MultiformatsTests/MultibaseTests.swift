import Foundation
import Testing
import TestSupport
@testable import Multiformats

/// One vector of a multibase test CSV.
struct MultibaseCase: Sendable, CustomTestStringConvertible {
    let file: String
    let encoding: String
    let input: [UInt8]
    let text: String
    let decodeOnly: Bool
    var testDescription: String { "\(file): \(encoding)" }

    static func load() -> [MultibaseCase] {
        var cases: [MultibaseCase] = []
        for url in Fixtures.files(under: "multiformats/multibase/tests", suffix: ".csv") {
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
            let lines = text.split(whereSeparator: \.isNewline)
            guard let header = lines.first.map(parse) else { continue }
            let input = unescape(header.1)
            let decodeOnly = header.0.hasPrefix("non-canonical")
            for line in lines.dropFirst() {
                let (name, value) = parse(line)
                cases.append(MultibaseCase(file: url.lastPathComponent, encoding: name, input: input, text: value, decodeOnly: decodeOnly))
            }
        }
        return cases
    }

    /// `name, "value"`.
    private static func parse(_ line: Substring) -> (String, String) {
        let comma = line.firstIndex(of: ",")!
        let name = line[..<comma].trimmingCharacters(in: .whitespaces)
        var value = line[line.index(after: comma)...].trimmingCharacters(in: .whitespaces)
        if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
        return (name, value)
    }

    /// The header writes a zero byte as `\x00`.
    private static func unescape(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "\\"), i + 3 < u.count, u[i + 1] == UInt8(ascii: "x"),
               let b = UInt8(String(decoding: u[(i + 2)...(i + 3)], as: UTF8.self), radix: 16) {
                out.append(b); i += 4
            } else { out.append(u[i]); i += 1 }
        }
        return out
    }
}

struct MultibaseTests {
    @Test func fixturesArePresent() { #expect(!MultibaseCase.load().isEmpty) }

    @Test(arguments: MultibaseCase.load())
    func fixtureVector(_ c: MultibaseCase) throws {
        let base = try #require(Multibase(rawValue: c.encoding), "unknown encoding \(c.encoding)")
        let (decodedBase, bytes) = try Multibase.decode(c.text)
        #expect(decodedBase == base)
        #expect(bytes == c.input)
        if !c.decodeOnly { #expect(base.encode(c.input) == c.text) }
    }

    @Test(arguments: Multibase.allCases)
    func roundTripsRandomBytes(_ base: Multibase) throws {
        var rng = SeededGenerator(seed: 11)
        for length in [0, 1, 2, 3, 4, 5, 7, 31, 32, 33, 100] {
            var input = rng.bytes(length)
            if length > 3 { input[0] = 0; input[1] = 0 }  // leading zeros must survive every base
            let text = base.encode(input)
            let (b, decoded) = try Multibase.decode(text)
            #expect(b == base)
            #expect(decoded == input, "\(base) length \(length): \(text)")
        }
    }

    @Test func rejectsBadInput() {
        #expect(throws: MultibaseError.empty) { try Multibase.decode("") }
        #expect(throws: MultibaseError.unknownPrefix("!")) { try Multibase.decode("!abc") }
        #expect(throws: MultibaseError.invalidCharacter("1")) { try Multibase.decode("bq1") }
        #expect(throws: MultibaseError.invalidLength(1)) { try Multibase.decode("ba") }
        #expect(throws: MultibaseError.self) { try Multibase.decode("z0OIl") }
        #expect(throws: MultibaseError.self) { try Multibase.decode("m====") }
    }

    @Test func randomTextNeverCrashesTheDecoder() {
        var rng = SeededGenerator(seed: 3)
        let alphabet = Array("0179fFvVtTbBcChkKRzZmMuUp🚀=-_+/ abcxyzQ".unicodeScalars)
        for _ in 0..<20_000 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0..<24, using: &rng) { s.append(alphabet.randomElement(using: &rng)!) }
            _ = try? Multibase.decode(String(s))
        }
    }
}
