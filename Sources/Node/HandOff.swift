import Foundation

/// Items handed from a reading thread to the thread that uses them, at most `capacity` waiting:
/// the reader `put`s (waiting for room), `finish`es (with its error, if it failed) and, as its
/// thread ends, says `exited`; the user `take`s until nil, and `cancelAndWait`s before it returns
/// (the reader reads the store: it must not outlive the operation, or its lease).
final class HandOff<Item>: @unchecked Sendable {
    // Safe: every field is touched under `condition`.
    private let condition = NSCondition()
    private var queued: [Item] = []
    private var finished = false
    private var cancelled = false
    private var running = true
    private var failure: (any Error)?
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Waits for room; false when the user gave up.
    func put(_ item: Item) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queued.count >= capacity && !cancelled { condition.wait() }
        guard !cancelled else { return false }
        queued.append(item)
        condition.broadcast()
        return true
    }

    func finish(_ error: (any Error)?) {
        condition.withLock {
            (finished, failure) = (true, error)
            condition.broadcast()
        }
    }

    var isCancelled: Bool { condition.withLock { cancelled } }

    /// Called by the reader as its thread ends.
    func exited() {
        condition.withLock {
            running = false
            condition.broadcast()
        }
    }

    /// Stops the reader and waits until its thread has ended.
    func cancelAndWait() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }

    /// The next item; nil at the end; the reader's error when it failed.
    func take() throws -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while queued.isEmpty && !finished { condition.wait() }
        if !queued.isEmpty {
            condition.broadcast()
            return queued.removeFirst()
        }
        if let failure { throw failure }
        return nil
    }
}
