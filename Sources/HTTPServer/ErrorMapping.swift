import CAR
import Foundation
import HTTPTypes
import Hummingbird
import IPLD
import Multiformats
import Node
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

    static func map(_ error: any Error) -> Mapped {
        switch error {
        case let e as NodeError:
            switch e {
            case .notFound: return Mapped(status: .notFound, code: 3, message: "\(e)")
            case .noSuchPath: return Mapped(status: .notFound, code: 3, message: "\(e)")
            case .badInput: return Mapped(status: .badRequest, code: 1, message: "\(e)")
            case .unsupported: return Mapped(status: .notImplemented, code: 2, message: "\(e)")
            }
        case let e as BlockStoreError:
            switch e {
            case .blockTooLarge: return Mapped(status: .contentTooLarge, code: 1, message: "\(e)")
            case .hashMismatch, .unsupportedHash, .invalidBlock: return Mapped(status: .badRequest, code: 1, message: "\(e)")
            case .corrupted, .closed: return Mapped(status: .internalServerError, code: 0, message: "\(e)")
            }
        case let e as CIDError: return Mapped(status: .badRequest, code: 1, message: "invalid CID: \(e)")
        case let e as IPLDError: return Mapped(status: .badRequest, code: 1, message: "\(e)")
        case let e as CARError: return Mapped(status: .badRequest, code: 1, message: "\(e)")
        case let e as BodyTooLarge: return Mapped(status: .contentTooLarge, code: 1, message: "\(e)")
        case let e as RequestError: return Mapped(status: e.status, code: e.status == .notFound ? 3 : 1, message: e.message)
        case let e as MultipartMalformed: return Mapped(status: .badRequest, code: 1, message: "\(e)")
        case let e as RequestBodyError: return Mapped(status: .badRequest, code: 1, message: "\(e)")
        case let e as RangeNotSatisfiable:
            var headers = HTTPFields()
            headers[.contentRange] = "bytes */\(e.size)"
            return Mapped(status: .rangeNotSatisfiable, code: 1, message: "\(e)", headers: headers)
        case let e as Overloaded:
            var headers = HTTPFields()
            headers[.retryAfter] = String(e.retryAfter)
            return Mapped(status: e.status, code: 2, message: e.message, headers: headers)
        case let e as HTTPError: return Mapped(status: e.status, code: 1, message: e.body ?? "\(e.status)")
        default: return Mapped(status: .internalServerError, code: 0, message: "\(error)")
        }
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
        return JSONOutput.bytes(["Message": m.message, "Code": m.code, "Type": "error"] as [String: Any])
    }

    private static func rpcMapping(_ error: any Error) -> Mapped {
        if case NodeError.notFound(let cid) = error {
            return Mapped(status: .internalServerError, code: 0, message: "block was not found locally (offline): ipld: could not find \(cid)")
        }
        return map(error)
    }

    /// The error in the shape of the surface that serves `path`: the Pinning Service API's
    /// Failure under `/pins`, Kubo's error object under `/api/v0`, else the gateway's plain text.
    /// For checks that run before a request reaches its surface (middleware).
    static func response(_ error: any Error, path: String) -> Response {
        if path == "/pins" || path.hasPrefix("/pins/") {
            let m = map(error)
            let reason = m.status.reasonPhrase.uppercased().map { $0.isLetter ? $0 : "_" }
            var r = JSONOutput.response(["error": ["reason": String(reason), "details": m.message]], status: m.status)
            r.headers.append(contentsOf: m.headers)
            return r
        }
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
struct RangeNotSatisfiable: Error, CustomStringConvertible {
    let header: String
    let size: UInt64
    var description: String { "no satisfiable range in \(header) for \(size) bytes" }
}

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
}
