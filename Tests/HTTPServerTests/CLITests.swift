import Foundation
import Testing
import TestSupport

/// The `qstore` command line as a user runs it: the same output whether it opens the repository
/// itself or goes through a running daemon.
@Suite(.serialized) struct CLITests {
    static func qstore(_ args: [String], repository: String, home: String) throws -> (Int32, String) {
        try ThirdPartyClientTests.run(ChildDaemon.binary, args, environment: ["QSTORE_PATH": repository, "HOME": home])
    }

    /// `add`'s output, `-q` and `-Q` (Kubo's "only the final hash"), without and with a daemon.
    @Test func addQuietAndQuieterBothWays() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/files", withIntermediateDirectories: true)
        for (name, text) in [("a.txt", "alpha\n"), ("b.txt", "beta\n")] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/files/" + name))
        }
        let files = [dir + "/files/a.txt", dir + "/files/b.txt"]
        let invocations: [[String]] = [["add"] + files, ["add", "-q"] + files, ["add", "-Q"] + files, ["add", "-Q", "-w"] + files,
                                       ["add", "-w"] + files, ["add", "-p", "-q"] + files]
        func outputs(_ repository: String) throws -> [String] {
            var all = try invocations.map { args in
                let (rc, out) = try Self.qstore(args, repository: repository, home: dir)
                #expect(rc == 0, "qstore \(args.joined(separator: " ")): \(out)")
                return out
            }
            // Reading back (streamed through the daemon when one runs): a file, a file by path, a DAG as a CAR.
            let root = String(all[3].split(separator: "\n").last ?? "")
            for args in [["cat", String(all[1].split(separator: "\n")[0])], ["cat", root + "/b.txt"], ["dag", "export", root]] {
                let (rc, out) = try Self.qstore(args, repository: repository, home: dir)
                #expect(rc == 0, "qstore \(args.joined(separator: " ")): \(out)")
                all.append(out)
            }
            return all
        }
        let offlineRepo = dir + "/offline"
        #expect(try Self.qstore(["init"], repository: offlineRepo, home: dir).0 == 0)
        let offline = try outputs(offlineRepo)
        let daemon = try ChildDaemon(directory: dir + "/d")
        let online = try outputs(daemon.repository)
        daemon.stop()
        #expect(offline == online, "the CLI prints the same with and without a daemon")

        let lines = offline.map { $0.split(separator: "\n").map(String.init) }
        #expect(lines[0].count == 2 && lines[0].allSatisfy { $0.hasPrefix("added ") })
        #expect(lines[1] == lines[0].map { String($0.split(separator: " ")[1]) }, "-q: the hashes")
        #expect(lines[2] == [String(lines[0][1].split(separator: " ")[1])], "-Q: only the last hash")
        let wrapped = lines[4].last.map { String($0.split(separator: " ")[1]) }
        #expect(lines[3].count == 1 && lines[3].first == wrapped, "-Q -w: only the wrapping directory's hash")
        #expect(lines[5] == lines[1], "-p is accepted")
        #expect(offline[6] == "alpha\n" && offline[7] == "beta\n", "cat: \(offline[6]) \(offline[7])")
        #expect(offline[8].utf8.count > 100, "dag export writes a CAR")
    }

    /// A CARv2 whose index is not a known multicodec index (go-car's legacy ones) is still read
    /// from its data payload, with a warning, as go-car does: inspect and import succeed.
    @Test func carv2WithAnUnknownIndexIsReadFromItsPayload() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let repo = dir + "/repo"
        #expect(try Self.qstore(["init"], repository: repo, home: dir).0 == 0)
        let source = try #require(Fixtures.files(under: "car", suffix: ".car").first { (try? Fixtures.json(URL(fileURLWithPath: $0.path + ".manifest.json")) as? [String: Any])?["blocksError"] is NSNull },
                                  "a CAR fixture that reads whole")
        let v2 = dir + "/v2.car"
        let (rc, out) = try Self.qstore(["car", "convert", source.path, v2], repository: repo, home: dir)
        try #require(rc == 0, "\(out)")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: v2)))
        // The CARv2 header: pragma (11 bytes), characteristics (16), data offset, data size, index offset (u64 LE).
        var offset: UInt64 = 0
        for i in 0..<8 { offset |= UInt64(bytes[43 + i]) << UInt64(8 * i) }
        let indexOffset = Int(offset)
        try #require(indexOffset > 0 && indexOffset + 2 <= bytes.count)
        bytes[indexOffset] = 0x80; bytes[indexOffset + 1] = 0x06  // multicodec 0x0300: not an index format
        try Data(bytes).write(to: URL(fileURLWithPath: v2))
        let (inspectRC, inspect) = try Self.qstore(["car", "inspect", v2], repository: repo, home: dir)
        #expect(inspectRC == 0 && inspect.contains("warning") && inspect.contains("all verified"), "\(inspect)")
        let (importRC, imported) = try Self.qstore(["dag", "import", v2], repository: repo, home: dir)
        #expect(importRC == 0, "\(imported)")
    }
}
