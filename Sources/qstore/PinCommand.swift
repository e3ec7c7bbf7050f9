import ArgumentParser
import Foundation
import KuboAPI

/// `qstore pin`: pins, with Kubo's subcommands and outputs, and the pinning policies.
struct PinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin", abstract: "Pin DAGs so garbage collection keeps them; list, verify, update, remove pins; show the policies.",
        discussion: "A recursive pin keeps a whole DAG (which must be present); a direct pin keeps one block (and, while it is stored, the blocks it links to that are present). Each pin has a resource type whose policy (Pinning/*.json) sets its lifetime, grace period, retention and replication target.",
        subcommands: [Add.self, Remove.self, List.self, Verify.self, Update.self, Policies.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pin objects (<cid>[/path]); print `pinned <cid> recursively|directly`.")
        @Option(help: "Pin the whole DAG (false: the block only).") var recursive = true
        @Option(help: "A name for the pins.") var name: String?
        @Option(help: "Resource type (selects the pinning policy; default: default).") var resourceType: String?
        @Option(help: "End the pins after this long (e.g. 90s, 1h30m, 7d).") var expiresIn: String?
        @Option(help: "Replication target (default: the policy's).") var replication: Int?
        @Flag(help: "Print JSON ({\"Pins\": […]}).") var json = false
        @Argument(help: "Objects to pin.") var refs: [String]
        func run() throws {
            let option = PinOption(recursive: recursive, name: name, resourceType: resourceType, expiresIn: expiresIn, replication: replication)
            let pinned = try backend(purpose: "pin add").pinAdd(refs, options: option)
            if json { try Output.json(pinned); return }
            for c in pinned.pins ?? [] { print("pinned \(c) \(recursive ? "recursively" : "directly")") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove pins; the blocks go at the next garbage collection after their grace period.")
        @Option(help: "Remove recursive pins too (false: refuse a recursively pinned CID).") var recursive = true
        @Flag(help: "Print JSON ({\"Pins\": […]}).") var json = false
        @Argument(help: "Objects to unpin.") var refs: [String]
        func run() throws {
            let removed = try backend(purpose: "pin rm").pinRemove(refs, recursive: recursive)
            if json { try Output.json(removed); return }
            for c in removed.pins ?? [] { print("unpinned \(c)") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List pins: `<cid> <type>[ <name>]` (types: recursive, direct, indirect).")
        @Option(name: .shortAndLong, help: "all, recursive, direct or indirect.") var type = "all"
        @Flag(name: .shortAndLong, help: "Print only CIDs.") var quiet = false
        @Flag(help: "Print pin names.") var names = false
        @Option(help: "Only pins whose name contains this.") var name: String?
        @Flag(help: "Print JSON lines ({\"Cid\", \"Type\", \"Name\"}), as Kubo's --stream.") var json = false
        @Flag(help: "Accepted for Kubo compatibility (output always streams).") var stream = false
        @Argument(help: "Objects to look up (default: every pin).") var refs: [String] = []
        func run() throws {
            for l in try backend(purpose: "pin ls").pinList(refs, type: type, name: name) {
                let name = names ? l.name ?? "" : ""
                if json {
                    try Output.json(PinLsEntry(cid: l.cid, type: l.type, name: name.isEmpty ? nil : name))
                } else if quiet {
                    print(l.cid)
                } else {
                    print(name.isEmpty ? "\(l.cid) \(l.type)" : "\(l.cid) \(l.type) \(name)")
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every pinned DAG is present and uncorrupted; exit 1 if not.")
        @Flag(help: "Also print the pins that are fine.") var verbose = false
        @Flag(name: .shortAndLong, help: "Print only the CIDs of broken pins.") var quiet = false
        func run() throws {
            let results = try backend(purpose: "pin verify").pinVerify(verbose: verbose)
            for r in results {
                if r.ok { print("\(r.cid) ok") } else if quiet { print(r.cid) } else {
                    print("\(r.cid) broken")
                    for b in r.badNodes ?? [] { print("  \(b.cid): \(b.err)") }
                }
            }
            if results.contains(where: { !$0.ok }) { throw ExitCode(1) }
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a recursive pin from one DAG to another, walking only what differs between them.",
            discussion: "The new pin keeps the old one's name, resource type and metadata; the old pin is removed in the same transaction unless --unpin=false.")
        @Option(help: "Remove the old pin.") var unpin = true
        @Argument(help: "The pinned object.") var from: String
        @Argument(help: "The object to pin instead.") var to: String
        func run() throws {
            _ = try backend(purpose: "pin update").pinUpdate(from: from, to: to, unpin: unpin)
            print("updated \(from) to \(to)")
        }
    }

    struct Policies: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the pinning policies in force (built-in, or the folder pinning.policies / QSTORE_POLICIES names).")
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let o = try backend(purpose: "pin policies").pinPolicies()
            if json { try Output.json(o); return }
            print("policies: \(o.source)")
            for p in o.policies {
                var line = "\(p.resourceType)\t\(p.pinningStrategy)"
                if let t = p.ttl { line += " ttl \(t)" }
                if let c = p.condition { line += " keepLatest \(c.keepLatest)" }
                line += "\treplication \(p.replicationFactor)\t\(p.accessPattern)\tgrace \(p.gracePeriod)\tretention \(p.retention)"
                print(line)
            }
        }
    }
}
