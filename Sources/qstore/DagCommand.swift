import ArgumentParser
import CAR
import Foundation
import KuboAPI
import IPLD
import Multiformats
import Storage

/// `qstore dag`: IPLD codec work that needs no repository.
struct DagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dag", abstract: "Store, read, export and import IPLD DAGs; convert and check blocks.",
        subcommands: [Put.self, Get.self, Export.self, Import.self, Convert.self, Validate.self, Links.self])

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Parse a value from standard input (or files) and store it as a block; print its CID.",
            discussion: "dag-json input is read leniently (whitespace, any key order); it is stored canonically in the store codec.")
        @Option(help: "Codec of the input.") var inputCodec = "dag-json"
        @Option(help: "Codec to store the block in.") var storeCodec = "dag-cbor"
        @Option(help: "Multihash function.") var hash = "sha2-256"
        @Flag(help: "Print JSON ({\"Cid\": {\"/\": …}}).") var json = false
        @Option(help: "Pin each value recursively (Kubo's default: false); when its children are not all stored yet, the pin is queued and completes when they arrive.") var pin = false
        @Argument(help: "Files (default: standard input).") var files: [String] = []

        func run() throws {
            _ = try codec(inputCodec, lenient: true)
            _ = try codec(storeCodec, lenient: false)
            _ = try multicodec(hash, what: "hash function")
            let store = try backend(purpose: "dag put")
            for file in files.isEmpty ? ["-"] : files {
                let put = try store.putDAG(try Output.readInput(file), input: inputCodec, store: storeCodec, hash: hash, pin: pin)
                if json { try Output.json(put) } else { print(put.cid.cid) }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the value at <cid>[/path], following links across blocks.")
        @Option(help: "Codec to print in.") var outputCodec = "dag-json"
        @Argument(help: "<cid>[/path/to/value]") var ref: String

        func run() throws {
            let (root, path) = try parseRef(ref)
            let out = try codec(outputCodec, lenient: false)
            Output.bytes(try backend(purpose: "dag get").getDAG(root, path: path, output: outputCodec))
            if out.code == .dagJSON && Output.stdoutIsTerminal { print() }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the whole DAG under a CID as a CARv1 to standard output.",
            discussion: "Depth first, each block once, as `ipfs dag export`. Fails if any block is missing. Progress on a terminal.")
        @Flag(help: "Do not show progress.") var noProgress = false
        @Argument(help: "The root CID.") var cid: String

        func run() throws {
            let root = try parseCID(cid)
            try backend(purpose: "dag export").exportDAG(root, progress: !noProgress)
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store every block of CAR files (v1 or v2), verifying each; print their roots.",
            discussion: "Streams each file in atomic batches of about 3 MiB, written while the next is read, so memory stays flat. \"-\" reads standard input.")
        @Flag(help: "Print JSON lines as Kubo does ({\"Root\": …} and, with --stats, {\"Stats\": …}).") var json = false
        @Flag(help: "Print block count and bytes.") var stats = false
        @Option(help: "Pin each root recursively (Kubo's --pin-roots).") var pinRoots = true
        @Argument(help: "CAR files.") var files: [String]

        func run() throws {
            let store = try backend(purpose: "dag import")
            var blocks = 0
            var bytes: UInt64 = 0
            for file in files {
                for event in try store.importCAR(file, progress: !json, pinRoots: pinRoots) {
                    if let s = event.stats {
                        blocks += s.blockCount
                        bytes += s.blockBytesCount
                    }
                    guard let r = event.root else { continue }
                    if json { try Output.json(DAGImportEvent(root: r)) } else {
                        print(r.pinErrorMsg.isEmpty ? "root \(r.cid.cid) pinned" : "root \(r.cid.cid) not pinned: \(r.pinErrorMsg)")
                    }
                }
            }
            if stats {
                if json { try Output.json(DAGImportEvent(stats: .init(blockCount: blocks, blockBytesCount: bytes))) } else {
                    print("imported \(blocks) blocks, \(ByteCount.format(bytes))")
                }
            }
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode a block from standard input and write it in another codec.",
            discussion: "Prints the encoded block on standard output and, with --print-cid, its CIDv1 on standard error. dag-json input is read leniently (whitespace, any key order); everything else strictly.")
        @Option(help: "Codec of the input.") var inputCodec = "dag-json"
        @Option(help: "Codec of the output.") var outputCodec = "dag-cbor"
        @Option(help: "Hash function for --print-cid.") var hash = "sha2-256"
        @Flag(help: "Print the output block's CID on standard error.") var printCID = false
        @Argument(help: "The input file (default: standard input).") var file: String?

        func run() throws {
            let input = try codec(inputCodec, lenient: true)
            let output = try codec(outputCodec, lenient: false)
            let node: IPLDNode
            do { node = try input.decode(try Output.readInput(file)) } catch { throw CLIError("cannot decode \(inputCodec): \(error)") }
            let bytes: [UInt8]
            do { bytes = try output.encode(node) } catch { throw CLIError("cannot encode \(outputCodec): \(error)") }
            Output.bytes(bytes)
            if printCID {
                let mh = try Multihash.compute(bytes, function: try multicodec(hash, what: "hash function"))
                FileHandle.standardError.write(Data((CID(codec: output.code, multihash: mh).string + "\n").utf8))
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check that a block is the canonical encoding of its codec (and matches a CID when given).")
        @Option(help: "Codec of the block (taken from --cid when given).") var codec: String = "dag-cbor"
        @Option(help: "The CID the block must hash to.") var cid: String?
        @Argument(help: "The block file (default: standard input).") var file: String?

        func run() throws {
            let bytes = try Output.readInput(file)
            var code = try multicodec(codec, what: "codec")
            if let cid {
                let c = try parseCID(cid)
                code = c.codec
                guard try c.multihash.verify(bytes) else { throw CLIError("the block does not hash to \(c)") }
            }
            do { _ = try Codecs.codec(for: code).decode(bytes) } catch { throw CLIError("invalid \(code.name): \(error)") }
            print("ok")
        }
    }

    struct Links: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the links (CIDs) in a block.")
        @Option(help: "Codec of the block.") var codec: String = "dag-cbor"
        @Argument(help: "The block file (default: standard input).") var file: String?
        func run() throws {
            let code = try multicodec(codec, what: "codec")
            do { for l in try IPLD.Codecs.links(in: try Output.readInput(file), codec: code) { print(l.string) } } catch let e as CLIError { throw e } catch {
                throw CLIError("invalid \(code.name): \(error)")
            }
        }
    }
}

/// The codec for a command-line name; dag-json input is read leniently.
func codec(_ name: String, lenient: Bool) throws -> any IPLDCodec {
    let code = try multicodec(name, what: "codec")
    if code == .dagJSON && lenient { return DAGJSON(strict: false) }
    do { return try Codecs.codec(for: code) } catch { throw CLIError("\(error)") }
}
