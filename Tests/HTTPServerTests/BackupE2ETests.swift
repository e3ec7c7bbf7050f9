import Backup
import Synchronization
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Multiformats
import Node
import Pinning
import Storage
import Testing
import TestSupport

/// Backups end to end with the `qstore` binary: `backup create` killed with SIGKILL leaves an
/// incomplete set that `ls` names and nothing uses, and the next create is complete; `backup
/// restore` killed part way ends complete when run again; a backup taken through a daemon while
/// writers pin, unpin and collect garbage restores to a repository that verifies, every pin of
/// the set whole.
@Suite(.serialized) struct BackupE2ETests {
    static func qstore(_ args: [String], _ repository: String, home: String) async throws -> (Int32, String) {
        try await ThirdPartyClientTests.runAside(ChildDaemon.binary, args, environment: ["QSTORE_PATH": repository, "HOME": home])
    }

    /// Starts `args` (at the lowest priority, so a busy machine does not let it finish first),
    /// watches with a thread of its own until `ready` says so (or `seconds` pass), then kills it
    /// with SIGKILL.
    static func kill(when ready: @escaping @Sendable () -> Bool, _ args: [String], repository: String, home: String, seconds: Double = 30) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nice")
        p.arguments = ["-n", "19", ChildDaemon.binary] + args
        p.environment = ChildEnvironment.with(["QSTORE_PATH": repository, "HOME": home])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let pid = p.processIdentifier
        try await ThirdPartyClientTests.aside {
            let deadline = Date().addingTimeInterval(seconds)
            while !ready(), Date() < deadline, p.isRunning { usleep(200) }
            Foundation.kill(pid, SIGKILL)
            p.waitUntilExit()
        }
    }

    /// A repository with `files` pinned files of `size` random bytes each.
    static func fill(_ repo: String, home: String, files: Int, size: Int) async throws {
        #expect(try await qstore(["init"], repo, home: home).0 == 0)
        for i in 0..<files {
            let f = home + "/file-\(i).bin"
            let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
            try random.readData(ofLength: size).write(to: URL(fileURLWithPath: f))
            try random.close()
            #expect(try await qstore(["add", "-q", "--pin-name", "file \(i)", f], repo, home: home).0 == 0)
        }
    }

    @Test func aKilledCreateLeavesAnIncompleteSetAndTheNextIsComplete() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-backup-kill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let repo = dir + "/repo", backups = dir + "/backups"
        try await Self.fill(repo, home: dir, files: 8, size: 4 << 20)
        // Killed once its third part file exists (parts of 1 MiB: dozens to write). On a busy
        // machine the create may still finish first: then it is tried again, in a new directory.
        var cut: BackupDirectory.SetInfo?
        var attempt = 0
        while cut == nil && attempt < 5 {
            attempt += 1
            let dir = backups + "-\(attempt)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try await Self.kill(when: {
                guard let id = try? FileManager.default.contentsOfDirectory(atPath: dir).first(where: BackupManifest.isID) else { return false }
                return FileManager.default.fileExists(atPath: "\(dir)/\(id)/part-0003.car")
            }, ["backup", "create", "--to", dir, "--part-size", "1MiB"], repository: repo, home: dir)
            if let s = try BackupDirectory(dir).sets().first, !s.complete {
                cut = s
                try FileManager.default.moveItem(atPath: dir, toPath: backups)
            }
        }
        let incomplete = try #require(cut, "the create finished before it was killed, 5 times")
        var (rc, out) = try await BackupE2ETests.qstore(["backup", "ls", backups], repo, home: dir)
        #expect(rc == 0 && out.contains(incomplete.id) && out.contains("incomplete"))
        (rc, out) = try await BackupE2ETests.qstore(["backup", "verify", backups], repo, home: dir)
        #expect(rc != 0 && out.contains("no complete backup"))
        // The repository is whole; the next create is complete and verifies.
        (rc, out) = try await BackupE2ETests.qstore(["repo", "verify"], repo, home: dir)
        #expect(rc == 0, "\(out)")
        (rc, out) = try await BackupE2ETests.qstore(["backup", "create", "--to", backups, "--part-size", "1MiB"], repo, home: dir)
        #expect(rc == 0, "\(out)")
        let complete = String(out.prefix { $0 != "\t" })
        (rc, out) = try await BackupE2ETests.qstore(["backup", "verify", backups], repo, home: dir)
        #expect(rc == 0 && out.hasPrefix("ok"), "\(out)")
        // An incremental never builds on the incomplete set.
        (rc, out) = try await BackupE2ETests.qstore(["backup", "create", "--to", backups, "--incremental", "--json"], repo, home: dir)
        let inc = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(inc["parent"] as? String == complete)
    }

    @Test func aKilledRestoreEndsCompleteWhenRunAgain() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-restore-kill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let repo = dir + "/repo", backups = dir + "/backups", target = dir + "/target"
        try await Self.fill(repo, home: dir, files: 6, size: 4 << 20)
        #expect(try await BackupE2ETests.qstore(["backup", "create", "--to", backups], repo, home: dir).0 == 0)
        // Killed once 6 MiB of the 24 are in the target's pack files.
        try await Self.kill(when: {
            let packs = (try? FileManager.default.contentsOfDirectory(atPath: target + "/packs")) ?? []
            let bytes = packs.compactMap { try? FileManager.default.attributesOfItem(atPath: target + "/packs/" + $0)[.size] as? UInt64 }.reduce(0, +)
            return bytes > 6 << 20
        },
                            ["backup", "restore", backups, "--into", target], repository: repo, home: dir, seconds: 5)
        try await Task.sleep(for: .milliseconds(50))
        var (rc, out) = try await BackupE2ETests.qstore(["backup", "restore", backups, "--into", target, "--json"], repo, home: dir)
        #expect(rc == 0, "\(out)")
        let r = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect((r["pinFailures"] as? [Any])?.isEmpty == true && (r["headFailures"] as? [Any])?.isEmpty == true)
        (rc, out) = try await BackupE2ETests.qstore(["pin", "ls", "--type", "recursive"], target, home: dir)
        #expect(out.split(separator: "\n").count >= 6, "\(out)")
        (rc, out) = try await BackupE2ETests.qstore(["pin", "verify"], target, home: dir)
        #expect(rc == 0, "\(out)")
        (rc, out) = try await BackupE2ETests.qstore(["repo", "verify"], target, home: dir)
        #expect(rc == 0, "\(out)")
    }

    /// Through a daemon with writers and the collector busy: every pin the set names is whole in
    /// the set, and the restored repository verifies.
    @Test func aBackupTakenWhileWritersAndGCRunRestoresConsistently() async throws {
        let daemon = try ChildDaemon()
        defer {
            daemon.stop()
            daemon.removeDirectory()
        }
        let repo = daemon.repository, home = daemon.directory, backups = home + "/backups"
        let api = "http://127.0.0.1:\(daemon.apiPort)/api/v0"
        // Writers: put and pin blocks, unpin older ones, collect garbage — until told to stop.
        let stop = Atomic<Bool>(false)
        let token = daemon.token
        let writers = Task.detached {
            var pinned: [String] = []
            var i = 0
            while !stop.load(ordering: .relaxed), i < 2000 {
                i += 1
                let boundary = "b\(i)"
                var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n".utf8)
                body.append(Data((0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* i) }))
                body.append(Data("\r\n--\(boundary)--\r\n".utf8))
                var r = URLRequest(url: URL(string: api + "/add?pin=true&cid-version=1&quiet=true")!)
                r.httpMethod = "POST"
                r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                r.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
                r.httpBody = body
                if let (d, _) = try? await DaemonHarness.session.data(for: r),
                   let line = String(decoding: d, as: UTF8.self).split(separator: "\n").last,
                   let j = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let h = j["Hash"] as? String {
                    pinned.append(h)
                }
                if i % 3 == 0, let old = pinned.first {
                    pinned.removeFirst()
                    var u = URLRequest(url: URL(string: api + "/pin/rm?arg=\(old)")!)
                    u.httpMethod = "POST"
                    u.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                    _ = try? await DaemonHarness.session.data(for: u)
                }
                if i % 10 == 0 {
                    var g = URLRequest(url: URL(string: api + "/repo/gc")!)
                    g.httpMethod = "POST"
                    g.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                    _ = try? await DaemonHarness.session.data(for: g)
                }
            }
            return i
        }
        try await Task.sleep(for: .milliseconds(400))
        var (rc, out) = try await BackupE2ETests.qstore(["backup", "create", "--to", backups], repo, home: home)
        #expect(rc == 0, "\(out)")
        try await Task.sleep(for: .milliseconds(200))
        (rc, out) = try await BackupE2ETests.qstore(["backup", "create", "--to", backups, "--incremental"], repo, home: home)
        #expect(rc == 0, "\(out)")
        stop.store(true, ordering: .relaxed)
        let rounds = await writers.value
        #expect(rounds > 5)
        // Every pin whole across the chain (verify checks it), and a restore that verifies.
        (rc, out) = try await BackupE2ETests.qstore(["backup", "verify", backups], repo, home: home)
        #expect(rc == 0, "\(out)")
        let target = home + "/target"
        (rc, out) = try await BackupE2ETests.qstore(["backup", "restore", backups, "--into", target], repo, home: home)
        #expect(rc == 0, "\(out)")
        (rc, out) = try await BackupE2ETests.qstore(["repo", "verify"], target, home: home)
        #expect(rc == 0, "\(out)")
        (rc, out) = try await BackupE2ETests.qstore(["pin", "verify"], target, home: home)
        #expect(rc == 0, "\(out)")
    }
}

/// Backups the daemon takes by itself (`backup.schedule`).
@Suite struct BackupScheduleTests {
    /// `backup create --to -` through one daemon, the stream restored through another (a file,
    /// then standard input): the chosen pins arrive whole, the others do not; a cut stream is
    /// refused with BACKUP_CORRUPT and restores no pin.
    @Test func aStreamedSetGoesFromOneDaemonToAnother() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-backup-stream-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try ChildDaemon(directory: dir + "/a")
        defer { a.stop() }
        let b = try ChildDaemon(directory: dir + "/b")
        defer { b.stop() }
        for (i, name) in ["photo-1", "photo-2", "notes"].enumerated() {
            try Data(repeating: UInt8(i + 1), count: 400_000).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
            #expect(try await BackupE2ETests.qstore(["add", "-q", "--pin-name", name, "\(dir)/\(name)"], a.repository, home: dir).0 == 0)
        }
        let sh = "\(ChildDaemon.binary) backup create --to - --pins 'name=photo-*' > \(dir)/set.car"
        let (status, _) = try await ThirdPartyClientTests.runAside("/bin/sh", ["-c", sh], environment: ["QSTORE_PATH": a.repository, "HOME": dir])
        #expect(status == 0)
        #expect(try await BackupE2ETests.qstore(["backup", "verify", dir + "/set.car"], a.repository, home: dir).0 == 0)
        // Cut short: refused, nothing pinned.
        let whole = try Data(contentsOf: URL(fileURLWithPath: dir + "/set.car"))
        try whole.prefix(whole.count - 20).write(to: URL(fileURLWithPath: dir + "/cut.car"))
        let (cutStatus, _) = try await BackupE2ETests.qstore(["backup", "restore", dir + "/cut.car"], b.repository, home: dir)
        #expect(cutStatus != 0)
        #expect(try await BackupE2ETests.qstore(["pin", "ls", "--type", "recursive"], b.repository, home: dir).1.isEmpty)
        // Whole: through daemon b, from the file and then from standard input.
        let (_, restored) = try await BackupE2ETests.qstore(["backup", "restore", dir + "/set.car", "--json"], b.repository, home: dir)
        let r = try #require(try JSONSerialization.jsonObject(with: Data(restored.utf8)) as? [String: Any])
        #expect(r["pinsRestored"] as? Int == 2 && (r["added"] as? Int ?? 0) > 0, "\(restored)")
        let again = "cat \(dir)/set.car | \(ChildDaemon.binary) backup restore - --json"
        let (_, second) = try await ThirdPartyClientTests.runAside("/bin/sh", ["-c", again], environment: ["QSTORE_PATH": b.repository, "HOME": dir])
        let r2 = try #require(try JSONSerialization.jsonObject(with: Data(second.utf8)) as? [String: Any])
        #expect(r2["pinsPresent"] as? Int == 2 && r2["added"] as? Int == 0, "\(second)")
        let pins = try await BackupE2ETests.qstore(["pin", "ls", "--type", "recursive", "--names"], b.repository, home: dir).1
        #expect(pins.contains("photo-1") && pins.contains("photo-2") && !pins.contains("notes"), "\(pins)")
        #expect(try await BackupE2ETests.qstore(["repo", "verify"], b.repository, home: dir).0 == 0)
    }

    @Test func theDaemonTakesScheduledBackups() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-backup-schedule-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let backups = dir + "/backups"
        let daemon = try ChildDaemon(directory: dir + "/d", environment: ["QSTORE_BACKUP_SCHEDULE": "1s", "QSTORE_BACKUP_DIR": backups])
        defer { daemon.stop() }
        // Something to back up.
        try Data("scheduled\n".utf8).write(to: URL(fileURLWithPath: dir + "/f.txt"))
        #expect(try await BackupE2ETests.qstore(["add", "-q", dir + "/f.txt"], daemon.repository, home: dir).0 == 0)
        var sets: [BackupDirectory.SetInfo] = []
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(100))
            sets = (try? BackupDirectory(backups).sets().filter(\.complete)) ?? []
            if sets.count >= 2 { break }
        }
        #expect(sets.count >= 2)
        // The first is full, the next builds on it; the chain verifies.
        #expect(sets.first?.manifest?.parent == nil && sets.dropFirst().first?.manifest?.parent == sets.first?.id)
        #expect(try BackupDirectory(backups).verify(sets.last?.id).ok)
        // Each run is a job the API lists.
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(daemon.apiPort)/q/v1/backups/jobs")!)
        r.setValue("Bearer \(daemon.token)", forHTTPHeaderField: "Authorization")
        let (data, _) = try await DaemonHarness.session.data(for: r)
        let jobs = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["data"] as? [[String: Any]] ?? []
        #expect(jobs.filter { $0["state"] as? String == "succeeded" }.count >= 2)
    }

    @Test func aScheduleThatCannotWorkIsRefused() throws {
        var c = BackupConfiguration()
        c.schedule = "daily 25:00"
        c.directory = "/tmp/x"
        #expect(throws: RepositoryError.self) { try c.next(after: 0) }
        c.schedule = "6h"
        c.directory = "relative"
        #expect(throws: RepositoryError.self) { try c.next(after: 0) }
        c.directory = "/tmp/x"
        let hour: UInt64 = 3_600_000, day: UInt64 = 86_400_000, threeThirty: UInt64 = 210 * 60_000
        #expect(try c.next(after: 1000) == 1000 + 6 * hour)
        c.schedule = "daily 03:30"
        #expect(try c.next(after: 0) == threeThirty)
        // After 03:30 of a day: 03:30 the next day.
        #expect(try c.next(after: day + 4 * hour) == 2 * day + threeThirty)
    }
}
