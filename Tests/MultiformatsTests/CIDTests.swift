import Foundation
import Testing
import TestSupport
@testable import Multiformats

struct CIDTests {
    @Test func parsesV0AndConverts() throws {
        let v0 = try CID("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
        #expect(v0.version == 0 && v0.codec == .dagPB && v0.multihash.code == .sha2_256)
        #expect(v0.string == "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
        let v1 = v0.toV1()
        #expect(v1.string == "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        #expect(try v1.toV0() == v0)
        #expect(v0 != v1)
        #expect(try CID(bytes: v0.bytes) == v0)
        #expect(try CID(bytes: v1.bytes) == v1)
    }

    @Test func parsesAnyMultibaseAndFormatsCanonically() throws {
        let v1 = try CID("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        for base in Multibase.allCases {
            let s = try v1.string(base: base)
            let back = try CID(s)
            #expect(back == v1, "\(base)")
            #expect(back.string == v1.string)
        }
        #expect(try v1.string(base: .base36).hasPrefix("k"))
    }

    @Test func cidFixtureNamesRoundTrip() throws {
        // The codec fixture folders are named after CIDs of many kinds (v0, v1 in several bases, identity, odd codecs).
        let names = Fixtures.directories(under: "codec-fixtures/fixtures").map(\.lastPathComponent).filter { $0.hasPrefix("cid-") }
        var checked = 0
        for name in names {
            let text = String(name.dropFirst(4))
            guard let cid = try? CID(text) else { continue }  // some folder names are labels, not CIDs
            let base: Multibase = cid.version == 0 ? .base58btc : Multibase(prefix: text.first!)!
            #expect(try cid.string(base: base) == text)
            checked += 1
        }
        #expect(checked > 0, "no fixture folder is named after a CID: nothing was checked")
    }

    @Test func errorsNameWhatIsWrong() {
        #expect(throws: CIDError.empty) { try CID("") }
        #expect(throws: CIDError.invalidMultibase(.unknownPrefix("!"))) { try CID("!abc") }
        #expect(throws: CIDError.unsupportedVersion(2)) { try CID(bytes: [0x02, 0x55, 0x00, 0x00]) }
        #expect(throws: CIDError.v0InMultibase) { try CID(Multibase.base32.encode(try CID("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n").bytes)) }
        #expect(throws: CIDError.invalidV0Codec(.raw)) { try CID(codec: .raw, multihash: try Multihash.compute([1])).toV0() }
        #expect(throws: CIDError.trailingBytes(1)) { try CID(bytes: CID(codec: .raw, multihash: try Multihash.compute([1])).bytes + [0]) }
        #expect(throws: CIDError.self) { try CID("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1l") }
        #expect(throws: CIDError.self) { try CID("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk") }
    }

    @Test func equalityAndHashingAreByBytes() throws {
        let a = try CID("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        let b = try CID("BAFYBEIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU")
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
    }

    @Test func randomInputNeverCrashes() throws {
        var rng = SeededGenerator(seed: 5)
        let valid = try CID("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        for m in Mutations.of(valid.bytes, count: 20_000, using: &rng) {
            if let c = try? CID(bytes: m) { #expect(c.bytes == m) }
        }
        for m in Mutations.of(Array(valid.string.utf8), count: 20_000, using: &rng) {
            _ = try? CID(String(decoding: m, as: UTF8.self))
        }
    }
}

struct MulticodecTests {
    @Test func generatedTableMatchesTheCSV() throws {
        let url = Fixtures.url("multiformats/multicodec/table.csv")
        let text = try String(contentsOf: url, encoding: .utf8)
        var rows: [(String, UInt64)] = []
        for line in text.split(whereSeparator: \.isNewline).dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count >= 4, !f[0].isEmpty, let code = UInt64(f[2].dropFirst(2), radix: 16) else { continue }
            rows.append((f[0], code))
        }
        #expect(!rows.isEmpty)
        for (name, code) in rows { #expect(Multicodec(name: name)?.code == code, "\(name)") }
        #expect(Multicodec.dagCBOR.name == "dag-cbor")
        #expect(Multicodec(0x129).name == "dag-json")
        #expect(Multicodec(0xfffff0).name == "0xfffff0")
    }
}
