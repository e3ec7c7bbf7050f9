import CAR
import Foundation
import HTTPServer
import IPLD
import Multiformats
import Storage
import Testing
import TestSupport

/// The path gateway's UnixFS and DAG cases of the conformance summary, over the fixture CARs.
@Suite(.serialized) struct PathGatewayTests {
    @Test func unixFSFilesRangesAndDirectories() async throws {
        let d = try await GatewayTests.daemon()
        let files = try GatewayFixture.named("fixtures/path_gateway_unixfs/dir-with-files.car")
        let root = try files.cid("/")
        let ascii = try await d.request("/ipfs/\(root)/ascii.txt")
        #expect(ascii.status == 200 && ascii.header("Accept-Ranges") == "bytes")
        #expect(ascii.header("Content-Type")?.hasPrefix("text/plain") == true)
        #expect(ascii.text.hasPrefix("hello application/vnd.ipld.") && ascii.body.count == 31)
        #expect(ascii.header("ETag") == "\"\(try files.cid("/ascii.txt"))\"")
        let single = try await d.request("/ipfs/\(root)/ascii.txt", headers: ["Range": "bytes=6-16"])
        #expect(single.status == 206 && single.header("Content-Range") == "bytes 6-16/31" && single.text == "application")
        let suffix = try await d.request("/ipfs/\(root)/ascii.txt", headers: ["Range": "bytes=-3"])
        #expect(suffix.status == 206 && suffix.header("Content-Range") == "bytes 28-30/31")
        let multi = try await d.request("/ipfs/\(root)/ascii.txt", headers: ["Range": "bytes=6-16,0-4"])
        #expect(multi.status == 206 && multi.header("Content-Type")?.hasPrefix("multipart/byteranges") == true)
        #expect(multi.text.contains("Content-Range: bytes 6-16/31") && multi.text.contains("Content-Range: bytes 0-4/31"))
        let multiblock = try await d.request("/ipfs/\(root)/multiblock.txt")
        #expect(multiblock.body.count == 1026)
        #expect(try await d.request("/ipfs/\(root)/i-do-not-exist").status == 404)
        #expect(try await d.request("/ipfs/\(root)/ascii.txt", headers: ["If-None-Match": "\"x\", W/\"\(try files.cid("/ascii.txt"))\""]).status == 304)
        let head = try await d.request("/ipfs/\(root)/multiblock.txt", method: "HEAD")
        #expect(head.status == 200 && head.header("Content-Length") == "1026" && head.body.isEmpty)
        // HEAD of what GET streams (a CAR, a tar, several ranges) has the headers GET has: no
        // Content-Length (not "0"), and no body bytes on the connection — the next response on it
        // follows the head at once.
        for (query, range, status) in [("?format=car", "", "200"), ("?format=tar", "", "200"), ("", "Range: bytes=0-1,3-4\r\n", "206")] {
            let target = "/ipfs/\(root)/" + (range.isEmpty ? "" : "ascii.txt") + query
            let c = try RawConnection(port: d.gatewayPort)
            try c.send("HEAD \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(range)\r\nGET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            let (_, bytes) = try await ThirdPartyClientTests.aside { c.readUntilClosed(timeout: 30) }
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.components(separatedBy: "\r\n\r\n")
            #expect(parts.count >= 2 && parts[0].hasPrefix("HTTP/1.1 \(status)") && parts[1].hasPrefix("HTTP/1.1 200"), "\(target): \(text)")
            #expect(!parts[0].lowercased().contains("\r\ncontent-length:"), "\(target): \(parts[0])")
        }
        await d.stop()
    }

    @Test func rangesSurviveMissingBlocksOutsideThem() async throws {
        let d = try await GatewayTests.daemon()
        let f = try GatewayFixture.named("fixtures/trustless_gateway_car/file-3k-and-3-blocks-missing-block.car")
        let root = try #require(f.roots.first)
        let before = try await d.request("/ipfs/\(root)", headers: ["Range": "bytes=997-1000"])
        #expect(before.status == 206 && before.header("Content-Range") == "bytes 997-1000/3072")
        let after = try await d.request("/ipfs/\(root)", headers: ["Range": "bytes=2200-2201"])
        #expect(after.status == 206 && after.header("Content-Range") == "bytes 2200-2201/3072")
        await d.stop()
    }

    @Test func directoryRedirectListingAndIndex() async throws {
        let d = try await GatewayTests.daemon()
        let listing = try GatewayFixture.named("fixtures/dir_listing/fixtures.car")
        let root = try listing.cid("/")
        let redirect = try await d.request("/ipfs/\(root)/%C4%85/%C4%99")
        #expect(redirect.status == 301)
        #expect(redirect.header("Location") == "/ipfs/\(root)/%C4%85/%C4%99/")
        let page = try await d.request("/ipfs/\(root)/%C4%85/%C4%99/")
        #expect(page.status == 200 && page.header("Content-Type")?.hasPrefix("text/html") == true)
        #expect(page.header("ETag")?.contains("\"DirIndex-") == true)
        #expect(page.text.contains("file-źł.txt") && page.text.contains(">..<") && page.text.contains("?filename="))
        #expect(page.text.contains("/ipfs/\(root)/%C4%85/%C4%99/file-%C5%BA%C5%82.txt"))
        let top = try await d.request("/ipfs/\(root)/")
        #expect(top.text.contains("Index of") && !top.text.contains(">..<"))
        #expect(try await d.request("/ipfs/\(root)/%C4%85/%C4%99/", headers: ["If-None-Match": try #require(page.header("ETag"))]).status == 304)

        let cache = try GatewayFixture.named("fixtures/gateway-cache/fixtures.car")
        let croot = try cache.cid("/")
        let dirPage = try await d.request("/ipfs/\(croot)/root2/root3/")
        #expect(dirPage.header("X-Ipfs-Roots") == [croot, try cache.cid("/root2"), try cache.cid("/root2/root3")].joined(separator: ","))
        #expect(dirPage.header("ETag")?.contains("_CID-\(try cache.cid("/root2/root3"))") == true)
        let index = try await d.request("/ipfs/\(croot)/root2/root3/root4/")
        #expect(index.status == 200 && index.text == "hello\n")
        #expect(index.header("ETag") == "\"\(try cache.cid("/root2/root3/root4"))\"")
        #expect(index.header("Cache-Control")?.contains("immutable") == true)
        #expect(try await d.request("/ipfs/\(croot)/root2/root3/root4/", headers: ["If-None-Match": "\"\(try cache.cid("/root2/root3/root4"))\""]).status == 304)
        // only-if-cached: present → 200, absent → 412.
        #expect(try await d.request("/ipfs/\(croot)/root2/root3/root4/?format=raw", method: "HEAD", headers: ["Cache-Control": "only-if-cached"]).status == 200)
        #expect(try await d.request("/ipfs/QmYzfKSE55XCjD1MW128RfciAf2DViABhEiXfgVFMabSjN", method: "HEAD", headers: ["Cache-Control": "only-if-cached"]).status == 412)
        await d.stop()
    }

    @Test func percentEncodedNamesCORSAndJSON() async throws {
        let d = try await GatewayTests.daemon()
        let pct = try GatewayFixture.named("fixtures/path_gateway_unixfs/dir-with-percent-encoded-filename.car")
        let r = try await d.request("/ipfs/\(try pct.cid("/"))/Portugal%252C+Espa%C3%B1a=Peninsula%20Ib%C3%A9rica.txt")
        #expect(r.status == 200)
        let cors = try await d.request("/ipfs/bafkqabtimvwgy3yk")
        #expect(cors.header("Access-Control-Allow-Origin") == "*")
        #expect(cors.header("Access-Control-Expose-Headers")?.contains("X-Ipfs-Roots") == true)
        #expect(try await d.request("/ipfs/bafkqabtimvwgy3yk", method: "OPTIONS").status == 200)
        let json = try GatewayFixture.named("fixtures/path_gateway_dag/gateway-json-cbor.car")
        let t = try await d.request("/ipfs/\(try json.cid("/"))/%C4%85/%C4%99/t.json")
        #expect(t.header("Content-Type") == "application/json")
        await d.stop()
    }

    @Test func dagJSONPathing() async throws {
        let d = try await GatewayTests.daemon()
        let f = try GatewayFixture.named("fixtures/path_gateway_dag/dag-json-traversal.car")
        let root = try #require(f.roots.first)
        #expect(try await d.request("/ipfs/\(root)/foo?format=dag-json").status == 501)
        let leaf = try await d.request("/ipfs/\(root)/foo/link/bar?format=dag-json")
        #expect(leaf.status == 200 && leaf.text == #"{"hello":"this is not a link"}"#)
        #expect(try await d.request("/ipfs/\(root)/foo/i-do-not-exist").status == 404)
        let plain = try await d.request("/ipfs/\(root)")
        #expect(plain.header("Content-Type") == "application/vnd.ipld.dag-json")
        #expect(plain.header("Content-Disposition")?.hasPrefix("inline; filename=\"\(root).json") == true)
        #expect(plain.header("ETag")?.contains("\(root).dag-json") == true)
        let html = try await d.request("/ipfs/\(root)/", headers: ["Accept": "text/html"])
        #expect(html.status == 200 && html.text.contains("</html>") && html.header("ETag")?.contains("DagIndex-") == true)
        await d.stop()
    }

    @Test func hamtShardedDirectories() async throws {
        let d = try await GatewayTests.daemon()
        let f = try GatewayFixture.named("fixtures/trustless_gateway_car/single-layer-hamt-with-multi-block-files.car")
        let root = try #require(f.roots.first)
        let file = try await d.request("/ipfs/\(root)/685.txt")
        #expect(file.status == 200 && file.body.count == 1026)
        let car = try carBlockCIDs(try await d.request("/ipfs/\(root)/685.txt?format=car").body)
        #expect(car.first == root)
        #expect(car.contains("bafybeifajm5xyg46n4hjxg7clq2f7vcn7eg7bn3yevylcemr6vd7mp6gta"), "the sub-shard holding 685.txt")
        #expect(car.count == 2 + 6, "root, one sub-shard, the file root and its five leaves")
        let block = try carBlockCIDs(try await d.request("/ipfs/\(root)/1.txt?format=car&dag-scope=block").body)
        #expect(block.count == 3 && block[1] == "bafybeiawjmzmi5c6v5h75nepfpx7jj5ns5t54girned3kilvakmhctxlxy")
        let entity = try carBlockCIDs(try await d.request("/ipfs/\(root)?format=car&dag-scope=entity").body)
        let shardCount = try f.blocks().filter { $0.cid.codec == .dagPB && $0.data.count > 1000 }.count
        #expect(entity.count >= 2 && entity.count >= shardCount / 2)
        let listing = try await d.request("/ipfs/\(root)/")
        #expect(listing.status == 200 && listing.text.contains(">1000.txt<") && listing.text.contains(">1.txt<"))
        await d.stop()
    }
}

@Suite(.serialized) struct EntityBytesTests {
    @Test func entityBytesSelectTheBlocksOfARange() async throws {
        let d = try await GatewayTests.daemon()
        let f = try GatewayFixture.named("fixtures/trustless_gateway_car/subdir-with-mixed-block-files.car")
        let multiblock = try f.cid("/subdir/multiblock.txt")
        let leaves = Array(try f.blocks().map(\.cid.string).drop { $0 != multiblock }.dropFirst())
        try #require(leaves.count == 5)
        func car(_ range: String) async throws -> [String] {
            try carBlockCIDs(try await d.request("/ipfs/\(multiblock)?format=car&dag-scope=entity&entity-bytes=\(range)").body)
        }
        #expect(try await car("512:*") == [multiblock] + leaves[2...4])
        #expect(try await car("512:1023") == [multiblock] + leaves[2...3])
        #expect(try await car("512:-256") == [multiblock] + leaves[2...3])
        #expect(try await car("-5:*") == [multiblock] + leaves[3...4])
        #expect(try await car("-9999:*") == [multiblock] + leaves)
        #expect(try await car("-9999:-3") == [multiblock] + leaves[0...3])
        #expect(try await car("0:0") == [multiblock, leaves[0]])
        #expect(try await d.request("/ipfs/\(multiblock)?format=car&entity-bytes=nonsense").status == 400)
        // Missing blocks outside the range do not matter.
        let missing = try GatewayFixture.named("fixtures/trustless_gateway_car/file-3k-and-3-blocks-missing-block.car")
        let root = try #require(missing.roots.first)
        let first = try carBlockCIDs(try await d.request("/ipfs/\(root)?format=car&dag-scope=entity&entity-bytes=0:1000").body)
        #expect(Set(first) == [root, "QmPKt7ptM2ZYSGPUc8PmPT2VBkLDK3iqpG9TBJY7PCE9rF"])
        let last = try carBlockCIDs(try await d.request("/ipfs/\(root)?format=car&dag-scope=entity&entity-bytes=2200:*").body)
        #expect(Set(last) == [root, "QmWXY482zQdwecnfBsj78poUUuPXvyw2JAFAEMw4tzTavV"])
        await d.stop()
    }
}
