import ArgumentParser
import Backup
import CAR
import Foundation
import HTTPServer
import Node
import QAPI
import Storage

/// `qstore backup`: whole-repository backups as sets of CARv2 parts with signed manifests.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up and restore the repository: create, ls, verify, restore, prune.",
        discussion: """
            A backup set is a directory <DIR>/<id>/ of CARv2 parts (each with its index) and a manifest signed by the \
            node key — every pin with all its fields, the pinning policies, every Qindex head (the registry's pointers \
            among them), the audit checkpoint, each part's SHA-256 — written last: a set without manifest.car is \
            incomplete. --incremental holds only the blocks the newest set's chain lacks; --pins FILTER only some pins \
            and their DAGs. `create --to -` writes a set as one CAR stream to standard output instead, which \
            `verify -` and `restore -` read back (or a file holding it). create and restore go through the daemon when \
            one runs (as jobs); ls, verify and prune need no repository. See Docs/backup.md.
            """,
        subcommands: [Create.self, List.self, Verify.self, Restore.self, Prune.self])

    /// `$QSTORE_BACKUP_DIR`, else a directory beside the repository (`<repo>-backups`).
    static func defaultDirectory() -> String {
        if let d = ProcessInfo.processInfo.environment["QSTORE_BACKUP_DIR"], !d.isEmpty { return absolute(d) }
        return absolute(Repository.defaultPath()) + "-backups"
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// A streamed set to read: standard input for "-", or the file named (not a directory).
    static func stream(_ argument: String?) throws -> FileSource? {
        guard let argument else { return nil }
        if argument == "-" { return FileSource(descriptor: 0) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
        return try FileSource(path: argument)
    }

    static func size(_ text: String) throws -> UInt64 {
        guard let n = BackupConfiguration.size(text) else { throw ValidationError("--part-size \(text): a size such as 1GiB, 512MiB") }
        return n
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a backup set of the repository (every block, pin, pointer head, the audit checkpoint).",
            discussion: """
                Prints `<id> <blocks> blocks <bytes> <parts> parts`. Consistent while the daemon writes and collects garbage. \
                --to - writes the set as one CAR stream to standard output (its signed manifest is the last block) and \
                the summary to standard error. --pins takes terms KEY=VALUE joined by commas, all of which a pin must \
                match (keys: type, name with * wildcards, cid, id, owner, meta.KEY; a value may list alternatives with |), \
                e.g. --pins 'type=module-docs|module-packages' or --pins 'name=photos-*'; a Qindex head comes with the \
                pin that holds its record.
                """)
        @Option(help: "The backup directory (default $QSTORE_BACKUP_DIR, else <repo>-backups); - for one CAR stream on standard output.") var to: String?
        @Flag(help: "Only the blocks the newest set's chain does not hold (its parent is that set).") var incremental = false
        @Option(help: "Only the pins this filter matches, and their DAGs (see above).") var pins: String?
        @Option(help: "The largest part (default 1GiB).") var partSize = "1GiB"
        @Flag(help: "Show progress on standard error.") var progress = false
        @Flag(help: "Print JSON.") var json = false
        func validate() throws {
            if to == "-", incremental { throw ValidationError("--to - writes a whole set (a stream has no parent): drop --incremental") }
            if let pins { _ = try reporting("--pins") { try PinSelector(pins) } }
        }

        func run() throws {
            if to == "-" {
                let set = try backend(purpose: "backup create").streamBackup(pins: pins, progress: progress)
                if json { try Output.json(set, to: .standardError) } else {
                    FileHandle.standardError.write(Data("\(set.id)\t\(set.blocks ?? 0) blocks\t\(ByteCount.format(set.bytes ?? 0))\tstream\n".utf8))
                }
                return
            }
            let dir = to.map(BackupCommand.absolute) ?? BackupCommand.defaultDirectory()
            let request = BackupRequest(directory: dir, incremental: incremental, partSize: try BackupCommand.size(partSize), pins: pins)
            let set = try backend(purpose: "backup create").createBackup(request, progress: progress)
            if json { try Output.json(set); return }
            print("\(set.id)\t\(set.blocks ?? 0) blocks\t\(ByteCount.format(set.bytes ?? 0))\t\(set.parts ?? 0) parts\(set.parent.map { "\tparent \($0)" } ?? "")")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "The sets in a backup directory, oldest first: `<id> <parent|full> <blocks> <bytes> <pins>`, or why one is unusable.")
        @Argument(help: "The backup directory.") var directory: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let dir = directory.map(BackupCommand.absolute) ?? BackupCommand.defaultDirectory()
            let sets = try reporting("backup ls") { try BackupDirectory(dir).sets().map(BackupSetInfo.init) }
            if json { try Output.json(BackupList(directory: dir, sets: sets)); return }
            for s in sets {
                guard s.complete else { print("\(s.id)\t\(s.problem ?? "incomplete")"); continue }
                print("\(s.id)\t\(s.parent.map { "after \($0)" } ?? "full")\t\(s.blocks ?? 0) blocks\t\(ByteCount.format(s.bytes ?? 0))\t\(s.pins ?? 0) pins")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a set and its parents with no repository: signatures, every part's hash, every block's, every pin complete.",
            discussion: "Problems name the set, the part and the block; the exit status is 1 when there is any. - (or a file) reads a set streamed by `create --to -`.")
        @Argument(help: "The backup directory; - for a stream on standard input, or a file holding one.") var directory: String?
        @Option(help: "The set (default: the newest complete one).") var id: String?
        @Flag(help: "Show progress on standard error.") var progress = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let dir = directory.map(BackupCommand.absolute) ?? BackupCommand.defaultDirectory()
            var p = Progress("verifying", total: nil, enabled: progress)
            let v = try reporting("backup verify") {
                if let stream = try BackupCommand.stream(directory) { return try BackupStream.verify(stream) { p.update(bytes: 0, items: Int($0)) } }
                return try BackupDirectory(dir).verify(id) { p.update(bytes: 0, items: Int($0)) }
            }
            p.finish()
            if json {
                try Output.json(["ok": v.ok, "sets": v.sets, "parts": v.parts, "blocks": v.blocks, "bytes": v.bytes, "problems": v.problems] as [String: Any])
            } else {
                for problem in v.problems { print(problem) }
                print("\(v.ok ? "ok" : "FAILED"): \(v.sets.count) set\(v.sets.count == 1 ? "" : "s"), \(v.parts) parts, \(v.blocks) blocks, \(ByteCount.format(v.bytes))")
            }
            if !v.ok { throw ExitCode(1) }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a set (and its parents) into the repository, empty or live, or into --into REPO.",
            discussion: """
                Blocks (each checked), pins with their IDs, names and expiry, Qindex heads merged by Qindex's rule (the \
                registry's pointers among them). A pin already there is left; another pin holding the ID keeps it and the \
                restored one gets a new ID (both listed). Interrupted, run it again: it goes on and ends complete. \
                --into REPO opens (or creates) that repository directly. - (or a file) reads a set streamed by \
                `create --to -`: its blocks as they come, its pins and pointers once its manifest (the last block) \
                checks.
                """)
        @Argument(help: "The backup directory; - for a stream on standard input, or a file holding one.") var directory: String?
        @Option(help: "The set (default: the newest complete one).") var id: String?
        @Option(help: "Restore into this repository (made when absent) instead of $QSTORE_PATH's.") var into: String?
        @Flag(help: "Show progress on standard error.") var progress = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let dir = directory.map(BackupCommand.absolute) ?? BackupCommand.defaultDirectory()
            let request = BackupRequest(directory: dir, id: id)
            let r: BackupRestoreInfo
            if let stream = try reporting("backup restore", { try BackupCommand.stream(directory) }) {
                let target: any Backend
                if let into {
                    if !Repository.exists(at: into) { _ = try reporting("init \(into)") { try Repository.initialize(at: into) } }
                    let repo = try reporting("open \(into)") { try Repository(path: into, purpose: "backup restore") }
                    target = LocalBackend(node: try reporting("open") { try Node(repository: repo) })
                } else {
                    target = try backend(purpose: "backup restore")
                }
                r = try target.restoreBackup(stream: stream, path: directory == "-" ? nil : directory, progress: progress)
            } else if let into {
                // The set first: a wrong directory or id makes no repository.
                let d = BackupDirectory(dir)
                guard let setID = try reporting("backup restore", { try id ?? d.latest()?.id }) else { throw CLIError("backup restore: no complete backup in \(dir)") }
                _ = try reporting("backup restore") { try d.chain(setID) }
                if !Repository.exists(at: into) { _ = try reporting("init \(into)") { try Repository.initialize(at: into) } }
                let repo = try reporting("open \(into)") { try Repository(path: into, purpose: "backup restore") }
                r = try LocalBackend(node: try reporting("open") { try Node(repository: repo) }).restoreBackup(request, progress: progress)
            } else {
                r = try backend(purpose: "backup restore").restoreBackup(request, progress: progress)
            }
            if json { try Output.json(r) } else {
                print("restored \(r.sets.joined(separator: " → ")): \(r.blocks) blocks (\(r.added) new), \(ByteCount.format(r.bytes)), \(r.pinsRestored) pins (\(r.pinsPresent) already there), \(r.headsMerged) pointers")
                for c in r.conflicts { print("conflict: pin \(c.id) is another pin here; the restored one is \(c.restoredAs)") }
                for f in r.pinFailures { print("pin \(f.what) not restored: \(f.error)") }
                for f in r.headFailures { print("pointer \(f.what) not merged: \(f.error)") }
            }
            if !r.pinFailures.isEmpty || !r.headFailures.isEmpty { throw ExitCode(1) }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the sets no retention rule keeps and no kept set depends on.",
            discussion: "Keeps the --keep-last newest, the newest of each of the --keep-daily most recent days and --keep-weekly ISO weeks, and every parent of a kept set. Incomplete sets are left alone.")
        @Argument(help: "The backup directory.") var directory: String?
        @Option(help: "Keep the N newest sets.") var keepLast = 0
        @Option(help: "Keep the newest set of each of the D most recent days.") var keepDaily = 0
        @Option(help: "Keep the newest set of each of the W most recent weeks.") var keepWeekly = 0
        @Flag(help: "Say what would go; remove nothing.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false
        func validate() throws {
            guard keepLast >= 0, keepDaily >= 0, keepWeekly >= 0 else { throw ValidationError("the --keep-… counts are not negative") }
            guard keepLast + keepDaily + keepWeekly > 0 else { throw ValidationError("give at least one of --keep-last, --keep-daily, --keep-weekly (pruning everything is `rm -r`)") }
        }
        func run() throws {
            let dir = directory.map(BackupCommand.absolute) ?? BackupCommand.defaultDirectory()
            let d = BackupDirectory(dir)
            let plan = try reporting("backup prune") { try d.prunePlan(keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly) }
            if !dryRun { for id in plan.remove { try reporting("backup prune") { try d.remove(id) } } }
            if json { try Output.json(["kept": plan.keep, "removed": plan.remove, "dryRun": dryRun] as [String: Any]); return }
            for id in plan.keep { print("keep\t\(id)") }
            for id in plan.remove { print("\(dryRun ? "would remove" : "removed")\t\(id)") }
        }
    }
}

extension LocalBackend {
    func streamBackup(pins: String?, progress: Bool) throws -> BackupSetInfo {
        try reporting("backup create") {
            var p = Progress("backing up", total: nil, enabled: progress)
            let (made, out) = try node.streamBackup(to: FileSink(descriptor: 1), pins: try pins.map(PinSelector.init)) { p.update(bytes: $1, items: Int($0)) }
            try out.flush()
            p.finish()
            return BackupSetInfo(id: made.id, manifest: made)
        }
    }

    func restoreBackup(stream: FileSource, path: String?, progress: Bool) throws -> BackupRestoreInfo {
        try reporting("backup restore") {
            var p = Progress("restoring", total: nil, enabled: progress)
            let done = try node.restoreBackup(stream: stream) { p.update(bytes: $1, items: Int($0)) }
            p.finish()
            return BackupRestoreInfo(done)
        }
    }

    func createBackup(_ r: BackupRequest, progress: Bool) throws -> BackupSetInfo {
        try reporting("backup create") {
            var p = Progress("backing up", total: nil, enabled: progress)
            let made = try node.createBackup(to: r.directory, incremental: r.incremental ?? false, partSize: r.partSize ?? 1 << 30,
                                             pins: try r.pins.map(PinSelector.init)) { p.update(bytes: $1, items: Int($0)) }
            p.finish()
            return BackupSetInfo(id: made.manifest.id, manifest: made.manifest)
        }
    }

    func restoreBackup(_ r: BackupRequest, progress: Bool) throws -> BackupRestoreInfo {
        try reporting("backup restore") {
            var p = Progress("restoring", total: nil, enabled: progress)
            let done = try node.restoreBackup(from: r.directory, id: r.id) { p.update(bytes: $1, items: Int($0)) }
            p.finish()
            return BackupRestoreInfo(done)
        }
    }
}

extension RemoteBackend {
    /// `POST /q/v1/backups/stream` copied to standard output as it arrives; the set is then the
    /// newest stream job's.
    func streamBackup(pins: String?, progress: Bool) throws -> BackupSetInfo {
        try reporting("backup create") {
            let out = FileSink(descriptor: 1)
            var p = Progress("backing up", total: nil, enabled: progress)
            var bytes: UInt64 = 0
            let body = try pins.map { try JSONEncoder().encode(["pins": $0]) }
            try stream("", [], url: origin + "/q/v1/backups/stream", body: body, contentType: body == nil ? nil : "application/json") { chunk in
                try chunk.withUnsafeBytes { try out.write($0) }
                bytes += UInt64(chunk.count)
                p.update(bytes: bytes, items: 0)
            }
            try out.flush()
            p.finish()
            let jobs = try q([BackupJob].self, "GET", "backups/jobs")
            guard let made = jobs.last(where: { $0.kind == "stream" && $0.created != nil })?.created else { throw CLIError("the daemon's stream ended without a set") }
            return made
        }
    }

    /// Uploads the stream (standard input is spooled to a temporary file first) to
    /// `POST /q/v1/backups/restore`.
    func restoreBackup(stream: FileSource, path: String?, progress: Bool) throws -> BackupRestoreInfo {
        try reporting("backup restore") {
            var file = path.map { URL(fileURLWithPath: $0) }
            var spooled: URL?
            defer { if let spooled { try? FileManager.default.removeItem(at: spooled) } }
            if file == nil {
                let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-restore-\(UUID().uuidString).car")
                spooled = tmp
                _ = FileManager.default.createFile(atPath: tmp.path, contents: nil)
                let h = try FileHandle(forWritingTo: tmp)
                try RemoteBackend.copy("-", into: h)
                try h.close()
                file = tmp
            }
            return try q(BackupRestoreInfo.self, "POST", "backups/restore", contentType: "application/vnd.ipld.car", bodyFile: file)
        }
    }

    /// Starts the job, then follows it (every 200 ms) to its end.
    func job(_ path: String, _ r: BackupRequest, progress: Bool, label: String) throws -> BackupJob {
        var job = try q(BackupJob.self, "POST", path, body: try JSONEncoder().encode(r), contentType: "application/json")
        var p = Progress(label, total: nil, enabled: progress)
        while job.state == "running" {
            Thread.sleep(forTimeInterval: 0.2)
            job = try q(BackupJob.self, "GET", "backups/jobs/" + job.id)
            p.update(bytes: job.bytes, items: Int(job.blocks))
        }
        p.finish()
        // A restore that ended with failures has its result, which says what failed.
        if let e = job.error, job.restored == nil { throw CLIError(e) }
        return job
    }

    func createBackup(_ r: BackupRequest, progress: Bool) throws -> BackupSetInfo {
        try reporting("backup create") {
            guard let made = try job("backups", r, progress: progress, label: "backing up").created else { throw CLIError("the daemon's job ended without a set") }
            return made
        }
    }

    func restoreBackup(_ r: BackupRequest, progress: Bool) throws -> BackupRestoreInfo {
        try reporting("backup restore") {
            guard let done = try job("backups/restore", r, progress: progress, label: "restoring").restored else { throw CLIError("the daemon's job ended without a result") }
            return done
        }
    }
}
