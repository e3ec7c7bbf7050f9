/// What kind of failure an error is, in terms every surface can render: each domain error of
/// every layer says its kind (`KindedError`), and one renderer per API surface turns the kind
/// into that surface's status and shape (HTTPServer's `ErrorMapping`). It lives in the lowest
/// layer so that every layer's errors can name their kind without knowing any transport.
public enum ErrorKind: String, Sendable, CaseIterable {
    /// What was asked for is not here (a block, a pin, a path segment).
    case notFound
    /// The request's data is unusable: undecodable, the wrong shape, out of range.
    case invalidInput
    /// The request contradicts the state it would change (a pinned block removed, a retained pin).
    case conflict
    /// The request is larger than allowed.
    case tooLarge
    /// The node cannot do it now (busy, shutting down, locked); the same request may work later.
    case unavailable
    /// Something this build does not do.
    case unsupported
    /// The caller could not be authenticated (no or a wrong credential, a bad signature).
    case unauthenticated
    /// The caller is known but lacks the permission the operation needs.
    case forbidden
    /// The caller is over its rate limit; the same request may work later.
    case rateLimited
    /// The write would take the caller (or the node) over its storage quota.
    case storageFull
    /// A fault of the node (corruption, I/O failure): never the client's.
    case `internal`
}

/// An error that says what kind it is.
public protocol KindedError: Error {
    var kind: ErrorKind { get }
    /// The ecosystem error code the Q API's envelope names it by (`VERSION_CONFLICT`,
    /// `SIGNATURE_INVALID`, …); nil: the kind's own (`NOT_FOUND`, `INVALID_INPUT`, …).
    var code: String? { get }
}

extension KindedError {
    public var code: String? { nil }
}

extension VarintError: KindedError { public var kind: ErrorKind { .invalidInput } }
extension MultihashError: KindedError { public var kind: ErrorKind { .invalidInput } }
extension MultibaseError: KindedError { public var kind: ErrorKind { .invalidInput } }
extension CIDError: KindedError { public var kind: ErrorKind { .invalidInput } }
