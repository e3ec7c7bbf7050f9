import Locking
import Multiformats
import Synchronization

/// Small blocks read recently, kept in memory up to `capacity` bytes, so a reader that must not
/// block (a gateway handler on Swift's cooperative pool) can be answered in place; a miss goes to
/// the storage threads as before.
///
/// Content-addressed bytes never change, so the only way an entry goes stale is its block being
/// deleted. A deletion is staged (`evict`) before its batch is written and the writer ends
/// (`writerDone`) after: from the one to the other the block is *being deleted* — evicted, and
/// refused by `insert` whatever the reader saw — and every reader that looked up the generation
/// before the writer ended has its insertion refused too (`insert(_:_:ifGeneration:)`). So a removed
/// or collected block is never answered from memory.
///
/// Eviction is CLOCK: the hand gives an entry read since it last passed a second chance, and a new
/// entry takes the place of the one evicted for it (the last the hand will come back to). Each
/// entry is charged its bytes plus `entryOverhead` (keys, headers, table slots), so many tiny
/// blocks cannot hold more memory than `capacity` either.
public final class HotBlocks: Sendable {
    /// Bytes kept at most, overhead included (0: the cache is off).
    public let capacity: Int
    /// Blocks larger than this are not kept.
    public let maximumBlockSize: Int
    /// What an entry costs besides its data: its key, the arrays' headers, its slots.
    static let entryOverhead = 160

    private struct Entry {
        var data: [UInt8]
        var referenced: Bool
        /// Its place in `ring`.
        var slot: Int
        var cost: Int { data.count + HotBlocks.entryOverhead }
    }

    private struct State {
        var entries: [Multihash: Entry] = [:]
        /// The clock: entries' keys; nil where one was removed (its index in `free`).
        var ring: [Multihash?] = []
        var free: [Int] = []
        var hand = 0
        var bytes = 0
        var generation: UInt64 = 0
        /// Blocks whose deletion is staged and not yet written.
        var deleting: Set<Multihash> = []
        var hits = 0
        var misses = 0

        mutating func remove(_ mh: Multihash) {
            guard let e = entries.removeValue(forKey: mh) else { return }
            bytes -= e.cost
            ring[e.slot] = nil
            free.append(e.slot)
        }
    }

    private let state = Mutex(State())
    /// A deletion was staged since the writer began (checked without the lock by every writer).
    private let deletionStaged = Atomic<Bool>(false)

    public init(capacity: Int, maximumBlockSize: Int = 16 << 10) {
        self.capacity = max(0, capacity)
        self.maximumBlockSize = maximumBlockSize
    }

    /// The block's bytes if kept.
    public func get(_ mh: Multihash) -> [UInt8]? {
        guard capacity > 0 else { return nil }
        return state.locked { s in
            guard let e = s.entries[mh] else {
                s.misses += 1
                return nil
            }
            s.hits += 1
            if !e.referenced { s.entries[mh]!.referenced = true }
            return e.data
        }
    }

    /// Where a reader stands: pass it to `insert` after reading.
    public var generation: UInt64 { state.locked { $0.generation } }

    /// Keeps `data` (the bytes of `mh`, just read) unless a writer that deleted something ended
    /// since `generation`, or the block is being deleted.
    public func insert(_ mh: Multihash, _ data: [UInt8], ifGeneration generation: UInt64) {
        let cost = data.count + Self.entryOverhead
        guard capacity > 0, data.count <= maximumBlockSize, cost <= capacity else { return }
        state.locked { s in
            guard s.generation == generation, !s.deleting.contains(mh), s.entries[mh] == nil else { return }
            // Make room. Two turns of the hand clear every reference bit and evict what is left.
            var steps = 2 * s.ring.count
            while s.bytes + cost > capacity, steps > 0 {
                steps -= 1
                if s.hand >= s.ring.count { s.hand = 0 }
                defer { s.hand += 1 }
                guard let key = s.ring[s.hand], let e = s.entries[key] else { continue }
                if e.referenced {
                    s.entries[key]!.referenced = false
                } else {
                    s.remove(key)
                }
            }
            guard s.bytes + cost <= capacity else { return }
            // The slot just freed behind the hand (or any free one, or a new one).
            let slot: Int
            if let i = s.free.popLast() {
                slot = i
                s.ring[i] = mh
            } else {
                slot = s.ring.count
                s.ring.append(mh)
            }
            s.entries[mh] = Entry(data: data, referenced: false, slot: slot)
            s.bytes += cost
        }
    }

    /// The block's deletion is staged: dropped, and not admitted again until the writer ends.
    public func evict(_ mh: Multihash) {
        guard capacity > 0 else { return }
        state.locked { s in
            s.generation &+= 1
            s.deleting.insert(mh)
            s.remove(mh)
        }
        deletionStaged.store(true, ordering: .releasing)
    }

    /// The store's writer ended (its batch written, or abandoned): what it deleted is evicted
    /// again (a reader may have put it back meanwhile from a read made before the write), and
    /// readers that began before now do not admit what they read.
    public func writerDone() {
        guard deletionStaged.exchange(false, ordering: .acquiringAndReleasing) else { return }
        state.locked { s in
            for mh in s.deleting { s.remove(mh) }
            s.deleting.removeAll(keepingCapacity: true)
            s.generation &+= 1
        }
    }

    /// Entries, bytes kept (overhead included), and lookups answered and not since the store opened.
    public var stats: (entries: Int, bytes: Int, hits: Int, misses: Int) {
        state.locked { ($0.entries.count, $0.bytes, $0.hits, $0.misses) }
    }
}
