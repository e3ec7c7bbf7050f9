import CAR
import Foundation
import Multiformats
import Storage
import Testing
import TestSupport
@testable import UnixFS

/// One row of `unixfs/kubo-cids.json`: a deterministic file and the CIDs `ipfs add` gives it.
struct KuboCIDRow: Sendable, CustomTestStringConvertible {
    let file: String
    let size: Int
    let cidV0: String
    let cidV1RawLeaves: String?
    var testDescription: String { file }

    static func load() -> [KuboCIDRow] {
        guard let d = try? Fixtures.json(Fixtures.url("unixfs/kubo-cids.json")) as? [String: Any],
              let rows = d["rows"] as? [[String: Any]] else { return [] }
        return rows.compactMap { r in
            guard let f = r["file"] as? String, let s = r["size"] as? Int, let v0 = r["cidv0_default"] as? String else { return nil }
            return KuboCIDRow(file: f, size: s, cidV0: v0, cidV1RawLeaves: r["cidv1_raw_leaves"] as? String)
        }
    }

    /// The file's bytes, written by the fixture's own generator (`gen_files.py`) into a temporary folder.
    func materialize(in dir: String) throws -> String {
        let path = dir + "/" + file
        if FileManager.default.fileExists(atPath: path) { return path }
        if file == "hello.txt" {
            try Data("hello world\n".utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Fixtures.url("unixfs/gen_files.py").path, dir, String(size)]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "gen_files.py failed for \(file)")
        return path
    }
}

struct KuboCIDTests {
    static let directory: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-unixfs-fixtures-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    @Test func fixturesArePresent() { #expect(!KuboCIDRow.load().isEmpty) }

    @Test(arguments: KuboCIDRow.load())
    func importerGivesKubosCIDs(_ row: KuboCIDRow) throws {
        let path = try row.materialize(in: Self.directory)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var hashOnly = ImportOptions()
        hashOnly.onlyHash = true
        let v0 = try FileImporter(options: hashOnly) { _ in }.importFile(try FileSource(path: path))
        #expect(v0.cid.string == row.cidV0)
        #expect(v0.size == UInt64(row.size))
        if let expected = row.cidV1RawLeaves {
            var o = ImportOptions()
            o.cidVersion = 1
            o.onlyHash = true
            let v1 = try FileImporter(options: o) { _ in }.importFile(try FileSource(path: path))
            #expect(v1.cid.string == expected)
        }
    }
}
