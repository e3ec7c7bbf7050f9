import ArgumentParser
import CAR
import Foundation
import Multiformats
import Storage
import UnixFS

/// `qstore add`: import files as UnixFS DAGs, CIDs identical to `ipfs add` for the same settings.
struct AddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Import files as UnixFS (fixed-size chunks, balanced layout), printing `added <cid> <name>`.",
        discussion: "Defaults are Kubo's: 256 KiB chunks, balanced layout (174 links), CIDv0; --cid-version 1 implies raw leaves. Streams: memory stays flat whatever the file size. Goes through the daemon when one runs. Directories (-r), content-defined chunkers (rabin, buzhash) and the trickle layout are not in this build yet.")

    @Option(help: "CID version: 0 or 1 (1 implies --raw-leaves).") var cidVersion = 0
    @Option(help: "Leaves as raw blocks (default: true with CIDv1).") var rawLeaves: Bool?
    @Option(help: "Chunker: size-N (default size-262144).") var chunker: String?
    @Option(help: "Multihash function.") var hash = "sha2-256"
    @Flag(name: .shortAndLong, help: "Print only the hash of each file.") var quiet = false
    @Flag(name: [.customShort("n"), .long], help: "Compute CIDs without storing anything.") var onlyHash = false
    @Flag(name: .shortAndLong, help: "Add directories recursively.") var recursive = false
    @Flag(name: [.customShort("w"), .long], help: "Wrap the files in a directory.") var wrapWithDirectory = false
    @Flag(name: [.customShort("H"), .long], help: "Include files whose names start with \".\".") var hidden = false
    @Argument(help: "Files (\"-\": standard input).") var files: [String]

    func run() throws {
        var options = ImportOptions()
        guard cidVersion == 0 || cidVersion == 1 else { throw CLIError("--cid-version must be 0 or 1") }
        options.cidVersion = cidVersion
        options.rawLeaves = rawLeaves
        options.hash = try multicodec(hash, what: "hash function")
        if options.hash != .sha2_256 && cidVersion == 0 { options.cidVersion = 1 }  // as Kubo: another hash implies CIDv1
        do { try options.chunker(chunker) } catch { throw CLIError("\(error)") }
        options.onlyHash = onlyHash
        let isDirectory = files.contains { f in var d: ObjCBool = false; return FileManager.default.fileExists(atPath: f, isDirectory: &d) && d.boolValue }
        if isDirectory && !recursive { throw CLIError("\(files.first { f in var d: ObjCBool = false; return FileManager.default.fileExists(atPath: f, isDirectory: &d) && d.boolValue }!) is a directory: use -r") }
        if recursive || wrapWithDirectory {
            // Trees are imported in this process (the daemon's /api/v0/add takes files).
            try addTrees(options)
            return
        }
        if onlyHash {
            for file in files {
                let f = try reporting(file) { () throws -> ImportedFile in
                    let source = file == "-" ? FileSource(descriptor: 0) : try FileSource(path: file)
                    return try FileImporter(options: options) { _ in }.importFile(source)
                }
                report(f.cid.string, file)
            }
            return
        }
        let store = try backend(purpose: "add")
        for file in files { report(try store.addFile(file, options: options).cid, file) }
    }

    /// `-r` and `-w`: directories from disk, printing every file and directory as Kubo does.
    private func addTrees(_ options: ImportOptions) throws {
        let repo = options.onlyHash ? nil : try openRepository(purpose: "add")
        var pending: [Block] = []
        var pendingBytes = 0
        let sink: (Block) throws -> Void = { block in
            guard let repo else { return }
            pending.append(block)
            pendingBytes += block.data.count
            if pendingBytes >= 8 << 20 {
                try repo.blocks.putMany(pending)
                pending.removeAll(keepingCapacity: true)
                pendingBytes = 0
            }
        }
        var importer = DirectoryImporter(options: options, emit: sink)
        importer.includeHidden = hidden
        importer.onAdded = { path, cid, _ in if !quiet { print("added \(cid.string) \(path)") } }
        var roots: [(name: String, cid: CID, dagSize: UInt64)] = []
        for file in files {
            let name = URL(fileURLWithPath: file).lastPathComponent
            let r = try reporting(file) { try importer.importTree(at: file) }
            roots.append((name, r.cid, r.dagSize))
            if quiet && !wrapWithDirectory { print(r.cid.string) }
        }
        if wrapWithDirectory {
            let w = try reporting("wrap") { try importer.wrap(roots) }
            print(quiet ? w.cid.string : "added \(w.cid.string) ")
        }
        if let repo, !pending.isEmpty { try repo.blocks.putMany(pending) }
    }

    private func report(_ cid: String, _ file: String) {
        print(quiet ? cid : "added \(cid) \(file == "-" ? cid : URL(fileURLWithPath: file).lastPathComponent)")
    }
}

/// `qstore cat`: a UnixFS file's bytes (or a byte range of them).
struct CatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat", abstract: "Write a UnixFS file (or a range of it) to standard output.")
    @Option(name: [.customShort("o"), .long], help: "Byte offset to start at.") var offset: UInt64 = 0
    @Option(name: [.customShort("l"), .long], help: "Most bytes to write.") var length: UInt64?
    @Argument(help: "<cid>[/path] of the file.") var cid: String

    func run() throws {
        var parts = cid.split(separator: "/").map(String.init)
        if parts.first == "ipfs" { parts.removeFirst() }
        guard let first = parts.first else { throw CLIError("expected <cid>[/path]") }
        try backend(purpose: "cat").cat(try parseCID(first), path: Array(parts.dropFirst()), offset: offset, length: length)
    }
}

/// `qstore ls`: a directory's entries, as `ipfs ls` prints them.
struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List a UnixFS directory: CID, size and name per entry (directories end with /).")
    @Flag(help: "Print JSON (Kubo's Objects/Links shape).") var json = false
    @Argument(help: "<cid>[/path] of the directory.") var ref: String

    func run() throws {
        var parts = ref.split(separator: "/").map(String.init)
        if parts.first == "ipfs" { parts.removeFirst() }
        guard let first = parts.first else { throw CLIError("expected <cid>[/path]") }
        let entries = try backend(purpose: "ls").list(try parseCID(first), path: Array(parts.dropFirst()))
        if json {
            try Output.json(["Objects": [["Hash": ref, "Links": entries.map { ["Name": $0.name, "Hash": $0.cid, "Size": $0.size, "Type": $0.type] as [String: Any] }]]])
            return
        }
        for e in entries { print("\(e.cid) \(e.type == 1 ? "-" : String(e.size)) \(e.name)\(e.type == 1 ? "/" : "")") }
    }
}
