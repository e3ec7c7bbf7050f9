import Locking
import Multiformats
import Synchronization

/// Small blocks read recently, kept in memory up to `capacity` bytes, so a reader that must not
/// block (a gateway handler on Swift's cooperative pool) can be answered in place; a miss goes to
/// the storage threads as before. Content-addressed bytes never change, so the only way an entry
/// goes stale is its block being deleted: every deletion evicts it and bumps `generation`, and an
/// entry read before a deletion is not admitted after it (`insert(_:_:ifGeneration:)`). A deletion
/// is staged before its batch is written, so the store bumps `generation` again once the writer
/// that staged it is done (`writerDone()`): a reader that looked between the two read a block that
/// was about to go.
///
/// Eviction is CLOCK (second chance): an entry read since the hand last passed it is kept once
/// more; the hand's sweep is bounded by the entries present.
public final class HotBlocks: Sendable {
    /// Bytes of block data kept at most (0: the cache is off).
    public let capacity: Int
    /// Blocks larger than this are not kept.
    public let maximumBlockSize: Int

    private struct Entry {
        var data: [UInt8]
        var referenced: Bool
        /// Its place in `ring`.
        var slot: Int
    }

    private struct State {
        var entries: [Multihash: Entry] = [:]
        var ring: [Multihash] = []
        var hand = 0
        var bytes = 0
        var generation: UInt64 = 0
        var hits = 0
        var misses = 0

        /// Removes the entry at `slot` of the ring (the last one takes its place).
        mutating func remove(at slot: Int) {
            let key = ring[slot]
            if let e = entries.removeValue(forKey: key) { bytes -= e.data.count }
            let last = ring.removeLast()
            if slot < ring.count {
                ring[slot] = last
                entries[last]?.slot = slot
            }
        }
    }

    private let state = Mutex(State())
    /// A deletion was staged since the writer began.
    private let deletionStaged = Atomic<Bool>(false)

    public init(capacity: Int, maximumBlockSize: Int = 16 << 10) {
        self.capacity = max(0, capacity)
        self.maximumBlockSize = maximumBlockSize
    }

    /// The block's bytes if kept.
    public func get(_ mh: Multihash) -> [UInt8]? {
        guard capacity > 0 else { return nil }
        return state.locked { s in
            guard var e = s.entries[mh] else {
                s.misses += 1
                return nil
            }
            s.hits += 1
            if !e.referenced {
                e.referenced = true
                s.entries[mh] = e
            }
            return e.data
        }
    }

    /// Where a reader stands: pass it to `insert` after reading.
    public var generation: UInt64 { state.locked { $0.generation } }

    /// Keeps `data` (the bytes of `mh`, just read) unless a deletion happened since `generation`.
    public func insert(_ mh: Multihash, _ data: [UInt8], ifGeneration generation: UInt64) {
        guard capacity > 0, data.count <= maximumBlockSize, data.count <= capacity else { return }
        state.locked { s in
            guard s.generation == generation, s.entries[mh] == nil else { return }
            // Make room: the hand clears a reference bit or evicts, at most twice round the ring.
            var steps = 0
            while s.bytes + data.count > capacity, !s.ring.isEmpty, steps < 2 * s.ring.count + 1 {
                steps += 1
                if s.hand >= s.ring.count { s.hand = 0 }
                let key = s.ring[s.hand]
                if let e = s.entries[key], e.referenced {
                    s.entries[key]!.referenced = false
                    s.hand += 1
                    continue
                }
                s.remove(at: s.hand)
            }
            guard s.bytes + data.count <= capacity else { return }
            s.entries[mh] = Entry(data: data, referenced: false, slot: s.ring.count)
            s.ring.append(mh)
            s.bytes += data.count
        }
    }

    /// The block is being deleted: dropped, and readers that began before do not put it back.
    public func evict(_ mh: Multihash) {
        guard capacity > 0 else { return }
        state.locked { s in
            s.generation &+= 1
            if let slot = s.entries[mh]?.slot { s.remove(at: slot) }
        }
        deletionStaged.store(true, ordering: .releasing)
    }

    /// The store's writer ended (its batch written, or abandoned): readers that began while a
    /// deletion was staged do not admit what they read.
    public func writerDone() {
        guard deletionStaged.exchange(false, ordering: .acquiringAndReleasing) else { return }
        state.locked { $0.generation &+= 1 }
    }

    /// Entries, bytes kept, and lookups answered and not since the store opened.
    public var stats: (entries: Int, bytes: Int, hits: Int, misses: Int) {
        state.locked { ($0.entries.count, $0.bytes, $0.hits, $0.misses) }
    }
}
