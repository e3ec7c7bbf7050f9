import Logging
import Synchronization
import Testing
@testable import HTTPServer

/// The daemon's log lines keep swift-log's stream format, with metadata from the logger, the
/// provider, the call and an error merged (the later winning) and sorted.
@Suite struct DaemonLogHandlerTests {
    final class Lines: Sendable {
        let all = Mutex<[String]>([])
        func add(_ line: String) { all.withLock { $0.append(line) } }
    }

    @Test func linesHaveTheStreamFormatAndMergedSortedMetadata() throws {
        let lines = Lines()
        let provider = Logger.MetadataProvider { ["p": "provided", "shared": "provider"] }
        var logger = Logger(label: "qstore.test") { label in
            DaemonLogHandler(label: label, metadataProvider: provider, write: lines.add)
        }
        logger.logLevel = .info
        logger[metadataKey: "shared"] = "logger"
        logger[metadataKey: "b"] = "2"
        logger.debug("not written")
        logger.info("hello", metadata: ["a": "1"])
        logger.warning("second", metadata: ["shared": "call"])
        let written = lines.all.withLock { $0 }
        #expect(written.count == 2)
        let first = try #require(written.first)
        // "<local time> info qstore.test: a=1 b=2 p=provided shared=provider [HTTPServerTests] hello\n"
        let stamp = try #require(first.split(separator: " ").first)
        #expect(stamp.count == "2026-12-06T06:30:00+0000".count && stamp.dropFirst(10).first == "T")
        #expect(first.dropFirst(stamp.count) == " info qstore.test: a=1 b=2 p=provided shared=provider [HTTPServerTests] hello\n")
        #expect(written[1].hasSuffix(" warning qstore.test: b=2 p=provided shared=call [HTTPServerTests] second\n"))
    }

    /// Writes what swift-log's own stream handler writes into `lines`.
    struct Capture: TextOutputStream, Sendable {
        let lines: Lines
        mutating func write(_ string: String) { lines.add(string) }
    }

    struct Failure: Error {}

    /// The same events, logged through the handler `make` gives.
    static func events(_ make: @escaping @Sendable (String) -> any LogHandler) {
        var logger = Logger(label: "qstore.test", factory: make)
        logger[metadataKey: "shared"] = "logger"
        logger[metadataKey: "n"] = .stringConvertible(42)
        logger.info("hello", metadata: ["a": "1"])
        logger.warning("nested", metadata: ["shared": "call", "list": ["x", "y"], "map": ["k": "v"]])
        logger.error("failed", error: Failure())
        logger[metadataKey: "shared"] = nil
        logger.notice("after")
        logger.debug("below the level")
    }

    /// The same events through both handlers give the same lines, timestamps aside.
    @Test func linesAreThoseOfSwiftLogsStreamHandler() {
        let ours = Lines(), theirs = Lines()
        let provider = Logger.MetadataProvider { ["p": "provided", "shared": "provider"] }
        Self.events { DaemonLogHandler(label: $0, metadataProvider: provider, write: ours.add) }
        Self.events { StreamLogHandler(label: $0, stream: Capture(lines: theirs), metadataProvider: provider) }
        let strip = { (line: String) in String(line.drop { $0 != " " }) }
        #expect(ours.all.withLock { $0 }.count == 4)
        #expect(ours.all.withLock { $0 }.map(strip) == theirs.all.withLock { $0 }.map(strip))
    }

    @Test func aLineWithoutMetadataHasNone() {
        let lines = Lines()
        let logger = Logger(label: "") { label in DaemonLogHandler(label: label, write: lines.add) }
        logger.error("plain")
        #expect(lines.all.withLock { $0 }.first?.hasSuffix(" error: [HTTPServerTests] plain\n") == true)
    }
}
