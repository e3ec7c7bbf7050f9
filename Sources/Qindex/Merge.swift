import Multiformats
import Pinning
import Signing
import Storage

/// Merging foreign histories (from a CAR, a restored backup, another node).
///
/// A pointer's state is the set of its signed records; its head is a function of that set:
/// the signed records no other one descends from (its tips) — one tip is the head, several are
/// joined by `IndexRecord.merge`, which every replica computes to the same bytes. So replicas that
/// hold the same records hold the same head whatever order the records came in, and a merge
/// loses nothing: the losing branches stay linked from the merge record (`merged`).
extension Qindex {
    /// What merging one foreign head did.
    public struct MergeOutcome: Sendable, Equatable {
        public enum Action: String, Sendable { case created, fastForward = "fast-forward", merged, unchanged }
        public var head: Head
        public var action: Action
        /// The foreign head that was merged.
        public var root: CID
    }

    /// Merges the histories whose heads are `roots` — records already in the store (`dag import`
    /// puts them there) — into the pointers they are of. Every record reachable from a root down
    /// to what this node already holds is checked first (canonical form, signatures, merge
    /// records recomputed, one pointer per history, versions one apart); a root that fails is
    /// refused (`SIGNATURE_INVALID` or invalid) before anything moves. Roots that are not Qindex
    /// records are refused.
    public func merge(roots: [CID]) async throws -> [MergeOutcome] {
        var out: [MergeOutcome] = []
        for (ptr, foreign) in try grouped(roots) {
            let outcome = try await commits.run { txn, changes in try self.stageMerge(ptr, foreign, txn, &changes) }
            events?.published()
            for root in foreign { out.append(MergeOutcome(head: outcome.head, action: outcome.action, root: root)) }
        }
        return out
    }

    /// `merge` for threads that may block (it waits for the group commit). With
    /// `allowingTruncatedHistory` (a restore: a backup holds what its node still had), a pointer
    /// new here may arrive with its older records let go (the `index-records` policy's
    /// keepLatest): its history then starts where they were, each record present still checked.
    public func mergeBlocking(roots: [CID], allowingTruncatedHistory: Bool = false) throws -> [MergeOutcome] {
        var out: [MergeOutcome] = []
        for (ptr, foreign) in try grouped(roots, allowingTruncatedHistory: allowingTruncatedHistory) {
            let outcome = try commits.run { txn, changes in try self.stageMerge(ptr, foreign, txn, &changes) }
            events?.published()
            for root in foreign { out.append(MergeOutcome(head: outcome.head, action: outcome.action, root: root)) }
        }
        return out
    }

    /// The roots by pointer, each history checked, in the order first met.
    private func grouped(_ roots: [CID], allowingTruncatedHistory: Bool = false) throws -> [([UInt8], [CID])] {
        var byPointer: [[UInt8]: [CID]] = [:]
        var order: [[UInt8]] = []
        for root in roots {
            let r = try verifiedHistory(root, allowingTruncatedHistory: allowingTruncatedHistory)
            let ptr = Keys.pointer(r.type, r.key)
            if byPointer[ptr] == nil { order.append(ptr) }
            byPointer[ptr, default: []].append(root)
        }
        return order.map { ($0, byPointer[$0]!) }
    }

    /// Checks the history under `root` down to records this node already holds in the pointer's
    /// main chain (or to version 1); returns the root record.
    func verifiedHistory(_ root: CID, allowingTruncatedHistory: Bool = false) throws -> IndexRecord {
        guard root.codec == .dagCBOR else { throw QindexError.invalid("\(root) is not a Qindex record (not dag-cbor)") }
        let top = try record(root)
        let ptr = Keys.pointer(top.type, top.key)
        // Asked for (a restore), a pointer new here may arrive with its older records let go;
        // otherwise, and for a pointer that exists here, only whole histories merge (a record
        // missing because it was not sent cannot be told from one let go).
        let mayBeTruncated = try allowingTruncatedHistory && readHead(ptr) == nil
        var stack = [root]
        var seen = Set<CID>()
        while let cid = stack.popLast() {
            guard seen.insert(cid).inserted else { continue }
            let r: IndexRecord
            do { r = try record(cid) } catch QindexError.notFound { throw QindexError.invalid("incomplete history under \(root): record \(cid) is missing") }
            guard r.type == top.type, r.key == top.key else { throw QindexError.invalid("record \(cid) under \(root) is of \(r.type)/\(r.key), not \(top.type)/\(top.key)") }
            // Ours already: checked when it came.
            if let known = try VersionEntry(try db.get(Keys.version(ptr, r.version))), known.record == cid { continue }
            let parents = ([r.prev].compactMap { $0 }) + r.merged
            if r.isMerge {
                let joined = try parents.map { (cid: $0, record: try record($0)) }
                guard Set(parents).count >= 2 else { throw QindexError.invalid("merge record \(cid) joins fewer than two heads") }
                guard IndexRecord.merge(joined).encoded == r.encoded else { throw QindexError.invalid("merge record \(cid) is not the merge of its parents") }
            } else {
                do {
                    try r.verifySignature()
                    try checkSigner(r, allowingSelfCertifiedNodes: true)
                } catch let e as SigningError { throw SigningError.invalid("record \(cid) (version \(r.version) of \(r.type)/\(r.key)): \(e.detail)") }
                if let p = r.prev {
                    let pr: IndexRecord
                    do { pr = try record(p) } catch QindexError.notFound {
                        if mayBeTruncated { continue }  // the history starts here
                        throw QindexError.invalid("incomplete history under \(root): record \(p) is missing")
                    }
                    guard pr.version == r.version - 1 else { throw QindexError.invalid("record \(cid): version \(r.version) after version \(pr.version)") }
                    // Time only goes forward along a history, so `?at=` finds the record then.
                    guard r.createdAtMilliseconds >= pr.createdAtMilliseconds else {
                        throw QindexError.invalid("record \(cid): createdAt \(r.createdAt) is before its prev's \(pr.createdAt)")
                    }
                }
            }
            stack.append(contentsOf: parents)
        }
        return top
    }

    /// The merge of `foreign` heads into the pointer `ptr`, inside a commit.
    private func stageMerge(_ ptr: [UInt8], _ foreign: [CID], _ txn: CountTransaction, _ changes: inout HeadChanges) throws -> (head: Head, action: MergeOutcome.Action) {
        let current = try changes.head(ptr, in: self)
        var tips: [CID] = []
        func add(_ cid: CID) throws {
            let r = try changes.record(cid, in: self)
            if r.isMerge {
                for p in [r.prev!] + r.merged { try add(p) }
            } else if !tips.contains(cid) {
                tips.append(cid)
            }
        }
        if let current { try add(current.record) }
        for f in foreign { try add(f) }
        // Drop every tip another one descends from.
        var kept: [(cid: CID, record: IndexRecord)] = []
        for t in tips {
            let r = try changes.record(t, in: self)
            var covered = false
            for other in tips where other != t {
                if try descends(other, from: t, version: r.version, changes) { covered = true; break }
            }
            if !covered { kept.append((t, r)) }
        }
        let newHead: CID
        let record: IndexRecord
        if kept.count == 1 {
            (newHead, record) = (kept[0].cid, kept[0].record)
        } else {
            record = IndexRecord.merge(kept)
            let block = record.block
            newHead = block.cid
            if newHead != current?.record {
                try store.stage([block], in: txn)
                changes.records[newHead] = record
            }
        }
        if let current, current.record == newHead { return (current, .unchanged) }
        let action: MergeOutcome.Action = current == nil ? .created : kept.count == 1 ? .fastForward : .merged
        return (try move(ptr, from: current, to: newHead, record, txn, &changes), action)
    }

    /// Whether the record `cid` descends from `ancestor` (of version `version`): a walk down
    /// `prev` and `merged`, which only ever lead to lower versions, so it stops below `version`.
    private func descends(_ cid: CID, from ancestor: CID, version: Int64, _ changes: HeadChanges) throws -> Bool {
        var stack = [cid]
        var seen = Set<CID>()
        while let c = stack.popLast() {
            if c == ancestor { return true }
            guard seen.insert(c).inserted else { continue }
            let r = try changes.record(c, in: self)
            guard r.version > version else { continue }
            if let p = r.prev { stack.append(p) }
            stack.append(contentsOf: r.merged)
        }
        return false
    }
}

extension SigningError {
    /// The message without the "signature invalid: " prefix.
    var detail: String {
        switch self {
        case .invalid(let m), .malformed(let m): m
        }
    }
}
