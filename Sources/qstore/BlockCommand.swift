import ArgumentParser
import Foundation
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
        @Argument(help: "Files to store (default: standard input).") var files: [String] = []

        func run() throws {
            let repo = try openRepository(purpose: "block put")
            let codec = try multicodec(cidCodec, what: "codec")
            let hash = try multicodec(mhtype, what: "hash function")
            for file in files.isEmpty ? ["-"] : files {
                let data = try Output.readInput(file)
                let block = try reporting("block put") {
                    try Block(data: data, codec: codec, hash: hash, hashLength: mhlen < 0 ? nil : mhlen)
                }
                try reporting("block put") { try repo.blocks.put(block) }
                if json { try Output.json(["Key": block.cid.string, "Size": data.count] as [String: Any]) } else { print(block.cid.string) }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a block's bytes to standard output.")
        @Argument(help: "The block's CID.") var cid: String
        func run() throws {
            let c = try parseCID(cid)
            let repo = try openRepository(purpose: "block get")
            guard let data = try reporting("block get", { try repo.blocks.get(c) }) else { throw CLIError("block \(c) not found") }
            Output.bytes(data)
        }
    }

    struct Stat: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a block's CID and size.")
        @Flag(help: "Print JSON.") var json = false
        @Argument(help: "The block's CID.") var cid: String
        func run() throws {
            let c = try parseCID(cid)
            let repo = try openRepository(purpose: "block stat")
            guard let size = try reporting("block stat", { try repo.blocks.size(c) }) else { throw CLIError("block \(c) not found") }
            if json { try Output.json(["Key": c.string, "Size": size] as [String: Any]) } else { print("Key: \(c.string)\nSize: \(size)") }
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
            let repo = try openRepository(purpose: "block rm")
            var failed = false
            for c in parsed {
                let removed = try reporting("block rm") { try repo.blocks.delete(c) }
                if removed {
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
