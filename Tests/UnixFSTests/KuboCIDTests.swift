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
        // Shared by every case of the run, so removed when the test process exits.
        atexit { try? FileManager.default.removeItem(atPath: KuboCIDTests.directory) }
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

/// Debian's `ipfs-cid` (`ipfs_cid FILE`) computes the default CIDv0 of a file: a second
/// oracle for the default settings, on sizes the fixture does not cover (including a
/// file deep enough for a second level of the balanced tree).
struct IPFSCidOracleTests {
    static let tool = "/usr/bin/ipfs_cid"

    @Test(arguments: [0, 1, 262_143, 262_145, 174 * 262_144, 174 * 262_144 + 1, 50_000_000])
    func defaultCIDsMatchIpfsCid(size: Int) throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.tool), "Debian's ipfs-cid is not installed (make test installs it)")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-oracle-\(size)-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var rng = SeededGenerator(seed: UInt64(size))
        var data = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 8) {
            let v = rng.next()
            for j in 0..<min(8, size - i) { data[i + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
        }
        try Data(data).write(to: URL(fileURLWithPath: path))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.tool)
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let oracle = try #require(try JSONSerialization.jsonObject(with: Data(text.split(separator: "\n").first.map { Array($0.utf8) } ?? [])) as? [String: Any])["CIDv0"] as? String
        var o = ImportOptions()
        o.onlyHash = true
        #expect(try FileImporter(options: o) { _ in }.importFile(try FileSource(path: path)).cid.string == oracle)
    }
}
