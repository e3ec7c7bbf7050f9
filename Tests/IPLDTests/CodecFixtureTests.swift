import Foundation
import Testing
import TestSupport
import Multiformats
@testable import IPLD

/// One encoded file of a codec-fixtures folder: `<CID>.<codec>`.
struct CodecFixture: Sendable, CustomTestStringConvertible {
    let folder: String
    let file: URL
    let codecName: String
    var testDescription: String { "\(folder)/\(codecName)" }

    static let codecs: [String: Multicodec] = ["dag-cbor": .dagCBOR, "dag-json": .dagJSON, "dag-pb": .dagPB]

    static func load() -> [CodecFixture] {
        Fixtures.directories(under: "codec-fixtures/fixtures").flatMap { dir -> [CodecFixture] in
            let files = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
            return files.compactMap { f in
                guard codecs[f.pathExtension] != nil else { return nil }
                return CodecFixture(folder: dir.lastPathComponent, file: f, codecName: f.pathExtension)
            }.sorted { $0.file.lastPathComponent < $1.file.lastPathComponent }
        }
    }

    /// The other encodings of the same value in the folder.
    var siblings: [(codec: Multicodec, bytes: [UInt8])] {
        let dir = file.deletingLastPathComponent()
        let files = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
        return files.compactMap { f in
            guard let c = CodecFixture.codecs[f.pathExtension], let b = try? Fixtures.bytes(f) else { return nil }
            return (c, b)
        }
    }
}

struct CodecFixtureTests {
    @Test func fixturesArePresent() { #expect(!CodecFixture.load().isEmpty) }

    @Test(arguments: CodecFixture.load())
    func roundTripsIntoEveryCodecOfTheFolder(_ fx: CodecFixture) throws {
        let bytes = try Fixtures.bytes(fx.file)
        let codec = CodecFixture.codecs[fx.codecName]!
        // 1. The file name is the CIDv1 of the bytes with this codec and sha2-256.
        let cid = try CID(fx.file.deletingPathExtension().lastPathComponent)
        #expect(cid.version == 1)
        #expect(cid.codec == codec)
        #expect(cid.multihash.code == .sha2_256)
        #expect(try cid.multihash.verify(bytes))
        // 2. Decode with the codec named by the extension.
        let value = try Codecs.codec(for: codec).decode(bytes)
        // 3. Re-encode into every codec present: byte for byte equal to that file.
        for (other, expected) in fx.siblings {
            let encoded = try Codecs.codec(for: other).encode(value)
            #expect(encoded == expected, "\(fx.folder): \(fx.codecName) → \(other.name)")
            #expect(try Codecs.codec(for: other).decode(expected) == value)
        }
        // The fast extractor finds the links of the decoded value (order may differ: CBOR order vs byte order).
        #expect(try Codecs.links(in: bytes, codec: codec).sorted() == value.links.sorted())
    }
}

/// One case of a negative-fixtures JSON file.
struct NegativeFixture: Sendable, CustomTestStringConvertible {
    let codec: String
    let operation: String
    let name: String
    let hex: String?
    let dagJSON: String?
    var testDescription: String { "\(codec) \(operation): \(name)" }

    static func load() -> [NegativeFixture] {
        Fixtures.files(under: "codec-fixtures/negative-fixtures", suffix: ".json").flatMap { url -> [NegativeFixture] in
            let parts = url.pathComponents
            let op = parts[parts.count - 2], codec = parts[parts.count - 3]
            guard let cases = (try? Fixtures.json(url)) as? [[String: Any]] else { return [] }
            return cases.map { c in
                var json: String?
                if let v = c["dag-json"] {
                    // Re-serialise the JSON value; it is decoded with the lenient DAG-JSON decoder.
                    json = String(data: try! JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed]), encoding: .utf8)
                }
                return NegativeFixture(codec: codec, operation: op, name: c["name"] as? String ?? "?", hex: c["hex"] as? String, dagJSON: json)
            }
        }
    }
}

struct NegativeFixtureTests {
    @Test func fixturesArePresent() { #expect(!NegativeFixture.load().isEmpty) }

    @Test(arguments: NegativeFixture.load())
    func isRejected(_ fx: NegativeFixture) throws {
        let codec = try Codecs.codec(for: try #require(CodecFixture.codecs[fx.codec]))
        switch fx.operation {
        case "decode":
            let bytes = try Base16.decode(try #require(fx.hex))
            #expect(throws: IPLDError.self) { try codec.decode(bytes) }
        case "encode":
            let value = try DAGJSON(strict: false).decode(Array(try #require(fx.dagJSON).utf8))
            #expect(throws: IPLDError.self) { try codec.encode(value) }
        default:
            Issue.record("unknown operation \(fx.operation)")
        }
    }
}
