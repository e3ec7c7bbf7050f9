import CAR
import Locking
import Pinning
import NIOCore
import NIOPosix
import Synchronization

/// Runs blocking storage work (LevelDB, pack files, fsync) on a dedicated thread
/// pool, off Swift's cooperative pool. Sixteen threads, so that many synced puts
/// can wait on one fsync together (LevelDB commits them as a group).
final class StorageThreads: Sendable {
    let pool: NIOThreadPool

    init(threads: Int = 16) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    /// Runs `body` on the pool and returns its result.
    /// Who the request is (`AuditContext`) goes along, so changes made there are logged as theirs.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let context = AuditContext.current
        return try await pool.runIfActive { try AuditContext.$current.withValue(context) { try body() } }
    }

    func shutdown() async throws { try await pool.shutdownGracefully() }
}

/// Where a listener's streamed downloads (files, CARs, TARs, `cat`, `get`) are produced: a thread
/// pool of their own with per-client slots, so clients that read slowly (or not at all, until the
/// send timeout) can hold at most these threads, never the storage pool every request needs.
final class Downloads: Sendable {
    let threads: StorageThreads
    let slots: ClientSlots

    init(_ limits: SlotLimits) {
        threads = StorageThreads(threads: limits.total)
        slots = ClientSlots(limits, kind: "downloads")
    }

    func shutdown() async throws { try await threads.shutdown() }
}

/// A slot of `ClientSlots` held by one request, given back once: when the work ends, or when the
/// response holding it is dropped unwritten (the client left before it was sent).
final class SlotLease: Sendable {
    private let slots: ClientSlots
    private let client: String
    private let held = Mutex(true)

    init(_ slots: ClientSlots, client: String) {
        self.slots = slots
        self.client = client
    }

    func release() {
        if held.locked({ h in defer { h = false }; return h }) { slots.release(client: client) }
    }

    deinit { release() }
}

/// A `ByteSink` that sends what is written through a `ChunkChannel` in pieces of about 64 KiB.
struct ChannelSink: ByteSink {
    let channel: ChunkChannel
    var pending: [UInt8] = []

    init(_ channel: ChunkChannel) { self.channel = channel }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        pending.append(contentsOf: bytes)
        if pending.count >= 64 << 10 { try flush() }
    }

    mutating func flush() throws {
        guard !pending.isEmpty else { return }
        try channel.send(pending)
        pending.removeAll(keepingCapacity: true)
    }
}

/// A bound on work that takes a thread (an upload imported as it arrives; a download produced
/// for a client that may read slowly): at most `total` at once, at most `perClient` of them
/// (active or waiting) from one client address; past `total` the next waits (asynchronously) at
/// most `wait` for one to end. So neither many clients nor one client holding requests open can
/// make the daemon start unbounded threads or keep everybody else waiting: a client over its
/// share gets 429, a wait that runs out 503, both with `Retry-After`.
final class ClientSlots: Sendable {
    typealias Limits = SlotLimits
    private struct Waiter {
        let id: UInt64
        let client: String
        let continuation: CheckedContinuation<Outcome, Never>
    }
    private struct State {
        var free: Int
        var byClient: [String: Int] = [:]
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }
    private let state: Mutex<State>
    let limits: Limits
    /// What is counted, for messages: "uploads", "downloads".
    let kind: String

    init(_ limits: Limits, kind: String = "uploads") {
        self.kind = kind
        self.limits = Limits(total: max(1, limits.total), perClient: max(1, limits.perClient), wait: limits.wait)
        state = Mutex(State(free: self.limits.total))
    }

    private enum Outcome { case granted, overShare, timedOut }

    /// Takes a slot for `client`, waiting at most `limits.wait` for one; throws `Overloaded`
    /// (429 when the client already holds its share, 503 when the wait ran out).
    func acquire(client: String) async throws {
        let outcome = await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
            let waiting = state.locked { s -> UInt64? in
                let mine = s.byClient[client, default: 0]
                guard mine < limits.perClient else {
                    c.resume(returning: .overShare)
                    return nil
                }
                s.byClient[client] = mine + 1
                if s.free > 0 {
                    s.free -= 1
                    c.resume(returning: .granted)
                    return nil
                }
                s.nextID += 1
                s.waiters.append(Waiter(id: s.nextID, client: client, continuation: c))
                return s.nextID
            }
            if let id = waiting {
                let wait = limits.wait
                Task { [weak self] in
                    try? await Task.sleep(for: wait)
                    self?.timeOut(id)
                }
            }
        }
        switch outcome {
        case .granted: return
        case .overShare:
            throw Overloaded(status: .tooManyRequests, retryAfter: 1,
                             message: "this client already has \(limits.perClient) \(kind) in progress (http.\(kind)PerClient); retry when one ends")
        case .timedOut:
            let seconds = max(1, Int(limits.wait.components.seconds))
            throw Overloaded(status: .serviceUnavailable, retryAfter: seconds,
                             message: "all \(limits.total) \(kind) slots stayed busy for \(seconds) s (http.\(kind == "uploads" ? "upload" : "download")Slots); retry later")
        }
    }

    private func timeOut(_ id: UInt64) {
        let waiter = state.locked { s -> Waiter? in
            guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            let w = s.waiters.remove(at: i)
            s.byClient[w.client, default: 1] -= 1
            if s.byClient[w.client] == 0 { s.byClient[w.client] = nil }
            return w
        }
        waiter?.continuation.resume(returning: .timedOut)
    }

    /// Gives `client`'s slot back (to the longest waiter, if any).
    func release(client: String) {
        let next = state.locked { s -> Waiter? in
            s.byClient[client, default: 1] -= 1
            if s.byClient[client] == 0 { s.byClient[client] = nil }
            if s.waiters.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.continuation.resume(returning: .granted)
    }

    /// Slots free now, and requests waiting for one (for tests and metrics).
    var available: (free: Int, waiting: Int) { state.locked { ($0.free, $0.waiters.count) } }
}
