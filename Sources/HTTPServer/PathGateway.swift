import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import Multiformats
import Node
import Storage
import UnixFS

/// The path gateway's deserialised responses: UnixFS files (content type, ranges),
/// directories (trailing-slash redirect, index.html, HTML listing) and symlinks.
extension Gateway {
    func deserializedUnixFS(_ request: Request, terminal: CID, head: Bool, headers baseHeaders: HTTPFields) async throws -> Response {
        var headers = baseHeaders
        let rawPath = request.uri.path
        let requestPath = Self.percentDecoded(rawPath)
        switch try await io.run({ try self.node.fileEntry(terminal) }) {
        case .file(let size):
            let name = requestPath.split(separator: "/").last.map(String.init) ?? ""
            headers[.eTag] = "\"\(terminal.string)\""
            if Self.matches(request, etag: headers[.eTag]!) { return Response(status: .notModified, headers: headers) }
            let sample = try await io.run { () throws -> [UInt8] in
                var first: [UInt8] = []
                try self.node.cat(terminal, length: min(size, 512)) { first += $0 }
                return first
            }
            headers[.contentType] = ContentType.of(name: name, sample: sample)
            headers[.acceptRanges] = "bytes"
            let query = request.uri.queryParameters
            if let filename = query.get("filename") {
                let disposition = KuboRPC.flag(query.get("download")) ? "attachment" : "inline"
                headers[.contentDisposition] = Self.disposition(disposition, filename: filename, default: String(filename))
            }
            return try await fileBody(request, cid: terminal, size: size, head: head, headers: headers)
        case .symlink(let target):
            headers[.contentType] = "text/plain; charset=utf-8"
            headers[.eTag] = "\"\(terminal.string)\""
            headers[.contentLength] = String(target.utf8.count)
            return Response(status: .ok, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(string: target)))
        case .directory(let entries):
            guard requestPath.hasSuffix("/") else {
                var h = HTTPFields()
                h[.location] = Self.percentEncodedPath(requestPath) + "/" + (request.uri.query.map { "?" + $0 } ?? "")
                // An /ipns/ path may move: its redirect is cached as the name is, never as immutable.
                h[.cacheControl] = headers[.cacheControl] ?? Self.immutableCache
                return Response(status: .movedPermanently, headers: h)
            }
            if let index = entries.first(where: { $0.name == "index.html" }) {
                headers[.eTag] = "\"\(terminal.string)\""
                if Self.matches(request, etag: headers[.eTag]!) { return Response(status: .notModified, headers: headers) }
                let size = try await io.run { try self.node.fileSize(index.cid) }
                headers[.contentType] = "text/html; charset=utf-8"
                headers[.acceptRanges] = "bytes"
                return try await fileBody(request, cid: index.cid, size: size, head: head, headers: headers)
            }
            let html = DirectoryListing.html(path: requestPath, cid: terminal, entries: entries, isRoot: requestPath.split(separator: "/").count <= 2)
            let etag = "\"DirIndex-\(DirectoryListing.templateVersion)_CID-\(terminal.string)\""
            headers[.eTag] = etag
            if !Self.isMutable(request) { headers[.cacheControl] = "public, max-age=604800, stale-while-revalidate=2678400" }
            if Self.matches(request, etag: etag) { return Response(status: .notModified, headers: headers) }
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.contentLength] = String(html.utf8.count)
            return Response(status: .ok, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(string: html)))
        }
    }

    /// A file's bytes: whole (streamed), one range (206) or several (206 multipart/byteranges).
    func fileBody(_ request: Request, cid: CID, size: UInt64, head: Bool, headers baseHeaders: HTTPFields) async throws -> Response {
        var headers = baseHeaders
        let ranges = try Self.byteRanges(request, size: size, maximum: limits.maximumRanges)
        let node = self.node
        switch ranges {
        case .none:
            headers[.contentLength] = String(size)
            if head { return Response(status: .ok, headers: headers) }
            return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
                try node.cat(cid) { try channel.send($0) }
            })
        case .some(let list) where list.count == 1:
            let r = list[0]
            headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(size)"
            headers[.contentLength] = String(r.upperBound - r.lowerBound + 1)
            if head { return Response(status: .partialContent, headers: headers) }
            return Response(status: .partialContent, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
                try node.cat(cid, offset: r.lowerBound, length: r.upperBound - r.lowerBound + 1) { try channel.send($0) }
            })
        case .some(let list):
            let boundary = "qstore-\(UUID().uuidString)"
            let partType = headers[.contentType] ?? "application/octet-stream"
            headers[.contentType] = "multipart/byteranges; boundary=\(boundary)"
            headers[.contentLength] = nil
            if head { return Gateway.headOfStream(.partialContent, headers) }
            return Response(status: .partialContent, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
                for r in list {
                    try channel.send(Array("--\(boundary)\r\nContent-Type: \(partType)\r\nContent-Range: bytes \(r.lowerBound)-\(r.upperBound)/\(size)\r\n\r\n".utf8))
                    try node.cat(cid, offset: r.lowerBound, length: r.upperBound - r.lowerBound + 1) { try channel.send($0) }
                    try channel.send(Array("\r\n".utf8))
                }
                try channel.send(Array("--\(boundary)--\r\n".utf8))
            })
        }
    }

    /// The ranges of the request's `Range` header over `size` bytes (`ByteRanges.parse`); nil
    /// without one.
    static func byteRanges(_ request: Request, size: UInt64, maximum: Int) throws -> [ClosedRange<UInt64>]? {
        guard let header = request.headers[.range] else { return nil }
        return try ByteRanges.parse(header, size: size, maximum: maximum)
    }

    /// A path with each segment percent-encoded (as a Location header needs).
    static func percentEncodedPath(_ path: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return path.split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).addingPercentEncoding(withAllowedCharacters: allowed) ?? String($0)
        }.joined(separator: "/")
    }
}

/// Media types of files served by the path gateway: by extension, else by content.
enum ContentType {
    static let byExtension: [String: String] = [
        "txt": "text/plain; charset=utf-8", "md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8",
        "htm": "text/html; charset=utf-8", "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
        "mjs": "text/javascript; charset=utf-8", "json": "application/json", "xml": "application/xml", "csv": "text/csv; charset=utf-8",
        "svg": "image/svg+xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "avif": "image/avif", "ico": "image/x-icon", "pdf": "application/pdf", "wasm": "application/wasm",
        "mp4": "video/mp4", "webm": "video/webm", "mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav",
        "zip": "application/zip", "gz": "application/gzip", "tar": "application/x-tar", "car": "application/vnd.ipld.car",
        "woff": "font/woff", "woff2": "font/woff2",
    ]

    static func of(name: String, sample: [UInt8]) -> String {
        if let dot = name.lastIndex(of: "."), let t = byExtension[name[name.index(after: dot)...].lowercased()] { return t }
        return sniff(sample)
    }

    /// A small subset of the WHATWG sniffing table: images and PDF by signature, else text when valid UTF-8 without NUL.
    static func sniff(_ b: [UInt8]) -> String {
        func starts(_ sig: [UInt8]) -> Bool { b.count >= sig.count && Array(b.prefix(sig.count)) == sig }
        if starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) { return "image/png" }
        if starts([0xff, 0xd8, 0xff]) { return "image/jpeg" }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return "image/gif" }
        if starts(Array("%PDF-".utf8)) { return "application/pdf" }
        if starts([0x00, 0x61, 0x73, 0x6d]) { return "application/wasm" }
        let text = String(decoding: b.prefix(64), as: UTF8.self).lowercased()
        if text.contains("<!doctype html") || text.contains("<html") { return "text/html; charset=utf-8" }
        if !b.contains(0), String(validating: b.prefix(b.count), as: UTF8.self) != nil || b.count >= 509 { return "text/plain; charset=utf-8" }
        return "application/octet-stream"
    }
}

/// The HTML listing of a directory.
enum DirectoryListing {
    /// Changes when the template changes, so listing ETags change with it.
    static let templateVersion = "qstore1"

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func html(path: String, cid: CID, entries: [DirectoryEntry], isRoot: Bool) -> String {
        let segments = path.split(separator: "/").map(String.init)
        var crumbs: [String] = []
        var href = ""
        for s in segments {
            href += "/" + Gateway.percentEncodedPath(s)
            crumbs.append("<a href=\"\(escape(href))/\">\(escape(s))</a>")
        }
        var rows = ""
        if !isRoot { rows += "<tr><td><a href=\"\(escape(Gateway.percentEncodedPath(path)))..\">..</a></td><td></td><td></td></tr>\n" }
        for e in entries {
            let link = Gateway.percentEncodedPath(path) + Gateway.percentEncodedPath(e.name)
            let cidLink = "/ipfs/\(e.cid.string)?filename=\(e.name.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? e.name)"
            rows += "<tr><td><a href=\"\(escape(link))\">\(escape(e.name))</a></td>"
            rows += "<td><a class=\"cid\" href=\"\(escape(cidLink))\">\(e.cid.string)</a></td>"
            rows += "<td>\(e.size.map(String.init) ?? "")</td></tr>\n"
        }
        return """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>\(escape(path))</title></head>
            <body><h1>Index of \(crumbs.joined(separator: " / "))</h1>
            <p>\(cid.string)</p>
            <table>
            \(rows)</table></body></html>

            """
    }
}
