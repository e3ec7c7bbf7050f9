import Testing
import TestSupport
import Multiformats
@testable import IPLD

struct DAGCBORStrictnessTests {
    let cbor = DAGCBOR()

    @Test(arguments: [
        ("1817", "integer not in shortest form"),
        ("190017", "integer not in shortest form"),
        ("5f4100ff", "indefinite-length bytes"),
        ("9fff", "indefinite-length list"),
        ("bf61610161620 2ff".replacingOccurrences(of: " ", with: ""), "indefinite-length map"),
        ("c11a514b67b0", "tag other than 42"),
        ("d9002a4700017112000000", "tag 42 not as d8 2a"),
        ("fa3fc00000", "float32"),
        ("f93e00", "float16"),
        ("fb7ff8000000000000", "NaN"),
        ("fb7ff0000000000000", "Infinity"),
        ("f7", "undefined"),
        ("f0", "simple value"),
        ("a2616201616101", "keys out of order"),
        ("a2616101616102", "duplicate keys"),
        ("a2626161016162 02".replacingOccurrences(of: " ", with: ""), "keys in byte order but not length-first (\"aa\" before \"b\")"),
        ("a201016161 02".replacingOccurrences(of: " ", with: ""), "integer key"),
        ("0102", "two top-level values"),
        ("62ff00", "invalid UTF-8"),
        ("5a00000010", "length past the end"),
        ("d82a420102", "link without 0x00 prefix"),
        ("d82a4100", "empty CID"),
        ("1c", "reserved additional information"),
        ("", "empty input"),
    ])
    func rejects(hex: String, why: String) throws {
        #expect(throws: IPLDError.self, "\(why)") { try cbor.decode(try Base16.decode(hex)) }
    }

    @Test func integersOverTheWholeCBORRange() throws {
        let cases: [(IPLDInteger, String)] = [
            (.unsigned(0), "00"), (.unsigned(23), "17"), (.unsigned(24), "1818"), (.unsigned(UInt64.max), "1bffffffffffffffff"),
            (.negative(0), "20"), (.negative(UInt64.max), "3bffffffffffffffff"), (IPLDInteger(Int64.min), "3b7fffffffffffffff"),
        ]
        for (i, hex) in cases {
            let bytes = try Base16.decode(hex)
            #expect(try cbor.encode(.integer(i)) == bytes)
            #expect(try cbor.decode(bytes) == .integer(i))
        }
        #expect(IPLDInteger.negative(UInt64.max).description == "-18446744073709551616")
        #expect(IPLDInteger(decimal: "-18446744073709551616") == .negative(UInt64.max))
        #expect(IPLDInteger(decimal: "18446744073709551616") == nil)
        #expect(IPLDInteger(-5).int64 == -5)
    }

    /// Map keys are ordered length-first, then by bytes: "b" before "aa" decodes.
    @Test func acceptsLengthFirstKeyOrder() throws {
        let node = try cbor.decode(try Base16.decode("a26162026261610 1".replacingOccurrences(of: " ", with: "")))
        #expect(try cbor.encode(node) == Base16.decode("a261620262616101"))
    }

    @Test func encodesMapsLengthFirstAndRefusesNaN() throws {
        let m: IPLDNode = ["bb": 1, "a": 2, "c": 3]
        #expect(Base16.encode(try cbor.encode(m)) == "a36161026163036262620 1".replacingOccurrences(of: " ", with: ""))
        #expect(throws: IPLDError.self) { try cbor.encode(.float(.nan)) }
        #expect(throws: IPLDError.self) { try cbor.encode(.float(.infinity)) }
    }

    @Test func depthIsBounded() throws {
        let deep = [UInt8](repeating: 0x81, count: 100_000) + [0x00]
        #expect(throws: IPLDError.tooDeep(codec: "dag-cbor", limit: DAGCBOR.maximumDepth)) { try cbor.decode(deep) }
        #expect(throws: IPLDError.self) { try cbor.links(in: deep) }
    }

    @Test func linkExtractionAcceptsNonUTF8Text() throws {
        let cid = CID(codec: .raw, multihash: try Multihash.compute([1, 2, 3]))
        let bytes = [0x82, 0x62, 0xff, 0xfe] + (try cbor.encode(.link(cid)))
        #expect(throws: IPLDError.self) { try cbor.decode(bytes) }
        #expect(try cbor.links(in: bytes) == [cid])
    }
}

struct DAGJSONTests {
    let json = DAGJSON()

    @Test(arguments: [
        (0.5, "0.5"), (1.0, "1.0"), (-2.0, "-2.0"), (100.0, "100.0"), (1e21, "1e+21"), (1e20, "100000000000000000000.0"),
        (1.5e-7, "1.5e-7"), (0.000001, "0.000001"), (Double("1e-323")!, "1e-323"), (-8.940696716308594e-8, "-8.940696716308594e-8"),
        (1.7976931348623157e308, "1.7976931348623157e+308"), (123456.789, "123456.789"), (-0.0, "-0.0"),
    ])
    func floatsUseTheShortestJavaScriptForm(value: Double, text: String) throws {
        #expect(String(decoding: try json.encode(.float(value)), as: UTF8.self) == text)
        #expect(try json.decode(Array(text.utf8)) == .float(value))
    }

    @Test func escapesLikeJSONStringify() throws {
        let s: IPLDNode = .string("a\"b\\c\n\u{01}\u{7f}é/")
        #expect(String(decoding: try json.encode(s), as: UTF8.self) == #""a\"b\\c\n\u0001"# + "\u{7f}é/\"")
        #expect(try DAGJSON(strict: false).decode(Array(#""\ud83d\ude00\/""#.utf8)) == .string("😀/"))
        #expect(throws: IPLDError.self) { try json.decode(Array(#""\/""#.utf8)) }
    }

    @Test(arguments: [
        #"{"b":1,"a":2}"#, #"{"a":1,"a":2}"#, #"{ "a":1}"#, "[1, 2]", "01", "-0", "1.", ".5", "1e999", "NaN",
        #"{"/":"notacid"}"#, #"{"/":{"bytes":"!!"}}"#, #"{"/":"bafkqaaa","x":1}"#, #"{"/":{"bytes":"AA","x":1}}"#,
        #"{"/":{"bytes":"AA"},"x":1}"#, "18446744073709551616", "-18446744073709551617", #""\ud800""#, "\"\u{01}\"",
        "[1]x", "", "[", #"{"a"}"#, #"{"/":"BAFKQAAA"}"#,
    ])
    func rejectsNonCanonicalOrInvalid(_ text: String) {
        #expect(throws: IPLDError.self) { try json.decode(Array(text.utf8)) }
    }

    @Test func lenientDecoderAcceptsWhitespaceAndAnyOrder() throws {
        let v = try DAGJSON(strict: false).decode(Array(" { \"b\" : [1, 2.5] ,\n \"a\": {\"/\": {\"bytes\": \"AQID\"}} } ".utf8))
        #expect(v == ["a": .bytes([1, 2, 3]), "b": [1, 2.5]])
        #expect(String(decoding: try json.encode(v), as: UTF8.self) == #"{"a":{"/":{"bytes":"AQID"}},"b":[1,2.5]}"#)
        #expect(throws: IPLDError.self) { try DAGJSON(strict: false).decode(Array(#"{"a":1, "a":2}"#.utf8)) }
    }

    @Test func reservedNamespaceMapsThatAreValid() throws {
        for text in [#"{"/":true}"#, #"{"/":{"bytes":true}}"#, #"{"":1,"/":"x"}"#, #"{"/":{"abar":"baz","bytes":"foo"}}"#] {
            let v = try json.decode(Array(text.utf8))
            #expect(String(decoding: try json.encode(v), as: UTF8.self) == text)
        }
        #expect(throws: IPLDError.self) { try json.encode(["/": "bafkqaaa"]) }
    }
}

struct DAGPBTests {
    @Test func emptyBlockIsEmptyNode() throws {
        let v = try DAGPB().decode([])
        #expect(v == ["Links": []])
        #expect(CID(codec: .dagPB, multihash: try Multihash.compute([UInt8]())).string
            == "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    }

    @Test func acceptsDataBeforeLinksButEncodesLinksFirst() throws {
        let cid = CID(codec: .raw, multihash: try Multihash.compute([1]))
        let node = PBNode(links: [PBLink(hash: cid, name: "a", tsize: 1)], data: [9])
        let canonical = try DAGPB.encodeNode(node)
        // Move the Data field (last 3 bytes: 0a 01 09) to the front.
        let dataFirst = Array(canonical.suffix(3)) + canonical.dropLast(3)
        #expect(try DAGPB.decodeNode(dataFirst) == node)
        #expect(try DAGPB.decodeNode(canonical) == node)
    }

    @Test func sortsLinksStablyByNameBytes() throws {
        let cid = CID(codec: .raw, multihash: try Multihash.compute([1]))
        var node = PBNode(links: [PBLink(hash: cid, name: "b"), PBLink(hash: cid, name: "aa"), PBLink(hash: cid), PBLink(hash: cid, name: "a")])
        #expect(!node.linksAreSorted)
        #expect(throws: IPLDError.self) { try DAGPB.encodeNode(node) }
        node.sortLinks()
        #expect(node.links.map { $0.name } == [nil, "a", "aa", "b"])
        #expect(try DAGPB.decodeNode(DAGPB.encodeNode(node)) == node)
    }

    @Test(arguments: ["0a0100" + "0a0100", "1a00", "120408011801", "12060a0012001200", "120318ff01", "12021a00", "0a05000102",
                      "120c0a04015500000a0401550000",  // a link with its Hash twice
                      "0a8100ff",  // a Data length as a non-minimal varint (0x81 0x00 = 1)
                      "12090a0401550000188100"])  // a Tsize as a non-minimal varint
    func rejectsMalformedBlocks(_ hex: String) throws {
        #expect(throws: IPLDError.self) { try DAGPB().decode(try Base16.decode(hex)) }
    }

    /// The same fields, well formed, decode: the rejections above are for what they say.
    @Test(arguments: ["0a01ff", "12060a0401550000", "12080a04015500001801"])
    func acceptsTheirWellFormedForms(_ hex: String) throws {
        _ = try DAGPB().decode(try Base16.decode(hex))
    }
}

/// Random and mutated inputs: every decoder must return or throw, never crash.
struct DecoderFuzzTests {
    static let seeds: [(any IPLDCodec, [UInt8])] = {
        var out: [(any IPLDCodec, [UInt8])] = []
        for fx in CodecFixture.load().prefix(60) {
            if let b = try? Fixtures.bytes(fx.file), let c = try? Codecs.codec(for: CodecFixture.codecs[fx.codecName]!) { out.append((c, b)) }
        }
        return out
    }()

    @Test func mutatedFixturesNeverCrash() throws {
        var rng = SeededGenerator(seed: 42)
        var decoded = 0
        for (codec, bytes) in Self.seeds {
            for m in Mutations.of(bytes, count: 300, using: &rng) {
                if let v = try? codec.decode(m) {
                    decoded += 1
                    // Whatever the strict decoder accepts re-encodes to the same bytes.
                    if codec.code != .dagPB {
                        let again = try codec.encode(v)
                        #expect(again == m, "\(codec.code.name): \(String(decoding: m, as: UTF8.self).prefix(120)) → \(String(decoding: again, as: UTF8.self).prefix(120))")
                    }
                }
                _ = try? codec.links(in: m)
            }
        }
        // Seeds there are, and some mutants decode: else the re-encode check above checked nothing.
        #expect(!Self.seeds.isEmpty)
        #expect(decoded > 0, "no mutant decoded; the round-trip property was never exercised")
    }

    @Test func randomBytesNeverCrash() {
        var rng = SeededGenerator(seed: 9)
        for _ in 0..<20_000 {
            let b = rng.bytes(Int.random(in: 0..<64, using: &rng))
            for codec in Codecs.all {
                _ = try? codec.decode(b)
                _ = try? codec.links(in: b)
            }
        }
    }
}
