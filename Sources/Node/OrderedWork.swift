import Foundation

/// Work handed from a producing thread to the thread that uses the results, in order, where either
/// thread may do the work: the producer `put`s inputs (at most `capacity` waiting) and, instead of
/// waiting for room, does the newest waiting input's work itself; the user `take`s results in
/// order, doing the oldest input's work itself when nobody has started it. So both cores are busy
/// whichever side is slower, and the order holds. The producer `finish`es (with its error), says
/// `exited` as its thread ends; the user `cancelAndWait`s before it returns.
final class OrderedWork<Input, Output>: @unchecked Sendable {
    private enum Slot {
        case waiting(Input)
        case working
        case done(Output)
        case failed(any Error)
        case taken

        var isWaiting: Bool { if case .waiting = self { true } else { false } }
    }

    // Safe: every field is touched under `condition`; `work` only reads what it is given.
    private let condition = NSCondition()
    private var slots: [Slot] = []
    /// The index in `slots` of the oldest slot not taken yet (slots before it were taken).
    private var head = 0
    /// How many slots were dropped from the front of `slots` (an input's number is its index + base).
    private var base = 0
    private var finished = false
    private var cancelled = false
    private var running = true
    private var failure: (any Error)?
    private let work: (Input) throws -> Output
    let capacity: Int

    init(capacity: Int, work: @escaping (Input) throws -> Output) {
        self.capacity = max(1, capacity)
        self.work = work
    }

    /// A plain hand-off (nothing to work on: the user gets what the producer put).
    convenience init(capacity: Int) where Input == Output {
        self.init(capacity: capacity) { $0 }
    }

    private var pending: Int { slots.count - head }

    /// Hands `input` on; when `capacity` inputs wait, works on the newest waiting one meanwhile.
    /// False when the user gave up.
    func put(_ input: Input) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while pending >= capacity && !cancelled {
            if let i = slots[head...].lastIndex(where: \.isWaiting) {
                perform(i + base)
            } else {
                condition.wait()
            }
        }
        guard !cancelled else { return false }
        slots.append(.waiting(input))
        condition.broadcast()
        return true
    }

    /// Does the work of input number `n` outside the lock (held on entry and on return; the
    /// slots may move meanwhile, the number does not).
    private func perform(_ n: Int) {
        guard case .waiting(let input) = slots[n - base] else { return }
        slots[n - base] = .working
        condition.unlock()
        let result: Slot
        do { result = .done(try work(input)) } catch { result = .failed(error) }
        condition.lock()
        slots[n - base] = result
        condition.broadcast()
    }

    func finish(_ error: (any Error)?) {
        condition.withLock {
            (finished, failure) = (true, error)
            condition.broadcast()
        }
    }

    var isCancelled: Bool { condition.withLock { cancelled } }

    /// Called by the producer as its thread ends.
    func exited() {
        condition.withLock {
            running = false
            condition.broadcast()
        }
    }

    /// Stops the producer and waits until its thread has ended.
    func cancelAndWait() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }

    /// The next result in order; nil at the end; the work's or the producer's error when one failed.
    func take() throws -> Output? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if head < slots.count {
                switch slots[head] {
                case .waiting:
                    perform(head + base)
                    continue
                case .working:
                    condition.wait()
                    continue
                case .done(let output):
                    advance()
                    return output
                case .failed(let error):
                    advance()
                    throw error
                case .taken:
                    preconditionFailure("a taken slot at the head")
                }
            }
            if finished {
                if let failure { throw failure }
                return nil
            }
            condition.wait()
        }
    }

    private func advance() {
        slots[head] = .taken  // its output is the caller's now: not kept here
        head += 1
        // Drop what was taken now and then, not on every take.
        if head >= 64 {
            slots.removeFirst(head)
            base += head
            head = 0
        }
        condition.broadcast()
    }
}
