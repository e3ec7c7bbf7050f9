import Foundation

/// The request headers the gateway reads, parsed from their text alone (no server types): what
/// the fuzz targets drive and the HTTP layer calls.

extension Substring {
    /// The text without the spaces and tabs around it: HTTP's optional whitespace (RFC 9110
    /// §5.6.3), and nothing else. Byte by byte, without Foundation's `trimmingCharacters`, which
    /// copies through `NSString`: header fields are parsed on every request.
    public var trimmingOWS: Substring {
        let bytes = utf8
        var lower = bytes.startIndex, upper = bytes.endIndex
        while lower < upper, bytes[lower] == 0x20 || bytes[lower] == 0x09 { lower = bytes.index(after: lower) }
        while lower < upper {
            let last = bytes.index(before: upper)
            guard bytes[last] == 0x20 || bytes[last] == 0x09 else { break }
            upper = last
        }
        return self[lower..<upper]
    }
}

extension String {
    /// The text without HTTP's optional whitespace around it (`Substring.trimmingOWS`).
    public var trimmingOWS: Substring { self[...].trimmingOWS }
}

/// `Range: bytes=…` (RFC 9110 §14).
public enum ByteRanges {
    /// The ranges of a `Range` header value over `size` bytes, as RFC 9110 §14 lets a server
    /// serve them. nil (serve the whole body, 200) when it is not in bytes, not valid (`bytes=abc`,
    /// `bytes=5-2`), asks for more than `maximum` ranges, or asks for more bytes in all than the
    /// representation has (a few overlapping ranges must not multiply the response). Otherwise the
    /// satisfiable ranges, overlapping and adjacent ones merged (§14.3 lets a server coalesce), in
    /// the header's order; `RangeNotSatisfiable` (416) when none is satisfiable.
    public static func parse(_ header: String, size: UInt64, maximum: Int) throws(RangeNotSatisfiable) -> [ClosedRange<UInt64>]? {
        guard let equals = header.firstIndex(of: "="),
              header[..<equals].trimmingOWS.lowercased() == "bytes" else { return nil }
        enum Spec { case from(UInt64, to: UInt64?), suffix(UInt64) }
        var specs: [Spec] = []
        for item in header[header.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false) {
            let text = item.trimmingOWS
            if text.isEmpty { continue }  // empty list elements are allowed (RFC 9110 §5.6.1)
            let b = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard b.count == 2, b[0].utf8.allSatisfy({ (0x30...0x39).contains($0) }), b[1].utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
            if b[0].isEmpty {
                guard let suffix = UInt64(b[1]) else { return nil }
                specs.append(.suffix(suffix))
            } else {
                guard let first = UInt64(b[0]) else { return nil }
                let last = b[1].isEmpty ? nil : UInt64(b[1])
                if !b[1].isEmpty && last == nil { return nil }
                if let last, last < first { return nil }
                specs.append(.from(first, to: last))
            }
            if specs.count > maximum { return nil }
        }
        guard !specs.isEmpty else { return nil }
        var ranges: [ClosedRange<UInt64>] = []
        var total: UInt64 = 0
        for spec in specs {
            let r: ClosedRange<UInt64>
            switch spec {
            case .suffix(let n):
                guard n > 0, size > 0 else { continue }
                r = (size - min(n, size))...(size - 1)
            case .from(let first, let last):
                guard first < size else { continue }
                r = first...min(last ?? (size - 1), size - 1)
            }
            total += r.upperBound - r.lowerBound + 1
            if total > size { return nil }
            ranges.append(r)
        }
        guard !ranges.isEmpty else { throw RangeNotSatisfiable(header: header, size: size) }
        // Overlapping and adjacent ranges merge; the parts keep the order the header gave them
        // (§14.6), a merged one the place of its first range.
        var merged: [(range: ClosedRange<UInt64>, first: Int)] = []
        for i in ranges.indices.sorted(by: { ranges[$0].lowerBound < ranges[$1].lowerBound }) {
            let r = ranges[i]
            if let last = merged.last, r.lowerBound <= last.range.upperBound || r.lowerBound - last.range.upperBound == 1 {
                merged[merged.count - 1] = (last.range.lowerBound...max(last.range.upperBound, r.upperBound), min(last.first, i))
            } else {
                merged.append((r, i))
            }
        }
        return merged.sorted { $0.first < $1.first }.map(\.range)
    }
}

/// No range of a `Range` header can be served (416, with `Content-Range: bytes */size`).
public struct RangeNotSatisfiable: Error, CustomStringConvertible {
    public let header: String
    public let size: UInt64
    public init(header: String, size: UInt64) { (self.header, self.size) = (header, size) }
    public var description: String { "no satisfiable range in \(header) for \(size) bytes" }
}

/// One entry of an `Accept` header: its media type (lower case), parameters (names lower case,
/// quotes taken off values) and weight (`q`, 1 when absent or unreadable).
public struct MediaRange: Sendable, Equatable {
    public var type: String
    public var parameters: [String: String]
    public var weight: Double

    /// The entries of an `Accept` header value, in order (entries with no type left out).
    public static func list(_ accept: String) -> [MediaRange] {
        accept.split(separator: ",").compactMap { item in
            let parts = item.split(separator: ";").map { $0.trimmingOWS }
            guard let type = parts.first?.lowercased(), !type.isEmpty else { return nil }
            var params: [String: String] = [:]
            for p in parts.dropFirst() {
                let kv = p.split(separator: "=", maxSplits: 1).map { $0.trimmingOWS }
                if kv.count == 2 {
                    var value = kv[1]
                    while value.first == "\"" { value = value.dropFirst() }
                    while value.last == "\"" { value = value.dropLast() }
                    params[kv[0].lowercased()] = String(value)
                }
            }
            let q = params["q"].flatMap(Double.init) ?? 1
            return MediaRange(type: type, parameters: params, weight: q.isFinite ? q : 0)
        }
    }
}

/// `If-None-Match` (RFC 9110 §13.1.2): weak comparison.
public enum EntityTags {
    /// Whether the header names `etag` (or is `*`).
    public static func matches(_ header: String, etag: String) -> Bool {
        let strip = { (t: String) in t.hasPrefix("W/") ? String(t.dropFirst(2)) : t }
        return header.split(separator: ",").contains { item in
            let t = String(item.trimmingOWS)
            // Empty list elements are allowed and name nothing (RFC 9110 §5.6.1).
            let opaque = strip(t)
            return t == "*" || (!opaque.isEmpty && opaque == strip(etag))
        }
    }
}
