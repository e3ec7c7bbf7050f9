import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs `binary` with `arguments`, waits until it has printed `lines` lines (or ended), sleeps
/// up to 3 ms, kills it with SIGKILL, and returns the whole lines it printed: what it
/// acknowledged before it died. The crash tests build on this.
public func runAndKill(_ binary: URL, _ arguments: [String], environment: [String: String], afterLines lines: Int,
                       using rng: inout SeededGenerator) throws -> [Substring] {
    let child = Process()
    child.executableURL = binary
    child.arguments = arguments
    child.environment = ChildEnvironment.with(environment)
    let out = Pipe()
    child.standardOutput = out
    child.standardError = FileHandle.nullDevice
    try child.run()
    var text = ""
    while text.filter({ $0 == "\n" }).count < lines {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        text += String(decoding: chunk, as: UTF8.self)
    }
    usleep(UInt32.random(in: 0...3000, using: &rng))
    kill(child.processIdentifier, SIGKILL)
    child.waitUntilExit()
    text += String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    // Only whole lines were acknowledged.
    return Array(text.split(separator: "\n", omittingEmptySubsequences: false).dropLast())
}
