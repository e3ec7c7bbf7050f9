import ArgumentParser
import Foundation
import QAPI

/// `qstore index`: Qindex pointers — signed, versioned `(type, key)` → CID with history.
struct IndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index", abstract: "Signed mutable pointers (type, key) → CID with verifiable history: put, get, history, ls, rm, import, publish.",
        discussion: """
            A pointer update is a record (dag-cbor, signed by the node key) linked to the one before, so a pointer's \
            history is a hash-linked chain any IPLD tool can walk. Types match [a-z0-9][a-z0-9._-]{0,63}; keys are \
            1–512 bytes of UTF-8 without control characters and may contain "/". Each command prints JSON with \
            --json (the `data` of the /q/v1/index reply). See Docs/qindex.md.
            """,
        subcommands: [Put.self, Get.self, History.self, List.self, Remove.self, Import.self, Publish.self])

    struct Pointer: ParsableArguments {
        @Argument(help: "The pointer's type (e.g. module, docs).") var type: String
        @Argument(help: "The pointer's key.") var key: String
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Point TYPE KEY at a CID: print `<type>/<key> → <cid> (version N, record <cid>)`.",
            discussion: "With --expected-version (0: the pointer must not exist yet) or --expected-head the update is a compare-and-swap: it fails with VERSION_CONFLICT unless the head is that one. The target must be in the repository unless --allow-missing (then its pin is queued until it arrives).")
        @OptionGroup var pointer: Pointer
        @Argument(help: "The target CID.") var cid: String
        @Option(name: .customLong("tag"), help: "A tag for this version (repeatable).") var tags: [String] = []
        @Option(help: "Compare-and-swap: the version the head must have (0: must not exist).") var expectedVersion: Int64?
        @Option(help: "Compare-and-swap: the record CID the head must be.") var expectedHead: String?
        @Flag(help: "Accept a target that is not in the repository (its pin is queued).") var allowMissing = false
        @Flag(help: "Print JSON.") var json = false
        func run() async throws {
            let update = PointerUpdate(cid: cid, tags: tags.isEmpty ? nil : tags, expectedVersion: expectedVersion, expectedHead: expectedHead, allowMissing: allowMissing ? true : nil)
            let head = try await backend(purpose: "index put").putPointer(type: pointer.type, key: pointer.key, update, expectedVersion: nil)
            try IndexOutput.moved(head, json: json)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Delete a pointer: a tombstone record goes on its history (which stays).")
        @OptionGroup var pointer: Pointer
        @Option(help: "Compare-and-swap: the version the head must have.") var expectedVersion: Int64?
        @Flag(help: "Print JSON.") var json = false
        func run() async throws {
            let head = try await backend(purpose: "index rm").putPointer(type: pointer.type, key: pointer.key, nil, expectedVersion: expectedVersion)
            try IndexOutput.moved(head, json: json)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a pointer's head, the record of a version, or the one current at a time.")
        @OptionGroup var pointer: Pointer
        @Option(help: "The record of this version (of the main chain).") var version: Int64?
        @Option(help: "The record current at this time (RFC 3339, or Unix milliseconds).") var at: String?
        @Flag(name: .shortAndLong, help: "Print only the target CID.") var quiet = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let r = try backend(purpose: "index get").getPointer(type: pointer.type, key: pointer.key, version: version, at: at)
            if json { try Output.json(r); return }
            if quiet { print(r.cid ?? "deleted"); return }
            IndexOutput.describe(r)
        }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A pointer's history, newest first: `<version> <cid|deleted> <createdAt> <record>`.",
            discussion: "At most --limit records; when more remain, the last line is `next: --cursor N`.")
        @OptionGroup var pointer: Pointer
        @Option(help: "Records per page (1–1000).") var limit = 100
        @Option(help: "Continue below this version (the `next` of the previous page).") var cursor: Int64?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let page = try backend(purpose: "index history").pointerHistory(type: pointer.type, key: pointer.key, limit: limit, cursor: cursor)
            if json { try Output.json(page); return }
            for r in page.records { print("\(r.version)\t\(r.cid ?? "deleted")\t\(r.createdAt)\t\(r.record)") }
            if let next = page.next { print("next: --cursor \(next)") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List live pointers: `<type>/<key> <version> <cid> <updatedAt>`.",
            discussion: "Filters combine. At most --limit pointers; when more remain, the last line is `next: --cursor C`.")
        @Option(help: "Only this type.") var type: String?
        @Option(help: "Only keys starting with this.") var prefix: String?
        @Option(help: "Only pointers whose head has this tag.") var tag: String?
        @Option(help: "Only pointers whose target is this CID.") var target: String?
        @Option(help: "key or updatedAt (newest first).") var sort = "key"
        @Option(help: "Pointers per page (1–1000).") var limit = 100
        @Option(help: "Continue after the previous page (its `next`).") var cursor: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let query = PointerQuery(type: type, prefix: prefix, tag: tag, target: target, sort: sort, limit: limit, cursor: cursor)
            let page = try backend(purpose: "index ls").listPointers(query)
            if json { try Output.json(page); return }
            for p in page.pointers { print("\(p.type)/\(p.key)\t\(p.version)\t\(p.cid ?? "deleted")\t\(p.updatedAt)") }
            if let next = page.next { print("next: --cursor \(next)") }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge foreign histories from a CAR of records (its roots are the heads): `<type>/<key> <action> <version> <cid>`.",
            discussion: "Every record is verified first (signatures, versions, links). One history that contains the other fast-forwards; diverged histories are joined by a derived merge record, so every node that sees the same records ends with the same head. Actions: created, fast-forward, merged, unchanged.")
        @Argument(help: "The CAR file (\"-\": standard input).") var file: String
        @Flag(help: "Print JSON.") var json = false
        func run() async throws {
            let result = try await backend(purpose: "index import").importPointers(file)
            if json { try Output.json(result); return }
            for p in result.merged { print("\(p.type)/\(p.key)\t\(p.action ?? "")\t\(p.version)\t\(p.cid ?? "deleted")") }
        }
    }
}

extension IndexCommand {
    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a pointer's head as an IPNS name: its target is the value, its version the sequence.",
            discussion: "Prints `Published to <name>: /ipfs/<target> (sequence N)`. Publish again after the pointer moves; a name already past the pointer's version is a conflict.")
        @OptionGroup var pointer: Pointer
        @Option(name: .shortAndLong, help: "The key whose name is published (see `qstore key ls`).") var key = "self"
        @Option(help: "How long the record is valid (a Go duration: 48h, 30m…).") var lifetime = "48h"
        @Option(help: "How long resolvers may cache it (a Go duration).") var ttl = "1h"
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let p = try backend(purpose: "index publish").publishPointer(type: pointer.type, key: pointer.key, keyName: key, lifetime: lifetime, ttl: ttl)
            if json { try Output.json(p); return }
            print("Published to \(p.name): \(p.value) (sequence \(p.sequence))")
        }
    }
}

enum IndexOutput {
    /// After put and rm.
    static func moved(_ r: PointerRecord, json: Bool) throws {
        if json { try Output.json(r); return }
        print("\(r.type)/\(r.key) → \(r.cid ?? "deleted") (version \(r.version), record \(r.record))")
    }

    /// A record, one field per line.
    static func describe(_ r: PointerRecord) {
        var lines = [("pointer", "\(r.type)/\(r.key)"), ("target", r.cid ?? "deleted"), ("version", String(r.version)), ("record", r.record),
                     ("prev", r.prev ?? "none")]
        if let m = r.merged { lines.append(("merged", m.joined(separator: ", "))) }
        lines += [("tags", r.tags.joined(separator: ", ")), ("created", r.createdAt)]
        if let u = r.updatedAt { lines.append(("updated", u)) }
        lines.append(("author", [r.author.squidId, r.author.subId, r.author.daoId.map { "dao " + $0 }].compactMap { $0 }.joined(separator: " / ")))
        lines.append(("signed", r.sig.map { "\($0.alg) \($0.pub)" } ?? "no (a merge record)"))
        for (k, v) in lines { print("\(k + ":")\(String(repeating: " ", count: max(1, 9 - k.count)))\(v)") }
    }
}
