import Dispatch
import Storage
import Synchronization

/// Group commit for concurrent single-block puts: requests that arrive while a
/// write is in progress are stored together by the next write, as one put-many
/// (one LevelDB batch, one fsync under `durability: sync`). Each caller is
/// answered only after the batch holding its block is durable, so acknowledged
/// still means on disk. A failed batch is retried block by block, so one bad
/// block fails only its own request.
final class WriteCoalescer: Sendable {
    private struct Pending {
        var blocks: [(Block, @Sendable (Result<Void, any Error>) -> Void)] = []
        var draining = false
    }

    private let store: any BlockStore
    private let state = Mutex(Pending())
    private let queue = DispatchQueue(label: "qstore.block-writes")
    /// Largest batch, in blocks.
    private let maximumBatch = 512

    init(store: any BlockStore) { self.store = store }

    /// Stores `block`, blocking the calling thread until it is durable (per the store's
    /// durability): callers on the storage threads wait together for one commit.
    func put(_ block: Block) throws {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<Void, any Error>?>(nil)
        enqueue(block) { r in
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        try result.withLock { $0! }.get()
    }

    /// Stores `block`; returns once it is durable, holding no thread while it waits.
    func put(_ block: Block) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            enqueue(block) { c.resume(with: $0) }
        }
    }

    private func enqueue(_ block: Block, _ completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        let start = state.withLock { s -> Bool in
            s.blocks.append((block, completion))
            if s.draining { return false }
            s.draining = true
            return true
        }
        if start { queue.async { self.drain() } }
    }

    private func drain() {
        while true {
            let batch = state.withLock { s -> [(Block, @Sendable (Result<Void, any Error>) -> Void)] in
                let n = min(s.blocks.count, maximumBatch)
                let taken = Array(s.blocks.prefix(n))
                s.blocks.removeFirst(n)
                if taken.isEmpty { s.draining = false }
                return taken
            }
            if batch.isEmpty { return }
            do {
                try store.putMany(batch.map(\.0))
                for (_, c) in batch { c(.success(())) }
            } catch {
                for (b, c) in batch {
                    do { try store.put(b); c(.success(())) } catch { c(.failure(error)) }
                }
            }
        }
    }
}
