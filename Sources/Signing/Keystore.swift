import Foundation
import Locking
import Storage
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Multiformats

/// The node's named Ed25519 keys (`qstore key gen|ls|rename|rm`, Kubo's `key/*`): `self` is the
/// node identity (`keystore/identity.key`), every other key a file `keystore/key-<name>` holding
/// its 32 private bytes (mode 0600). A key is written and synced to a temporary file of its own
/// and then linked under its name (link(2) never replaces a file), so a crash leaves no half key
/// and no key is ever overwritten unless a forced rename asks for it.
public struct Keystore: Sendable {
    /// The keystore folder.
    public let directory: String
    /// The node key, named `self`.
    public let nodeKey: SigningKey

    public init(directory: String, nodeKey: SigningKey) {
        self.directory = directory
        self.nodeKey = nodeKey
    }

    /// A key's name and its IPNS name.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var key: SigningKey
        /// The key's IPNS name (a `libp2p-key` CIDv1 in base36, as Kubo prints it).
        public var id: String { IPNSName.string(Libp2pKey.name(key.publicKey).multihash) }
    }

    /// Names: `self`, or 1–64 of `[A-Za-z0-9._-]` not starting with `.`.
    public static func check(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 64, !name.hasPrefix("."),
              name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d })
        else { throw KeystoreError.invalidName(name) }
    }

    func path(_ name: String) -> String { directory + "/key-" + name }

    /// The key named `name`.
    public func key(_ name: String) throws -> SigningKey {
        if name == "self" { return nodeKey }
        try Self.check(name)
        guard let data = FileManager.default.contents(atPath: path(name)) else { throw KeystoreError.notFound(name) }
        do { return try SigningKey(rawRepresentation: [UInt8](data)) } catch { throw KeystoreError.unreadable(name) }
    }

    /// Every key, `self` first, then by name (files that are not readable keys are left out).
    public func list() throws -> [Entry] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("key-") }.map { String($0.dropFirst(4)) }.sorted()
        return [Entry(name: "self", key: nodeKey)] + names.compactMap { name in
            guard (try? Self.check(name)) != nil, let key = try? key(name) else { return nil }
            return Entry(name: name, key: key)
        }
    }

    /// Serialises keystore changes in this process (another process cannot hold the repository).
    private static let changes = Mutex(())

    /// A new Ed25519 key named `name` (an existing name is refused).
    public func generate(_ name: String) throws -> Entry {
        try Self.check(name)
        guard name != "self" else { throw KeystoreError.exists(name) }
        let key = SigningKey()
        try Self.changes.locked { _ in
            let tmp = try writeTemporary(key)
            defer { unlink(tmp) }
            // link(2) never replaces: an existing key of that name stays, and this one is refused.
            guard link(tmp, path(name)) == 0 else {
                if errno == EEXIST { throw KeystoreError.exists(name) }
                throw KeystoreError.io("\(path(name)): \(String(cString: strerror(errno)))")
            }
            Storage.syncDirectory(directory)
        }
        return Entry(name: name, key: key)
    }

    /// Renames a key; `force` replaces a key already called `new`. Returns the key and whether
    /// one was replaced.
    public func rename(_ old: String, to new: String, force: Bool) throws -> (entry: Entry, overwrote: Bool) {
        guard old != "self", new != "self" else { throw KeystoreError.selfKey }
        try Self.check(new)
        return try Self.changes.locked { _ in
            // Read under the lock: the key moved is the one reported.
            let key = try key(old)
            guard old != new else { return (Entry(name: new, key: key), false) }
            let exists = FileManager.default.fileExists(atPath: path(new))
            if force {
                guard posixRename(path(old), path(new)) == 0 else {
                    if errno == ENOENT { throw KeystoreError.notFound(old) }
                    throw KeystoreError.io("rename \(old) → \(new): \(String(cString: strerror(errno)))")
                }
            } else {
                // link then unlink: the new name is taken only if free, and the key is never without a name.
                guard link(path(old), path(new)) == 0 else {
                    if errno == EEXIST { throw KeystoreError.exists(new) }
                    if errno == ENOENT { throw KeystoreError.notFound(old) }
                    throw KeystoreError.io("rename \(old) → \(new): \(String(cString: strerror(errno)))")
                }
                unlink(path(old))
            }
            Storage.syncDirectory(directory)
            return (Entry(name: new, key: key), exists && force)
        }
    }

    /// Removes keys; returns what was removed.
    public func remove(_ names: [String]) throws -> [Entry] {
        try Self.changes.locked { _ in
            var out: [Entry] = []
            for name in names {
                guard name != "self" else { throw KeystoreError.selfKey }
                let entry = Entry(name: name, key: try key(name))
                guard unlink(path(name)) == 0 else { throw KeystoreError.io("remove \(name): \(String(cString: strerror(errno)))") }
                out.append(entry)
            }
            Storage.syncDirectory(directory)
            return out
        }
    }

    /// The key written and synced to a new file of its own (`.tmp-…`: no key name starts with a dot).
    private func writeTemporary(_ key: SigningKey) throws -> String {
        let tmp = directory + "/.tmp-" + UUID().uuidString
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw KeystoreError.io("\(tmp): \(String(cString: strerror(errno)))") }
        let ok = key.rawRepresentation.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) == $0.count } && fsync(fd) == 0
        close(fd)
        guard ok else {
            unlink(tmp)
            throw KeystoreError.io("\(tmp): \(String(cString: strerror(errno)))")
        }
        return tmp
    }

}

/// POSIX rename(2) (atomic replacement), out of reach of `Keystore.rename`'s name.
private func posixRename(_ from: String, _ to: String) -> Int32 {
    #if canImport(Glibc)
    Glibc.rename(from, to)
    #else
    Darwin.rename(from, to)
    #endif
}

/// Failures of the keystore.
public enum KeystoreError: Error, Equatable, Sendable, CustomStringConvertible, KindedError {
    case invalidName(String)
    case notFound(String)
    case exists(String)
    case selfKey
    case unreadable(String)
    case io(String)

    public var description: String {
        switch self {
        case .invalidName(let n): "key name \"\(n)\": 1–64 of A-Z a-z 0-9 . _ - (not starting with .)"
        case .notFound(let n): "no key named \(n)"
        case .exists(let n): "a key named \(n) already exists"
        case .selfKey: "the key \"self\" is the node's identity: it cannot be renamed, removed or replaced"
        case .unreadable(let n): "key \(n) is not a 32-byte Ed25519 private key"
        case .io(let m): "keystore: \(m)"
        }
    }

    public var kind: ErrorKind {
        switch self {
        case .invalidName, .selfKey: .invalidInput
        case .notFound: .notFound
        case .exists: .conflict
        case .unreadable, .io: .internal
        }
    }
}
