import Multiformats

/// Qdrive's failures, each with its kind and code.
public enum DriveError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    case invalid(String)
    case notFound(String)
    /// A path that exists as something else (a file where a directory is needed, or the reverse).
    case conflict(String)
    /// The ciphertext is not what was sealed: a flipped byte, a dropped, swapped or added
    /// segment, a truncated file.
    case corrupt(String)
    /// No key here opens the file (client-held, erased, or the caller is not a recipient).
    case noKey(String)
    case forbidden(String)
    /// A fault of the node (its master key unreadable, a temporary file it cannot make).
    case failed(String)

    public var description: String {
        switch self {
        case .invalid(let m), .notFound(let m), .conflict(let m), .corrupt(let m), .noKey(let m), .forbidden(let m), .failed(let m): m
        }
    }

    public var kind: ErrorKind {
        switch self {
        case .invalid: .invalidInput
        case .notFound: .notFound
        case .conflict, .noKey: .conflict
        case .corrupt, .failed: .internal
        case .forbidden: .forbidden
        }
    }

    public var code: String? {
        switch self {
        case .invalid: "QDRIVE_INVALID"
        case .notFound: "QDRIVE_NOT_FOUND"
        case .conflict: "QDRIVE_CONFLICT"
        case .corrupt: "QDRIVE_CORRUPT"
        case .noKey: "QDRIVE_NO_KEY"
        case .forbidden: "QDRIVE_FORBIDDEN"
        case .failed: "QDRIVE_FAILED"
        }
    }
}
