/// A permission a grant or a token gives (Qonsent: deny by default, least privilege).
///
/// Grammar: a root (`read`, `write`, `pin`, `gc`, `metrics`, `admin`, `index:write`,
/// `registry:publish`, `registry:promote`, `drive`, `audit:read`, `cluster:admin`), optionally
/// narrowed by qualifiers after `:` — `index:write:TYPE[/KEY-PREFIX]`, `registry:publish:MODULE`,
/// `drive:read`, `drive:write`, `drive:*`, `name:publish:KEY` (the IPNS name of the node's key
/// KEY). A granted scope covers a required one when they are
/// equal, when the granted one is `admin`, when the required one narrows it (`index:write`
/// covers `index:write:profile/alice`; `index:write:profile` covers `index:write:profile/alice`;
/// `index:write:profile/al` covers `index:write:profile/alice`), or when it ends in `*` and the
/// required one starts with what precedes it (`drive:*` covers `drive:read`). Nothing else implies
/// anything: `write` does not give `read`.
public struct Scope: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let value: String

    /// The roots a scope may start with, and whether they take qualifiers.
    public static let roots: [(name: String, qualified: Bool)] = [
        ("read", false), ("write", false), ("pin", false), ("gc", false), ("metrics", false), ("admin", false),
        ("index:write", true), ("registry:publish", true), ("registry:promote", false),
        ("drive", true), ("audit:read", false), ("cluster:admin", false), ("name:publish", true),
    ]

    public static let read = Scope(trusted: "read")
    public static let write = Scope(trusted: "write")
    public static let pin = Scope(trusted: "pin")
    public static let gc = Scope(trusted: "gc")
    public static let metrics = Scope(trusted: "metrics")
    public static let admin = Scope(trusted: "admin")
    public static let indexWrite = Scope(trusted: "index:write")
    public static let auditRead = Scope(trusted: "audit:read")

    init(trusted value: String) { self.value = value }

    /// Parses and checks `text`: unknown roots and malformed qualifiers are refused, so a typo
    /// cannot grant nothing (or something else) silently.
    public init(_ text: String) throws {
        guard !text.isEmpty, text.utf8.count <= 512 else { throw AccessError.invalid("scope \"\(text)\": 1 to 512 characters") }
        guard text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7f && $0 != "," }) else {
            throw AccessError.invalid("scope \"\(text)\": no spaces, commas or control characters")
        }
        for (root, qualified) in Self.roots {
            if text == root { self.value = text; return }
            if qualified, text.hasPrefix(root + ":"), text.count > root.count + 1 {
                if root == "drive" {
                    let q = text.dropFirst(root.count + 1)
                    guard ["read", "write", "share", "*"].contains(q) else {
                        throw AccessError.invalid("scope \"\(text)\": drive takes :read, :write, :share or :*")
                    }
                }
                if root == "index:write" {
                    let q = text.dropFirst(root.count + 1)
                    let type = q.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0]
                    guard !type.isEmpty else { throw AccessError.invalid("scope \"\(text)\": index:write:TYPE[/KEY-PREFIX] needs a type") }
                    // A type is compared whole, so it must be one a pointer can have (Qindex's
                    // [a-z0-9][a-z0-9._-]{0,63}): "NOTES" or "n*" would match nothing, or more than meant.
                    let u = Array(type.utf8)
                    func allowed(_ c: UInt8, first: Bool) -> Bool {
                        (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || (!first && (c == 0x2e || c == 0x5f || c == 0x2d))
                    }
                    guard u.count <= 64, allowed(u[0], first: true), u.dropFirst().allSatisfy({ allowed($0, first: false) }) else {
                        throw AccessError.invalid("scope \"\(text)\": a pointer type is [a-z0-9][a-z0-9._-]{0,63}, compared whole")
                    }
                }
                self.value = text
                return
            }
        }
        throw AccessError.invalid("unknown scope \"\(text)\" (scopes: \(Self.roots.map { $0.qualified ? $0.name + "[:…]" : $0.name }.joined(separator: ", ")))")
    }

    /// A comma-separated list (`read,pin`), each checked; empty entries refused.
    public static func list(_ text: String) throws -> [Scope] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty, !parts.contains("") else { throw AccessError.invalid("scopes: a comma-separated list such as read,pin") }
        return Array(Set(try parts.map { try Scope($0) })).sorted()
    }

    /// The scope `name:publish:KEY` publishing the IPNS name of the node's key `KEY` needs.
    public static func namePublish(key: String) -> Scope { Scope(trusted: "name:publish:\(key)") }

    /// `registry:publish:MODULE`: publishing and changing the versions of `MODULE`.
    public static func registryPublish(module: String) -> Scope { Scope(trusted: "registry:publish:\(module)") }
    /// `registry:promote`: moving versions from the sandbox to production.
    public static let registryPromote = Scope(trusted: "registry:promote")

    /// The scope `index:write:TYPE/KEY` an update of that pointer needs.
    public static func indexWrite(type: String, key: String) -> Scope { Scope(trusted: "index:write:\(type)/\(key)") }

    /// Whether holding `self` gives `required`.
    public func covers(_ required: Scope) -> Bool {
        let g = value.utf8, r = required.value.utf8
        if value == "admin" || value == required.value { return true }
        // Byte comparisons, no allocation: this runs on every request.
        if r.count > g.count, r.starts(with: g) {
            let next = r[r.index(r.startIndex, offsetBy: g.count)]
            if next == UInt8(ascii: ":") || next == UInt8(ascii: "/") { return true }
            // A key prefix: the qualifier after the type holds a "/".
            if value.hasPrefix("index:write:"), g.dropFirst(12).contains(UInt8(ascii: "/")) { return true }
        }
        if g.last == UInt8(ascii: "*"), r.starts(with: g.dropLast()) { return true }
        return false
    }

    public var description: String { value }
    public static func < (a: Scope, b: Scope) -> Bool { a.value < b.value }

    /// A stored scope (a grant's, a token's) as it was checked when it was given: a rule added
    /// since must not make a repository's access records unreadable. Input from callers goes
    /// through `init(_:)` and `list(_:)`.
    public init(from decoder: any Decoder) throws { self.init(trusted: try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

import Foundation
