import Access
import CAR
import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import IPLD
import KuboAPI
import Multiformats
import Node
import Pinning
import QAPI
import Qindex
import Storage

/// The one place where errors become HTTP statuses and bodies.
///
/// Kubo's RPC error shape is `{"Message": "...", "Code": n, "Type": "error"}` with
/// go-ipfs-cmds codes: 0 normal, 1 client, 2 implementation, 3 not found, 4 fatal.
enum ErrorMapping {
    struct Mapped {
        var status: HTTPResponse.Status
        var code: Int
        var message: String
        /// Headers the error adds to any surface's response (e.g. `Retry-After`).
        var headers = HTTPFields()
    }

    /// The status and Kubo code of each kind of domain error.
    static func status(of kind: ErrorKind) -> (HTTPResponse.Status, Int) {
        switch kind {
        case .notFound: (.notFound, 3)
        case .invalidInput: (.badRequest, 1)
        case .conflict: (.conflict, 1)
        case .tooLarge: (.contentTooLarge, 1)
        case .unavailable: (.serviceUnavailable, 2)
        case .unsupported: (.notImplemented, 2)
        case .unauthenticated: (.unauthorized, 1)
        case .forbidden: (.forbidden, 1)
        case .rateLimited: (.tooManyRequests, 2)
        case .storageFull: (.init(code: 507, reasonPhrase: "Insufficient Storage"), 2)
        case .internal: (.internalServerError, 0)
        }
    }

    /// The one translation of an error into a status, a Kubo code and a message: the HTTP
    /// layer's own refusals carry their status; every domain error says its kind
    /// (`KindedError`); anything else is the node's fault (500).
    static func map(_ error: any Error) -> Mapped {
        switch error {
        case let e as RequestError: return Mapped(status: e.status, code: e.status == .notFound ? 3 : e.status.code >= 500 ? 2 : 1, message: e.message)
        case let e as RangeNotSatisfiable:
            var headers = HTTPFields()
            headers[.contentRange] = "bytes */\(e.size)"
            return Mapped(status: .rangeNotSatisfiable, code: 1, message: "\(e)", headers: headers)
        case let e as Overloaded:
            var headers = HTTPFields()
            headers[.retryAfter] = String(e.retryAfter)
            return Mapped(status: e.status, code: 2, message: e.message, headers: headers)
        case let e as AccessError:
            var (status, code) = Self.status(of: e.kind)
            var headers = HTTPFields()
            if case .rateLimited(_, let seconds) = e { headers[.retryAfter] = String(seconds) }
            if case .idempotencyMismatch = e { status = .unprocessableContent }
            if e.kind == .unauthenticated { headers[.wwwAuthenticate] = "Bearer realm=\"qstore\"" }
            return Mapped(status: status, code: code, message: "\(e)", headers: headers)
        case let e as HTTPError: return Mapped(status: e.status, code: e.status == .notFound ? 3 : 1, message: e.body ?? Self.describe(e.status))
        case let e as any KindedError:
            let (status, code) = Self.status(of: e.kind)
            let text = "\(e)"
            return Mapped(status: status, code: code, message: e is CIDError && !text.hasPrefix("invalid CID") ? "invalid CID: " + text : text)
        default: return Mapped(status: .internalServerError, code: 0, message: "\(error)")
        }
    }

    /// A status's message when nothing more specific is known (an unmatched route: 404).
    static func describe(_ status: HTTPResponse.Status) -> String {
        status == .notFound ? "no such endpoint or resource" : status.reasonPhrase
    }

    /// Kubo's RPC error response. Kubo answers a missing block with 500 and code 0
    /// ("block was not found locally"); its clients read 404 as "no such endpoint".
    static func rpcResponse(_ error: any Error) -> Response {
        let m = rpcMapping(error)
        var headers = m.headers
        headers[.contentType] = "application/json"
        return Response(status: m.status, headers: headers, body: .init(byteBuffer: rpcBody(error)))
    }

    /// The body of Kubo's error response.
    static func rpcBody(_ error: any Error) -> ByteBuffer {
        let m = rpcMapping(error)
        return JSONOutput.line(ErrorReply(message: m.message, code: m.code))
    }

    private static func rpcMapping(_ error: any Error) -> Mapped {
        if case NodeError.notFound = error { return Mapped(status: .internalServerError, code: 0, message: "\(error)") }
        return map(error)
    }

    /// The Pinning Service API's `Failure`: `{"error": {"reason", "details"}}`, the reason an
    /// upper-case name of the status (a retained pin: RETAINED, as the API's examples name it).
    static func pinsResponse(_ error: any Error) -> Response {
        let m = map(error)
        var reason = String(m.status.reasonPhrase.uppercased().map { $0.isLetter ? $0 : "_" })
        if case PinningError.retained = error { reason = "RETAINED" }
        var r = JSONOutput.response(["error": ["reason": reason, "details": m.message]], status: m.status)
        r.headers.append(contentsOf: m.headers)
        return r
    }

    /// The Q API's envelope (`/q/v1`): `{"status": "error", "code", "message", "data", "cid"}`, `code`
    /// the error's ecosystem code when it has one (QINDEX_NOT_FOUND, VERSION_CONFLICT, …), else its
    /// kind in upper snake case (NOT_FOUND, INVALID_INPUT, CONFLICT, …); `data` the details a caller acts on
    /// (a version conflict's current head), else null; `cid` null.
    static func qResponse(_ error: any Error) -> Response {
        /// What the caller needs to act on the error: a conflict's current head (null when absent).
        /// Encoded straight from the wire type (a round trip through JSONSerialization would turn
        /// a version of 1 into `true` on Linux, where NSNumber(1) casts to Bool).
        var details: PointerSummary?
        if case QindexError.versionConflict(_, let current?) = error { details = PointerSummary(current) }
        let m = map(error)
        let kind: String
        if let k = (error as? any KindedError)?.kind { kind = k.rawValue } else {
            switch m.status.code {
            case 401: kind = "unauthorized"
            case 403: kind = "forbidden"
            case 404: kind = ErrorKind.notFound.rawValue
            case 409: kind = ErrorKind.conflict.rawValue
            case 413: kind = ErrorKind.tooLarge.rawValue
            case 501: kind = ErrorKind.unsupported.rawValue
            case 503, 429: kind = ErrorKind.unavailable.rawValue
            case 400..<500: kind = ErrorKind.invalidInput.rawValue
            default: kind = ErrorKind.internal.rawValue
            }
        }
        let code = kind.reduce(into: "") { out, c in
            if c.isUppercase { out += "_" }
            out += c.uppercased()
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers.append(contentsOf: m.headers)
        let envelope = QEnvelope(error: (error as? any KindedError)?.code ?? code, message: m.message, data: details)
        let r = Response(status: m.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: QJSON.encode(envelope))))
        return r
    }

    /// The error in the shape of the surface that serves `path`: the Pinning Service API's
    /// Failure under `/pins`, the Q envelope under `/q/`, Kubo's error object under `/api/v0`,
    /// else the gateway's plain text. For errors raised outside a surface's handlers
    /// (middleware, unmatched routes).
    static func response(_ error: any Error, path: String) -> Response {
        if path == "/pins" || path.hasPrefix("/pins/") { return pinsResponse(error) }
        if path == "/q" || path.hasPrefix("/q/") { return qResponse(error) }
        if path.hasPrefix("/api/v0/") { return rpcResponse(error) }
        return gatewayResponse(error)
    }

    /// The gateway's plain-text error response.
    static func gatewayResponse(_ error: any Error) -> Response {
        let m = map(error)
        var headers = m.headers
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: m.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: m.message + "\n")))
    }
}

/// Renders what a request's handling threw that no surface handler caught (an unmatched route's
/// 404, a middleware's refusal) in the shape of the surface its path belongs to.
struct SurfaceErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await next(request, context) } catch {
            return ErrorMapping.response(error, path: request.uri.path)
        }
    }
}

/// A request the handler refuses, with its status.
struct RequestError: Error {
    var status: HTTPResponse.Status
    var message: String
    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// No range of a `Range` header falls inside the representation.
/// The daemon is too busy for this request now; the client may retry after `retryAfter` seconds.
struct Overloaded: Error, CustomStringConvertible {
    var status: HTTPResponse.Status
    var retryAfter: Int
    var message: String
    var description: String { message }
}

/// JSON bodies as Kubo writes them (one object, newline-terminated).
enum JSONOutput {
    /// One JSON value and a newline. Keys sorted; strings escaped by the DAG-JSON string writer.
    /// Not JSONSerialization: it cost more than the rest of a small RPC reply (Docs/benchmarks.md).
    static func bytes(_ object: Any) -> ByteBuffer {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        write(object, to: &out)
        out.append(0x0a)
        return ByteBuffer(bytes: out)
    }

    private static func write(_ value: Any, to out: inout [UInt8]) {
        switch value {
        case let s as String: DAGJSON.writeString(s, to: &out)
        case let b as Bool: out.append(contentsOf: (b ? "true" : "false").utf8)
        case let i as Int: out.append(contentsOf: String(i).utf8)
        case let u as UInt64: out.append(contentsOf: String(u).utf8)
        case let n as NSNumber: out.append(contentsOf: n.stringValue.utf8)
        case let a as [Any]:
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(v, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let d as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (i, k) in d.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                DAGJSON.writeString(k, to: &out)
                out.append(UInt8(ascii: ":"))
                write(d[k]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        default: out.append(contentsOf: "null".utf8)
        }
    }

    static func response(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: bytes(object)))
    }

    /// A wire value (KuboAPI) as a line of JSON.
    static func line<T: Encodable>(_ value: T) -> ByteBuffer { ByteBuffer(bytes: KuboJSON.line(value)) }

    /// A reply of one wire value.
    static func reply<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: line(value)))
    }
}
