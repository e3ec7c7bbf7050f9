import Multiformats
import Storage

extension Pinner {
    private static let countsMarker = KeySpace.meta.key(Array("reference-counts".utf8))

    /// A repository made before reference counting has blocks and no counts: computes them, and
    /// pins (directly, named "pre-pinning root", `meta.migrated`) every block nothing references,
    /// so upgrading never makes data collectable. Returns what it did, or nil when there was
    /// nothing to compute (the repository has counts, or no blocks); the marker is written once,
    /// after the counts.
    @discardableResult
    public func computeCountsIfAbsent() throws -> (repaired: Int, rootsPinned: Int)? {
        guard try db.get(Self.countsMarker) == nil else { return nil }
        var hasBlocks = false
        try db.makeIterator().forEach(prefix: KeySpace.blockData.prefix) { _, _ in
            hasBlocks = true
            return false
        }
        var done = (repaired: 0, rootsPinned: 0)
        if hasBlocks {
            done.repaired = try CountVerifier(pinner: self).repair().repaired
            var roots: [CID] = []
            try db.makeIterator().forEach(prefix: KeySpace.gcCandidates.prefix) { k, _ in
                if let mh = try? Multihash(bytes: Array(k.dropFirst(9))) { roots.append(CID(codec: .raw, multihash: mh)) }
                return true
            }
            for r in roots {
                // Pin under the codec the block was stored with, so its links stay counted.
                var cid = r
                try db.makeIterator().forEach(prefix: KeySpace.blockLinks.key(r.multihash.bytes)) { k, _ in
                    cid = CID(codec: try LevelDBBlockStore.parseLinksKey(k).1, multihash: r.multihash)
                    return false
                }
                var request = Request(cid: cid, type: .direct, name: "pre-pinning root")
                request.meta = ["migrated": "true"]
                try pin(request)
            }
            done.rootsPinned = roots.count
        }
        let batch = WriteBatch()
        batch.put(Self.countsMarker, [1])
        try db.write(batch, sync: true)
        return hasBlocks ? done : nil
    }
}
