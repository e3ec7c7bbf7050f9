import ArgumentParser
import Foundation
import IPLD
import Multiformats

/// `qstore dag`: IPLD codec work that needs no repository.
struct DagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dag", abstract: "Convert and check IPLD blocks (raw, dag-pb, dag-cbor, dag-json).",
        subcommands: [Convert.self, Validate.self, Links.self])

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
