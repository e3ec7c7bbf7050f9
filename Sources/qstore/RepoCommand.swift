import ArgumentParser
import Foundation
import Storage

/// `qstore repo`: the repository as a whole.
struct RepoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repo", abstract: "Repository statistics and verification.",
        subcommands: [Stat.self, Verify.self])

    struct Stat: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count blocks and bytes (Kubo's NumObjects, RepoSize, RepoPath, Version).")
        @Flag(help: "Print JSON.") var json = false
        @Flag(name: [.customShort("H"), .long], help: "Print sizes in KiB/MiB/GiB.") var human = false
        func run() throws {
            let fields = try backend(purpose: "repo stat").repoStat()
            if json { try Output.json(Dictionary(uniqueKeysWithValues: fields)); return }
            for (k, v) in fields {
                if human, let n = (v as? UInt64) ?? (v as? Int).map({ UInt64($0) }), k.hasSuffix("Size") || k.hasSuffix("Bytes") {
                    print("\(k):\t\(ByteCount.format(n))")
                } else {
                    print("\(k):\t\(v)")
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-hash every block and check the block records agree; exit 1 if anything is wrong.",
            discussion: "Reads from a LevelDB snapshot. Shows progress on a terminal.")
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let report = try backend(purpose: "repo verify").repoVerify(progress: !json)
            let clean = report.problems.isEmpty
            if json {
                try Output.json(["blocks": report.blocks, "bytes": report.bytes, "problems": report.problems, "clean": clean] as [String: Any])
            } else {
                for p in report.problems { print(p) }
                print(clean ? "verified repo integrity: \(report.blocks) blocks, \(ByteCount.format(report.bytes))"
                            : "\(report.problems.count) problems in \(report.blocks) blocks")
            }
            if !clean { throw ExitCode(1) }
        }
    }
}
