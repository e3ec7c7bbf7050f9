import ArgumentParser
import Foundation
import Multiformats

/// `qstore cid`: parse, inspect and convert CIDs.
struct CIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cid",
        abstract: "Inspect and convert CIDs.",
        subcommands: [Format.self, Inspect.self, Codecs.self, Bases.self, Hashes.self]
    )

    struct Format: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print CIDs in another version or multibase.")
        @Option(name: [.short, .customLong("base")], help: "Multibase for the output (default: base32 for v1, base58btc for v0).")
        var base: String?
        @Option(name: [.customShort("v"), .customLong("version")], help: "CID version for the output: 0 or 1.")
        var cidVersion: Int?
        @Argument(help: "CIDs to convert.") var cids: [String]

        func run() throws {
            for text in cids {
                var cid = try parseCID(text)
                switch cidVersion {
                case nil: break
                case 0: cid = try cid.toV0()
                case 1: cid = cid.toV1()
                default: throw CLIError("--version must be 0 or 1")
                }
                guard let base else { print(cid.string); continue }
                guard let mb = Multibase(rawValue: base) else { throw CLIError("unknown multibase \(base) (see `qstore cid bases`)") }
                print(try cid.string(base: mb))
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the parts of CIDs: version, codec, multihash.")
        @Flag(help: "Print JSON.") var json = false
        @Argument(help: "CIDs to inspect.") var cids: [String]

        func run() throws {
            for text in cids {
                let cid = try parseCID(text)
                let info: [String: Any] = [
                    "cid": cid.string, "version": cid.version, "codec": cid.codec.name, "codecCode": cid.codec.code,
                    "multihash": ["code": cid.multihash.code.code, "name": cid.multihash.code.name,
                                  "length": cid.multihash.digestLength, "digest": Base16.encode(cid.multihash.digest)],
                    "v1": cid.toV1().string, "bytes": Base16.encode(cid.bytes),
                ]
                if json { try Output.json(info); continue }
                print("\(cid.string)\n  version: \(cid.version)\n  codec: \(cid.codec.name) (0x\(String(cid.codec.code, radix: 16)))")
                print("  multihash: \(cid.multihash.code.name), \(cid.multihash.digestLength) bytes, \(Base16.encode(cid.multihash.digest))")
                if cid.version == 0 { print("  v1: \(cid.toV1().string)") }
            }
        }
    }

    struct Codecs: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the multicodec table (optionally one tag).")
        @Option(help: "Only rows with this tag, e.g. ipld or multihash.") var tag: String?
        func run() {
            for e in Multicodec.table where tag == nil || e.tag == tag {
                print("\(e.name)\t\(e.tag)\t0x\(String(e.code, radix: 16))\t\(e.status)")
            }
        }
    }

    struct Bases: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the multibase encodings and their prefixes.")
        func run() { for b in Multibase.allCases { print("\(b.prefix)\t\(b.rawValue)") } }
    }

    struct Hashes: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the multihash functions qstore computes.")
        func run() { for f in HashFunction.all { print("\(f.code.name)\t0x\(String(f.code.code, radix: 16))\t\(f.digestLength)") } }
    }
}

/// Parses a CID argument with a message that names it.
func parseCID(_ text: String) throws -> CID {
    do { return try CID(text) } catch { throw CLIError("invalid CID \"\(text)\": \(error)") }
}

/// `<cid>[/path]` (an `/ipfs/` prefix allowed) as a CID and path segments.
func parseRef(_ text: String) throws -> (cid: CID, path: [String]) {
    var parts = text.split(separator: "/").map(String.init)
    if parts.first == "ipfs" { parts.removeFirst() }
    guard let first = parts.first else { throw CLIError("expected <cid>[/path]") }
    return (try parseCID(first), Array(parts.dropFirst()))
}

/// The multicodec for a name from the command line (a table name or a 0x code).
func multicodec(_ name: String, what: String) throws -> Multicodec {
    if name.hasPrefix("0x"), let v = UInt64(name.dropFirst(2), radix: 16) { return Multicodec(v) }
    guard let m = Multicodec(name: name) else { throw CLIError("unknown \(what) \"\(name)\"") }
    return m
}
