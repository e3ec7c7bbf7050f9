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
        case let e as MultipartReader<BytesSource>.Malformed: return Mapped(status: .badRequest, code: 1, message: "\(e)")
        case let e as MultipartReader<FileSource>.Malformed: return Mapped(status: .badRequest, code: 1, message: "\(e)")
        case let e as HTTPError: return Mapped(status: e.status, code: 1, message: e.body ?? "\(e.status)")
        default: return Mapped(status: .internalServerError, code: 0, message: "\(error)")
        }
    }

    /// Kubo's RPC error response. Kubo answers a missing block with 500 and code 0
    /// ("block was not found locally"); its clients read 404 as "no such endpoint".
    static func rpcResponse(_ error: any Error) -> Response {
        var m = map(error)
        if case NodeError.notFound(let cid) = error {
            m = Mapped(status: .internalServerError, code: 0, message: "block was not found locally (offline): ipld: could not find \(cid)")
        }
        let body: [String: Any] = ["Message": m.message, "Code": m.code, "Type": "error"]
        return JSONOutput.response(body, status: m.status)
    }

    /// The gateway's plain-text error response.
    static func gatewayResponse(_ error: any Error) -> Response {
        let m = map(error)
        var headers = HTTPFields()
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

/// JSON bodies as Kubo writes them (one object, newline-terminated).
enum JSONOutput {
    static func bytes(_ object: Any) -> ByteBuffer {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        var buffer = ByteBuffer(bytes: data)
        buffer.writeString("\n")
        return buffer
    }

    static func response(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: bytes(object)))
    }
}
