import Foundation

/// Any JSON value, as Codable reads and writes it (objects' keys sorted when the encoder sorts):
/// configuration sections a layer keeps without knowing them, and IPLD values shown as JSON.
public indirect enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// An IPLD value in the DAG-JSON data model: links `{"/": cid}`, bytes `{"/": {"bytes":
    /// base64}}` (unpadded, as DAG-JSON), integers past Int64 as their decimal string.
    public init(_ node: IPLDNode) {
        switch node {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .integer(let i): self = i.int64.map { .int($0) } ?? .string(i.description)
        case .float(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .bytes(let b): self = .object(["/": .object(["bytes": .string(Data(b).base64EncodedString().replacingOccurrences(of: "=", with: ""))])])
        case .list(let l): self = .array(l.map(JSONValue.init))
        case .map(let m): self = .object(Dictionary(m.entries.map { ($0.key, JSONValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
        case .link(let c): self = .object(["/": .string(c.string)])
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let b = try? c.decode(Bool.self) { self = .bool(b) } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) { self = .double(d) } else if let s = try? c.decode(String.self) { self = .string(s) } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}
