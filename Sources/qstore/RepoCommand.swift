import ArgumentParser
import Foundation
import Storage

/// `qstore repo`: the repository as a whole.
struct RepoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repo", abstract: "Repository statistics, verification and garbage collection.",
        subcommands: [Stat.self, Verify.self, GC.self])

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
            abstract: "Re-hash every block, check the block records agree, and recompute every reference count from the pins and links; exit 1 if anything is wrong.",
            discussion: "Reads from a LevelDB snapshot. Shows progress on a terminal. --repair rewrites reference counts, GC candidates and pin index entries that differ from the recomputed ones (block data is never deleted by a repair).")
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Fix the reference counts and pin indexes that differ.") var repair = false
        func run() throws {
            let report = try backend(purpose: "repo verify").repoVerify(progress: !json, repair: repair)
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

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "End expired pins, then delete every unreferenced block whose grace period has passed; print each removed CID.",
            discussion: "Reference counting: the cost follows the garbage, not the repository. Blocks put without a pin stay for the default policy's grace period; an unpinned DAG stays for its policy's grace period. Runs beside reads and writes, in small batches. Then pack files at least gc.packCompactionThreshold (0.5) dead are compacted: their live blocks copied on, the files removed. The daemon also collects in the background every gc.interval.")
        @Flag(name: .shortAndLong, help: "Print nothing but errors.") var quiet = false
        @Flag(help: "Print JSON lines ({\"Key\": {\"/\": cid}}), as Kubo does.") var json = false
        func run() throws {
            let (n, packs) = try backend(purpose: "repo gc").repoGC { cid in
                if quiet { return }
                if json { try? Output.json(["Key": ["/": cid]]) } else { print("removed \(cid)") }
            }
            if !quiet && !json { FileHandle.standardError.write(Data("\(n) blocks removed\n".utf8)) }
            if !quiet && !json, let packs { FileHandle.standardError.write(Data("\(packs)\n".utf8)) }
        }
    }
}
