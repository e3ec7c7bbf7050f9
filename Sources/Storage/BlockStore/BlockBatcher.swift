import Dispatch
import Foundation
import Multiformats

/// Stores a stream of blocks in put-many batches of about `batchBytes`, each written on a
/// second thread while the caller produces the next (hashing, reading a CAR), so producing
/// and disk writes overlap. One batch is written while the next fills, so memory stays
/// bounded. `finish()` stores the rest and returns once every batch is durable, or throws
/// the first failure (after which nothing more is written).
///
/// Used by every bulk path: file import, tree import, CAR import.
public final class BlockBatcher: @unchecked Sendable {
    // `pending` and `pendingBytes` belong to the producing thread; `failure` is guarded by
    // `lock`; the rest is immutable after init.
    private let store: any BlockStore
    private let batchBytes: Int
    private var pending: [Block] = []
    private var pendingBytes = 0
    private let queue = DispatchQueue(label: "qstore.block-batcher")
    private let slot = DispatchSemaphore(value: 1)
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var failure: (any Error)?
    private let remember: Bool
    private var written: [Multihash] = []

    /// A batcher writing into `store`; `remember`: it keeps the multihashes it stored (`stored`).
    public init(store: any BlockStore, batchBytes: Int = 3 << 20, remember: Bool = false) {
        self.store = store
        self.batchBytes = batchBytes
        self.remember = remember
    }

    /// What was stored so far, when the batcher remembers.
    public var stored: [Multihash] { lock.withLock { written } }

    /// Adds a block; a full batch goes to the writer (waiting while the previous one is written).
    public func add(_ block: Block) throws {
        pending.append(block)
        pendingBytes += block.data.count
        if pendingBytes >= batchBytes { try submit() }
    }

    /// Stores what is pending and waits for every batch; throws the first failure.
    public func finish() throws {
        if !pending.isEmpty { try submit() }
        group.wait()
        if let f = lock.withLock({ failure }) { throw f }
    }

    private func submit() throws {
        if let f = lock.withLock({ failure }) { throw f }
        let batch = pending
        pending = []
        pendingBytes = 0
        slot.wait()
        group.enter()
        queue.async {
            defer { self.slot.signal(); self.group.leave() }
            if self.lock.withLock({ self.failure }) != nil { return }
            do {
                try self.store.putMany(batch)
                if self.remember { self.lock.withLock { self.written += batch.map(\.cid.multihash) } }
            } catch { self.lock.withLock { if self.failure == nil { self.failure = error } } }
        }
    }
}
