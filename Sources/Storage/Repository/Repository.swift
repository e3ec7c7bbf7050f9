#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IPLD
import Locking
import Multiformats

/// A Qstore repository on disk: everything one node keeps.
///
/// Layout (version 2), under the repository path:
/// - `version` — the layout version, a decimal number;
/// - `config.json` — the `Configuration`;
/// - `datastore/` — the LevelDB database (all key spaces, `KeySpace`);
/// - `packs/` — pack files of large blocks;
/// - `keystore/identity.key` — the node's Ed25519 private key (mode 0600);
/// - `api-token` — the daemon's bearer token (mode 0600);
/// - `repo.lock` — the process lock (`RepositoryLock`), naming its holder;
/// - `reserve` — space held for the repository's own writes when the disk fills (`SpaceReserve`);
/// - `api` — while a daemon runs, its API address (the CLI goes through it then);
/// - `.remembered-*` — for the microseconds between its making and its unlinking, an add's list
///   of the blocks it stored (`SpilledMultihashes`); a crash's leftover is removed at open.
///
/// Invariants: only one process has a repository open (the lock); a
/// repository of another layout version is refused, never read, except version 1, which is
/// upgraded when opened (`upgradable`); `init` writes `version` last, so a half-initialised
/// directory is not a repository.
public final class Repository: Sendable {
    /// The layout version this build reads and writes.
    /// 2: block data records may list the codecs their block is stored under (kinds 2 and 3,
    /// `LevelDBBlockStore.Record`), which a version 1 build cannot read.
    public static let currentVersion = 2
    /// Versions this build upgrades in place when it opens them: version 1's records are version
    /// 2's records without codec lists, so the upgrade only rewrites the version file (under
    /// the lock, before anything is written); records keep their form until rewritten.
    public static let upgradable: Set<Int> = [1]

    /// The repository directory.
    public let path: String
    /// The configuration in force (file plus environment).
    public let configuration: Configuration
    /// The node's identity.
    public let identity: NodeIdentity
    /// The block store.
    public let blocks: LevelDBBlockStore
    /// The database shared by every layer's key space.
    public var db: LevelDB { blocks.db }
    private let lock: RepositoryLock

    /// `$QSTORE_PATH`, else `~/.qstore`.
    public static func defaultPath(_ env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let p = env["QSTORE_PATH"], !p.isEmpty { return p }
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? FileManager.default.homeDirectoryForCurrentUser.path
        return home + "/.qstore"
    }

    /// Whether `path` holds a repository (its version file exists).
    public static func exists(at path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/version")
    }

    /// Creates a repository at `path` (the directory may exist but must not hold a repository).
    @discardableResult
    public static func initialize(at path: String, configuration: Configuration = Configuration()) throws -> Configuration {
        let fm = FileManager.default
        guard !exists(at: path) else { throw RepositoryError.alreadyInitialized(path) }
        do {
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            try fm.createDirectory(atPath: path + "/keystore", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch { throw RepositoryError.invalidConfiguration("cannot create \(path): \(error.localizedDescription)") }
        let lock = try RepositoryLock(path: path + "/repo.lock", purpose: "init")
        let identity = NodeIdentity()
        var config = configuration
        config.version = currentVersion
        config.identity.peerID = identity.peerID
        try writeSecret(path + "/keystore/identity.key", Data(identity.rawRepresentation))
        var token = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in token.indices { token[i] = UInt8.random(in: 0...255, using: &rng) }
        try writeSecret(path + "/api-token", Data((Multibase.base64url.encodeWithoutPrefix(token) + "\n").utf8))
        try write(path + "/config.json", try config.encoded())
        // Create the datastore now, so a fresh repository opens without creating anything.
        let db = try LevelDB(path: path + "/datastore", options: config.datastore.levelDBOptions)
        db.close()
        try fm.createDirectory(atPath: path + "/packs", withIntermediateDirectories: true)
        try write(path + "/version", Data("\(currentVersion)\n".utf8))
        _ = lock
        return config
    }

    /// Opens the repository at `path`, taking its lock for `purpose` (shown to anyone who finds it held).
    public init(path: String, purpose: String = "qstore", environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        _ = try Self.readableVersion(at: path)
        lock = try RepositoryLock(path: path + "/repo.lock", purpose: purpose)
        // Read again under the lock: another process may have upgraded it meanwhile.
        if try Self.readableVersion(at: path) != Repository.currentVersion {
            try Self.writeDurably(path + "/version", Array("\(Repository.currentVersion)\n".utf8))
        }
        // The lock is ours, so no daemon runs here: an `api` file is a crashed daemon's, and the
        // CLI must not take it for a running one.
        try? FileManager.default.removeItem(atPath: path + "/api")
        SpilledMultihashes.removeLeftovers(in: path)
        var config: Configuration
        do {
            config = try JSONDecoder().decode(Configuration.self, from: Data(contentsOf: URL(fileURLWithPath: path + "/config.json")))
        } catch {
            throw RepositoryError.invalidConfiguration("\(path)/config.json: \(error)")
        }
        try config.applyEnvironment(environment)
        // The layout version is the version file's (config.json keeps what `init` wrote).
        config.version = Repository.currentVersion
        let keyData: Data
        do { keyData = try Data(contentsOf: URL(fileURLWithPath: path + "/keystore/identity.key")) } catch {
            throw RepositoryError.invalidConfiguration("\(path)/keystore/identity.key: \(error.localizedDescription)")
        }
        identity = try NodeIdentity(rawRepresentation: [UInt8](keyData))
        var dbOptions = config.datastore.levelDBOptions
        dbOptions.createIfMissing = false
        // A full disk must not stop the open: LevelDB's recovery writes before it reads.
        let reserve = SpaceReserve(directory: path, bytes: config.blockstore.reserveBytes)
        reserve.prepareForOpen()
        let db = try LevelDB(path: path + "/datastore", options: dbOptions)
        db.noSpace.locked { $0 = { [reserve] in reserve.release() } }
        blocks = try LevelDBBlockStore(db: db, packDirectory: path + "/packs", options: config.blockstore, reserve: config.blockstore.reserveBytes > 0 ? reserve : nil)
        configuration = config
        self.path = path
    }

    /// Closes the database and releases the lock (also done when the last reference goes).
    public func close() { blocks.db.close() }

    /// Whether the store answers (a read of a key that need not exist).
    public var isHealthy: Bool {
        do {
            _ = try db.get(KeySpace.meta.key([0]))
            return true
        } catch {
            return false
        }
    }

    /// The daemon's bearer token.
    public func apiToken() throws -> String {
        try String(contentsOfFile: path + "/api-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func write(_ file: String, _ data: Data) throws {
        do { try data.write(to: URL(fileURLWithPath: file), options: .atomic) } catch {
            throw RepositoryError.invalidConfiguration("cannot write \(file): \(error.localizedDescription)")
        }
    }

    /// The layout version of the repository at `path`, if this build reads it (as it is, or once
    /// upgraded); else why not.
    private static func readableVersion(at path: String) throws -> Int {
        guard let text = try? String(contentsOfFile: path + "/version", encoding: .utf8) else { throw RepositoryError.notInitialized(path) }
        let found = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let version = Int(found), version == currentVersion || upgradable.contains(version) else {
            throw RepositoryError.unsupportedVersion(found: found, path: path)
        }
        return version
    }

    /// Replaces `file` so that a crash at any instant leaves the old or the new contents: a
    /// synced temporary file renamed over it, then the directory synced.
    private static func writeDurably(_ file: String, _ bytes: [UInt8]) throws {
        let tmp = file + ".tmp"
        func fail(_ what: String) -> RepositoryError {
            RepositoryError.invalidConfiguration("cannot write \(file) (\(what)): \(String(cString: strerror(errno)))")
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw fail("open") }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        Glibc.close(fd)
        guard written == bytes.count, synced == 0 else {
            unlink(tmp)
            throw fail("write")
        }
        guard rename(tmp, file) == 0 else { throw fail("rename") }
        syncDirectory((file as NSString).deletingLastPathComponent)
    }

    private static func writeSecret(_ file: String, _ data: Data) throws {
        try write(file, data)
        chmod(file, 0o600)
    }
}

/// Why a repository could not be created or opened.
public enum RepositoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No repository at the path.
    case notInitialized(String)
    /// `init` on an existing repository.
    case alreadyInitialized(String)
    /// Another process holds the repository.
    case locked(path: String, holder: String)
    /// A layout version this build cannot read.
    case unsupportedVersion(found: String, path: String)
    /// The configuration (file or environment) is invalid.
    case invalidConfiguration(String)
    /// A file-system call failed.
    case io(String, Int32)

    public var description: String {
        switch self {
        case .notInitialized(let p): "no repository at \(p): run `qstore init` first (or set QSTORE_PATH)"
        case .alreadyInitialized(let p): "a repository already exists at \(p)"
        case .locked(let p, let h): "the repository is in use: \(p) is held by \(h)"
        case .unsupportedVersion(let v, let p):
            "the repository at \(p) has layout version \(v); this qstore reads version \(Repository.currentVersion). Use a qstore release that matches it, or export its data with that release (`qstore dag export`) and import it into a new repository."
        case .invalidConfiguration(let r): "invalid configuration: \(r)"
        case .io(let what, let code): "\(what): \(String(cString: strerror(code)))"
        }
    }
}

extension RepositoryError: KindedError {
    public var kind: ErrorKind {
        switch self {
        case .notInitialized: .notFound
        case .alreadyInitialized: .conflict
        case .locked: .unavailable
        case .unsupportedVersion: .unsupported
        case .invalidConfiguration: .invalidInput
        case .io: .internal
        }
    }
}
