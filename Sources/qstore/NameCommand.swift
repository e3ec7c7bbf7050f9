import ArgumentParser
import Foundation
import KuboAPI
import QAPI

/// `qstore name`: IPNS names (Kubo's `ipfs name`).
struct NameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "name", abstract: "IPNS names: publish a path under a key's name, resolve a name.",
        discussion: """
            Records are IPNS V2 (signed dag-cbor data, V1 fields kept for old readers) and stay in this node: there is \
            no DHT, so --allow-offline is accepted and always true. The gateway serves /ipns/<name> for the names whose \
            records the node holds (its own, and ones imported with `qstore routing put`). See Docs/qindex.md.
            """,
        subcommands: [Publish.self, Resolve.self])

    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Point the name of a key at an /ipfs/ or /ipns/ path: prints `Published to <name>: <value>`.")
        @Argument(help: "The path (/ipfs/<cid>[/path], /ipns/<name>[/path], or a CID).") var path: String
        @Option(name: .shortAndLong, help: "The key whose name is published (see `qstore key ls`).") var key = "self"
        @Option(help: "How long the record is valid (a Go duration: 48h, 30m…).") var lifetime = "48h"
        @Option(help: "How long resolvers may cache it (a Go duration).") var ttl = "1h"
        @Option(help: "Check that an /ipfs/ path resolves here before publishing.") var resolve = true
        @Flag(help: "Accepted for Kubo compatibility (publishing is always local).") var allowOffline = false
        @Flag(name: [.customShort("Q"), .long], help: "Print only the name.") var quieter = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let p = try backend(purpose: "name publish").publishName(path, key: key, lifetime: lifetime, ttl: ttl, resolve: resolve)
            if json { try Output.json(p); return }
            print(quieter ? p.name : "Published to \(p.name): \(p.value)")
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The path a name points at (the node's own name when none is given).")
        @Argument(help: "The name (k51…, a peer ID, or /ipns/<name>).") var name: String?
        @Option(name: .shortAndLong, help: "Follow /ipns/ values until an /ipfs/ path (as Kubo: --recursive=false to stop after one name).") var recursive = true
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let r = try backend(purpose: "name resolve").resolveName(name, recursive: recursive)
            if json { try Output.json(r); return }
            print(r.path)
        }
    }
}

/// `qstore routing`: IPNS records in and out of the node (Kubo's `ipfs routing get|put`, local only).
struct RoutingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routing", abstract: "IPNS records made elsewhere: put (verify and hold) and get (the signed record).",
        subcommands: [Put.self, Get.self])

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold an IPNS record for /ipns/<name> once it verifies (a newer one held is kept).")
        @Argument(help: "/ipns/<name>") var key: String
        @Argument(help: "The record file (\"-\": standard input).") var file: String
        func run() throws {
            try backend(purpose: "routing put").putNameRecord(key, try Output.readInput(file))
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the held, verified record of /ipns/<name> to standard output.")
        @Argument(help: "/ipns/<name>") var key: String
        func run() throws { Output.bytes(try backend(purpose: "routing get").nameRecord(key)) }
    }
}

/// `qstore key`: the node's named Ed25519 keys (Kubo's `ipfs key`).
struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Named Ed25519 keys for IPNS names: gen, ls, rename, rm.",
        discussion: "`self` is the node's identity key. Other keys live in <repo>/keystore/key-<name> (mode 0600). Names: 1–64 of A-Z a-z 0-9 . _ -, not starting with a dot.",
        subcommands: [Gen.self, List.self, Rename.self, Remove.self])

    struct Gen: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a key: prints its IPNS name (k51…).")
        @Argument(help: "The key's name.") var name: String
        @Option(name: .shortAndLong, help: "The key type (ed25519, the only one).") var type = "ed25519"
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let k = try backend(purpose: "key gen").generateKey(name, type: type)
            if json { try Output.json(k); return }
            print(k.id)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "The keys: `<id> <name>` with -l, else names.")
        @Flag(name: .short, help: "Show each key's IPNS name too.") var long = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let keys = try backend(purpose: "key ls").keys()
            if json { try Output.json(keys); return }
            for k in keys.keys { print(long ? "\(k.id) \(k.name)" : k.name) }
        }
    }

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a key: prints `Key <id> renamed to <new>`.")
        @Argument(help: "The key's name.") var name: String
        @Argument(help: "Its new name.") var newName: String
        @Flag(name: .shortAndLong, help: "Replace a key already called NEW-NAME.") var force = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let r = try backend(purpose: "key rename").renameKey(name, to: newName, force: force)
            if json { try Output.json(r); return }
            print("Key \(r.id) renamed to \(r.now)" + (r.overwrite ? " (replacing the key of that name)" : ""))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove keys: prints each one's IPNS name.")
        @Argument(help: "Key names.") var names: [String]
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let removed = try backend(purpose: "key rm").removeKeys(names)
            if json { try Output.json(removed); return }
            for k in removed.keys { print(k.id) }
        }
    }
}
