import CAR
import Foundation
import HTTPServer
import IPLD
import Multiformats
import Storage
import Testing
import TestSupport

/// A gateway-conformance fixture CAR with its manifest.
struct GatewayFixture {
    let url: URL
    let manifest: [String: Any]

    static func all() -> [GatewayFixture] {
        Fixtures.files(under: "gateway-conformance", suffix: ".car").compactMap { url in
            guard let m = try? Fixtures.json(URL(fileURLWithPath: url.path + ".manifest.json")) as? [String: Any],
                  m["readable"] as? Bool == true else { return nil }
            return GatewayFixture(url: url, manifest: m)
        }
    }

    static func named(_ relative: String) throws -> GatewayFixture {
        let url = Fixtures.url("gateway-conformance/" + relative)
        let m = try #require(try Fixtures.json(URL(fileURLWithPath: url.path + ".manifest.json")) as? [String: Any])
        return GatewayFixture(url: url, manifest: m)
    }

    var roots: [String] { manifest["roots"] as? [String] ?? [] }

    /// The CID of a UnixFS path in the manifest's tree ("/" is the root).
    func cid(_ path: String) throws -> String {
        for tree in manifest["unixfs"] as? [[String: Any]] ?? [] {
            for e in tree["entries"] as? [[String: Any]] ?? [] where e["path"] as? String == path { return e["cid"] as! String }
        }
        throw FixtureError(description: "no \(path) in \(url.lastPathComponent)")
    }

    /// The blocks of the CAR, in file order.
    func blocks() throws -> [CARBlock] {
        var r = try CARReader(path: url.path, options: { var o = CARReader<FileSource>.Options(); o.zeroLengthSectionAsEOF = true; return o }())
        var out: [CARBlock] = []
        while let b = try r.next() { out.append(b) }
        return out
    }

    struct FixtureError: Error, CustomStringConvertible { let description: String }
}

/// Parses a CAR response body into its block CIDs, in order.
func carBlockCIDs(_ body: [UInt8]) throws -> [String] {
    var r = try CARReader(BytesSource(body))
    var out: [String] = []
    while let b = try r.next() { out.append(b.cid.string) }
    return out
}

@Suite(.serialized) struct GatewayTests {
    /// A daemon holding every readable gateway-conformance fixture.
    static func daemon() async throws -> DaemonHarness {
        try await DaemonHarness { repo in
            for f in GatewayFixture.all() {
                var r = try CARReader(path: f.url.path, options: { var o = CARReader<FileSource>.Options(); o.zeroLengthSectionAsEOF = true; return o }())
                _ = try DAGTransfer.import(from: &r, into: repo.blocks)
            }
        }
    }

    static func immutable(_ r: DaemonHarness.Reply) -> Bool {
        let cc = r.header("Cache-Control") ?? ""
        return cc.contains("public") && cc.contains("immutable") && cc.contains("max-age=29030400")
    }

    @Test func everyFixtureBlockIsServedRawWithItsHeaders() async throws {
        let d = try await Self.daemon()
        let fixtures = GatewayFixture.all()
        #expect(!fixtures.isEmpty)
        for f in fixtures {
            for b in try f.blocks() where b.cid.multihash.code != .identity {
                let path = "/ipfs/\(b.cid.string)"
                let byParam = try await d.request(path + "?format=raw")
                #expect(byParam.status == 200, "\(path)")
                #expect(byParam.body == b.data)
                #expect(byParam.header("Content-Type") == "application/vnd.ipld.raw")
                #expect(byParam.header("Content-Length") == String(b.data.count))
                #expect(byParam.header("X-Content-Type-Options") == "nosniff")
                #expect(byParam.header("Content-Disposition")?.hasPrefix("attachment;") == true)
                #expect(byParam.header("X-Ipfs-Path") == path)
                #expect(byParam.header("X-Ipfs-Roots")?.contains(b.cid.string) == true)
                #expect(Self.immutable(byParam))
                let etag = try #require(byParam.header("ETag"))
                let byAccept = try await d.request(path, headers: ["Accept": "application/vnd.ipld.raw"])
                #expect(byAccept.body == b.data && byAccept.header("ETag") == etag)
                #expect(try await d.request(path, headers: ["Accept": "application/vnd.ipld.raw", "If-None-Match": etag]).status == 304)
            }
        }
        await d.stop()
    }

    @Test func rawThroughPathsRangesFilenameAndHead() async throws {
        let d = try await Self.daemon()
        let f = try GatewayFixture.named("fixtures/gateway-raw-block.car")
        let root = try #require(f.roots.first)
        let dir = try f.cid("/dir"), ascii = try f.cid("/dir/ascii.txt")
        let dirBlock = try #require(try f.blocks().first { $0.cid.string == dir })
        let viaPath = try await d.request("/ipfs/\(root)/dir?format=raw")
        #expect(viaPath.status == 200 && viaPath.body == dirBlock.data)
        #expect(viaPath.header("X-Ipfs-Roots")?.contains(root) == true)
        let ranged = try await d.request("/ipfs/\(root)/dir", headers: ["Accept": "application/vnd.ipld.raw", "Range": "bytes=6-16"])
        #expect(ranged.status == 206)
        #expect(ranged.header("Content-Range") == "bytes 6-16/\(dirBlock.data.count)")
        #expect(ranged.body == Array(dirBlock.data[6...16]))
        let multi = try await d.request("/ipfs/\(ascii)?format=raw", headers: ["Range": "bytes=7-9,1-3"])
        #expect(multi.status == 206 || multi.status == 200)
        let named = try await d.request("/ipfs/\(root)/dir/ascii.txt?format=raw&filename=foobar.bin")
        #expect(named.header("Content-Disposition")?.contains("filename=\"foobar.bin") == true)
        #expect(named.header("X-Ipfs-Path") == "/ipfs/\(root)/dir/ascii.txt")
        let head = try await d.request("/ipfs/\(ascii)?format=raw", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && head.header("Content-Length") == "31")
        // IPIP-523: format wins over Accept.
        #expect(try await d.request("/ipfs/\(root)?format=raw", headers: ["Accept": "application/vnd.ipld.car"]).header("Content-Type") == "application/vnd.ipld.raw")
        #expect(try await d.request("/ipfs/\(root)?format=car", headers: ["Accept": "application/vnd.ipld.raw"]).header("Content-Type")?.contains("application/vnd.ipld.car") == true)
        await d.stop()
    }

    @Test(arguments: ["?format=car", "ACCEPT"])
    func carScopesOnUnixFSPaths(_ how: String) async throws {
        let d = try await Self.daemon()
        let f = try GatewayFixture.named("fixtures/trustless_gateway_car/subdir-with-mixed-block-files.car")
        let root = try f.cid("/"), subdir = try f.cid("/subdir"), ascii = try f.cid("/subdir/ascii.txt")
        let multiblock = try f.cid("/subdir/multiblock.txt")
        let leaves = try f.blocks().map(\.cid.string).drop { $0 != multiblock }.dropFirst()
        func car(_ path: String, _ params: String = "") async throws -> DaemonHarness.Reply {
            if how == "ACCEPT" {
                return try await d.request(path + (params.isEmpty ? "" : "?" + params), headers: ["Accept": "application/vnd.ipld.car"])
            }
            return try await d.request(path + how + (params.isEmpty ? "" : "&" + params))
        }
        let r = try await car("/ipfs/\(root)/subdir/ascii.txt")
        #expect(r.status == 200)
        #expect(r.header("Content-Type")?.contains("application/vnd.ipld.car") == true)
        #expect(r.header("Accept-Ranges") == "none" && r.header("X-Content-Type-Options") == "nosniff")
        #expect(r.header("Content-Disposition")?.hasSuffix(".car\"") == true && r.header("ETag")?.isEmpty == false)
        #expect(Self.immutable(r))
        #expect(try carBlockCIDs(r.body) == [root, subdir, ascii])
        #expect(try carBlockCIDs(await car("/ipfs/\(root)/subdir", "dag-scope=block").body) == [root, subdir])
        #expect(try carBlockCIDs(await car("/ipfs/\(root)/subdir/ascii.txt", "dag-scope=block").body) == [root, subdir, ascii])
        #expect(try carBlockCIDs(await car("/ipfs/\(root)", "dag-scope=entity").body) == [root])
        #expect(try carBlockCIDs(await car("/ipfs/\(root)/subdir/multiblock.txt", "dag-scope=entity").body) == [root, subdir, multiblock] + leaves)
        #expect(try carBlockCIDs(await car("/ipfs/\(root)/subdir/multiblock.txt", "dag-scope=all").body) == [root, subdir, multiblock] + leaves)
        let all = try carBlockCIDs(await car("/ipfs/\(root)/subdir", "dag-scope=all").body)
        #expect(all == [root] + (try f.blocks().map(\.cid.string).drop { $0 != subdir }))
        let missing = try await car("/ipfs/\(root)/subdir/i-do-not-exist")
        #expect(missing.status == 404)
        await d.stop()
    }

    @Test func carOrderAndDuplicates() async throws {
        let d = try await Self.daemon()
        let f = try GatewayFixture.named("fixtures/trustless_gateway_car/dir-with-duplicate-files.car")
        let root = try f.cid("/")
        let ascii = try f.cid("/ascii.txt"), copy = try f.cid("/ascii-copy.txt")
        #expect(ascii == copy)
        let y = try await d.request("/ipfs/\(root)", headers: ["Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=y"])
        #expect(y.header("Content-Type")?.contains("dups=y") == true && y.header("Content-Type")?.contains("order=dfs") == true)
        let withDups = try carBlockCIDs(y.body)
        #expect(withDups.filter { $0 == ascii }.count == 2)
        let n = try await d.request("/ipfs/\(root)", headers: ["Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=n"])
        #expect(n.header("Content-Type")?.contains("dups=n") == true)
        let noDups = try carBlockCIDs(n.body)
        #expect(noDups.filter { $0 == ascii }.count == 1)
        #expect(Set(noDups) == Set(withDups))
        // URL parameters win over Accept parameters.
        let urlWins = try await d.request("/ipfs/\(root)?format=car&car-dups=y&car-order=dfs", headers: ["Accept": "application/vnd.ipld.car; order=unk; dups=n"])
        #expect(urlWins.header("Content-Type")?.contains("dups=y") == true && urlWins.header("Content-Type")?.contains("order=dfs") == true)
        // Identity CIDs are never written to a CAR.
        let identity = try await d.request("/ipfs/bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa", headers: ["Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=y"])
        #expect(identity.status == 200)
        #expect(try carBlockCIDs(identity.body).isEmpty)
        await d.stop()
    }

    @Test func errorsHaveTheRightStatus() async throws {
        let d = try await Self.daemon()
        let f = try GatewayFixture.named("fixtures/gateway-raw-block.car")
        let root = try #require(f.roots.first)
        #expect(try await d.request("/ipfs/not-a-cid?format=raw").status == 400)
        let absent = try Block(data: Array("not stored".utf8)).cid.string
        #expect(try await d.request("/ipfs/\(absent)?format=raw").status == 404)
        #expect(try await d.request("/ipfs/\(absent)?format=car").status == 404)
        #expect(try await d.request("/ipfs/\(root)", headers: ["Accept": "image/png"]).status == 406)
        #expect(try await d.request("/ipfs/\(root)?format=dag-json").status == 406, "no codec conversion (IPIP-524)")
        #expect(try await d.request("/ipfs/\(root)?format=car&dag-scope=nonsense").status == 400)
        #expect(try await d.request("/ipfs/\(root)/" + String(repeating: "a", count: 5000) + "?format=raw").status == 414)
        #expect(try await d.request("/ipfs/\(root)", method: "POST", body: [1]).status == 405)
        #expect(try await d.request("/ipfs/\(root)/dir/nope?format=raw").status == 404)
        await d.stop()
    }

    @Test func verifiedPutOnTheAPIListener() async throws {
        let d = try await Self.daemon()
        let data = Array("verified put".utf8)
        let cid = try Block(data: data).cid.string
        #expect(try await d.request("/ipfs/\(cid)", method: "PUT", api: true, body: Array("other".utf8)).status == 400)
        #expect(try await d.request("/ipfs/\(cid)?format=raw").status == 404, "a mismatched put stores nothing")
        #expect(try await d.request("/ipfs/\(cid)", method: "PUT", api: true, body: data).status == 201)
        #expect(try await d.request("/ipfs/\(cid)?format=raw").body == data)
        #expect(try await d.request("/ipfs/\(cid)", method: "PUT", body: data).status == 405, "the gateway never writes")
        await d.stop()
    }
}
