import CAR
import Foundation
import IPLD
import Multiformats
import Node
import Pinning
import Storage
import Testing
import TestSupport
import UnixFS

/// Node's use cases called directly, as the routes and commands call them: a real repository
/// on disk, a clock the test moves.
@Suite struct NodeTests {
    final class Fixture {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        let node: Node
        init() throws {
            try Repository.initialize(at: dir.path)
            node = try Node(repository: try Repository(path: dir.path, purpose: "node tests"), clock: clock)
        }
    }

    struct Bytes: ByteSource {
        var data: [UInt8]
        mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let n = min(buffer.count, data.count)
            data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            data.removeFirst(n)
            return n
        }
    }

    /// An add of files named by path builds the directories the names imply (children before
    /// parents, the wrapping directory last), pins only the root, and gives the CIDs a hashing-only
    /// add gives for the same input.
    @Test func addBuildsTreesFromNamesAndPinsTheRoot() throws {
        let f = try Fixture()
        var options = AddSession.Options()
        options.wrap = true
        options.pin = { Pinner.Request(cid: $0, name: "the add") }
        var events: [AddEvent] = []
        let session = try f.node.add(options) { events.append($0) }
        try session.file("docs/a.txt", Bytes(data: Array("alpha".utf8)))
        try session.file("docs/sub/b.txt", Bytes(data: Array("beta".utf8)))
        try session.directory("empty")
        try session.symlink("link", target: "docs/a.txt")
        let roots = try session.finish()
        let names = events.compactMap { e -> String? in if case .added(let n, _, _) = e { n } else { nil } }
        #expect(names == ["docs/a.txt", "docs/sub/b.txt", "link", "docs/sub", "docs", "empty", ""], "\(names)")
        #expect(roots.count == 1)
        let root = try #require(roots.first)
        guard case .added(_, let last, _)? = events.last else { Issue.record("the last event is not an added entry"); return }
        #expect(last == root)
        // Pinned: the root alone, recursively, by the name asked for.
        var listed: [PinListing] = []
        try f.node.listPins(type: "recursive") { listed.append($0) }
        #expect(listed.map(\.cid) == [root] && listed.first?.name == "the add")
        // The tree reads back.
        guard case .directory(let top) = try f.node.fileEntry(root) else { Issue.record("the root is a directory"); return }
        #expect(Set(top.map(\.name)) == ["docs", "empty", "link"])
        var text: [UInt8] = []
        try f.node.cat(root, path: ["docs", "sub", "b.txt"]) { text += $0 }
        #expect(text == Array("beta".utf8))
        // Hashing only gives the same CIDs and stores nothing.
        var hashed: [AddEvent] = []
        let dry = AddSession.hashOnly(options) { hashed.append($0) }
        try dry.file("docs/a.txt", Bytes(data: Array("alpha".utf8)))
        try dry.file("docs/sub/b.txt", Bytes(data: Array("beta".utf8)))
        try dry.directory("empty")
        try dry.symlink("link", target: "docs/a.txt")
        #expect(try dry.finish() == roots)
        #expect(hashed == events)
    }

    /// Names no tree can hold are refused before anything is reported: NUL, "..", and an unnamed
    /// entry in a wrapped directory; a trailing slash names the same entry as without it.
    @Test func addRefusesUnsafeNames() throws {
        let f = try Fixture()
        var wrap = AddSession.Options()
        wrap.wrap = true
        for bad in ["a\0b", "../x", "a/../../x", ""] {
            var events = 0
            let s = try f.node.add(wrap) { _ in events += 1 }
            #expect(throws: NodeError.self, "\(bad.debugDescription)") { try s.file(bad, Bytes(data: [1])) }
            #expect(events == 0)
            s.cancel()
        }
        let s = try f.node.add(wrap)
        try s.file("a/", Bytes(data: Array("kept".utf8)))
        let root = try #require(try s.finish().first)
        guard case .directory(let entries) = try f.node.fileEntry(root) else { Issue.record("a directory"); return }
        #expect(entries.map(\.name) == ["a"], "a/ is the file a, not dropped")
    }

    /// A path given twice, or as a file and as a directory, is refused rather than one of them
    /// silently dropped from the tree; two top-level entries of one name are two roots (unless
    /// wrapped together).
    @Test func addRefusesAPathGivenTwice() throws {
        let f = try Fixture()
        var wrap = AddSession.Options()
        wrap.wrap = true
        typealias Step = (AddSession) throws -> Void
        let cases: [(String, AddSession.Options, [Step])] = [
            ("a file twice", AddSession.Options(), [{ try $0.directory("d") }, { try $0.file("d/a", Bytes(data: [1])) }, { try $0.file("d/a", Bytes(data: [2])) }]),
            ("a file, then a directory under it", AddSession.Options(), [{ try $0.file("d", Bytes(data: [1])) }, { try $0.file("d/a", Bytes(data: [2])) }]),
            ("a directory, then a file of its name", AddSession.Options(), [{ try $0.file("d/a", Bytes(data: [1])) }, { try $0.file("d", Bytes(data: [2])) }]),
            ("a file, then a directory of its name", AddSession.Options(), [{ try $0.file("d/a", Bytes(data: [1])) }, { try $0.directory("d/a") }]),
            ("a top-level name twice, wrapped", wrap, [{ try $0.file("x", Bytes(data: [1])) }, { try $0.file("x", Bytes(data: [2])) }]),
        ]
        for (what, options, steps) in cases {
            let s = try f.node.add(options)
            #expect(throws: NodeError.self, "\(what)") { for step in steps { try step(s) } }
            s.cancel()
        }
        let s = try f.node.add(AddSession.Options())
        try s.file("x", Bytes(data: [1]))
        try s.file("x", Bytes(data: [2]))
        try s.directory("d")
        try s.directory("d")
        try s.file("d/a", Bytes(data: [3]))
        #expect(try s.finish().count == 3, "two roots named x and the directory d")
    }

    /// A cancelled add pins nothing, and what it stored is garbage at once: it gives up the put
    /// grace period (a disk filled by a failed add can be emptied by `repo gc`, Docs/storage.md).
    /// Every block goes, also past the first few thousand (they are let go a chunk at a time). A
    /// block put on its own keeps its grace.
    @Test func aCancelledAddPinsNothing() throws {
        let f = try Fixture()
        var options = AddSession.Options()
        options.pin = { Pinner.Request(cid: $0) }
        options.importing.chunking = .fixed(64)
        let s = try f.node.add(options)
        let size = 600_000  // 9,375 chunks of 64 bytes, each different (its number first)
        let file = try s.file("big", Bytes(data: (0..<size).map { i in i % 64 < 8 ? UInt8(truncatingIfNeeded: (i / 64) >> (8 * (i % 64))) : 0x5a }))
        s.cancel()
        var pins = 0
        try f.node.listPins { _ in pins += 1 }
        #expect(pins == 0)
        #expect(try f.node.blockSize(file.cid) > 0, "stored, unpinned")
        let alone = try f.node.putBlock(Array("put on its own".utf8), codec: .raw, hash: .sha2_256, hashLength: nil)
        let collected = try f.node.collectGarbage().blocks
        #expect(collected > size / 64, "every block of the cancelled add goes at once: \(collected)")
        #expect(throws: NodeError.self) { try f.node.blockSize(file.cid) }
        #expect(try f.node.blockSize(alone.cid) > 0, "a put outside the add keeps its grace period")
    }

    /// Concurrent puts are committed together and each caller returns once its block is stored;
    /// a pinned block cannot be removed, an unpinned one can.
    @Test func putsFromManyThreadsAndRemovals() async throws {
        let f = try Fixture()
        let node = f.node
        let cids = try await withThrowingTaskGroup(of: CID.self) { group in
            for i in 0..<64 {
                group.addTask { try node.putBlock(Array("block \(i)".utf8), codec: .raw, hash: .sha2_256, hashLength: nil, pin: i % 2 == 0).cid }
            }
            return try await group.reduce(into: [CID]()) { $0.append($1) }
        }
        #expect(Set(cids).count == 64)
        for c in cids { #expect(try node.block(c).count > 0) }
        var pinned = Set<CID>()
        try node.listPins(type: "recursive") { pinned.insert($0.cid) }
        #expect(pinned.count == 32)
        for c in cids {
            if pinned.contains(c) {
                #expect(throws: PinningError.self) { try node.removeBlock(c) }
            } else {
                try node.removeBlock(c)
                #expect(throws: NodeError.self) { try node.block(c) }
            }
        }
        #expect(try node.verifyRepository().isClean)
    }

    /// A pin's expiry follows the node's clock: maintenance ends it once the clock passes it.
    @Test func pinsExpireByTheNodesClock() throws {
        let f = try Fixture()
        let b = try f.node.putBlock(Array("expiring".utf8), codec: .raw, hash: .sha2_256, hashLength: nil)
        var r = Pinner.Request(cid: b.cid)
        r.expiresIn = 60_000
        let pin = try f.node.pin(r)
        #expect(pin.expires == f.clock.now + 60_000)
        #expect(try f.node.nextPinExpiry() == pin.expires)
        #expect(try f.node.maintainPins().expired == 0)
        f.clock.advance(by: .seconds(61))
        #expect(try f.node.maintainPins().expired == 1)
        #expect(try f.node.pinObjects(of: b.cid).isEmpty)
    }

    /// Each layer reads its own section of config.json: a section that does not decode, or whose
    /// values are out of range, stops the node with the section named; an unknown section is kept.
    @Test func eachLayerChecksItsOwnConfigurationSection() throws {
        for (section, named) in [(#""gc": {"interval": 5}"#, "gc"), (#""gc": {"packCompactionThreshold": 2}"#, "gc.packCompactionThreshold"),
                                 (#""pinning": {"queuedTimeout": "soon"}"#, "pinning.queuedTimeout")] {
            let dir = TemporaryDirectory()
            try Repository.initialize(at: dir.path)
            let file = dir.path + "/config.json"
            var text = try String(contentsOfFile: file, encoding: .utf8)
            text = text.replacingOccurrences(of: #""version""#, with: section + #", "future-layer": {"x": [1, 2.5, null]}, "version""#)
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let repository = try Repository(path: dir.path, purpose: "node tests")
            defer { repository.close() }
            #expect(String(data: try repository.configuration.encoded(), encoding: .utf8)?.contains("future-layer") == true, "kept as read")
            do {
                _ = try Node(repository: repository)
                Issue.record("\(section) was accepted")
            } catch let e as RepositoryError {
                #expect("\(e)".contains(named), "\(e)")
            }
        }
    }

    /// The CAR of a DAG holds each block once, the root first, and imports into another node whole.
    @Test func exportImportsElsewhere() throws {
        let f = try Fixture(), g = try Fixture()
        let leaf = try f.node.putDAG(Array(#"{"leaf":true}"#.utf8), input: .dagJSON, store: .dagCBOR, hash: .sha2_256)
        let root = try f.node.putDAG(Array(#"{"a":{"/":"\#(leaf)"},"b":{"/":"\#(leaf)"}}"#.utf8), input: .dagJSON, store: .dagCBOR, hash: .sha2_256)
        let car = try f.node.exportDAG(root, to: ArraySink())
        let summary = try g.node.withLease { try g.node.importCAR(BytesSource(car.bytes)) }
        #expect(summary.roots == [root] && summary.blocks == 2)
        #expect(try g.node.getDAG(root, path: ["a", "leaf"], output: .dagJSON) == Array("true".utf8))
        #expect(try g.node.pinRoots(summary.roots).isEmpty)
    }
}
