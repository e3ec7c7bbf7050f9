import CAR
import Foundation
import IPLD
import Multiformats
import Pinning
import Storage

/// What `backup verify` found.
public struct BackupVerification: Sendable {
    /// The sets checked, oldest first (the one asked for and its parents).
    public var sets: [String] = []
    public var parts = 0
    public var blocks: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Each problem, naming the set, the part and the block.
    public var problems: [String] = []
    public var ok: Bool { problems.isEmpty }
    public init() {}
}

extension BackupDirectory {
    /// Verifies set `id` (the newest complete one when nil) and its parents with no repository:
    /// each manifest's signature (by the node it names), each part's size and SHA-256, every
    /// block's hash, and that every pin of the set is complete across the chain (a recursive
    /// pin's whole DAG, a direct pin's root; queued pins may be incomplete) and every Qindex
    /// head's record is there.
    public func verify(_ id: String? = nil, progress: (UInt64) -> Void = { _ in }) throws -> BackupVerification {
        guard let target = try id ?? latest()?.id else { throw BackupError.notFound("no complete backup in \(path)") }
        let chain = try chain(target)
        var v = BackupVerification()
        v.sets = chain.map(\.id)
        var links: [Multihash: [CID]] = [:]
        for m in chain {
            do { try m.verifySignature() } catch { v.problems.append("\(m.id): manifest signature: \(error)") }
            if m.node != chain.last!.node { v.problems.append("\(m.id): taken on node \(m.node), its child on \(chain.last!.node)") }
            for p in m.parts {
                v.parts += 1
                let file = "\(path)/\(m.id)/\(p.name)"
                guard FileManager.default.fileExists(atPath: file) else {
                    v.problems.append("\(m.id)/\(p.name): missing")
                    continue
                }
                let (digest, size) = try Self.sha256(file)
                if size != p.size { v.problems.append("\(m.id)/\(p.name): \(size) bytes, the manifest says \(p.size)") }
                if digest != p.sha256 { v.problems.append("\(m.id)/\(p.name): SHA-256 differs from the manifest's") }
                var options = CARReader<FileSource>.Options()
                options.verifyBlocks = false
                do {
                    var reader = try CARReader(FileSource(path: file), options: options)
                    var count: UInt64 = 0
                    while let b = try reader.next() {
                        count += 1
                        v.blocks += 1
                        v.bytes += UInt64(b.data.count)
                        guard (try? Multihash.compute(b.data, function: b.cid.multihash.code, length: b.cid.multihash.digestLength)) == b.cid.multihash else {
                            v.problems.append("\(m.id)/\(p.name): block \(b.cid) does not hash to its CID (at byte \(b.sectionOffset))")
                            continue
                        }
                        links[b.cid.multihash] = (try? Codecs.links(in: b.data, codec: b.cid.codec)) ?? []
                        if v.blocks % 1000 == 0 { progress(v.blocks) }
                    }
                    if count != p.blocks { v.problems.append("\(m.id)/\(p.name): \(count) blocks, the manifest says \(p.blocks)") }
                } catch {
                    v.problems.append("\(m.id)/\(p.name): unreadable: \(error)")
                }
            }
        }
        progress(v.blocks)
        v.problems += Self.completeness(of: chain.last!, links: links)
        return v
    }

    /// What the manifest names that the blocks read (their links, by multihash) do not hold:
    /// every pinned DAG whole (a recursive pin's whole DAG, a direct pin's root; queued pins may
    /// be incomplete) and every Qindex head's record.
    static func completeness(of last: BackupManifest, links: [Multihash: [CID]]) -> [String] {
        var problems: [String] = []
        var complete = Set<Multihash>()
        for pin in last.pins where pin.status == .pinned {
            var stack = [pin.cid]
            var seen = Set<Multihash>()
            var whole = true
            while let c = stack.popLast() {
                guard c.multihash.code != .identity, !complete.contains(c.multihash), seen.insert(c.multihash).inserted else { continue }
                guard let children = links[c.multihash] else {
                    problems.append("pin \(pin.id) (\(pin.cid)\(pin.name.map { ", \($0)" } ?? "")): block \(c) is in no part of the chain")
                    whole = false
                    break
                }
                if pin.type == .recursive { stack += children }
            }
            // Only a whole DAG is known whole (a later pin sharing part of it is still walked).
            if pin.type == .recursive, whole { complete.formUnion(seen) }
        }
        for h in last.heads where links[h.record.multihash] == nil {
            problems.append("pointer \(h.type)/\(h.key): its record \(h.record) is in no part of the chain")
        }
        return problems
    }

    /// The sets a retention policy keeps (restic's rules): the `keepLast` newest, the newest of
    /// each of the `keepDaily` most recent days and `keepWeekly` most recent ISO weeks that have
    /// one, and every parent a kept set needs. Incomplete sets are left alone.
    public func prunePlan(keepLast: Int, keepDaily: Int, keepWeekly: Int) throws -> (keep: [String], remove: [String]) {
        let complete = try sets().compactMap(\.manifest)
        let newestFirst = complete.reversed()
        var keep = Set(newestFirst.prefix(max(0, keepLast)).map(\.id))
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        func date(_ id: String) -> Date? { BackupManifest.time(of: id).map { Date(timeIntervalSince1970: Double($0) / 1000) } }
        for (count, bucket) in [(keepDaily, { (d: Date) in calendar.dateComponents([.year, .month, .day], from: d) }),
                                (keepWeekly, { (d: Date) in calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: d) })] where count > 0 {
            var seen: [DateComponents] = []
            for m in newestFirst {
                guard let d = date(m.id) else { continue }
                let b = bucket(d)
                if seen.contains(b) { continue }
                guard seen.count < count else { break }
                seen.append(b)
                keep.insert(m.id)
            }
        }
        // A kept incremental needs its parents.
        let byID = Dictionary(uniqueKeysWithValues: complete.map { ($0.id, $0) })
        for id in Array(keep) {
            var p = byID[id]?.parent
            while let parent = p, keep.insert(parent).inserted {
                guard let m = byID[parent] else {
                    throw BackupError.corrupt("backup \(id) needs \(parent), whose manifest is missing or unreadable: prune removes nothing until that is resolved")
                }
                p = m.parent
            }
        }
        let remove = complete.map(\.id).filter { !keep.contains($0) }
        return (complete.map(\.id).filter(keep.contains), remove)
    }

    /// Removes a set's directory.
    /// Removes a set's directory: its manifest first (synced), so a crash part way leaves an
    /// incomplete set, never a complete one with parts missing.
    public func remove(_ id: String) throws {
        guard BackupManifest.isID(id) else { throw BackupError.invalid("\(id) is not a backup id") }
        let dir = "\(path)/\(id)"
        if FileManager.default.fileExists(atPath: dir + "/manifest.car") {
            try FileManager.default.removeItem(atPath: dir + "/manifest.car")
            syncDirectory(dir)
        }
        try FileManager.default.removeItem(atPath: dir)
        syncDirectory(path)
    }
}
