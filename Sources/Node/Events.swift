import Storage

/// The event stream every layer publishes to (`/q/v1/events`).
extension Node {
    /// Up to `limit` stored events after `after` whose topic `matches`, and the last sequence looked at.
    public func events(after: UInt64, limit: Int, matching matches: (EventLog.Event) -> Bool) throws -> (events: [EventLog.Event], through: UInt64) {
        try events.read(after: after, limit: limit, matching: matches)
    }

    /// The last event written (0: none yet).
    public var lastEventSequence: UInt64 { events.lastStoredSequence() }

    /// Refuses (unavailable) when the most followers are open already.
    public func checkEventFollowerRoom() throws { try events.checkFollowerRoom() }

    /// A signal per commit that published events, and its continuation (to wake or end it).
    public func followEvents() throws -> (signals: AsyncStream<Void>, poke: AsyncStream<Void>.Continuation) { try events.follow() }
}
