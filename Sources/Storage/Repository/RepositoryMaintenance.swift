import Foundation
import IPLD
import Multiformats

/// Counts and sizes of a repository (`qstore repo stat`).
public struct RepositoryStat: Sendable, Codable {
    /// Distinct blocks (by multihash).
    public var blocks: Int
    /// Bytes of block data.
    public var blockBytes: UInt64
    /// Blocks stored inline in LevelDB.
    public var inlineBlocks: Int
    /// Blocks in pack files.
    public var packedBlocks: Int
    /// Bytes of all pack files (live blocks and dead space).
    public var packBytes: UInt64
    /// Bytes of the whole repository directory.
    public var repositoryBytes: UInt64
}

/// What `qstore repo verify` found.
public struct VerifyReport: Sendable, Codable {
    /// Blocks checked.
    public var blocks = 0
    /// Bytes re-hashed.
    public var bytes: UInt64 = 0
    /// Problems, one line each (empty: clean).
    public var problems: [String] = []
    /// Whether nothing is wrong.
    public var isClean: Bool { problems.isEmpty }
}

extension Repository {
    /// Counts blocks and bytes (a scan of the block records; no block data is read).
    public func stat() throws -> RepositoryStat {
        var s = RepositoryStat(blocks: 0, blockBytes: 0, inlineBlocks: 0, packedBlocks: 0, packBytes: try blocks.packBytes(), repositoryBytes: 0)
        let it = db.makeIterator(snapshot: db.snapshot(), fillCache: false)
        try it.forEach(prefix: KeySpace.blockData.prefix) { _, v in
            let r = try LevelDBBlockStore.Record(v)
            s.blocks += 1
            s.blockBytes += UInt64(r.size)
            if case .inline = r { s.inlineBlocks += 1 } else { s.packedBlocks += 1 }
            return true
        }
        s.repositoryBytes = Repository.directorySize(path)
        return s
    }

    /// Re-hashes every block and checks the records agree with each other (invariants 2 and 3 of
    /// `LevelDBBlockStore`), from a snapshot, so it runs beside writers. `progress` is told each block's size.
    public func verify(progress: (Int, UInt64) -> Void = { _, _ in }) throws -> VerifyReport {
        var report = VerifyReport()
        let snapshot = db.snapshot()
        // Pass 1: every links record names a block that is present and whose links it holds.
        var codecsByMultihash: [Multihash: [Multicodec]] = [:]
        try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: KeySpace.blockLinks.prefix) { k, v in
            do {
                let (mh, codec) = try LevelDBBlockStore.parseLinksKey(k)
                codecsByMultihash[mh, default: []].append(codec)
                _ = try LinkList.decode(v)
            } catch {
                report.problems.append("malformed links record \(Base16.encode(k)): \(error)")
            }
            return true
        }
        // Pass 2: every block record's bytes hash to its multihash, and its links match what is recorded.
        var withData = Set<Multihash>()
        try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: KeySpace.blockData.prefix) { k, v in
            let mh: Multihash
            do { mh = try Multihash(bytes: Array(k.dropFirst())) } catch {
                report.problems.append("malformed block key \(Base16.encode(k))")
                return true
            }
            withData.insert(mh)
            let cid = CID(codec: .raw, multihash: mh)
            do {
                // A block compaction moved (or GC deleted) since the snapshot is read where it is now.
                guard let data = try blocks.readFollowingMoves(mh, LevelDBBlockStore.Record(v)) else { return true }
                report.blocks += 1
                report.bytes += UInt64(data.count)
                progress(report.blocks, report.bytes)
                guard try mh.verify(data) else {
                    report.problems.append("block \(cid) does not match its hash")
                    return true
                }
                let codecs = codecsByMultihash[mh] ?? []
                if codecs.isEmpty { report.problems.append("block \(cid) has no links record") }
                // A record that lists its codecs must list exactly those with a links record: one
                // left out would outlive the block's deletion, still holding its children.
                if let listed = try LevelDBBlockStore.Record.codecs(v), Set(listed) != Set(codecs.map(\.code)) || Set(listed).count != listed.count {
                    report.problems.append("block \(cid): its record lists codecs \(listed.sorted()) but its links records are for \(codecs.map(\.code).sorted())")
                }
                for codec in codecs {
                    let c = CID(codec: codec, multihash: mh)
                    let recorded = try blocks.linkEntries(of: c)?.map(\.cid) ?? []
                    let actual = (try? Codecs.links(in: data, codec: codec)) ?? []
                    if recorded != actual { report.problems.append("links recorded for \(c) differ from the block's links") }
                }
            } catch MultihashError.unsupportedFunction {
                report.problems.append("block \(cid) uses a hash function this build cannot verify")
            } catch {
                report.problems.append("block \(cid) cannot be read: \(error)")
            }
            return true
        }
        for (mh, codecs) in codecsByMultihash where !withData.contains(mh) {
            for c in codecs { report.problems.append("links record for \(CID(codec: c, multihash: mh)) without block data") }
        }
        return report
    }

    static func directorySize(_ path: String) -> UInt64 {
        guard let e = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total: UInt64 = 0
        while let f = e.nextObject() as? String {
            if let a = try? FileManager.default.attributesOfItem(atPath: path + "/" + f), (a[.type] as? FileAttributeType) == .typeRegular {
                total += (a[.size] as? NSNumber)?.uint64Value ?? 0
            }
        }
        return total
    }
}
