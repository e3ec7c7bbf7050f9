import Access
import ArgumentParser
import Foundation
import QAPI

// `qstore identity|grant|token`: who may call the daemon, and with which scopes (Docs/access.md).

struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity", abstract: "sQuid identities whose Ed25519 keys sign requests: add, ls, show, rotate-key, revoke.",
        discussion: """
            An identity signs requests with x-squid-id, x-ts, x-nonce and x-sig (Docs/access.md); it can do only what \
            grants give it (`qstore grant add`). Keys are standard base64 of the raw 32-byte Ed25519 public key. A \
            rotated-out key keeps signing for --overlap and keeps verifying what it signed while it was valid.
            """,
        subcommands: [Add.self, List.self, Show.self, RotateKey.self, Revoke.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register SQUID_ID with its first public key (valid from now).")
        @Argument(help: "The sQuid id (1–128 of A-Z a-z 0-9 . _ : @ -).") var squidId: String
        @Option(help: "The Ed25519 public key: standard base64 of its raw 32 bytes.") var key: String
        @Option(help: "A note for people (shown by ls).") var label: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let i = try backend(purpose: "identity add").addIdentity(squidId, key: key, label: label)
            try AccessOutput.identity(i, json: json)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List identities: id, status, current keys, label.")
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let l = try backend(purpose: "identity ls").identities()
            if json { try Output.json(l); return }
            for i in l.identities {
                print([i.squidId, i.status, "\(i.keys.filter(\.current).count) current key(s)", i.label ?? ""].joined(separator: "\t"))
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an identity and each key's validity window.")
        @Argument(help: "The sQuid id.") var squidId: String
        @Flag(help: "Print JSON.") var json = false
        func run() throws { try AccessOutput.identity(try backend(purpose: "identity show").identity(squidId), json: json) }
    }

    struct RotateKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key", abstract: "Add a new key (valid from now); the current ones stop signing after --overlap.")
        @Argument(help: "The sQuid id.") var squidId: String
        @Option(help: "The new Ed25519 public key (standard base64 of 32 bytes).") var key: String
        @Option(help: "How long the replaced keys still sign (30m, 24h, 0s).") var overlap = "24h"
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            try AccessOutput.identity(try backend(purpose: "identity rotate-key").rotateKey(squidId, key: key, overlap: overlap), json: json)
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke an identity: from the next request on, nothing signed by it (or by a token acting as it) is accepted.")
        @Argument(help: "The sQuid id.") var squidId: String
        @Flag(help: "Print JSON.") var json = false
        func run() throws { try AccessOutput.identity(try backend(purpose: "identity revoke").revokeIdentity(squidId), json: json) }
    }
}

struct GrantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant", abstract: "Scopes given to an identity or a token (deny by default): add, ls, revoke.",
        discussion: """
            Scopes: read, write, pin, gc, metrics, admin, index:write[:TYPE[/KEY-PREFIX]], registry:publish[:MODULE], \
            registry:promote, drive[:read|:write|:share|:*], audit:read, cluster:admin, name:publish[:KEY]. Every route needs one \
            (Docs/access.md lists them); a revoked grant stops counting on the next request.
            """,
        subcommands: [Add.self, List.self, Revoke.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give SUBJECT (a sQuid id, or token:ID) scopes; prints the grant's id.")
        @Argument(help: "A registered sQuid id, or token:ID.") var subject: String
        @Option(help: "Scopes, comma-separated (read,pin).") var scope: String
        @Option(help: "Ends after this long (30d, 12h); default: no end.") var expires: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let scopes = try reporting("grant add") { try Scope.list(scope).map(\.value) }
            let g = try backend(purpose: "grant add").addGrant(subject: subject, scopes: scopes, expires: expires)
            if json { try Output.json(g); return }
            print(g.id)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List grants in force (--all: revoked and expired too).")
        @Option(help: "Only this subject's.") var subject: String?
        @Flag(help: "Also revoked and expired grants.") var all = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let l = try backend(purpose: "grant ls").grants(subject: subject, all: all)
            if json { try Output.json(l); return }
            for g in l.grants {
                print([g.id, g.subject, g.scopes.joined(separator: ","), g.status, g.expires.map { "expires " + $0 } ?? ""].joined(separator: "\t"))
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a grant (kept, marked revoked; effective on the next request).")
        @Argument(help: "The grant's id (from grant ls).") var id: String
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let g = try backend(purpose: "grant revoke").revokeGrant(id)
            if json { try Output.json(g); return }
            print("revoked \(g.id)")
        }
    }
}

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Bearer tokens with scopes: create, ls, revoke.",
        discussion: """
            `create` prints the token once: only its SHA-256 is kept. A token acts with its scopes (and grants to \
            token:ID), as --identity when given (recorded as the author of what it writes). The repository's api-token \
            file is the admin token (every scope).
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token; prints only the token (--json: with its record).")
        @Option(help: "Scopes, comma-separated (read,pin).") var scope: String
        @Option(help: "The registered sQuid id the token acts as.") var identity: String?
        @Option(help: "Ends after this long (30d, 12h); default: no end.") var expires: String?
        @Option(help: "A note for people (shown by ls).") var label: String?
        @Flag(help: "Print JSON (the token and its record).") var json = false
        func run() throws {
            let scopes = try reporting("token create") { try Scope.list(scope).map(\.value) }
            let t = try backend(purpose: "token create").createToken(scopes: scopes, identity: identity, expires: expires, label: label)
            if json { try Output.json(t); return }
            guard let secret = t.token else { throw CLIError("token create: the daemon did not return the token (an idempotent replay?)") }
            print(secret)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List tokens (never their secrets); --all: revoked and expired too.")
        @Flag(help: "Also revoked and expired tokens.") var all = false
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let l = try backend(purpose: "token ls").tokens(all: all)
            if json { try Output.json(l); return }
            for t in l.tokens {
                print([t.id, t.scopes.joined(separator: ","), t.identity ?? "-", t.status, t.expires.map { "expires " + $0 } ?? "", t.label ?? ""]
                    .joined(separator: "\t"))
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token (effective on the next request).")
        @Argument(help: "The token's id (from token ls).") var id: String
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let t = try backend(purpose: "token revoke").revokeToken(id)
            if json { try Output.json(t); return }
            print("revoked \(t.id)")
        }
    }
}

enum AccessOutput {
    static func identity(_ i: IdentityInfo, json: Bool) throws {
        if json { try Output.json(i); return }
        print("\(i.squidId)\t\(i.status)\(i.label.map { "\t" + $0 } ?? "")")
        for k in i.keys {
            print("  key \(k.publicKey)\tfrom \(k.notBefore)\(k.notAfter.map { " until " + $0 } ?? "")\(k.current ? "\tcurrent" : "")")
        }
    }
}

extension LocalBackend {
    private var now: UInt64 { node.access.now }
    func addIdentity(_ squidId: String, key: String, label: String?) throws -> IdentityInfo {
        try reporting("identity add") { IdentityInfo(try node.addIdentity(squidId, key: key, label: label), now: now) }
    }
    func identities() throws -> IdentityList { IdentityList(node.identities().map { IdentityInfo($0, now: now) }) }
    func identity(_ squidId: String) throws -> IdentityInfo { try reporting("identity show") { IdentityInfo(try node.identity(squidId), now: now) } }
    func rotateKey(_ squidId: String, key: String, overlap: String?) throws -> IdentityInfo {
        try reporting("identity rotate-key") {
            let ms = try AccessControl.duration(overlap, fallback: 86_400_000, field: "overlap")
            return IdentityInfo(try node.rotateIdentityKey(squidId, key: key, overlap: ms), now: now)
        }
    }
    func revokeIdentity(_ squidId: String) throws -> IdentityInfo { try reporting("identity revoke") { IdentityInfo(try node.revokeIdentity(squidId), now: now) } }
    func addGrant(subject: String, scopes: [String], expires: String?) throws -> GrantInfo {
        try reporting("grant add") {
            GrantInfo(try node.addGrant(to: subject, scopes: try scopes.map { try Scope($0) }, expires: try node.access.expiry(expires), by: "admin"), now: now)
        }
    }
    func grants(subject: String?, all: Bool) throws -> GrantList { GrantList(node.grants(subject: subject, all: all).map { GrantInfo($0, now: now) }) }
    func revokeGrant(_ id: String) throws -> GrantInfo { try reporting("grant revoke") { GrantInfo(try node.revokeGrant(id), now: now) } }
    func createToken(scopes: [String], identity: String?, expires: String?, label: String?) throws -> TokenCreated {
        try reporting("token create") {
            let made = try node.createToken(scopes: try scopes.map { try Scope($0) }, identity: identity, expires: try node.access.expiry(expires), label: label)
            return TokenCreated(token: made.token, record: TokenInfo(made.record, now: now))
        }
    }
    func tokens(all: Bool) throws -> TokenList { TokenList(node.tokens(all: all).map { TokenInfo($0, now: now) }) }
    func revokeToken(_ id: String) throws -> TokenInfo { try reporting("token revoke") { TokenInfo(try node.revokeToken(id), now: now) } }
}

extension RemoteBackend {
    private func body(_ value: some Encodable) throws -> Data { try JSONEncoder().encode(value) }
    private static func segment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? s
    }

    func addIdentity(_ squidId: String, key: String, label: String?) throws -> IdentityInfo {
        try reporting("identity add") {
            try q(IdentityInfo.self, "POST", "identities", body: try body(IdentityCreate(squidId: squidId, key: key, label: label)), contentType: "application/json")
        }
    }
    func identities() throws -> IdentityList { try reporting("identity ls") { try q(IdentityList.self, "GET", "identities") } }
    func identity(_ squidId: String) throws -> IdentityInfo { try reporting("identity show") { try q(IdentityInfo.self, "GET", "identities/" + Self.segment(squidId)) } }
    func rotateKey(_ squidId: String, key: String, overlap: String?) throws -> IdentityInfo {
        try reporting("identity rotate-key") {
            try q(IdentityInfo.self, "POST", "identities/" + Self.segment(squidId) + "/keys", body: try body(KeyRotation(key: key, overlap: overlap)), contentType: "application/json")
        }
    }
    func revokeIdentity(_ squidId: String) throws -> IdentityInfo {
        try reporting("identity revoke") { try q(IdentityInfo.self, "DELETE", "identities/" + Self.segment(squidId)) }
    }
    func addGrant(subject: String, scopes: [String], expires: String?) throws -> GrantInfo {
        try reporting("grant add") {
            try q(GrantInfo.self, "POST", "grants", body: try body(GrantCreate(subject: subject, scopes: scopes, expires: expires)), contentType: "application/json")
        }
    }
    func grants(subject: String?, all: Bool) throws -> GrantList {
        try reporting("grant ls") { try q(GrantList.self, "GET", "grants", (subject.map { [("subject", $0)] } ?? []) + (all ? [("all", "true")] : [])) }
    }
    func revokeGrant(_ id: String) throws -> GrantInfo { try reporting("grant revoke") { try q(GrantInfo.self, "DELETE", "grants/" + Self.segment(id)) } }
    func createToken(scopes: [String], identity: String?, expires: String?, label: String?) throws -> TokenCreated {
        try reporting("token create") {
            try q(TokenCreated.self, "POST", "tokens", body: try body(TokenCreate(scopes: scopes, identity: identity, expires: expires, label: label)), contentType: "application/json")
        }
    }
    func tokens(all: Bool) throws -> TokenList { try reporting("token ls") { try q(TokenList.self, "GET", "tokens", all ? [("all", "true")] : []) } }
    func revokeToken(_ id: String) throws -> TokenInfo { try reporting("token revoke") { try q(TokenInfo.self, "DELETE", "tokens/" + Self.segment(id)) } }
}
