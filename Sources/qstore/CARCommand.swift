import ArgumentParser
import CAR
import Foundation
import IPLD
import Multiformats

/// `qstore car`: read, verify and convert CAR files without a repository.
struct CARCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "car", abstract: "Inspect, verify, list and convert CAR files (v1 and v2).",
        subcommands: [Inspect.self, List.self, Convert.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a whole CAR, verifying every block, and summarise it.",
            discussion: "Streams the file: memory stays flat whatever its size. Exits 1 on the first bad block.")
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Treat a zero-length section as the end of the data (as go-car's ZeroLengthSectionAsEOF).")
        var zeroLengthAsEOF = false
        @Argument(help: "The CAR file (\"-\": standard input).") var file: String

        func run() throws {
            var options = CARReader<FileSource>.Options()
            options.zeroLengthSectionAsEOF = zeroLengthAsEOF
            var reader = try open(file, options)
            let size = file == "-" ? nil : (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? UInt64) ?? nil
            var progress = Progress("verifying", total: size, enabled: !json)
            var count = 0, bytes: UInt64 = 0
            var codecs: [String: Int] = [:], hashes: [String: Int] = [:]
            do {
                while let b = try reader.next() {
                    count += 1
                    bytes += UInt64(b.data.count)
                    codecs[b.cid.codec.name, default: 0] += 1
                    hashes[b.cid.multihash.code.name, default: 0] += 1
                    progress.update(bytes: b.blockOffset + UInt64(b.data.count), items: count)
                }
            } catch {
                progress.finish()
                throw CLIError("\(file): \(error) (after \(count) good blocks)")
            }
            progress.finish()
            var info: [String: Any] = [
                "version": reader.version, "roots": reader.roots.map(\.string), "blocks": count, "blockBytes": bytes,
                "codecs": codecs, "hashes": hashes, "verified": true,
            ]
            if let h = reader.v2Header {
                info["dataOffset"] = h.dataOffset
                info["dataSize"] = h.dataSize
                info["indexOffset"] = h.indexOffset
                info["fullyIndexed"] = h.fullyIndexed
                // An index that is not a known multicodec index (go-car's legacy formats, as in the IPLD
                // spec's carv2-basic.car) does not make the CAR unreadable: its payload was read above.
                do {
                    if let index = try reader.readIndex() { info["index"] = ["format": index.format.name, "entries": index.count] }
                } catch let e as CARError {
                    info["indexError"] = "\(e)"
                    FileHandle.standardError.write(Data("warning: \(file): \(e); the data payload was read without it\n".utf8))
                }
            }
            if json { try Output.json(info); return }
            print("version: \(reader.version)")
            print("roots: \(reader.roots.map(\.string).joined(separator: " "))")
            print("blocks: \(count) (\(ByteCount.format(bytes))), all verified")
            print("codecs: " + codecs.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("hashes: " + hashes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            if let i = info["index"] as? [String: Any] { print("index: \(i["format"]!), \(i["entries"]!) entries") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the CIDs of the blocks, one per line, in file order.")
        @Flag(help: "Also print each block's size and section offset.") var verbose = false
        @Argument(help: "The CAR file (\"-\": standard input).") var file: String

        func run() throws {
            var reader = try open(file, CARReader<FileSource>.Options())
            do {
                while let b = try reader.next() {
                    print(verbose ? "\(b.cid.string)\t\(b.data.count)\t\(b.sectionOffset)" : b.cid.string)
                }
            } catch { throw CLIError("\(file): \(error)") }
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite a CAR as CARv1 or as CARv2 with an index, verifying every block.",
            discussion: "CARv2 output must be a file (its header is written last); CARv1 output may be \"-\" for standard output.")
        @Option(help: "Output CAR version: 1 or 2.") var version = 2
        @Option(help: "CARv2 index format: car-multihash-index-sorted, car-index-sorted or none.")
        var index = "car-multihash-index-sorted"
        @Flag(help: "CARv2: index identity blocks too (sets fully-indexed).") var fullyIndexed = false
        @Argument(help: "The input CAR (\"-\": standard input).") var input: String
        @Argument(help: "The output file (\"-\": standard output, CARv1 only).") var output: String

        func run() throws {
            var reader = try open(input, CARReader<FileSource>.Options())
            var progress = Progress("converting", total: nil, enabled: true)
            var count = 0
            func copy<S: ByteSink>(into w: inout CARWriter<S>) throws {
                while let b = try reader.next() {
                    try w.write(cid: b.cid, data: b.data)
                    count += 1
                    progress.update(bytes: w.bytesWritten, items: count)
                }
            }
            do {
                switch version {
                case 1:
                    let sink = output == "-" ? FileSink(descriptor: 1) : try FileSink(path: output)
                    var w = try CARWriter(roots: reader.roots, sink: sink)
                    try copy(into: &w)
                    try w.finish().flush()
                case 2:
                    guard output != "-" else { throw CLIError("CARv2 output must be a file") }
                    let format: Multicodec? = index == "none" ? nil : try multicodec(index, what: "index format")
                    if let format, format != .carIndexSorted, format != .carMultihashIndexSorted {
                        throw CLIError("unknown CARv2 index format \(index)")
                    }
                    var w = try CARWriter(v2Roots: reader.roots, sink: try FileSink(path: output), index: format, fullyIndexed: fullyIndexed)
                    try copy(into: &w)
                    try w.finish().sync()
                default:
                    throw CLIError("--version must be 1 or 2")
                }
            } catch let e as CLIError { throw e } catch { throw CLIError("\(input): \(error)") }
            progress.finish()
        }
    }
}

/// Opens a CAR file or standard input, with a message naming the file on failure.
private func open(_ file: String, _ options: CARReader<FileSource>.Options) throws -> CARReader<FileSource> {
    do {
        if file == "-" { return try CARReader(FileSource(descriptor: 0), options: options) }
        let source = try FileSource(path: file)
        return try CARReader(source, options: options, fileSize: source.size)
    } catch { throw CLIError("\(file): \(error)") }
}
