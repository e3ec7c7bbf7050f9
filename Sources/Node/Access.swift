import Access
import Foundation
import Qindex
import Signing

/// Qindex accepts records signed by a registered key of their author, valid when they were made.
struct RegisteredKeys: KeyAuthority {
    let access: AccessControl
    func isKey(_ publicKey: [UInt8], of author: IdentityRef, at ms: UInt64) -> Bool {
        access.isKey(publicKey, of: author.squidId, at: ms)
    }
}

// MARK: identities, grants and tokens (`qstore identity|grant|token`, /q/v1/identities|grants|tokens)

extension Node {
    public func addIdentity(_ squidId: String, key: String, label: String?) throws -> Identity { try access.addIdentity(squidId, key: key, label: label) }
    public func identities() -> [Identity] { access.identities() }
    public func identity(_ squidId: String) throws -> Identity { try access.identity(squidId) }
    /// `overlap`: how long (ms) the keys it replaces still sign.
    public func rotateIdentityKey(_ squidId: String, key: String, overlap: UInt64) throws -> Identity { try access.rotateKey(squidId, key: key, overlap: overlap) }
    public func revokeIdentity(_ squidId: String) throws -> Identity { try access.revokeIdentity(squidId) }

    public func addGrant(to subject: String, scopes: [Scope], expires: UInt64?, by grantor: String) throws -> Grant {
        try access.addGrant(to: subject, scopes: scopes, expires: expires, by: grantor)
    }
    public func grants(subject: String?, all: Bool) -> [Grant] { access.grants(subject: subject, all: all) }
    public func revokeGrant(_ id: String) throws -> Grant { try access.revokeGrant(id) }

    public func createToken(scopes: [Scope], identity: String?, expires: UInt64?, label: String?) throws -> (token: String, record: Token) {
        try access.createToken(scopes: scopes, identity: identity, expires: expires, label: label)
    }
    public func tokens(all: Bool) -> [Token] { access.tokens(all: all) }
    public func revokeToken(_ id: String) throws -> Token { try access.revokeToken(id) }
}
