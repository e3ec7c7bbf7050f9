import Foundation
import Multiformats
import Testing
import TestSupport

/// The path gateway's TAR responses (`?format=tar`, `Accept: application/x-tar`; IPIP-288) over
/// the `path_gateway_tar` fixtures: the tree as a TAR named after the terminus, the headers,
/// `?filename=` with a non-ASCII name, 406 for non-UnixFS data, and a tree with an entry named
/// `../foo` ending the stream with the reason.
@Suite(.serialized) struct GatewayTarTests {
    /// (name, type flag, contents) of each entry of a ustar stream.
    static func entries(_ tar: [UInt8]) -> [(String, Character, [UInt8])] {
        var out: [(String, Character, [UInt8])] = []
        var at = 0
        while at + 512 <= tar.count, tar[at] != 0 {
            let header = Array(tar[at..<at + 512])
            let name = String(decoding: header[0..<100].prefix { $0 != 0 }, as: UTF8.self)
            let size = Int(String(decoding: header[124..<136].prefix { $0 != 0 && $0 != 32 }, as: UTF8.self), radix: 8) ?? 0
            let type = Character(UnicodeScalar(header[156]))
            at += 512
            out.append((name, type, Array(tar[at..<min(tar.count, at + size)])))
            at += (size + 511) / 512 * 512
        }
        return out
    }

    @Test func unixFSTreesAsTar() async throws {
        let d = try await GatewayTests.daemon()
        let f = try GatewayFixture.named("fixtures/path_gateway_tar/fixtures.car")
        let root = try #require(f.roots.first)
        for (query, headers) in [("?format=tar", [String: String]()), ("", ["Accept": "application/x-tar"])] {
            let r = try await d.request("/ipfs/\(root)\(query)", headers: headers)
            #expect(r.status == 200 && r.header("Content-Type") == "application/x-tar")
            #expect(r.header("Content-Disposition") == "attachment; filename=\"\(root).tar\"")
            #expect(r.header("ETag") == "W/\"\(root).x-tar\"")
            let entries = Self.entries(r.body)
            #expect(entries.first?.0 == "\(root)/" && entries.first?.1 == "5", "the top entry is named after the CID")
            let file = try #require(entries.first { $0.0 == "\(root)/ą/ę/file-źł.txt" }, "\(entries.map(\.0))")
            let direct = try await d.request("/ipfs/\(root)/ą/ę/file-źł.txt".addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)!)
            #expect(file.1 == "0" && file.2 == direct.body)
        }
        // A file inside: one entry named after the last path segment.
        let one = try await d.request("/ipfs/\(root)/ą/ę/file-źł.txt?format=tar".addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed)!)
        #expect(Self.entries(one.body).map(\.0) == ["file-źł.txt"])
        // ?filename= with a non-ASCII name: an ASCII fallback and RFC 5987's filename*.
        let named = try await d.request("/ipfs/\(root)?filename=test%D1%82%D0%B5%D1%81%D1%82.tar&format=tar")
        #expect(named.header("Content-Disposition") == "attachment; filename=\"test____.tar\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.tar")
        // Not UnixFS: 406.
        let cbor = try GatewayFixture.named("fixtures/path_gateway_dag/dag-json-traversal.car")
        #expect(try await d.request("/ipfs/\(try #require(cbor.roots.first))?format=tar").status == 406)
        // An entry named ../foo: the stream ends with the reason instead of leaving the root.
        let outside = try GatewayFixture.named("fixtures/path_gateway_tar/outside-root.car")
        let bad = try await d.request("/ipfs/\(try #require(outside.roots.first))?format=tar")
        #expect(bad.text.contains("relative UnixFS paths outside the root are now allowed"), "\(bad.text.suffix(200))")
        #expect(!Self.entries(bad.body).contains { $0.0.contains("..") })
        await d.stop()
    }
}
