import ArgumentParser
import Audit
import CAR
import Foundation
import Node
import QAPI

/// `qstore audit`: the Qerberos audit log — every change and refusal, in a Merkle tree with
/// signed checkpoints.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The Qerberos audit log: list events, verify the log, export it, report on a period, show the checkpoint.",
        discussion: """
            Every change (block put/rm, dag put/import, add, pins, GC runs, Qindex and IPNS updates, keys, identities, \
            grants, tokens) and every refusal (DENY: no credentials or scope; WARN: a credential or signature that failed) \
            is an event, appended in the same batch as the change. The events are the leaves of an RFC 9162 Merkle tree \
            kept as C2SP tiles in blocks, with C2SP signed-note checkpoints by the node key. See Docs/audit.md.
            """,
        subcommands: [List.self, Verify.self, Export.self, Report.self, CheckpointCommand.self])

    struct Filters: ParsableArguments {
        @Option(help: "From this event index, or this time (RFC 3339, or a date).") var from: String?
        @Option(help: "Up to (not including) this event index, or this time.") var to: String?
        @Option(help: "Only events of this type (q.pin.add.v1), or of a prefix ending in * (q.pin.*).") var type: String?
        @Option(help: "Only events of this actor (a sQuid id, admin, token:ID, anonymous).") var actor: String?
        @Option(help: "Only ALLOW, DENY or WARN events.") var verdict: String?
        @Option(help: "Only events about this ref (a CID, a pin id, type/key).") var ref: String?

        var parameters: [(String, String)] {
            [("from", from), ("to", to), ("type", type), ("actor", actor), ("verdict", verdict), ("ref", ref)].compactMap { k, v in v.map { (k, $0) } }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "Events, oldest first: `<index> <time> <verdict> <type> <actor> <ref>`.",
            discussion: "At most --limit events; when more remain, the last line is `next: --cursor N`.")
        @OptionGroup var filters: Filters
        @Option(help: "Events per page (1–1000).") var limit = 100
        @Option(help: "Continue from here (the `next` of the previous page).") var cursor: UInt64?
        @Flag(help: "Print JSON (the `data` of GET /q/v1/audit/events).") var json = false
        func run() throws {
            let page = try backend(purpose: "audit ls").auditEvents(filters.parameters + [("limit", String(limit))] + (cursor.map { [("cursor", String($0))] } ?? []))
            if json { try Output.json(page); return }
            for e in page.events { print(AuditCommand.line(e)) }
            if let next = page.cursor { print("next: --cursor \(next)") }
        }
    }

    static func line(_ e: AuditEntryInfo) -> String {
        "\(e.index)\t\(e.event.time)\t\(e.event.verdict)\t\(e.event.type)\t\(e.event.actor.squidId)\t\(e.event.ref)"
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the log from its events and check every tile and signed checkpoint.",
            discussion: """
                Without --car: the log of the repository (or of the running daemon, exported and checked here). With \
                --car FILE: an exported log (`qstore audit export`), with no repository. A modified, removed or moved \
                event is reported by its index; the exit status is 1 when anything is wrong. --key pins the verifier key \
                (NAME+KEYID+KEY, as `qstore audit checkpoint --json` shows it) the checkpoints must be signed with.
                """)
        @Option(help: "Verify this exported log (a CAR) instead of the repository's.") var car: String?
        @Option(help: "The C2SP verifier key the checkpoints must be signed by.") var key: String?
        @Flag(help: "Show progress on standard error.") var progress = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let result: AuditVerification
            if let car {
                result = try reporting("audit verify") { try AuditArchive.verify(carAt: car, key: key) }
            } else {
                result = try backend(purpose: "audit verify").auditVerify(key: key, progress: progress)
            }
            if json { try Output.json(result) } else { AuditCommand.describe(result) }
            if !result.ok { throw ExitCode(1) }
        }
    }

    static func describe(_ r: AuditVerification) {
        for p in r.problems { print(p.description) }
        if r.problemCount > r.problems.count { print("… and \(r.problemCount - r.problems.count) more") }
        if r.ok {
            let latest = r.latestSize.map { ", latest at size \($0), root \(r.latestRootHash ?? "")" } ?? ""
            print("verified: \(r.size) events, \(r.checkpoints) checkpoints\(latest)")
            print("signed by \(r.verifierKey)")
        } else {
            print("FAILED: \(r.problemCount) problem(s) in \(r.size) events")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the log: a CAR of events, tiles and checkpoints (verifies offline), or JSON lines of events.",
            discussion: "The CAR's root is a head naming the latest checkpoint and every event; `qstore audit verify --car FILE` checks it with no repository. --format jsonl writes one `{index, cid, event}` per line and takes the ls filters.")
        @Option(help: "car or jsonl.") var format = "car"
        @Option(name: [.short, .long], help: "Write to this file (default: standard output).") var output: String?
        @OptionGroup var filters: Filters
        func run() throws {
            guard ["car", "jsonl"].contains(format) else { throw ValidationError("--format: car or jsonl") }
            let sink = try output.map { try FileSink(path: $0) } ?? FileSink(descriptor: 1)
            try backend(purpose: "audit export").auditExport(format: format, query: format == "jsonl" ? filters.parameters : []) { bytes in
                try bytes.withUnsafeBytes { try sink.write($0) }
            }
            try sink.flush()
        }
    }

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A compliance summary of a period: counts per type, verdict and actor, every DENY/WARN, the checkpoint that covers it.",
            discussion: "--from and --to take times (RFC 3339, or a date: its midnight UTC) or event indices; without them, the whole log.")
        @Option(help: "Start of the period (a time or an event index).") var from: String?
        @Option(help: "End of the period, not included (a time or an event index).") var to: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let b = try backend(purpose: "audit report")
            var query = [("from", from), ("to", to)].compactMap { k, v in v.map { (k, $0) } }
            query.append(("limit", "1000"))
            var report = AuditReport(from: from, to: to)
            var cursor: UInt64?
            repeat {
                let page = try b.auditEvents(query + (cursor.map { [("cursor", String($0))] } ?? []))
                for e in page.events { report.add(e) }
                cursor = page.cursor
            } while cursor != nil
            let checkpoint = try? b.auditCheckpoint()
            if let c = checkpoint, let last = report.lastIndex, c.size > last { report.checkpoint = c }
            report.latestCheckpointSize = checkpoint?.size
            if json { try Output.json(report); return }
            report.print()
        }
    }

    struct CheckpointCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "checkpoint", abstract: "The latest signed checkpoint (a C2SP signed note); --json adds its verifier key.")
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let c = try backend(purpose: "audit checkpoint").auditCheckpoint()
            if json { try Output.json(c) } else { Swift.print(c.note, terminator: "") }
        }
    }
}

/// What `audit report` prints.
struct AuditReport: Encodable {
    var from: String?
    var to: String?
    var events = 0
    var firstIndex: UInt64?
    var lastIndex: UInt64?
    var firstTime: String?
    var lastTime: String?
    var verdicts: [String: Int] = [:]
    var types: [String: Int] = [:]
    var actors: [String: Int] = [:]
    var refusals: [AuditEntryInfo] = []
    /// The latest checkpoint when it covers the period's last event (nil: not covered yet).
    var checkpoint: AuditCheckpointInfo?
    var latestCheckpointSize: UInt64?

    init(from: String?, to: String?) { (self.from, self.to) = (from, to) }

    mutating func add(_ e: AuditEntryInfo) {
        events += 1
        if firstIndex == nil { (firstIndex, firstTime) = (e.index, e.event.time) }
        (lastIndex, lastTime) = (e.index, e.event.time)
        verdicts[e.event.verdict, default: 0] += 1
        types[e.event.type, default: 0] += 1
        actors[e.event.actor.squidId, default: 0] += 1
        if e.event.verdict != "ALLOW" { refusals.append(e) }
    }

    func print() {
        Swift.print("audit report: \(from ?? "start") .. \(to ?? "now")")
        guard let first = firstIndex, let last = lastIndex else {
            Swift.print("no events in the period")
            return
        }
        Swift.print("events: \(events) (indices \(first)..\(last), \(firstTime ?? "") .. \(lastTime ?? ""))")
        Swift.print("verdicts: " + ["ALLOW", "DENY", "WARN"].map { "\($0) \(verdicts[$0] ?? 0)" }.joined(separator: ", "))
        Swift.print("by type:")
        for (t, n) in types.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) { Swift.print("  \(n)\t\(t)") }
        Swift.print("by actor:")
        for (a, n) in actors.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) { Swift.print("  \(n)\t\(a)") }
        Swift.print("refusals (DENY/WARN): \(refusals.count)")
        for e in refusals {
            let reason: String
            if case .object(let d) = e.event.details, case .string(let r)? = d["reason"] { reason = "\t" + r } else { reason = "" }
            Swift.print("  " + AuditCommand.line(e) + reason)
        }
        if let c = checkpoint {
            Swift.print("covered by checkpoint: size \(c.size), root \(c.rootHash)")
            Swift.print("signed by \(c.verifierKey)")
        } else {
            Swift.print("not yet covered by a checkpoint (latest: \(latestCheckpointSize.map { "size \($0)" } ?? "none"))")
        }
    }
}

extension LocalBackend {
    func auditCheckpoint() throws -> AuditCheckpointInfo {
        try reporting("audit checkpoint") {
            AuditCheckpointInfo(try node.auditCheckpoint(), origin: node.auditOrigin, verifierKey: node.auditVerifierKey)
        }
    }

    func auditEvents(_ query: [(String, String)]) throws -> AuditEventPage {
        try reporting("audit ls") {
            let q = try AuditQuery(parameters: { name in query.last { $0.0 == name }?.1 })
            let page = try node.auditEvents(q)
            return AuditEventPage(events: page.events.map { AuditEntryInfo(index: $0.index, cid: $0.cid, event: $0.event) }, cursor: page.cursor)
        }
    }

    func auditExport(format: String, query: [(String, String)], into write: @escaping ([UInt8]) throws -> Void) throws {
        try reporting("audit export") {
            if format == "car" {
                let sink = CallbackSink(write)
                _ = try node.exportAudit(to: sink)
                return
            }
            var q = try AuditQuery(parameters: { name in query.last { $0.0 == name }?.1 })
            q.limit = 1000
            while true {
                let page = try node.auditEvents(q)
                for e in page.events { try write(QJSON.encode(AuditEntryInfo(index: e.index, cid: e.cid, event: e.event))) }
                guard let next = page.cursor else { break }
                q.cursor = next
            }
        }
    }

    func auditVerify(key: String?, progress: Bool) throws -> AuditVerification {
        try reporting("audit verify") {
            if let key, key != node.auditVerifierKey {
                throw CLIError("this repository's checkpoints are signed by \(node.auditVerifierKey), not by the key given")
            }
            var p = Progress("verifying the audit log", total: node.auditSize, enabled: progress)
            let r = try node.verifyAudit { p.update(bytes: 0, items: Int($0)) }
            p.finish()
            return r
        }
    }
}

extension RemoteBackend {
    func auditCheckpoint() throws -> AuditCheckpointInfo {
        try reporting("audit checkpoint") {
            let (status, reply) = try exchange(method: "GET", url: origin + "/q/v1/audit/checkpoint", headers: ["Accept": "application/json"])
            do { return try QJSON.data(AuditCheckpointInfo.self, from: reply) } catch let e as QErrorReply { throw e } catch {
                throw CLIError("unexpected reply from the daemon (\(status)) to GET /q/v1/audit/checkpoint: \(error)")
            }
        }
    }

    func auditEvents(_ query: [(String, String)]) throws -> AuditEventPage {
        try reporting("audit ls") { try q(AuditEventPage.self, "GET", "audit/events", query) }
    }

    func auditExport(format: String, query: [(String, String)], into write: @escaping ([UInt8]) throws -> Void) throws {
        try reporting("audit export") {
            try stream("", [("format", format)] + query, method: "GET", url: origin + "/q/v1/audit/export", into: write)
        }
    }

    /// The daemon's log, exported and verified here: the daemon's own word is not taken for it.
    func auditVerify(key: String?, progress: Bool) throws -> AuditVerification {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-audit-\(UUID().uuidString).car").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let vkey = try key ?? auditCheckpoint().verifierKey
        let sink = try FileSink(path: file)
        try auditExport(format: "car", query: []) { bytes in try bytes.withUnsafeBytes { try sink.write($0) } }
        try sink.flush()
        return try reporting("audit verify") { try AuditArchive.verify(carAt: file, key: vkey) }
    }
}

/// A byte sink that hands what is written to a closure.
struct CallbackSink: ByteSink {
    let send: ([UInt8]) throws -> Void
    init(_ send: @escaping ([UInt8]) throws -> Void) { self.send = send }
    func write(_ b: UnsafeRawBufferPointer) throws { try send(Array(b)) }
}
