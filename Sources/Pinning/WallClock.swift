import Foundation
import Synchronization

/// Where Pinning's times come from: milliseconds since 1970, the unit of every time it stores
/// (puts, pins, leases, expiries, grace periods). Injected, so tests of expiry, grace and leases
/// move a `ManualClock` instead of sleeping.
public protocol WallClock: Sendable {
    /// Now, in milliseconds since 1970; never earlier than a time this clock already gave.
    var now: UInt64 { get }
}

/// The system's wall clock, never going back: a lease that began before a put must not see the
/// put dated before it if the wall clock steps back.
public struct SystemClock: WallClock {
    public init() {}

    public var now: UInt64 {
        let wall = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        var seen = latestMilliseconds.load(ordering: .relaxed)
        while seen < wall {
            let (exchanged, current) = latestMilliseconds.compareExchange(expected: seen, desired: wall, ordering: .relaxed)
            if exchanged { return wall }
            seen = current
        }
        return seen
    }
}

private let latestMilliseconds = Atomic<UInt64>(0)

/// A clock that moves only when told (tests, simulations).
public final class ManualClock: WallClock {
    private let time: Atomic<UInt64>

    /// A clock showing `start` (default: the system's now).
    public init(start: UInt64 = SystemClock().now) { time = Atomic(start) }

    public var now: UInt64 { time.load(ordering: .relaxed) }

    /// Moves the clock forward by `duration` (rounded down to milliseconds).
    public func advance(by duration: Duration) {
        time.add(duration.milliseconds, ordering: .relaxed)
    }
}

extension Duration {
    /// Whole milliseconds (negative durations are 0).
    public var milliseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1000 + UInt64(max(0, attoseconds) / 1_000_000_000_000_000)
    }
}
