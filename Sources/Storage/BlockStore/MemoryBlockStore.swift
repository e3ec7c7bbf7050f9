import Locking
import Multiformats
import Synchronization

/// A block store in memory: for tests, `--only-hash` style work and caches.
/// One mutex guards all state; every call holds it for its whole duration,
/// which is what makes each call atomic.
public final class MemoryBlockStore: BlockStore {
    private struct State {
        var data: [Multihash: [UInt8]] = [:]
        var links: [Multihash: [Multicodec: [CID]]] = [:]
    }

    private let state = Mutex(State())
    /// The options in force.
    public let options: BlockStoreOptions

    /// An empty store.
    public init(options: BlockStoreOptions = BlockStoreOptions()) { self.options = options }

    public func has(_ cid: CID) throws -> Bool {
        if cid.multihash.code == .identity { return cid.multihash.digestLength <= Block.maximumIdentityLength }
        return state.locked { $0.data[cid.multihash] != nil }
    }

    public func get(_ cid: CID) throws -> [UInt8]? {
        if cid.multihash.code == .identity { return try Block.identityData(cid) }
        return state.locked { $0.data[cid.multihash] }
    }

    public func size(_ cid: CID) throws -> Int? { try get(cid)?.count }

    public func put(_ block: Block) throws { try putMany([block]) }

    public func putMany(_ blocks: [Block]) throws {
        // Everything is checked before anything is stored.
        var prepared: [(Block, [CID])] = []
        for b in blocks {
            guard b.data.count <= options.maximumBlockSize else {
                throw BlockStoreError.blockTooLarge(size: b.data.count, limit: options.maximumBlockSize)
            }
            if b.cid.multihash.code == .identity { continue }
            prepared.append((b, try extractLinks(b)))
        }
        state.locked { s in
            for (b, links) in prepared {
                s.data[b.cid.multihash] = b.data
                s.links[b.cid.multihash, default: [:]][b.cid.codec] = links
            }
        }
    }

    @discardableResult
    public func delete(_ cid: CID) throws -> Bool {
        if cid.multihash.code == .identity { return false }
        return state.locked { s in
            s.links[cid.multihash] = nil
            return s.data.removeValue(forKey: cid.multihash) != nil
        }
    }

    public func links(of cid: CID) throws -> [CID]? {
        if cid.multihash.code == .identity { return try extractLinks(Block(trusted: cid, data: try Block.identityData(cid))) }
        return state.locked { $0.links[cid.multihash]?[cid.codec] }
    }

    public func forEach(_ body: (CID) throws -> Bool) throws {
        // Snapshot the keys (in the LevelDB store's order: multihash bytes, then codec) and visit outside the lock.
        let cids = state.locked { s in
            s.links.flatMap { mh, codecs in codecs.keys.map { CID(codec: $0, multihash: mh) } }
        }.sorted { a, b in
            a.multihash.bytes == b.multihash.bytes ? a.codec < b.codec : a.multihash.bytes.lexicographicallyPrecedes(b.multihash.bytes)
        }
        for c in cids where try !body(c) { return }
    }
}
