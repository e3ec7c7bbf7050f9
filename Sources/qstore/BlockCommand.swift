import ArgumentParser
import Foundation
import KuboAPI
import IPLD
import Multiformats
import Storage

/// `qstore block`: raw blocks in the repository (Kubo's `ipfs block`).
struct BlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "block", abstract: "Put, get, stat and remove raw blocks.",
        subcommands: [Put.self, Get.self, Stat.self, Remove.self])

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store the bytes of each file (or standard input) as one block; print its CID.",
            discussion: "Blocks of a codec with links (dag-pb, dag-cbor, dag-json) must parse, so their links can be recorded. The maximum block size is 2 MiB unless configured otherwise.")
        @Option(help: "Codec of the CID.") var cidCodec = "raw"
        @Option(help: "Multihash function.") var mhtype = "sha2-256"
        @Option(help: "Multihash length in bytes (-1: the function's full length).") var mhlen = -1
        @Flag(help: "Print JSON ({\"Key\", \"Size\"}) per block.") var json = false
        @Option(help: "Pin each block recursively (Kubo's default: false).") var pin = false
        @Argument(help: "Files to store (default: standard input).") var files: [String] = []

        func run() throws {
            _ = try multicodec(cidCodec, what: "codec")
            _ = try multicodec(mhtype, what: "hash function")
            let store = try backend(purpose: "block put")
            for file in files.isEmpty ? ["-"] : files {
                let data = try Output.readInput(file)
                let put = try store.putBlock(data, codec: cidCodec, mhtype: mhtype, mhlen: mhlen, pin: pin)
                if json { try Output.json(put) } else { print(put.key) }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a block's bytes to standard output.")
        @Argument(help: "The block's CID.") var cid: String
        func run() throws {
            let c = try parseCID(cid)
            Output.bytes(try backend(purpose: "block get").getBlock(c))
        }
    }

    struct Stat: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a block's CID and size.")
        @Flag(help: "Print JSON.") var json = false
        @Argument(help: "The block's CID.") var cid: String
        func run() throws {
            let c = try parseCID(cid)
            let stat = try backend(purpose: "block stat").statBlock(c)
            if json { try Output.json(stat) } else { print("Key: \(stat.key)\nSize: \(stat.size)") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove blocks (by multihash: under every codec).")
        @Flag(name: .shortAndLong, help: "Ignore blocks that are not present.") var force = false
        @Flag(name: .shortAndLong, help: "Print nothing on success.") var quiet = false
        @Argument(help: "CIDs of the blocks.") var cids: [String]
        func run() throws {
            let parsed = try cids.map(parseCID)
            let store = try backend(purpose: "block rm")
            var failed = false
            for c in parsed {
                let removal = try store.removeBlock(c)
                if removal.error.hasPrefix("pinned") { throw CLIError("block rm: \(c): \(removal.error)") }
                if removal.error.isEmpty {
                    if !quiet { print("removed \(c.string)") }
                } else if !force {
                    FileHandle.standardError.write(Data("cannot remove \(c.string): block not found\n".utf8))
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
