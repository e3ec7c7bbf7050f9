import ArgumentParser
import Foundation
import Multiformats

/// `qstore hash`: the CID (or multihash) of data, streamed.
struct HashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Compute the CID of a file's bytes as one block (like `block put --only-hash`).",
        discussion: "Reads the file in 1 MiB pieces, so any size works in constant memory."
    )

    @Option(help: "Multihash function (see `qstore cid hashes`).") var mhtype = "sha2-256"
    @Option(help: "Truncate the digest to this many bytes.") var mhlen: Int?
    @Option(help: "Codec for the CID.") var cidCodec = "raw"
    @Option(help: "CID version: 0 (dag-pb, sha2-256 only) or 1.") var cidVersion = 1
    @Flag(help: "Print the multihash in hex instead of a CID.") var multihash = false
    @Argument(help: "The file (\"-\" or nothing: standard input).") var file: String?

    func run() throws {
        let function = try multicodec(mhtype, what: "hash function")
        guard let hf = HashFunction.lookup(function) else { throw CLIError("hash function \(mhtype) is not supported") }
        let handle: FileHandle
        if let file, file != "-" {
            guard let h = FileHandle(forReadingAtPath: file) else { throw CLIError("cannot read \(file)") }
            handle = h
        } else {
            handle = FileHandle.standardInput
        }
        var hasher = hf.makeHasher()
        var total = 0
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            total += chunk.count
            if function == .identity && total > Multihash.maximumIdentityDigestLength {
                throw CLIError("identity hashes are limited to \(Multihash.maximumIdentityDigestLength) bytes")
            }
            chunk.withUnsafeBytes { hasher.update($0) }
        }
        var digest = hasher.finalize()
        if let mhlen {
            guard mhlen > 0 && mhlen <= digest.count else { throw CLIError("--mhlen must be between 1 and \(digest.count)") }
            digest = Array(digest.prefix(mhlen))
        }
        let mh = Multihash(code: function, digest: digest)
        if multihash { print(mh.hex); return }
        let codec = try multicodec(cidCodec, what: "codec")
        switch cidVersion {
        case 0:
            guard codec == .dagPB else { throw CLIError("a CIDv0 is always dag-pb; use --cid-codec dag-pb or --cid-version 1") }
            do { print(try CID(v0: mh).string) } catch { throw CLIError("\(error)") }
        case 1: print(CID(codec: codec, multihash: mh).string)
        default: throw CLIError("--cid-version must be 0 or 1")
        }
    }
}

/// `qstore multibase`: encode and decode multibase text.
struct MultibaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "multibase", abstract: "Encode standard input in a multibase, or decode multibase text.",
        subcommands: [Encode.self, Decode.self])

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encode standard input (or a file).")
        @Option(name: [.short, .long], help: "The multibase (see `qstore cid bases`).") var base = "base32"
        @Argument(help: "The file (default: standard input).") var file: String?
        func run() throws {
            guard let b = Multibase(rawValue: base) else { throw CLIError("unknown multibase \(base)") }
            print(b.encode(try Output.readInput(file)))
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decode multibase text to bytes on standard output.")
        @Argument(help: "The multibase text (default: read standard input).") var text: String?
        func run() throws {
            let input = try text ?? String(decoding: Output.readInput(nil), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            do { Output.bytes(try Multibase.decode(input).bytes) } catch { throw CLIError("\(error)") }
        }
    }
}
