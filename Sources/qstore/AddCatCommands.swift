import ArgumentParser
import CAR
import Foundation
import KuboAPI
import Multiformats
import Node
import Storage
import UnixFS

/// `qstore add`: import files as UnixFS DAGs, CIDs identical to `ipfs add` for the same settings.
struct AddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Import files and directories as UnixFS, printing `added <cid> <name>`.",
        discussion: "Defaults are Kubo's: 256 KiB chunks, balanced layout (174 links), CIDv0; --cid-version 1 implies raw leaves; CIDs are those `ipfs add` gives for the same settings. Streams: memory stays flat whatever the file size. Goes through the daemon when one runs. Directories past 256 KiB of links become HAMT-sharded, as in Kubo. What is added is pinned recursively (the wrapping directory, else each top-level entry) unless --pin=false.")

    @Option(help: "CID version: 0 or 1 (1 implies --raw-leaves).") var cidVersion = 0
    @Option(help: "Leaves as raw blocks (default: true with CIDv1).") var rawLeaves: Bool?
    @Option(help: "Chunker, as Kubo: size-N (default size-262144, N ≤ 1 MiB), rabin, rabin-AVG, rabin-MIN-AVG-MAX (min ≥ 16, max ≤ 1 MiB), buzhash.") var chunker: String?
    @Option(help: "Multihash function.") var hash = "sha2-256"
    @Flag(name: .shortAndLong, help: "Print only the hash of each file.") var quiet = false
    @Flag(name: [.customShort("Q"), .long], help: "Print only the final hash (the root: the wrapping directory, else the last argument's).") var quieter = false
    @Flag(name: [.customShort("p"), .long], help: "Show progress (the default on a terminal; accepted for Kubo's scripts).") var progress = false
    @Flag(name: [.customShort("n"), .long], help: "Compute CIDs without storing anything.") var onlyHash = false
    @Flag(name: .shortAndLong, help: "Add directories recursively.") var recursive = false
    @Flag(name: [.customShort("t"), .long], help: "Use the trickle layout instead of the balanced one.") var trickle = false
    @Flag(help: "Give blocks of at most --inline-limit bytes identity CIDs (data inside the CID).") var inline = false
    @Option(help: "Largest block to inline with --inline.") var inlineLimit = 32
    @Flag(help: "Do not show progress on a terminal.") var noProgress = false
    @Flag(name: [.customShort("w"), .long], help: "Wrap the files in a directory.") var wrapWithDirectory = false
    @Flag(name: [.customShort("H"), .long], help: "Include files whose names start with \".\".") var hidden = false
    @Option(help: "Pin what is added (recursively).") var pin = true
    @Option(help: "Name the pins.") var pinName: String?
    @Argument(help: "Files (\"-\": standard input).") var files: [String]

    func run() throws {
        // Where `added` lines go: all of them, only hashes (`-q`), or only the last hash at the end (`-Q`).
        let output = AddOutput(quiet: quiet, quieter: quieter)
        var options = ImportOptions()
        guard cidVersion == 0 || cidVersion == 1 else { throw CLIError("--cid-version must be 0 or 1") }
        options.cidVersion = cidVersion
        options.rawLeaves = rawLeaves
        options.hash = try multicodec(hash, what: "hash function")
        if options.hash != .sha2_256 && cidVersion == 0 { options.cidVersion = 1 }  // as Kubo: another hash implies CIDv1
        do { try options.chunker(chunker) } catch { throw CLIError("\(error)") }
        options.onlyHash = onlyHash
        options.trickle = trickle
        if inline {
            guard (0...Block.maximumIdentityLength).contains(inlineLimit) else { throw CLIError("--inline-limit must be from 0 to \(Block.maximumIdentityLength)") }
            options.inlineLimit = inlineLimit
        }
        if !recursive, let dir = files.first(where: isDirectory) { throw CLIError("\(dir) is a directory: use -r") }
        if onlyHash {
            // Nothing is stored: hashed in this process, no repository needed.
            var settings = AddSession.Options()
            settings.importing = options
            settings.wrap = wrapWithDirectory
            settings.includeHidden = hidden
            let session = AddSession.hashOnly(settings) { event in
                if case .added(let name, let cid, _) = event { output.added(cid.string, name) }
            }
            try addPaths(files, to: session, progress: !noProgress)
        } else {
            try backend(purpose: "add").add(files, options: options, wrap: wrapWithDirectory, hidden: hidden, pin: pin ? PinOption(name: pinName) : nil) { line in
                output.added(line.hash ?? "", line.name)
            }
        }
        output.finish()
    }
}

/// The `added` lines of one `qstore add` run.
final class AddOutput {
    private let quiet: Bool
    private let quieter: Bool
    private var last: String?

    init(quiet: Bool, quieter: Bool) {
        self.quiet = quiet
        self.quieter = quieter
    }

    /// One entry added ("-", standard input, is shown by its CID, as Kubo does).
    func added(_ cid: String, _ name: String) {
        if quieter { last = cid } else { print(quiet ? cid : "added \(cid) \(name == "-" ? cid : name)") }
    }

    /// With `-Q`, the one line: the last hash added.
    func finish() {
        if quieter, let last { print(last) }
        last = nil
    }
}

/// `qstore cat`: a UnixFS file's bytes (or a byte range of them).
struct CatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat", abstract: "Write a UnixFS file (or a range of it) to standard output.")
    @Option(name: [.customShort("o"), .long], help: "Byte offset to start at.") var offset: UInt64 = 0
    @Option(name: [.customShort("l"), .long], help: "Most bytes to write.") var length: UInt64?
    @Argument(help: "<cid>[/path] of the file.") var cid: String

    func run() throws {
        let (root, path) = try parseRef(cid)
        try backend(purpose: "cat").cat(root, path: path, offset: offset, length: length)
    }
}

/// `qstore ls`: a directory's entries, as `ipfs ls` prints them.
struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List a UnixFS directory: CID, size and name per entry (directories end with /).")
    @Flag(help: "Print JSON (Kubo's Objects/Links shape).") var json = false
    @Argument(help: "<cid>[/path] of the directory.") var ref: String

    func run() throws {
        let (root, path) = try parseRef(ref)
        var listing = try backend(purpose: "ls").list(root, path: path)
        if json {
            for i in listing.objects.indices { listing.objects[i].hash = ref }
            try Output.json(listing)
            return
        }
        for e in listing.objects.flatMap(\.links) { print("\(e.hash) \(e.type == 1 ? "-" : String(e.size)) \(e.name)\(e.type == 1 ? "/" : "")") }
    }
}

/// `qstore get`: a file or directory tree out of the repository, onto disk (or as tar).
struct GetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Write a UnixFS file or directory to disk (default: ./<name>), or as a tar stream with --archive.",
        discussion: "Entry names that would escape the output directory (.., /) are refused.")
    @Option(name: [.customShort("o"), .long], help: "Output path (\"-\" with --archive: standard output).") var output: String?
    @Flag(name: [.customShort("a"), .long], help: "Write a tar archive instead of files.") var archive = false
    @Argument(help: "<cid>[/path] to get.") var ref: String

    func run() throws {
        let (cid, path) = try parseRef(ref)
        let name = path.last ?? cid.string
        let store = try backend(purpose: "get")
        if archive {
            let sink: FileHandle
            if output == nil || output == "-" { sink = .standardOutput } else {
                _ = FileManager.default.createFile(atPath: output!, contents: nil)
                sink = try FileHandle(forWritingTo: URL(fileURLWithPath: output!))
            }
            try store.tar(cid, path: path, name: name) { sink.write(Data($0)) }
            return
        }
        // Unpack the tar stream (the one mechanism both backends share) onto disk.
        let target = output ?? name
        var unpacker = TarUnpacker(destination: target)
        try store.tar(cid, path: path, name: name) { try unpacker.feed($0) }
        print("Saving file(s) to \(target)")
    }
}

/// Unpacks the ustar stream `tar` writes into a destination path (files, directories, symlinks).
struct TarUnpacker {
    let destination: String
    private var buffer: [UInt8] = []
    private var remaining: UInt64 = 0
    private var padding = 0
    private var file: FileHandle?
    private var longName: String?
    private var topName: String?

    init(destination: String) { self.destination = destination }

    mutating func feed(_ bytes: [UInt8]) throws {
        buffer += bytes
        while true {
            if remaining > 0 {
                let n = Int(min(UInt64(buffer.count), remaining))
                if n == 0 { return }
                file?.write(Data(buffer[0..<n]))
                buffer.removeFirst(n)
                remaining -= UInt64(n)
                if remaining == 0 { try file?.close(); file = nil }
                continue
            }
            if padding > 0 {
                let n = min(buffer.count, padding)
                if n == 0 { return }
                buffer.removeFirst(n)
                padding -= n
                continue
            }
            guard buffer.count >= 512 else { return }
            let h = Array(buffer[0..<512])
            buffer.removeFirst(512)
            if h.allSatisfy({ $0 == 0 }) { continue }
            func field(_ at: Int, _ len: Int) -> String { String(decoding: h[at..<at + len].prefix { $0 != 0 }, as: UTF8.self) }
            let size = UInt64(field(124, 12).trimmingCharacters(in: .whitespaces), radix: 8) ?? 0
            let type = h[156]
            var name = longName ?? field(0, 100)
            longName = nil
            if type == UInt8(ascii: "L") {
                // The next `size` bytes are the real name of the following entry.
                while buffer.count < Int(size) + Int((512 - size % 512) % 512) { return try pushBack(h) }
                longName = String(decoding: buffer[0..<Int(size)].prefix { $0 != 0 }, as: UTF8.self)
                buffer.removeFirst(Int(size) + Int((512 - size % 512) % 512))
                continue
            }
            if name.hasSuffix("/") { name.removeLast() }
            let components = name.split(separator: "/").map(String.init)
            guard let top = components.first, !components.contains(".."), !name.hasPrefix("/") else { throw CLIError("refusing unsafe path \(name) in the archive") }
            if topName == nil { topName = top }
            let local = destination + "/" + components.dropFirst().joined(separator: "/")
            let path = components.count == 1 ? destination : local
            switch type {
            case UInt8(ascii: "5"):
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            case UInt8(ascii: "2"):
                try? FileManager.default.removeItem(atPath: path)
                try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: field(157, 100))
            default:
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                remaining = size
                padding = Int((512 - size % 512) % 512)
                if size == 0 { try file?.close(); file = nil }
            }
        }
    }

    /// Puts a header back when the long-name body has not fully arrived yet.
    private mutating func pushBack(_ header: [UInt8]) throws {
        buffer = header + buffer
    }
}

/// A progress bar on a terminal for the bytes read through a source (large adds only).
func progressSource<Inner: ByteSource>(_ inner: Inner, label: String, total: UInt64?, enabled: Bool) -> ObservedSource<Inner> {
    nonisolated(unsafe) var progress = Progress(label, total: total, enabled: enabled && (total ?? 0) > 8 << 20)
    return ObservedSource(inner, every: 1 << 20) { bytes, atEnd in
        progress.update(bytes: bytes, items: 0)
        if atEnd { progress.finish() }
    }
}
