import CAR
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failure reported to the user: the message goes to standard error and the exit status is 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Printing helpers shared by the commands.
enum Output {
    /// Runs `write` into `path` (standard output when nil) through a temporary file beside it,
    /// renamed into place only when `write` succeeds: a failed command leaves what was there.
    static func toFile(_ path: String?, _ write: (FileSink) throws -> Void) throws {
        guard let path else {
            let out = FileSink(descriptor: 1)
            try write(out)
            try out.flush()
            return
        }
        let tmp = path + ".qstore-\(ProcessInfo.processInfo.processIdentifier).tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: nil) else { throw CLIError("cannot create \(path)") }
        do {
            let sink = try FileSink(path: tmp)
            try write(sink)
            try sink.flush()
            guard rename(tmp, path) == 0 else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Prints `value` as one line of JSON (keys sorted, so output is stable).
    static func json(_ value: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        write(data + Data("\n".utf8))
    }

    /// Prints a wire value (KuboAPI) as one line of JSON (keys sorted).
    static func json<T: Encodable>(_ value: T, to handle: FileHandle = .standardOutput) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let line = try e.encode(value) + Data("\n".utf8)
        if handle === FileHandle.standardOutput { write(line) } else { handle.write(line) }
    }

    /// Writes raw bytes to standard output.
    static func bytes(_ b: [UInt8]) { b.withUnsafeBytes { write($0) } }

    static func write(_ data: Data) { data.withUnsafeBytes { write($0) } }

    /// Writes all of `bytes` to standard output. A reader that went (a closed pipe) ends the
    /// process by SIGPIPE, quietly; any other failure with a message and status 1 (Foundation's
    /// `FileHandle.write` traps on both).
    static func write(_ bytes: UnsafeRawBufferPointer) {
        do { try FileSink.writeAll(bytes, to: 1) } catch {
            endIfPipeClosed(error)
            FileHandle.standardError.write(Data("Error: standard output: \(error)\n".utf8))
            exit(1)
        }
    }

    /// All of standard input, or of the file at `path` ("-" is standard input).
    static func readInput(_ path: String?) throws -> [UInt8] {
        if let path, path != "-" {
            guard let d = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
            return [UInt8](d)
        }
        return [UInt8](FileHandle.standardInput.readDataToEndOfFile())
    }

    /// Whether standard error is a terminal (progress is drawn only there).
    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    /// Whether standard output is a terminal.
    static var stdoutIsTerminal: Bool { isatty(1) == 1 }
}

/// A one-line progress display on standard error, redrawn at most ten times a second; silent when not a terminal.
struct Progress {
    let label: String
    let total: UInt64?
    let enabled: Bool
    private var last = Date.distantPast

    init(_ label: String, total: UInt64?, enabled: Bool) {
        self.label = label
        self.total = total
        self.enabled = enabled && Output.stderrIsTerminal
    }

    mutating func update(bytes: UInt64, items: Int, force: Bool = false) {
        guard enabled, force || Date().timeIntervalSince(last) > 0.1 else { return }
        last = Date()
        var line = "\r\(label): \(items) blocks, \(ByteCount.format(bytes))"
        if let total, total > 0 { line += " of \(ByteCount.format(total)) (\(bytes * 100 / total)%)" }
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() { if enabled { FileHandle.standardError.write(Data("\n".utf8)) } }
}

/// Human-readable byte counts.
enum ByteCount {
    static func format(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }
}
