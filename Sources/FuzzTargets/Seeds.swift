import Audit
import CAR
import Foundation
import IPLD
import Multiformats
import Qindex
import Registry
import Signing
import Storage
import UnixFS

extension FuzzTargets {
    /// Seeds made here for the inputs the shared fixtures have none of (or too few): each a
    /// well-formed value of its target, written by the project's own encoders (`Scripts/fuzz.sh
    /// seeds` puts them beside the seeds copied from ../shared/fixtures). Deterministic.
    public static func generatedSeeds() throws -> [(target: String, name: String, bytes: [UInt8])] {
        var out: [(String, String, [UInt8])] = []
        func add(_ target: String, _ name: String, _ bytes: [UInt8]) { out.append((target, name, bytes)) }
        func add(_ target: String, _ name: String, _ text: String) { add(target, name, Array(text.utf8)) }
        let separator = Array("\n--8<--\n".utf8)

        for v: UInt64 in [0, 1, 127, 128, 300, 16384, 1 << 32, (1 << 63) - 1] { add("varint", "v\(v)", Varint.encode(v)) }

        let key = try SigningKey(rawRepresentation: [UInt8](repeating: 1, count: 32))
        let leaf = try Block(data: Array("hello".utf8))
        let other = try Block(data: Array("world".utf8))
        add("cid-bytes", "raw-v1", leaf.cid.bytes)
        add("cid-bytes", "v0", try CID(v0: leaf.cid.multihash).bytes)
        add("multihash", "sha2-256", leaf.cid.multihash.bytes)

        // Qindex: a chain of two signed records, and the two heads of a fork (a merge's input).
        let author = IdentityRef(squidId: "seed-author")
        var first = IndexRecord(type: "docs", key: "a/b", cid: leaf.cid, version: 1, prev: nil, tags: ["t"], createdAt: "2026-12-05T00:00:00.000Z", author: author)
        first.sign(with: key, ts: 1)
        let firstCID = try Block(data: first.encoded, codec: .dagCBOR).cid
        var left = IndexRecord(type: "docs", key: "a/b", cid: leaf.cid, version: 2, prev: firstCID, tags: [], createdAt: "2026-12-05T00:00:01.000Z", author: author)
        left.sign(with: key, ts: 2)
        var right = IndexRecord(type: "docs", key: "a/b", cid: other.cid, version: 2, prev: firstCID, tags: [], createdAt: "2026-12-05T00:00:02.000Z", author: author)
        right.sign(with: key, ts: 3)
        add("qindex-record", "first", first.encoded)
        add("qindex-record", "fork", left.encoded + separator + right.encoded)
        let merge = IndexRecord.merge([(try Block(data: left.encoded, codec: .dagCBOR).cid, left), (try Block(data: right.encoded, codec: .dagCBOR).cid, right)])
        add("qindex-record", "merge", merge.encoded)

        // Audit.
        let details = IPLDMap(uniqueKeysWithValues: [("bytes", 5)])
        let event = try AuditEvent(type: "q.block.put.v1", ref: leaf.cid.string, actor: author, details: details, cid: leaf.cid, ts: 1_790_000_000_000, requestId: "r-1")
        add("audit-event", "put", try event.encoded())
        let cp = Checkpoint(origin: "qstore.example/audit", size: 42, rootHash: [UInt8](repeating: 9, count: 32))
        add("checkpoint", "plain", cp.text)
        add("checkpoint", "signed", cp.signed(by: key, name: "qstore.example"))
        add("checkpoint", "verifier-key", SignedNote.verifierKey(name: "qstore.example", publicKey: key.publicKey))

        // Registry.
        let metadata = ModuleMetadata(module: "docs-kit", version: try SemVer("1.2.3-beta.1"), description: "seed", identity: author, type: "library",
                                      capabilities: ["read"], dependencies: [.init(module: "base", range: "^1.0.0")], package: leaf.cid,
                                      checksum: leaf.cid.multihash, documentation: other.cid, repository: "https://example.org/r",
                                      auditHash: "sha256:00", createdAt: "2026-12-05T00:00:00.000Z", updatedAt: "2026-12-05T00:00:00.000Z")
        add("module-metadata", "beta", try metadata.encoded())
        add("semver", "caret", "1.2.3\n^1.0.0")
        add("semver", "complex", "v2.0.0-rc.1+build.5\n>=1.2.7 <1.3.0 || 2.0.0-rc.1 - 2.1.x")

        // UnixFS and HAMT: a file's Data, a shard of two entries, a path into a DAG.
        add("unixfs-data", "file", UnixFSData(kind: .file, data: [1, 2, 3], fileSize: 3, blockSizes: [3]).encode())
        var shard = UnixFSData(kind: .hamtShard, data: [0b0000_0011])
        (shard.hashType, shard.fanout) = (0x22, 256)
        add("unixfs-data", "shard", shard.encode())
        let shardNode = PBNode(links: [PBLink(hash: leaf.cid, name: "00a", tsize: 5), PBLink(hash: other.cid, name: "01b", tsize: 5)], data: shard.encode())
        let shardBytes = try DAGPB.encodeNode(shardNode)
        add("hamt", "two-entries", shardBytes)
        add("dag-pb", "shard", shardBytes)
        let dir = try DAGPB.encodeNode(PBNode(links: [PBLink(hash: leaf.cid, name: "a", tsize: 5)], data: UnixFSData(kind: .directory).encode()))
        add("dag-path", "pb-dir", dir + separator + Array("a".utf8))
        add("dag-path", "cbor-map", try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: [("x", .list([.link(leaf.cid), 1]))]))) + separator + Array("x/0".utf8))

        // HTTP.
        add("multipart", "two-files", "b0\n--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n--b0--\r\n")
        add("http-headers", "ranges", "1000\nbytes=0-9,20-29,-5\napplication/vnd.ipld.car; version=1; order=dfs; dups=y, application/vnd.ipld.raw;q=0.5\nW/\"x\", \"y\"\n\"x\"")
        add("http-headers", "suffix", "10\nbytes=-20\ntext/html\n*")
        add("signed-request", "valid-shape", "1790000000000\nAbCdEfGhIjKlMnOp_-12\n\(Data(repeating: 1, count: 64).base64EncodedString())\nphone\nb=2&a=1&a=0")

        // CAR: a small v1 of two blocks.
        var car = try CARWriter(roots: [leaf.cid], sink: ArraySink())
        try car.write(cid: leaf.cid, data: leaf.data)
        try car.write(cid: other.cid, data: other.data)
        add("car", "two-blocks", try car.finish().bytes)
        return out
    }
}
