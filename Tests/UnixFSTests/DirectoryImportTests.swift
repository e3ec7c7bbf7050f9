import CAR
import IPLD
import Foundation
import Multiformats
import Storage
import Testing
import TestSupport
@testable import UnixFS

/// Trees that the fixtures' recipes made with `ipfs add -r --cid-version 1` (or `-w`): rebuilt on
/// disk from the CAR's own files and directories, re-imported, they must give the same root CID.
struct DirectoryImportTests {
    static let kuboTrees = [
        "gateway-conformance/fixtures/dir_listing/fixtures.car",
        "gateway-conformance/fixtures/path_gateway_dag/gateway-json-cbor.car",
        "gateway-conformance/fixtures/gateway-raw-block.car",
        "gateway-conformance/fixtures/gateway-cache/fixtures.car",
        "gateway-conformance/tooling-extra/dag.car",
    ]

    @Test(arguments: kuboTrees)
    func reimportingAFixtureTreeGivesItsRoot(_ relative: String) throws {
        let url = Fixtures.url(relative)
        guard FileManager.default.fileExists(atPath: url.path) else { return }  // held back
        let manifest = try #require(try Fixtures.json(URL(fileURLWithPath: url.path + ".manifest.json")) as? [String: Any])
        let tree = try #require((manifest["unixfs"] as? [[String: Any]])?.first)
        let entries = try #require(tree["entries"] as? [[String: Any]])
        let store = MemoryBlockStore()
        var reader = try CARReader(path: url.path)
        _ = try DAGTransfer.import(from: &reader, into: store)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-tree-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for e in entries {
            let path = dir + "/root" + (e["path"] as! String)
            switch e["type"] as? String {
            case "directory":
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            case "file":
                var bytes: [UInt8] = []
                try FileReader(store: store).read(try CID(e["cid"] as! String)) { bytes += $0 }
                try Data(bytes).write(to: URL(fileURLWithPath: path))
            default:
                Issue.record("unexpected entry \(e)")
            }
        }
        var o = ImportOptions()
        o.cidVersion = 1
        o.onlyHash = true
        let root = try DirectoryImporter(options: o) { _ in }.importTree(at: dir + "/root")
        #expect(root.cid.string == tree["root"] as? String, "\(relative)")
    }

    @Test func symlinksHiddenFilesAndEmptyDirectories() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-tree-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/t/empty", withIntermediateDirectories: true)
        try Data("content\n".utf8).write(to: URL(fileURLWithPath: dir + "/t/foo"))
        try Data("secret".utf8).write(to: URL(fileURLWithPath: dir + "/t/.hidden"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/t/bar", withDestinationPath: "foo")
        let store = MemoryBlockStore()
        var pending: [Block] = []
        var added: [String] = []
        var importer = DirectoryImporter { pending.append($0) }
        importer.onAdded = { path, _, _ in added.append(path) }
        let root = try importer.importTree(at: dir + "/t")
        try store.putMany(pending)
        #expect(added.sorted() == ["t", "t/bar", "t/empty", "t/foo"])
        guard case .directory(let entries) = try UnixFSNode.load(root.cid, from: store) else { Issue.record("not a directory"); return }
        #expect(entries.map(\.name) == ["bar", "empty", "foo"])
        guard case .symlink(let target) = try UnixFSNode.load(entries[0].cid, from: store) else { Issue.record("not a symlink"); return }
        #expect(target == "foo")
        #expect(entries[1].cid.string == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn", "Kubo's empty directory")
        importer.includeHidden = true
        added = []
        _ = try importer.importTree(at: dir + "/t")
        #expect(added.contains("t/.hidden"))
    }
}

struct HAMTBuildTests {
    /// The fixture's 1000-entry HAMT, rebuilt from its own entries, gives the same root CID.
    @Test func rebuildingTheFixtureHAMTGivesItsRoot() throws {
        let url = Fixtures.url("gateway-conformance/fixtures/trustless_gateway_car/single-layer-hamt-with-multi-block-files.car")
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let store = MemoryBlockStore()
        var reader = try CARReader(path: url.path)
        let summary = try DAGTransfer.import(from: &reader, into: store)
        let root = try #require(summary.roots.first)
        let entries = try HAMT.entries(root, store: store)
        #expect(entries.count >= 2)
        let rebuilt = try HAMT.build(entries.map { ($0.name, $0.cid, $0.size ?? 0) }, cidVersion: root.version, hash: .sha2_256) { _ in }
        #expect(rebuilt.cid == root)
        // Every entry is found again by lookup.
        for e in entries.prefix(50) { #expect(try HAMT.lookup(e.name, in: root, store: store).entry == e.cid) }
    }
}

struct ShardingThresholdTests {
    @Test func largeDirectoriesBecomeHAMTsAndSmallOnesDoNot() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-big-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/big", withIntermediateDirectories: true)
        // CIDv0 links: 34 CID bytes + a 16-byte name = 50 bytes each; 5243 entries reach 262144.
        let count = (DirectoryImporter.shardingThreshold + 49) / 50
        for i in 0..<count { try Data("f\(i)".utf8).write(to: URL(fileURLWithPath: dir + "/big/" + String(format: "entry-%010d", i))) }
        let store = MemoryBlockStore()
        var pending: [Block] = []
        let big = try DirectoryImporter { pending.append($0) }.importTree(at: dir + "/big")
        try store.putMany(pending)
        guard case .shardedDirectory = try UnixFSNode.load(big.cid, from: store) else { Issue.record("not sharded"); return }
        let entries = try HAMT.entries(big.cid, store: store)
        #expect(entries.count == count)
        #expect(try HAMT.lookup("entry-0000000007", in: big.cid, store: store).entry != nil)
        // One entry fewer stays a plain directory.
        try FileManager.default.removeItem(atPath: dir + "/big/" + String(format: "entry-%010d", count - 1))
        let small = try DirectoryImporter { _ in }.importTree(at: dir + "/big")
        var pending2: [Block] = []
        _ = try DirectoryImporter { pending2.append($0) }.importTree(at: dir + "/big")
        try store.putMany(pending2)
        guard case .directory(let plain) = try UnixFSNode.load(small.cid, from: store) else { Issue.record("sharded too early"); return }
        #expect(plain.count == count - 1)
    }
}
