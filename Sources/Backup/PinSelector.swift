import Foundation
import Multiformats
import Pinning

/// Which pins a backup holds (`backup create --pins FILTER`): terms `KEY=VALUE` joined by commas,
/// all of which a pin must match. Keys: `type` (the pin's resource type), `name` (`*` matches any
/// run of characters), `cid`, `id`, `owner`, `meta.KEY`. A term's value may list alternatives
/// with `|` (`type=qdrive-files|module-docs`).
public struct PinSelector: Sendable, Equatable, CustomStringConvertible {
    public struct Term: Sendable, Equatable {
        public var key: String
        public var values: [String]
    }

    public let terms: [Term]
    /// The filter as given (stored in the manifest).
    public let description: String

    static let keys: Set<String> = ["type", "name", "cid", "id", "owner"]

    public init(_ text: String) throws {
        var terms: [Term] = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let term = raw.trimmingCharacters(in: .whitespaces)
            guard let eq = term.firstIndex(of: "="), eq != term.startIndex else {
                throw BackupError.invalid("--pins \(text.prefix(200)): each term is KEY=VALUE (keys: type, name, cid, id, owner, meta.KEY)")
            }
            let key = String(term[..<eq])
            guard Self.keys.contains(key) || (key.hasPrefix("meta.") && key.count > 5) else {
                throw BackupError.invalid("--pins: unknown key \(key.prefix(80)) (keys: type, name, cid, id, owner, meta.KEY)")
            }
            let values = term[term.index(after: eq)...].split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard !values.contains(where: \.isEmpty) else { throw BackupError.invalid("--pins: \(key) has an empty value") }
            // A value that cannot name a CID would select nothing, silently: a typo, refused.
            if key == "cid", let bad = values.first(where: { (try? CID($0)) == nil }) {
                throw BackupError.invalid("--pins: cid=\(bad.prefix(100)) is not a CID")
            }
            terms.append(Term(key: key, values: values))
        }
        guard !terms.isEmpty, text.utf8.count <= 4096 else { throw BackupError.invalid("--pins: give at least one KEY=VALUE term (at most 4 KiB)") }
        self.terms = terms
        description = text
    }

    public func matches(_ pin: Pin) -> Bool {
        terms.allSatisfy { term in
            let field: String?
            switch term.key {
            case "type": field = pin.resourceType
            case "name": field = pin.name
            case "cid": field = pin.cid.string
            case "id": field = pin.id.description
            case "owner": field = pin.owner
            default: field = pin.meta[String(term.key.dropFirst(5))]
            }
            guard let field else { return false }
            return term.values.contains { v in
                switch term.key {
                case "name": Self.glob(v, field)
                // A CID matches in any base and version of the same content.
                case "cid": (try? CID(v))?.multihash == pin.cid.multihash || v == field
                default: v == field
                }
            }
        }
    }

    /// `*` matches any run of characters; everything else itself.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var (pi, ti) = (0, 0)
        var star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] != "*", p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
