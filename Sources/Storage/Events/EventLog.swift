import Foundation
import IPLD
import Locking
import Multiformats
import Synchronization

/// One persisted stream of the node's events (`q.<layer>.<action>.v1`), read from any point and
/// followed live (`GET /q/v1/events`, Server-Sent Events).
///
/// Invariants:
/// - an event is staged into the batch of the change it describes, so it is durable exactly when
///   the change is (no event for a change that failed, none missing for one acknowledged);
/// - sequence numbers only grow: they are assigned while staging, inside the store's writer lock,
///   so their order is the order batches are written in. A batch that fails leaves a gap, never a
///   reuse;
/// - the stream keeps the newest `retention` events: staging event N deletes the events at or
///   below N − retention (up to 16 at a time) in the same batch.
public final class EventLog: Sendable {
    let db: LevelDB
    /// How many events are kept.
    public let retention: UInt64
    private let state: Mutex<State>

    struct State {
        var next: UInt64
        /// The oldest event that may still be stored.
        var oldest: UInt64
        var subscribers: [UInt64: AsyncStream<Void>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0
    }

    /// An event as stored and served.
    public struct Event: Sendable, Equatable {
        public var sequence: UInt64
        public var topic: String
        /// When it was staged (ms since 1970).
        public var timestamp: UInt64
        /// Its fields (strings, integers, nulls, lists of strings).
        public var data: IPLDMap
    }

    /// The stream of `db`; the next sequence follows the last stored one.
    public init(db: LevelDB, retention: UInt64 = 1_000_000) {
        self.db = db
        self.retention = max(1, retention)
        let it = db.makeIterator()
        it.seek([KeySpace.events.rawValue + 1])
        if it.isValid { it.previous() } else { it.seekToLast() }
        var last: UInt64 = 0
        if it.isValid, it.key.count == 9, it.key.first == KeySpace.events.rawValue { last = Self.sequence(of: it.key) }
        it.seek(KeySpace.events.prefix)
        var oldest = last + 1
        if it.isValid, it.key.count == 9, it.key.first == KeySpace.events.rawValue { oldest = Self.sequence(of: it.key) }
        state = Mutex(State(next: last + 1, oldest: oldest))
    }

    static func be(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func key(_ seq: UInt64) -> [UInt8] { KeySpace.events.key(be(seq)) }
    static func sequence(of key: [UInt8]) -> UInt64 { key.dropFirst().prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }

    /// Stages an event into `batch` (call it inside the store's writer lock, in the transaction
    /// that stages the change); returns its sequence. Subscribers learn of it from `published()`.
    @discardableResult
    public func stage(_ topic: String, _ data: IPLDMap, at timestamp: UInt64, into batch: WriteBatch) -> UInt64 {
        stage(encoded: Self.encode(topic, data, at: timestamp), into: batch)
    }

    /// An event's stored bytes, made ahead of `stage(encoded:into:)` (off the writer lock).
    public static func encode(_ topic: String, _ data: IPLDMap, at timestamp: UInt64) -> [UInt8] {
        let node = IPLDNode.map(IPLDMap(uniqueKeysWithValues: [("t", .string(topic)), ("ts", .int(timestamp)), ("d", .map(data))]))
        return try! DAGCBOR().encode(node)
    }

    /// Stages an event encoded by `encode` (see `stage(_:_:at:into:)`).
    @discardableResult
    public func stage(encoded: [UInt8], into batch: WriteBatch) -> UInt64 {
        let (seq, expired) = state.locked { s in
            defer { s.next += 1 }
            // Up to 16 of the events now past the bound leave with this one (a lowered retention
            // is caught up with over the next events).
            let from = s.oldest
            while s.oldest + retention <= s.next, s.oldest - from < 16 { s.oldest += 1 }
            return (s.next, from..<s.oldest)
        }
        batch.put(Self.key(seq), encoded)
        for old in expired { batch.delete(Self.key(old)) }
        return seq
    }

    /// Wakes every follower (call once the batch holding staged events is durable).
    public func published() {
        state.locked { s in for c in s.subscribers.values { c.yield() } }
    }

    /// The last sequence assigned (0: none yet); its batch may not be written yet.
    public var lastSequence: UInt64 { state.locked { $0.next - 1 } }

    /// The last event written (0: none): where a reader that wants only new events starts. Read
    /// from the database, so it never names an event whose batch is still being written (a
    /// reader started there would skip that event) or one that failed (a number used again).
    public func lastStoredSequence() -> UInt64 {
        let it = db.makeIterator()
        it.seek([KeySpace.events.rawValue + 1])
        if it.isValid { it.previous() } else { it.seekToLast() }
        guard it.isValid, it.key.count == 9, it.key.first == KeySpace.events.rawValue else { return 0 }
        return Self.sequence(of: it.key)
    }

    /// Up to `limit` stored events after `after`, oldest first, that `matches`, and the
    /// last sequence looked at (where the next read goes on from: a filtered reader does not rescan
    /// what it skipped). At most `limit × 64` events are looked at per call.
    public func read(after: UInt64, limit: Int, matching matches: (Event) -> Bool = { _ in true }) throws -> (events: [Event], through: UInt64) {
        var out: [Event] = []
        var through = after
        guard after < .max else { return (out, through) }
        let it = db.makeIterator()
        it.seek(Self.key(after &+ 1))
        var scanned = 0
        while it.isValid, out.count < limit, scanned < limit * 64 {
            let k = it.key
            guard k.count == 9, k.first == KeySpace.events.rawValue else { break }
            scanned += 1
            through = Self.sequence(of: k)
            let e = try Self.decode(sequence: through, it.value)
            if matches(e) { out.append(e) }
            it.next()
        }
        return (out, through)
    }

    static func decode(sequence: UInt64, _ bytes: [UInt8]) throws -> Event {
        guard case .map(let m) = try DAGCBOR().decode(bytes), case .string(let t)? = m["t"], case .integer(let ts)? = m["ts"],
              case .map(let d)? = m["d"], let time = ts.int64
        else { throw EventLogError.corrupt(sequence) }
        return Event(sequence: sequence, topic: t, timestamp: UInt64(time), data: d)
    }

    /// A signal per `published()` for one follower (signals that come faster than it reads fold into
    /// one), and its continuation, to wake it for other reasons (a heartbeat) and to end it.
    public func follow() throws -> (signals: AsyncStream<Void>, poke: AsyncStream<Void>.Continuation) {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = try state.locked { s in
            guard s.subscribers.count < Self.maximumFollowers else { throw EventLogError.tooManyFollowers(Self.maximumFollowers) }
            defer { s.nextSubscriber += 1 }
            s.subscribers[s.nextSubscriber] = continuation
            return s.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.locked { $0.subscribers.removeValue(forKey: id) } }
        return (stream, continuation)
    }

    /// Throws `tooManyFollowers` when `follow()` would.
    public func checkFollowerRoom() throws {
        if state.locked({ $0.subscribers.count }) >= Self.maximumFollowers { throw EventLogError.tooManyFollowers(Self.maximumFollowers) }
    }

    /// At most this many followers at once (each wakes and reads on every commit that publishes).
    public static let maximumFollowers = 256
}

/// Failures reading the event stream.
public enum EventLogError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    case corrupt(UInt64)
    case tooManyFollowers(Int)
    public var description: String {
        switch self {
        case .corrupt(let s): "event \(s) is not a valid stored event"
        case .tooManyFollowers(let n): "\(n) event streams are open already: try again later"
        }
    }
    public var kind: ErrorKind {
        switch self {
        case .corrupt: .internal
        case .tooManyFollowers: .unavailable
        }
    }
}
