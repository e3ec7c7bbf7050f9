import CLocking
import Synchronization

extension Mutex where Value: ~Copyable {
    /// `withLock`, with the critical section told to ThreadSanitizer. The standard library's
    /// `Mutex` takes a contended lock in `_lockSlow` and hands it on in `_unlockSlow`, which are
    /// compiled into the (uninstrumented) runtime: ThreadSanitizer sees only the uncontended fast
    /// path's atomics, and reported two critical sections of one `Mutex` that met under contention
    /// as a race. Every critical section run through here begins with an acquire and ends with a
    /// release on the mutex's address, so each follows the one before it for ThreadSanitizer too.
    /// (The address is the mutex's, not the value's: taking the value's is an access of it, made
    /// before the acquire, which ThreadSanitizer reported in turn.)
    /// Outside a `--sanitize=thread` build the two calls do nothing.
    @inlinable
    public borrowing func locked<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        // A `Mutex` is address-only and never moves: a borrow of it is its storage.
        let address = withUnsafePointer(to: self) { UnsafeMutableRawPointer(mutating: $0) }
        return try withLock { (value: inout sending Value) throws(E) -> sending Result in
            qstore_tsan_acquire(address)
            defer { qstore_tsan_release(address) }
            return try body(&value)
        }
    }
}
