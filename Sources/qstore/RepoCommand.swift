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
            let repo = try openRepository(purpose: "repo stat")
            let s = try reporting("repo stat") { try repo.stat() }
            let fields: [(String, Any)] = [
                ("NumObjects", s.blocks), ("RepoSize", s.repositoryBytes), ("BlockBytes", s.blockBytes),
                ("InlineBlocks", s.inlineBlocks), ("PackedBlocks", s.packedBlocks), ("PackBytes", s.packBytes),
                ("RepoPath", repo.path), ("Version", "qstore-repo@\(Repository.currentVersion)"),
            ]
            if json { try Output.json(Dictionary(uniqueKeysWithValues: fields)); return }
            for (k, v) in fields {
                if human, let n = v as? UInt64 { print("\(k):\t\(ByteCount.format(n))") } else { print("\(k):\t\(v)") }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-hash every block and check the block records agree; exit 1 if anything is wrong.",
            discussion: "Reads from a LevelDB snapshot. Shows progress on a terminal.")
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let repo = try openRepository(purpose: "repo verify")
            var progress = Progress("verifying", total: nil, enabled: !json)
            let report = try reporting("repo verify") {
                try repo.verify { n, bytes in progress.update(bytes: bytes, items: n) }
            }
            progress.finish()
            if json {
                try Output.json(["blocks": report.blocks, "bytes": report.bytes, "problems": report.problems, "clean": report.isClean] as [String: Any])
            } else {
                for p in report.problems { print(p) }
                print(report.isClean ? "verified repo integrity: \(report.blocks) blocks, \(ByteCount.format(report.bytes))"
                                     : "\(report.problems.count) problems in \(report.blocks) blocks")
            }
            if !report.isClean { throw ExitCode(1) }
        }
    }
}
