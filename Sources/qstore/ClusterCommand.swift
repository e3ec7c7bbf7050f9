import ArgumentParser
import Foundation
import Replication

/// `qstore cluster`: the cluster of the running daemon (Docs/cluster.md).
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "A Qstore cluster coordinated by etcd: peers, pins with a replication factor, status, recover, drain.",
        discussion: """
            Goes through the running daemon, which joined the cluster (`qstore daemon --cluster etcd=http://HOST:2379`). \
            A cluster pin is held by rmin to rmax nodes, spread over zones (tag zone=…), chosen by the allocator (one \
            node at a time); each node pulls what it must hold from the peers' gateways, every block checked. A node \
            gone for cluster.repairGrace (5m) has its pins moved, a few at a time. When etcd is unreachable these \
            commands answer SERVICE_UNAVAILABLE and the node goes on serving its own reads and writes.
            """,
        subcommands: [Peers.self, PinGroup.self, Status.self, Recover.self, Drain.self])

    struct Options: ParsableArguments {
        @Flag(help: "Print JSON.") var json = false
    }

    static func remote() throws -> RemoteBackend {
        guard let r = try backend(purpose: "cluster") as? RemoteBackend else {
            throw CLIError("cluster commands go through the running daemon: start it with --cluster etcd=http://HOST:2379")
        }
        return r
    }

    struct Peers: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The members: id, state (up, draining, down), free space, zone, gateway; * marks the allocator.")
        @OptionGroup var options: Options
        func run() throws {
            let peers = try remote().q([ClusterPeer].self, "GET", "cluster/peers")
            if options.json { try Output.json(peers); return }
            for p in peers {
                let free = ByteCountFormatter.string(fromByteCount: Int64(clamping: p.freeBytes), countStyle: .binary)
                print("\(p.id)\(p.allocator ? " *" : "")\t\(p.state)\t\(free) free\t\(p.tags["zone"].map { "zone=\($0)" } ?? "-")\t\(p.gateway)")
            }
        }
    }

    struct PinGroup: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pin", abstract: "Add or remove cluster pins.", subcommands: [Add.self, Remove.self])

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Pin CID on the cluster: held by rmin to rmax nodes (defaults: the policy's replicationFactor, else cluster.replicationMin/Max).")
            @Argument var cid: String
            @Option(help: "At least this many copies (when that many nodes are up).") var rmin: Int?
            @Option(help: "At most this many copies.") var rmax: Int?
            @Option(help: "A name for the pin.") var name: String?
            @Option(help: "The pinning policy (resource type) each copy is pinned under; its replicationFactor is the number of copies unless --rmin/--rmax say otherwise.") var policy: String?
            @OptionGroup var options: Options
            func run() throws {
                let body = try JSONEncoder().encode(PinBody(cid: cid, name: name, rmin: rmin, rmax: rmax, policy: policy))
                let pin = try remote().q(ClusterPin.self, "POST", "cluster/pins", body: body, contentType: "application/json")
                if options.json { try Output.json(pin) } else { print("pinned \(pin.cid) on the cluster: \(pin.rmin) to \(pin.rmax) copies") }
            }
        }

        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "rm", abstract: "Unpin CID everywhere (each node's GC collects it).")
            @Argument var cid: String
            func run() throws {
                _ = try remote().q([String: String].self, "DELETE", "cluster/pins/" + cid)
                print("unpinned \(cid) from the cluster")
            }
        }
    }

    struct PinBody: Codable {
        var cid: String
        var name: String?
        var rmin: Int?
        var rmax: Int?
        var policy: String?
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each cluster pin (or CID's) copies: node → queued, pinning, pinned or failed (--json: rmin, rmax, allocations, status, errors).")
        @Argument var cid: String?
        @OptionGroup var options: Options
        func run() throws {
            let r = try remote()
            if options.json && cid == nil {
                // The node's JSON as it sent it: a listing of 100k pins is 11 MB, slower to decode and
                // encode again than to fetch.
                Output.bytes([UInt8](try r.qRaw("GET", "cluster/pins")) + [0x0a])
                return
            }
            let states = try cid.map { [try r.q(ClusterPinState.self, "GET", "cluster/pins/" + $0)] } ?? r.q([ClusterPinState].self, "GET", "cluster/pins")
            if options.json { try Output.json(states); return }
            for s in states {
                let copies = s.status.values.filter { $0 == "pinned" }.count
                print("\(s.cid)\(s.name.map { " (\($0))" } ?? "")\t\(copies)/\(s.rmin)-\(s.rmax) pinned")
                for n in s.allocations { print("  \(n)\t\(s.status[n] ?? "queued")\(s.errors?[n].map { "\t\($0)" } ?? "")") }
            }
        }
    }

    struct Recover: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Try the failed copies of CID again.")
        @Argument var cid: String
        @OptionGroup var options: Options
        func run() throws {
            let s = try remote().q(ClusterPinState.self, "POST", "cluster/pins/\(cid)/recover")
            if options.json { try Output.json(s) } else { print("recovering \(s.cid) on \(s.allocations.joined(separator: ", "))") }
        }
    }

    struct Drain: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move NODE's pins to others before maintenance (it keeps its copies until they hold them); --cancel undoes it.")
        @Argument var node: String
        @Flag(help: "Stop draining NODE.") var cancel = false
        func run() throws {
            _ = try remote().q([String: String].self, "POST", "cluster/drain/" + node, cancel ? [("cancel", "true")] : [])
            print(cancel ? "\(node) no longer draining" : "draining \(node)")
        }
    }
}
