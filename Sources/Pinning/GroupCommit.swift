import Dispatch
import Locking
import Storage
import Synchronization

/// Group commit: operations that arrive while a commit is in progress are staged together into
/// the next one — one `CountedBlockStore.transaction`, one LevelDB batch, one fsync under
/// `durability: sync` — and each caller is answered only once the batch holding its operation is
/// durable, so acknowledged still means on disk.
///
/// An operation stages its changes into the shared transaction, in arrival order, and sees the
/// changes of the operations before it (reads through the transaction, and whatever state the
/// operations keep in `Context`). An operation that throws without having staged anything (no
/// batch entry, no count change) is refused alone and the others go on; one that throws after
/// staging fails the batch, which is then run again one operation per transaction, so one bad
/// operation fails only its own caller. An operation may therefore run more than once and must
/// derive everything from what it reads. When every operation has run, `Batch.finish` stages
/// what they gathered together (e.g. the blocks of many puts: one pack append, one pack sync).
public final class GroupCommit<Batch: CommitBatch>: Sendable {
    /// One operation and the caller's continuation.
    private struct Op: Sendable {
        let stage: @Sendable (CountTransaction, inout Batch) throws -> any Sendable
        let done: @Sendable (Result<any Sendable, any Error>) -> Void
        /// Who asked (audit entries the operation records name them).
        let context = AuditContext.current
    }

    private struct Pending {
        var ops: [Op] = []
        var draining = false
    }

    private let store: CountedBlockStore
    private let state = Mutex(Pending())
    private let queue: DispatchQueue
    /// Largest batch, in operations.
    public let maximumBatch: Int

    /// Group commit into `store`, its commits run on a queue named `label`.
    public init(store: CountedBlockStore, label: String, maximumBatch: Int = 512) {
        self.store = store
        self.queue = DispatchQueue(label: label)
        self.maximumBatch = maximumBatch
    }

    /// Runs `stage` in the next commit, blocking the calling thread until that commit is durable.
    public func run<R: Sendable>(_ stage: @escaping @Sendable (CountTransaction, inout Batch) throws -> R) throws -> R {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<any Sendable, any Error>?>(nil)
        enqueue(Op(stage: { try stage($0, &$1) }, done: { r in
            result.locked { $0 = r }
            done.signal()
        }))
        done.wait()
        return try result.locked { $0! }.get() as! R
    }

    /// Runs `stage` in the next commit; returns once that commit is durable, holding no thread
    /// while it waits.
    public func run<R: Sendable>(_ stage: @escaping @Sendable (CountTransaction, inout Batch) throws -> R) async throws -> R {
        let value = try await withCheckedThrowingContinuation { (c: CheckedContinuation<any Sendable, any Error>) in
            enqueue(Op(stage: { try stage($0, &$1) }, done: { c.resume(with: $0) }))
        }
        return value as! R
    }

    private func enqueue(_ op: Op) {
        let start = state.locked { s -> Bool in
            s.ops.append(op)
            if s.draining { return false }
            s.draining = true
            return true
        }
        if start { queue.async { self.drain() } }
    }

    private func drain() {
        while true {
            let batch = state.locked { s -> [Op] in
                let n = min(s.ops.count, maximumBatch)
                let taken = Array(s.ops.prefix(n))
                s.ops.removeFirst(n)
                if taken.isEmpty { s.draining = false }
                return taken
            }
            if batch.isEmpty { return }
            commit(batch)
        }
    }

    /// Commits `batch` as one transaction; on a failure that touched the batch, one by one.
    private func commit(_ batch: [Op]) {
        var outcomes: [Result<any Sendable, any Error>] = []
        do {
            try store.transaction { txn in
                var shared = Batch()
                outcomes = []
                for op in batch {
                    let mark = txn.mark
                    do { outcomes.append(.success(try AuditContext.$current.withValue(op.context) { try op.stage(txn, &shared) })) } catch {
                        guard txn.mark == mark else { throw error }
                        outcomes.append(.failure(error))
                    }
                }
                try shared.finish(txn, store: store)
            }
        } catch {
            guard batch.count > 1 else { batch[0].done(.failure(error)); return }
            for op in batch { commit([op]) }
            return
        }
        for (op, r) in zip(batch, outcomes) { op.done(r) }
    }
}

/// What the operations of one group commit share: made empty for each batch, finished once all
/// of them have run.
public protocol CommitBatch {
    init()
    /// Stages what the operations gathered; a throw fails the batch (run again one by one).
    mutating func finish(_ txn: CountTransaction, store: CountedBlockStore) throws
}

/// Blocks put by many callers, staged together: one pack append and one pack sync per batch.
public struct BlockPuts: CommitBatch {
    /// The blocks gathered.
    public var blocks: [Block] = []
    public init() {}
    public mutating func finish(_ txn: CountTransaction, store: CountedBlockStore) throws {
        if !blocks.isEmpty { try store.stage(blocks, in: txn) }
    }
}
