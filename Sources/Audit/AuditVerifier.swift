import CAR
import Foundation
import IPLD
import Multiformats
import Signing
import Storage

/// Something wrong found by `audit verify`: at an event index when it can be placed.
public struct AuditProblem: Sendable, Equatable, CustomStringConvertible, Codable {
    public var index: UInt64?
    public var message: String
    public init(index: UInt64?, message: String) { (self.index, self.message) = (index, message) }
    public var description: String { index.map { "event \($0): \(message)" } ?? message }
}

/// What `audit verify` found.
public struct AuditVerification: Sendable, Equatable, Codable {
    /// Events looked at.
    public var size: UInt64
    /// Checkpoints whose signature and root hash were checked.
    public var checkpoints: Int
    /// The latest checkpoint's size and root hash (base64), when there is one.
    public var latestSize: UInt64?
    public var latestRootHash: String?
    /// The key the checkpoints were checked against (C2SP verifier key).
    public var verifierKey: String
    /// The problems (at most `maximumProblems` listed; `problemCount` counts all).
    public var problems: [AuditProblem]
    public var problemCount: Int
    public var ok: Bool { problemCount == 0 }
    public static let maximumProblems = 100
}

/// Recomputes a log from its events in order and compares it with what was claimed: the stored
/// full tiles and every signed checkpoint. Streaming: memory is the tree's right edge plus the
/// tiles being compared.
struct LogChecker {
    private(set) var edge = TileEdge()
    /// Signed checkpoints not yet reached: (size, root), ascending.
    private var checkpoints: [(size: UInt64, root: [UInt8])]
    private var next = 0
    private(set) var checked = 0
    private(set) var problems: [AuditProblem] = []
    private(set) var problemCount = 0
    private var flagged = Set<UInt64>()

    init(checkpoints: [(size: UInt64, root: [UInt8])]) {
        self.checkpoints = checkpoints.sorted { $0.size < $1.size }
        while next < self.checkpoints.count, self.checkpoints[next].size == 0 {
            check(self.checkpoints[next])
            next += 1
        }
    }

    mutating func report(_ index: UInt64?, _ message: String) {
        if let index, !flagged.insert(index).inserted { return }
        problemCount += 1
        if problems.count < AuditVerification.maximumProblems { problems.append(AuditProblem(index: index, message: message)) }
    }

    private mutating func check(_ cp: (size: UInt64, root: [UInt8])) {
        checked += 1
        if edge.rootHash() != cp.root {
            report(nil, "checkpoint at size \(cp.size): the root hash of the events does not match the signed one (an event before it was changed, removed or moved)")
        }
    }

    /// Appends the next event's leaf hash; `claimed` gives the stored full tile a filled tile must equal.
    mutating func feed(_ leafHash: [UInt8], claimed: (TileCoordinate) throws -> [[UInt8]]?) rethrows {
        for (c, hashes) in edge.append(leafHash: leafHash) {
            guard let stored = try claimed(c) else {
                report(nil, "\(c) is missing")
                continue
            }
            // Each position that differs: at level 0, an event index.
            let span = UInt64(1) << UInt64(8 * c.level)
            for k in stored.indices where k >= hashes.count || stored[k] != hashes[k] {
                let first = (c.index * 256 + UInt64(k)) * span
                report(c.level == 0 ? first : nil, c.level == 0
                       ? "not the event the log's \(c) holds at this index (changed, removed or moved)"
                       : "\(c) differs from its recomputation at events \(first)..<\(first + span)")
            }
        }
        while next < checkpoints.count, checkpoints[next].size == edge.size {
            check(checkpoints[next])
            next += 1
        }
    }

    /// Reports the checkpoints past the last event (events removed from the end).
    mutating func finish() {
        while next < checkpoints.count {
            report(nil, "checkpoint at size \(checkpoints[next].size) is past the log's \(edge.size) events (events removed from the end)")
            next += 1
        }
    }
}

extension SignedNote {
    /// The C2SP verifier key of an Ed25519 key: `name+hex(key ID)+base64(0x01 ‖ public key)`.
    public static func verifierKey(name: String, publicKey: [UInt8]) -> String {
        name + "+" + Base16.encode(keyID(name: name, publicKey: publicKey)) + "+" + Data([0x01] + publicKey).base64EncodedString()
    }

    /// Reads a verifier key: its name and Ed25519 public key (the key ID must match).
    public static func parseVerifierKey(_ text: String) throws -> (name: String, publicKey: [UInt8]) {
        let parts = text.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, let blob = Data(base64Encoded: String(parts[2])), blob.count == 33, blob.first == 0x01 else {
            throw AuditError.invalid("verifier key \"\(text)\": NAME+KEYID+base64(0x01 ‖ Ed25519 key)")
        }
        let name = String(parts[0]), key = Array(blob.dropFirst())
        guard Base16.encode(keyID(name: name, publicKey: key)) == parts[1].lowercased() else {
            throw AuditError.invalid("verifier key \"\(text)\": the key ID does not match the key")
        }
        return (name, key)
    }
}

/// Verifies signed notes and returns (size, root) of each; a bad one is reported and left out.
func checkedCheckpoints(_ notes: [String], name: String, publicKey: [UInt8], report: (String) -> Void) -> [(size: UInt64, root: [UInt8])] {
    notes.compactMap { note in
        do {
            let c = try Checkpoint.verify(note: note, name: name, publicKey: publicKey)
            return (c.size, c.rootHash)
        } catch {
            report("checkpoint \(note.split(separator: "\n").dropFirst().first ?? "?"): \(error)")
            return nil
        }
    }
}

extension AuditLog {
    /// Recomputes the log from the stored events: each event's bytes against its CID and its
    /// logged leaf hash, each full tile (and the tile nodes' links) against the events, each
    /// checkpoint's signature and root hash. `progress` is told the events done.
    public func verify(progress: (UInt64) -> Void = { _ in }) throws -> AuditVerification {
        let snapshot = store.db.snapshot()
        let size: UInt64 = try {
            let it = store.db.makeIterator(snapshot: snapshot)
            it.seek(Self.leafKey(.max))
            if it.isValid { it.previous() } else { it.seekToLast() }
            guard it.isValid, it.key.count == 10, it.key.starts(with: Self.prefix + [1]) else { return 0 }
            return Self.uint(it.key[2...]) + 1
        }()
        var notes: [String] = []
        var headerProblems: [String] = []
        try store.db.makeIterator(snapshot: snapshot).forEach(prefix: Self.checkpointPrefix) { k, v in
            do { notes.append(try Self.readCheckpoint(try CID(bytes: v), store: store).note) } catch {
                headerProblems.append("checkpoint at size \(Self.uint(k.dropFirst(2))): \(error)")
            }
            return true
        }
        var checker = LogChecker(checkpoints: checkedCheckpoints(notes, name: origin, publicKey: key.publicKey) { headerProblems.append($0) })
        for p in headerProblems { checker.report(nil, p) }
        var window: [CID] = []
        let it = store.db.makeIterator(snapshot: snapshot, fillCache: false)
        it.seek(Self.leafKey(0))
        var expected: UInt64 = 0
        while expected < size {
            var leaf: [UInt8]
            var cid: CID?
            if it.isValid, it.key.count == 10, it.key.starts(with: Self.prefix + [1]), Self.uint(it.key[2...]) == expected {
                let parsed = Self.parseLeaf(it.value)
                leaf = parsed?.hash ?? Array(repeating: 0, count: 32)
                cid = parsed?.cid
                it.next()
            } else {
                checker.report(expected, "missing from the log's index")
                leaf = Array(repeating: 0, count: 32)
            }
            if let cid {
                if let bytes = try store.get(cid) {
                    if (try? Block(cid: cid, data: bytes)) == nil {
                        checker.report(expected, "its block's bytes no longer match its CID \(cid) (modified)")
                    } else if MerkleHash.leaf(bytes) != leaf {
                        checker.report(expected, "its block \(cid) is not the event logged at this index")
                    } else if (try? AuditEvent(decoding: bytes)) == nil {
                        checker.report(expected, "its block \(cid) is not a valid audit event")
                    }
                    leaf = MerkleHash.leaf(bytes)
                } else {
                    checker.report(expected, "its block \(cid) is missing (removed)")
                }
                window.append(cid)
            } else {
                window.append(CID.placeholder)
            }
            var misplaced: UInt64?
            try checker.feed(leaf) { c in
                if c.level == 0 {
                    if let t = try fullTile(c), let bytes = try store.get(t.node), let node = try? TileNode(decoding: bytes), node.children != window {
                        let k = node.children.indices.first { $0 >= window.count || node.children[$0] != window[$0] } ?? 0
                        misplaced = c.index * 256 + UInt64(k)
                    }
                    window.removeAll(keepingCapacity: true)
                }
                return try storedTileUncached(c)
            }
            if let misplaced { checker.report(misplaced, "the log's tile node links another event at this index") }
            expected += 1
            if expected % 65536 == 0 { progress(expected) }
        }
        checker.finish()
        progress(size)
        let latest = try checkpoints().last
        return AuditVerification(size: size, checkpoints: checker.checked, latestSize: latest?.size,
                                 latestRootHash: latest.map { Data($0.rootHash).base64EncodedString() },
                                 verifierKey: SignedNote.verifierKey(name: origin, publicKey: key.publicKey),
                                 problems: checker.problems, problemCount: checker.problemCount)
    }

    /// A stored full tile, read again (not from the cache).
    func storedTileUncached(_ c: TileCoordinate) throws -> [[UInt8]]? {
        // Through the tile node (what the DAG holds), and the index's raw tile must be its tile.
        guard let (_, nodeCID, rawCID) = try fullTile(c), let nodeBytes = try store.get(nodeCID),
              let node = try? TileNode(decoding: nodeBytes), node.tile == rawCID, let raw = try store.get(node.tile), raw.count == 8192 else { return nil }
        return stride(from: 0, to: raw.count, by: 32).map { Array(raw[$0..<($0 + 32)]) }
    }
}

extension CID {
    /// Stands for an event whose CID could not be read.
    static let placeholder = try! CID("bafkqaaa")
}

/// Verifying an exported log (a CAR whose root is a head), with no repository.
public enum AuditArchive {
    /// Verifies the log in the CAR at `path`: every block against its CID, the events in the
    /// order the head and tile nodes give, each full tile, each checkpoint (signed by `key`, a
    /// C2SP verifier key; nil: the key the head names, reported for the caller to compare).
    public static func verify(carAt path: String, key: String?) throws -> AuditVerification {
        var reader: CARReader<FileSource>
        // Blocks are checked here, so a changed one is reported by its event index, not as a read error.
        var options = CARReader<FileSource>.Options()
        options.verifyBlocks = false
        do { reader = try CARReader(try FileSource(path: path), options: options) } catch { throw AuditError.invalid("\(path): \(error)") }
        guard let root = reader.roots.first else { throw AuditError.invalid("\(path): the CAR names no root") }
        var blocks: [CID: [UInt8]] = [:]
        var modified: Set<CID> = []
        while let b = try reader.next() {
            if (try? Block(cid: b.cid, data: b.data)) == nil { modified.insert(b.cid) }
            blocks[b.cid] = b.data
        }
        return try verify(head: root, blocks: blocks, modified: modified, key: key)
    }

    static func verify(head root: CID, blocks: [CID: [UInt8]], modified: Set<CID>, key: String?) throws -> AuditVerification {
        guard let headBytes = blocks[root] else { throw AuditError.invalid("the head block \(root) is not in the CAR") }
        let head = try IPLDFields(try DAGCBOR().decode(headBytes), field: "head", allowed: ["origin", "key", "size", "checkpoint", "pending"])
        let origin = try head.string("origin")
        let headKey = try head.bytes("key")
        let size = try head.integer("size")
        guard size >= 0 else { throw AuditError.invalid("head: size must be ≥ 0") }
        var name = origin, publicKey = headKey
        if let key {
            (name, publicKey) = try SignedNote.parseVerifierKey(key)
            guard name == origin, publicKey == headKey else {
                throw AuditError.invalid("the log is signed by \(SignedNote.verifierKey(name: origin, publicKey: headKey)), not by the key given")
            }
        }
        // The checkpoints, newest first along `prev`.
        var notes: [String] = []
        var problems: [String] = []
        var next: CID? = try head.link("checkpoint")
        var seen = Set<CID>()
        while let c = next, seen.insert(c).inserted {
            guard let bytes = blocks[c], !modified.contains(c) else { problems.append("checkpoint block \(c) is missing or modified"); break }
            let m = try IPLDFields(try DAGCBOR().decode(bytes), field: "checkpoint", allowed: ["note", "size", "prev"])
            notes.append(try m.string("note"))
            next = try m.optionalLink("prev")
        }
        var checker = LogChecker(checkpoints: checkedCheckpoints(notes, name: name, publicKey: publicKey) { problems.append($0) })
        for p in problems { checker.report(nil, p) }
        guard case .list(let pending)? = head.map["pending"] else { throw AuditError.invalid("head: pending must be a list") }
        var claimed: [TileCoordinate: [[UInt8]]] = [:]
        var index: UInt64 = 0
        // A hostile CAR cannot make the walk revisit a node (a DAG whose nodes repeat would be
        // walked 256^levels times) nor read past the events the head declares.
        var visited = Set<CID>()
        var nextTile = [UInt64](repeating: 0, count: 8)

        func feedEvent(_ cid: CID) {
            guard index < UInt64(size) else { return }
            var leaf = [UInt8](repeating: 0, count: 32)
            if let bytes = blocks[cid] {
                if modified.contains(cid) { checker.report(index, "its block's bytes do not match its CID \(cid) (modified)") }
                else if (try? AuditEvent(decoding: bytes)) == nil { checker.report(index, "its block \(cid) is not a valid audit event") }
                leaf = MerkleHash.leaf(bytes)
            } else {
                checker.report(index, "its block \(cid) is not in the CAR (removed)")
            }
            checker.feed(leaf) { c in claimed.removeValue(forKey: c) }
            index += 1
        }
        func walk(_ cid: CID, level: Int) {
            guard index < UInt64(size), visited.insert(cid).inserted else {
                checker.report(index, "the tile node \(cid) appears twice or past the head's \(size) events")
                return
            }
            guard let bytes = blocks[cid], !modified.contains(cid), let node = try? TileNode(decoding: bytes), node.level == level,
                  node.index == nextTile[level] else {
                checker.report(index, "the tile node \(cid) at level \(level) is missing, modified, malformed or out of place; its events cannot be read")
                return
            }
            nextTile[level] += 1
            if let raw = blocks[node.tile], !modified.contains(node.tile), raw.count == 8192 {
                claimed[TileCoordinate(level: level, index: node.index)] = stride(from: 0, to: raw.count, by: 32).map { Array(raw[$0..<($0 + 32)]) }
            }
            for child in node.children {
                if level == 0 { feedEvent(child) } else { walk(child, level: level - 1) }
            }
        }
        for (k, item) in pending.enumerated() {
            let level = pending.count - 1 - k
            guard case .list(let links) = item else { throw AuditError.invalid("head: pending[\(k)] must be a list") }
            for l in links {
                guard case .link(let c) = l else { throw AuditError.invalid("head: pending[\(k)] must hold links") }
                if level == 0 { feedEvent(c) } else { walk(c, level: level - 1) }
            }
        }
        if UInt64(size) != index { checker.report(nil, "the head says \(size) events, the CAR holds \(index)") }
        checker.finish()
        let latest = notes.first.flatMap { try? Checkpoint.verify(note: $0, name: name, publicKey: publicKey) }
        return AuditVerification(size: index, checkpoints: checker.checked, latestSize: latest?.size,
                                 latestRootHash: latest.map { Data($0.rootHash).base64EncodedString() },
                                 verifierKey: SignedNote.verifierKey(name: name, publicKey: publicKey),
                                 problems: checker.problems, problemCount: checker.problemCount)
    }
}
