import Multiformats
import Storage

/// Recomputes every reference count from the pins and the links records and compares it with
/// what is stored (invariants of `ReferenceCounts.swift` and `PinIndex`); `repair` rewrites
/// whatever differs. Checking reads one snapshot, beside writers; repairing holds the writer
/// lock so no count changes under it.
public struct CountVerifier: Sendable {
    /// The pins (and through them the counted store).
    public let pinner: Pinner

    /// A verifier.
    public init(pinner: Pinner) { self.pinner = pinner }

    /// What the check found.
    public struct Report: Sendable {
        /// Count records checked.
        public var records = 0
        /// Pins checked.
        public var pins = 0
        /// Differences, one line each.
        public var problems: [String] = []
        /// Differences fixed (by `repair`).
        public var repaired = 0
    }

    /// Checks every count, candidate and pin index entry.
    public func check() throws -> Report { try run(repair: false) }

    /// Checks, and rewrites every count, candidate and index entry that differs.
    public func repair() throws -> Report {
        try pinner.store.transaction { txn in try run(repair: true, txn: txn) }
    }

    private func run(repair: Bool, txn: CountTransaction? = nil) throws -> Report {
        let db = pinner.store.db
        let snapshot = db.snapshot()
        var report = Report()
        var expected: [Multihash: UInt64] = [:]
        try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: KeySpace.blockData.prefix) { k, _ in
            // Every stored block has a record, referenced or not.
            if let mh = try? Multihash(bytes: Array(k.dropFirst())) { expected[mh, default: 0] += 0 }
            return true
        }
        try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: KeySpace.blockLinks.prefix) { _, v in
            var seen = Set<Multihash>()
            // Detached links hold nothing (`CountedBlockStore.stageDetach`).
            for l in try LinkList.live(v) where l.multihash.code != .identity && seen.insert(l.multihash).inserted {
                expected[l.multihash, default: 0] += 1
            }
            return true
        }
        // Pins: references, and their index entries.
        var expectedIndex = Set<[UInt8]>()
        try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: PinIndex.key(PinIndex.records)) { k, v in
            guard let id = PinIndex.trailingID(k), k.count == 2 + 16 else {
                report.problems.append("malformed pin key \(Base16.encode(k))")
                return true
            }
            let pin: Pin
            do { pin = try Pin(id: id, decoding: v) } catch {
                report.problems.append("\(error)")
                return true
            }
            report.pins += 1
            // Identity CIDs are never stored nor counted (`adjust` skips them): a pin on one holds nothing.
            if pin.holdsReference && pin.cid.multihash.code != .identity { expected[pin.cid.multihash, default: 0] += 1 }
            expectedIndex.insert(PinIndex.multihashKey(pin.cid.multihash, id))
            if let e = pin.expires { expectedIndex.insert(PinIndex.expiryKey(e, id)) }
            if pin.status == .queued { expectedIndex.insert(PinIndex.queuedKey(id)) }
            if let n = pin.name { expectedIndex.insert(PinIndex.nameKey(n, id)) }
            if let o = pin.owner { expectedIndex.insert(PinIndex.ownerKey(o, id)) }
            return true
        }
        for sub in [PinIndex.byMultihash, PinIndex.byExpiry, PinIndex.queued, PinIndex.byName, PinIndex.byOwner] {
            var found = Set<[UInt8]>()
            try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: PinIndex.key(sub)) { k, _ in
                found.insert(k)
                if !expectedIndex.contains(k) {
                    report.problems.append("pin index entry \(Base16.encode(k)) names no pin")
                    if repair { txn!.batch.delete(k); report.repaired += 1 }
                }
                return true
            }
            for k in expectedIndex where k[1] == sub && !found.contains(k) {
                report.problems.append("pin index entry \(Base16.encode(k)) is missing")
                if repair, let id = PinIndex.trailingID(k), let p = try pinner.pin(id: id) { PinIndex.stagePut(p, into: txn!.batch); report.repaired += 1 }
            }
        }
        // Counts: every stored or referenced multihash has the right count; candidates match.
        var actual: [Multihash: CountRecord] = [:]
        try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: KeySpace.referenceCounts.prefix) { k, v in
            report.records += 1
            guard let mh = try? Multihash(bytes: Array(k.dropFirst())), let r = try? CountRecord(decoding: v) else {
                report.problems.append("malformed count record \(Base16.encode(k))")
                if repair { txn!.batch.delete(k); report.repaired += 1 }
                return true
            }
            actual[mh] = r
            return true
        }
        var candidates = Set<[UInt8]>()
        try db.makeIterator(snapshot: snapshot, fillCache: false).forEach(prefix: KeySpace.gcCandidates.prefix) { k, _ in
            candidates.insert(k)
            return true
        }
        let now = txn?.now ?? pinner.store.clock.now
        // Expected: every stored or referenced multihash has a record with the recomputed count.
        var final = actual
        for mh in Set(expected.keys).union(actual.keys) {
            let have = actual[mh]
            guard let want = expected[mh] else {
                // Unreferenced and absent: a leftover the collector removes; only a positive count is wrong.
                if have?.count == 0 { continue }
                report.problems.append("count record for \(CID(codec: .raw, multihash: mh)), which is neither stored nor referenced")
                final[mh] = nil
                if repair { txn!.batch.delete(CountRecord.key(mh)); report.repaired += 1 }
                continue
            }
            guard have?.count != want else { continue }
            report.problems.append("block \(CID(codec: .raw, multihash: mh)): count \(have.map { String($0.count) } ?? "missing"), expected \(want)")
            let r = CountRecord(count: want, notBefore: have?.notBefore ?? now + pinner.store.putGracePeriod)
            final[mh] = r
            if repair { txn!.batch.put(CountRecord.key(mh), r.encode()); report.repaired += 1 }
        }
        // Candidates: one per unreferenced record, at its time.
        var wantCandidates = Set<[UInt8]>()
        for (mh, r) in final where r.count == 0 { wantCandidates.insert(CountRecord.candidateKey(r.notBefore, mh)) }
        for k in candidates where !wantCandidates.contains(k) {
            report.problems.append("GC candidate \(Base16.encode(k)) has no unreferenced count record")
            if repair { txn!.batch.delete(k); report.repaired += 1 }
        }
        for k in wantCandidates where !candidates.contains(k) {
            if actual[(try? Multihash(bytes: Array(k.dropFirst(9))))!]?.count == 0 {
                report.problems.append("unreferenced block \(Base16.encode(Array(k.dropFirst(9)))) is not a GC candidate")
            }
            if repair {
                txn!.batch.put(k, [])
                txn!.noteCandidate(k[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                report.repaired += 1
            }
        }
        return report
    }
}
