import ArgumentParser
import Foundation
import KuboAPI
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
            let s = try backend(purpose: "repo stat").repoStat()
            if json { try Output.json(s); return }
            func bytes(_ n: UInt64) -> String { human ? ByteCount.format(n) : String(n) }
            var fields: [(String, String)] = [("NumObjects", String(s.numObjects)), ("RepoSize", bytes(s.repoSize))]
            if let b = s.blockBytes { fields.append(("BlockBytes", bytes(b))) }
            if let n = s.inlineBlocks { fields.append(("InlineBlocks", String(n))) }
            if let n = s.packedBlocks { fields.append(("PackedBlocks", String(n))) }
            if let b = s.packBytes { fields.append(("PackBytes", bytes(b))) }
            fields += [("RepoPath", s.repoPath), ("Version", s.version)]
            for (k, v) in fields { print("\(k):\t\(v)") }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-hash every block, check the block records agree, and recompute every reference count from the pins and links; exit 1 if anything is wrong.",
            discussion: "Reads from a LevelDB snapshot. Shows progress on a terminal. --repair rewrites reference counts, GC candidates and pin index entries that differ from the recomputed ones (block data is never deleted by a repair).")
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Fix the reference counts and pin indexes that differ.") var repair = false
        func run() throws {
            let lines = try backend(purpose: "repo verify").repoVerify(progress: !json, repair: repair)
            let problems = lines.filter { $0.problem == true }.map(\.msg)
            let verdict = lines.last { $0.problem != true }
            let blocks = verdict?.progress ?? 0, bytes = verdict?.bytes ?? 0
            let clean = verdict?.msg == "verified repo integrity"
            if json {
                try Output.json(["blocks": blocks, "bytes": bytes, "problems": problems, "clean": clean] as [String: Any])
            } else {
                for p in problems { print(p) }
                print(clean ? "verified repo integrity: \(blocks) blocks, \(ByteCount.format(bytes))"
                            : "\(problems.count) problems in \(blocks) blocks")
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
            var n = 0
            let packs = try backend(purpose: "repo gc").repoGC { line in
                if line.key != nil { n += 1 }
                if quiet { return }
                if json { try? Output.json(line) } else if let key = line.key { print("removed \(key.cid)") } else if let e = line.error { print("error: \(e)") }
            }
            if !quiet && !json { FileHandle.standardError.write(Data("\(n) blocks removed\n".utf8)) }
            if !quiet && !json, let packs { FileHandle.standardError.write(Data("\(packs)\n".utf8)) }
        }
    }
}
