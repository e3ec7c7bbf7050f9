import Audit
import CAR
import Foundation
import HTTPServer
import IPLD
import KuboAPI
import Multiformats
import Node
import Pinning
import QAPI
import Qdrive
import Qindex
import Registry
import Signing
import Storage
import UnixFS

/// What the repository commands need, served either by a running daemon (over its
/// RPC API, with the repository's token) or, when no daemon is running, by opening
/// the repository directly — as `ipfs` does with `$IPFS_PATH/api`.
protocol Backend {
    func putBlock(_ data: [UInt8], codec: String, mhtype: String, mhlen: Int, pin: Bool) throws -> BlockStat
    func getBlock(_ cid: CID) throws -> [UInt8]
    func statBlock(_ cid: CID) throws -> BlockStat
    /// Kubo's `block rm` of one block: `error` is "" when removed.
    func removeBlock(_ cid: CID) throws -> BlockRemoval
    func putDAG(_ data: [UInt8], input: String, store: String, hash: String, pin: Bool) throws -> DAGPutResult
    func getDAG(_ root: CID, path: [String], output: String) throws -> [UInt8]
    /// Writes the CAR to standard output.
    func exportDAG(_ root: CID, progress: Bool) throws
    /// Imports a CAR; with `pinRoots`, pins each root: Kubo's lines (roots, then the statistics).
    func importCAR(_ file: String, progress: Bool, pinRoots: Bool) throws -> [DAGImportEvent]
    func repoStat() throws -> RepoStat
    /// Kubo's `repo verify` lines: the problems, then the verdict.
    func repoVerify(progress: Bool, repair: Bool) throws -> [RepoVerifyLine]
    /// Imports files, directories (with `-r`) and standard input ("-") as UnixFS, telling `report`
    /// each entry added as Kubo's `add` lines.
    func add(_ paths: [String], options: ImportOptions, wrap: Bool, hidden: Bool, pin: PinOption?, report: (AddedLine) -> Void) throws
    /// Writes a UnixFS file's bytes (a range of them) to standard output.
    func cat(_ root: CID, path: [String], offset: UInt64, length: UInt64?) throws
    /// A directory's entries.
    func list(_ root: CID, path: [String]) throws -> LsResult
    /// The tree at root/path as a tar stream.
    func tar(_ root: CID, path: [String], name: String, write: ([UInt8]) throws -> Void) throws
    func pinAdd(_ refs: [String], options: PinOption) throws -> PinsResult
    func pinRemove(_ refs: [String], recursive: Bool) throws -> PinsResult
    func pinList(_ refs: [String], type: String, name: String?) throws -> [PinLsEntry]
    /// Kubo's `pin verify` lines (failing pins only unless `verbose`).
    func pinVerify(verbose: Bool) throws -> [PinVerifyResult]
    func pinUpdate(from: String, to: String, unpin: Bool) throws -> PinsResult
    func pinPolicies() throws -> PolicyListing
    /// Collects garbage, telling `removed` each block deleted; returns a line about pack
    /// compaction when one happened and is known here.
    func repoGC(_ removed: (RepoGCLine) -> Void) throws -> String?

    // Qindex pointers, in the Q API's wire types.
    /// Moves a pointer (`update.cid` nil: deletes it, a tombstone); returns the new head.
    func putPointer(type: String, key: String, _ update: PointerUpdate?, expectedVersion: Int64?) async throws -> PointerRecord
    /// The head (no version, no time), the main chain's record of `version`, or the newest at `at`.
    func getPointer(type: String, key: String, version: Int64?, at: String?) throws -> PointerRecord
    func pointerHistory(type: String, key: String, limit: Int, cursor: Int64?) throws -> PointerHistory
    func listPointers(_ query: PointerQuery) throws -> PointerList
    /// Merges the histories a CAR of records heads (its roots).
    func importPointers(_ file: String) async throws -> PointerMerge
    /// Publishes a pointer's head as an IPNS name.
    func publishPointer(type: String, key: String, keyName: String, lifetime: String, ttl: String) throws -> NamePublication

    // IPNS, in Kubo's wire types.
    func publishName(_ path: String, key: String, lifetime: String, ttl: String, resolve: Bool) throws -> NamePublished
    /// `name` nil: the node's own.
    func resolveName(_ name: String?, recursive: Bool) throws -> NameResolved
    /// Holds a record made elsewhere for `/ipns/<name>` once it verifies.
    func putNameRecord(_ key: String, _ record: [UInt8]) throws
    /// The held record of `/ipns/<name>`.
    func nameRecord(_ key: String) throws -> [UInt8]
    func generateKey(_ name: String, type: String) throws -> KeyEntry
    func keys() throws -> KeyList
    func renameKey(_ name: String, to new: String, force: Bool) throws -> KeyRenamed
    func removeKeys(_ names: [String]) throws -> KeyList

    // Identities, grants and tokens, in the Q API's wire types (AccessCommands.swift).
    func addIdentity(_ squidId: String, key: String, label: String?) throws -> IdentityInfo
    func identities() throws -> IdentityList
    func identity(_ squidId: String) throws -> IdentityInfo
    func rotateKey(_ squidId: String, key: String, overlap: String?) throws -> IdentityInfo
    func revokeIdentity(_ squidId: String) throws -> IdentityInfo
    func addGrant(subject: String, scopes: [String], expires: String?) throws -> GrantInfo
    func grants(subject: String?, all: Bool) throws -> GrantList
    func revokeGrant(_ id: String) throws -> GrantInfo
    func createToken(scopes: [String], identity: String?, expires: String?, label: String?) throws -> TokenCreated
    func tokens(all: Bool) throws -> TokenList
    func revokeToken(_ id: String) throws -> TokenInfo

    // The audit log, in the Q API's wire types (AuditCommand.swift).
    func auditCheckpoint() throws -> AuditCheckpointInfo
    func auditEvents(_ query: [(String, String)]) throws -> AuditEventPage
    /// Writes the log as a CAR (`car`) or JSON lines (`jsonl`) to `write`.
    func auditExport(format: String, query: [(String, String)], into write: @escaping ([UInt8]) throws -> Void) throws
    func auditVerify(key: String?, progress: Bool) throws -> AuditVerification

    // The module registry, in the Q API's wire types (ModuleCommand.swift); `ref` is name[@range].
    func publishModule(_ directory: String, namespace: ModuleNamespace, key: String) throws -> ModulePublished
    func module(_ ref: String, namespace: ModuleNamespace) throws -> ModuleVersionsInfo
    func verifyModule(_ ref: String, namespace: ModuleNamespace) throws -> ModuleVerifyReport
    /// `action`: `deprecate`, `yank`, or nil (a status change).
    func changeModule(_ ref: String, action: String?, _ change: ModuleChangeRequest, namespace: ModuleNamespace) throws -> ModuleInfo
    func promoteModule(_ ref: String) throws -> ModuleInfo
    func deregisterModule(_ ref: String, namespace: ModuleNamespace) throws -> ModuleDeregistered
    func searchModules(_ parameters: [(String, String)]) throws -> ModulePage
    func moduleGraph(_ ref: String, namespace: ModuleNamespace) throws -> ModuleGraphInfo
    func moduleDependents(_ name: String, namespace: ModuleNamespace) throws -> ModuleDependents
    func moduleDocs(_ ref: String) throws -> ModuleDocsInfo

    // Backups (BackupCommand.swift): through the daemon as jobs it runs.
    func createBackup(_ request: BackupRequest, progress: Bool) throws -> BackupSetInfo
    func restoreBackup(_ request: BackupRequest, progress: Bool) throws -> BackupRestoreInfo
    /// `backup create --to -`: the set as one CAR stream on standard output.
    func streamBackup(pins: String?, progress: Bool) throws -> BackupSetInfo
    /// `backup restore -|FILE`: a streamed set (`path`: the file it is in, if any).
    func restoreBackup(stream: FileSource, path: String?, progress: Bool) throws -> BackupRestoreInfo

    // Qdrive (DriveCommand.swift).
    /// With `sealing`, the source is encrypted here (client-held) and sent sealed.
    func drivePut(source: String, owner: String, path: String, options: DrivePutOptions, sealing: FileSealing?) throws -> DriveFileWire
    func driveGet(owner: String, path: String, version: Int64?, into sink: FileSink) throws
    func driveList(owner: String, path: String, version: Int64?) throws -> DriveListingWire
    func driveInfo(owner: String, path: String, version: Int64?) throws -> DriveFileWire
    func driveRemove(owner: String, path: String, erase: Bool) throws -> DriveChangeWire
    func driveChange(owner: String, path: String, _ action: DriveActionWire) throws -> DriveChangeWire
    func driveShareRevoke(owner: String, path: String, _ action: DriveActionWire) throws -> DriveFileWire
    func drivePublicKey(owner: String) throws -> DriveKeyWire
    /// The wrap of the file's key for the recipient key `keyID`, and the file's stored bytes
    /// (ciphertext): what a client holding its own key decrypts itself.
    func driveWrappedKey(owner: String, path: String, version: Int64?, keyID: String) throws -> [UInt8]
    func driveSealedGet(owner: String, path: String, version: Int64?, _ body: ([UInt8]) throws -> Void) throws

    // QpiC (MediaCommand.swift).
    func mediaUpload(_ bytes: [UInt8], owner: String?, profile: String?) throws -> MediaAssetWire
    func mediaInfo(_ id: String, owner: String?) throws -> MediaAssetWire
    func mediaVariant(_ id: String, name: String, owner: String?, into sink: FileSink) throws
}

/// `index ls`'s filters, as the query parameters of `GET /q/v1/index`.
struct PointerQuery {
    var type: String?
    var prefix: String?
    var tag: String?
    var target: String?
    var sort = "key"
    var limit = 100
    var cursor: String?

    var parameters: [(String, String)] {
        var q: [(String, String)] = []
        for (k, v) in [("type", type), ("prefix", prefix), ("tag", tag), ("target", target), ("cursor", cursor)] { if let v { q.append((k, v)) } }
        return q + [("sort", sort), ("limit", String(limit))]
    }
}

/// How to pin: Kubo's flags plus Qstore's resource type, expiry and replication.
struct PinOption {
    var recursive = true
    var name: String?
    var resourceType: String?
    var expiresIn: String?
    var replication: Int?

    var query: [(String, String)] {
        var q = [("recursive", String(recursive))]
        if let name { q.append(("name", name)) }
        if let resourceType { q.append(("resource-type", resourceType)) }
        if let expiresIn { q.append(("expires-in", expiresIn)) }
        if let replication { q.append(("replication", String(replication))) }
        return q
    }

    func request(_ cid: CID) throws -> Pinner.Request {
        var r = Pinner.Request(cid: cid, type: recursive ? .recursive : .direct, name: name, resourceType: resourceType)
        if let e = expiresIn {
            guard let ms = parseDuration(e) else { throw CLIError("--expires-in \(e) is not a duration (e.g. 90s, 1h30m, 7d)") }
            r.expiresIn = ms
        }
        r.replicationFactor = replication
        return r
    }
}

/// The daemon at `$QSTORE_API` (host:port, with `$QSTORE_API_TOKEN`: any daemon, as any caller);
/// else the one that answers at `<repo>/api` (with the repository's admin token, or
/// `$QSTORE_API_TOKEN`); else the repository itself.
func backend(purpose: String) throws -> any Backend {
    let env = ProcessInfo.processInfo.environment
    let token = env["QSTORE_API_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    if let address = env["QSTORE_API"], !address.isEmpty {
        guard let token else { throw CLIError("QSTORE_API is set: set QSTORE_API_TOKEN too (a token from `qstore token create`, or the daemon's api-token)") }
        return RemoteBackend(origin: address.hasPrefix("http") ? address : "http://" + address, token: token, proxied: true)
    }
    let path = Repository.defaultPath()
    if var remote = RemoteBackend(repository: path), remote.isAlive() {
        if let token { remote = RemoteBackend(origin: remote.origin, token: token, proxied: false) }
        return remote
    }
    return LocalBackend(node: try localNode(purpose: purpose))
}

/// A node over the repository opened in this process.
func localNode(purpose: String) throws -> Node {
    let repo = try openRepository(purpose: purpose)
    return try reporting("open") { try Node(repository: repo) }
}

/// The repository opened in this process.
struct LocalBackend: Backend {
    let node: Node

    func putBlock(_ data: [UInt8], codec: String, mhtype: String, mhlen: Int, pin: Bool) throws -> BlockStat {
        let b = try reporting("block put") {
            try node.putBlock(data, codec: try multicodec(codec, what: "codec"), hash: try multicodec(mhtype, what: "hash function"), hashLength: mhlen < 0 ? nil : mhlen, pin: pin)
        }
        return BlockStat(key: b.cid.string, size: data.count)
    }

    func getBlock(_ cid: CID) throws -> [UInt8] { try reporting("block get") { try node.block(cid) } }
    func statBlock(_ cid: CID) throws -> BlockStat { BlockStat(key: cid.string, size: try reporting("block stat") { try node.blockSize(cid) }) }
    func removeBlock(_ cid: CID) throws -> BlockRemoval {
        do { try node.removeBlock(cid) } catch let e as NodeError { return BlockRemoval(hash: cid.string, error: "\(e)") } catch PinningError.pinned(_, let how) {
            return BlockRemoval(hash: cid.string, error: "pinned: \(how)")
        } catch { throw CLIError("block rm: \(error)") }
        return BlockRemoval(hash: cid.string)
    }

    func putDAG(_ data: [UInt8], input: String, store: String, hash: String, pin: Bool) throws -> DAGPutResult {
        try reporting("dag put") {
            DAGPutResult(cid: try node.putDAG(data, input: try multicodec(input, what: "codec"), store: try multicodec(store, what: "codec"), hash: try multicodec(hash, what: "hash function"), pin: pin).string)
        }
    }

    func getDAG(_ root: CID, path: [String], output: String) throws -> [UInt8] {
        try reporting("dag get") { try node.getDAG(root, path: path, output: try multicodec(output, what: "codec")) }
    }

    func exportDAG(_ root: CID, progress: Bool) throws {
        var p = Progress("exporting", total: nil, enabled: progress)
        try reporting("dag export") {
            let sink = try node.exportDAG(root, to: FileSink(descriptor: 1)) { n, bytes in p.update(bytes: bytes, items: n) }
            try sink.flush()
        }
        p.finish()
    }

    func importCAR(_ file: String, progress: Bool, pinRoots: Bool) throws -> [DAGImportEvent] {
        var p = Progress("importing \(file)", total: nil, enabled: progress)
        let (s, errors) = try reporting(file) { () throws -> (ImportSummary, [CID: String]) in
            try node.withLease {
                let source = file == "-" ? FileSource(descriptor: 0) : try FileSource(path: file)
                let s = try node.importCAR(source, fileSize: source.size) { n, b in p.update(bytes: b, items: n) }
                return (s, pinRoots ? try node.pinRoots(s.roots) : [:])
            }
        }
        p.finish()
        var seen = Set<CID>()
        let roots = pinRoots ? s.roots.filter { seen.insert($0).inserted }.map { DAGImportEvent(root: .init(cid: $0.string, pinErrorMsg: errors[$0] ?? "")) } : []
        return roots + [DAGImportEvent(stats: .init(blockCount: s.blocks, blockBytesCount: s.bytes))]
    }

    func repoStat() throws -> RepoStat { RepoStat(try reporting("repo stat") { try node.repositoryStat() }, path: node.repositoryPath) }

    func add(_ paths: [String], options: ImportOptions, wrap: Bool, hidden: Bool, pin: PinOption?, report: (AddedLine) -> Void) throws {
        var settings = AddSession.Options()
        settings.importing = options
        settings.wrap = wrap
        settings.includeHidden = hidden
        if let pin { settings.pin = { try pin.request($0) } }
        try withoutActuallyEscaping(report) { report in
            let session = try node.add(settings) { event in
                if case .added(let name, let cid, let size) = event { report(AddedLine(name: name, hash: cid.string, size: String(size))) }
            }
            try addPaths(paths, to: session, progress: true)
        }
    }

    func cat(_ root: CID, path: [String], offset: UInt64, length: UInt64?) throws {
        try reporting("cat") { try node.cat(root, path: path, offset: offset, length: length) { Output.bytes($0) } }
    }

    func tar(_ root: CID, path: [String], name: String, write: ([UInt8]) throws -> Void) throws {
        try reporting("get") { try node.tar(root, path: path, name: name, write: write) }
    }

    func list(_ root: CID, path: [String]) throws -> LsResult {
        let ref = ([root.string] + path).joined(separator: "/")
        return LsResult(objects: [.init(hash: ref, links: try reporting("ls") { try node.list(root, path: path).map(LsResult.Link.init) })])
    }

    func repoVerify(progress: Bool, repair: Bool) throws -> [RepoVerifyLine] {
        var p = Progress("verifying", total: nil, enabled: progress)
        let r = try reporting("repo verify") { try node.verifyRepository(repair: repair) { n, bytes in p.update(bytes: bytes, items: n) } }
        p.finish()
        return RepoVerifyLine.lines(r)
    }

    private func resolved(_ ref: String) throws -> CID {
        let (root, path) = try parseRef(ref)
        return path.isEmpty ? root : try node.resolve(root, path: path).terminal
    }

    func pinAdd(_ refs: [String], options: PinOption) throws -> PinsResult {
        PinsResult(pins: try reporting("pin add") { try refs.map { r in let c = try resolved(r); try node.pin(try options.request(c)); return c.string } })
    }

    func pinRemove(_ refs: [String], recursive: Bool) throws -> PinsResult {
        PinsResult(pins: try reporting("pin rm") { try refs.map { r in let c = try resolved(r); try node.unpin(c, recursive: recursive); return c.string } })
    }

    func pinList(_ refs: [String], type: String, name: String?) throws -> [PinLsEntry] {
        try reporting("pin ls") {
            var out: [PinLsEntry] = []
            if refs.isEmpty {
                try node.listPins(type: type, nameContains: name) { out.append(PinLsEntry(cid: $0.cid.string, type: $0.type, name: $0.name.isEmpty ? nil : $0.name)) }
            }
            for r in refs {
                let c = try resolved(r)
                guard let l = try node.pinListing(of: c, type: type) else { throw CLIError("path '\(c)' is not pinned") }
                out.append(PinLsEntry(cid: l.cid.string, type: l.type, name: l.name.isEmpty ? nil : l.name))
            }
            return out
        }
    }

    func pinVerify(verbose: Bool) throws -> [PinVerifyResult] {
        try reporting("pin verify") {
            var out: [PinVerifyResult] = []
            try node.verifyPins { v in if !v.ok || verbose { out.append(PinVerifyResult(v)) } }
            return out
        }
    }

    func pinUpdate(from: String, to: String, unpin: Bool) throws -> PinsResult {
        try reporting("pin update") {
            let (a, b) = (try resolved(from), try resolved(to))
            try node.updatePin(from: a, to: b, unpin: unpin)
            return PinsResult(pins: [a.string, b.string])
        }
    }

    func pinPolicies() throws -> PolicyListing { PolicyListing(node.pinningPolicies) }

    func repoGC(_ removed: (RepoGCLine) -> Void) throws -> String? {
        let r = try reporting("repo gc") { try node.collectGarbage { cid, _ in removed(RepoGCLine(key: cid.string)); return true } }
        return r.packsCompacted > 0 ? "\(r.packsCompacted) pack files compacted, \(r.packBytesReclaimed) bytes given back" : nil
    }
}

extension LocalBackend {
    func putPointer(type: String, key: String, _ update: PointerUpdate?, expectedVersion: Int64?) async throws -> PointerRecord {
        let what = update == nil ? "index rm" : "index put"
        do {
            var u = Qindex.Update(type: type, key: key, target: nil)
            u.expectedVersion = expectedVersion
            if let update {
                u.target = try CID(update.cid)
                u.tags = update.tags ?? []
                u.expectedVersion = update.expectedVersion
                u.expectedHead = try update.expectedHead.map { try CID($0) }
                u.allowMissing = update.allowMissing ?? false
            }
            let head = try await node.putPointer(u)
            return PointerRecord(try node.indexRecord(head.record), cid: head.record, head: head)
        } catch { throw CLIError("\(what): \(error)") }
    }

    func getPointer(type: String, key: String, version: Int64?, at: String?) throws -> PointerRecord {
        try reporting("index get") {
            if version == nil && at == nil {
                let head = try node.pointer(type: type, key: key)
                return PointerRecord(try node.indexRecord(head.record), cid: head.record, head: head)
            }
            let found = try node.pointerRecord(type: type, key: key, version: version, at: try at.map { try Timestamps.instant($0, field: "at") })
            return PointerRecord(found.record, cid: found.cid)
        }
    }

    func pointerHistory(type: String, key: String, limit: Int, cursor: Int64?) throws -> PointerHistory {
        try reporting("index history") {
            let page = try node.pointerHistory(type: type, key: key, limit: limit, before: cursor)
            return PointerHistory(records: page.records.map { PointerRecord($0.record, cid: $0.cid) }, next: page.next.map { String($0) })
        }
    }

    func listPointers(_ query: PointerQuery) throws -> PointerList {
        try reporting("index ls") {
            var q = Qindex.Query()
            (q.type, q.prefix, q.tag, q.limit) = (query.type, query.prefix, query.tag, query.limit)
            q.target = try query.target.map { try CID($0) }
            guard let sort = Qindex.Query.Sort(rawValue: query.sort) else { throw QindexError.invalid("sort: key or updatedAt") }
            q.sort = sort
            if let c = query.cursor {
                guard let bytes = QCursor.decode(c) else { throw QindexError.invalid("cursor: as a previous page returned it") }
                q.cursor = bytes
            }
            let page = try node.listPointers(q)
            return PointerList(pointers: page.heads.map(PointerSummary.init), next: page.next.map(QCursor.encode))
        }
    }

    func importPointers(_ file: String) async throws -> PointerMerge {
        guard file == "-" || FileManager.default.isReadableFile(atPath: file) else { throw CLIError("index import: cannot read \(file)") }
        do {
            let source = file == "-" ? FileSource(descriptor: 0) : try FileSource(path: file)
            return PointerMerge(merged: try await node.importPointers(source).map(PointerSummary.init))
        } catch { throw CLIError("index import: \(error)") }
    }
}

extension LocalBackend {
    func publishPointer(type: String, key: String, keyName: String, lifetime: String, ttl: String) throws -> NamePublication {
        try reporting("index publish") {
            let p = try node.publishPointer(type: type, key: key, key: keyName, lifetime: try duration(lifetime, "lifetime"), ttl: try duration(ttl, "ttl"))
            return NamePublication(name: p.name, value: p.value, sequence: p.sequence)
        }
    }

    func duration(_ text: String, _ flag: String) throws -> UInt64 { try GoDuration.parse(text, flag: flag) }

    /// `/ipns/<name>` → `<name>`, as `routing/*` takes it.
    static func ipnsKey(_ key: String) throws -> String {
        guard key.hasPrefix("/ipns/") else { throw CLIError("\(key): only /ipns/ keys are held (no DHT here)") }
        return String(key.dropFirst(6))
    }

    func publishName(_ path: String, key: String, lifetime: String, ttl: String, resolve: Bool) throws -> NamePublished {
        try reporting("name publish") {
            let p = try node.publishName(path, key: key, lifetime: try duration(lifetime, "lifetime"), ttl: try duration(ttl, "ttl"), resolve: resolve)
            return NamePublished(name: p.name, value: p.value)
        }
    }

    func resolveName(_ name: String?, recursive: Bool) throws -> NameResolved {
        try reporting("name resolve") { NameResolved(path: try node.resolveName(name ?? IPNSName.string(node.identity.peerCID.multihash), recursive: recursive)) }
    }

    func putNameRecord(_ key: String, _ record: [UInt8]) throws {
        try reporting("routing put") { _ = try node.importNameRecord(try Self.ipnsKey(key), record) }
    }

    func nameRecord(_ key: String) throws -> [UInt8] {
        try reporting("routing get") { try node.nameRecord(try Self.ipnsKey(key)).bytes }
    }

    func generateKey(_ name: String, type: String) throws -> KeyEntry {
        try reporting("key gen") { let k = try node.generateKey(name, type: type); return KeyEntry(name: k.name, id: k.id) }
    }

    func keys() throws -> KeyList { try reporting("key ls") { KeyList(keys: try node.keys().map { KeyEntry(name: $0.name, id: $0.id) }) } }

    func renameKey(_ name: String, to new: String, force: Bool) throws -> KeyRenamed {
        try reporting("key rename") {
            let r = try node.renameKey(name, to: new, force: force)
            return KeyRenamed(was: name, now: new, id: r.entry.id, overwrite: r.overwrote)
        }
    }

    func removeKeys(_ names: [String]) throws -> KeyList {
        try reporting("key rm") { KeyList(keys: try node.removeKeys(names).map { KeyEntry(name: $0.name, id: $0.id) }) }
    }
}

/// Adds files ("-": standard input) and trees from disk to `session`, then finishes it (or
/// cancels it on failure).
func addPaths(_ paths: [String], to session: AddSession, progress: Bool) throws {
    do {
        for path in paths {
            try reporting(path) {
                if path == "-" {
                    try session.file("-", progressSource(FileSource(descriptor: 0), label: "adding", total: nil, enabled: progress))
                } else if isDirectory(path) {
                    try session.tree(at: path)
                } else {
                    let source = try FileSource(path: path)
                    try session.file(URL(fileURLWithPath: path).lastPathComponent, progressSource(source, label: "adding", total: source.size, enabled: progress))
                }
            }
        }
        try reporting("add") { _ = try session.finish() }
    } catch {
        session.cancel()
        throw error
    }
}

/// Whether `path` is a directory (not following a symlink at the end).
func isDirectory(_ path: String) -> Bool {
    var d: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
}

/// A running daemon's RPC API: requests and replies in the wire types of `KuboAPI`.
struct RemoteBackend: Backend {
    /// `http://host:port`.
    let origin: String
    let token: String
    /// Whether the proxy variables apply: to a daemon named by `QSTORE_API`, never to the one
    /// this machine's repository announces (whatever address it listens on).
    let proxied: Bool
    var base: String { origin + "/api/v0/" }

    init(origin: String, token: String, proxied: Bool) {
        self.origin = origin
        self.token = token
        self.proxied = proxied
    }

    /// The daemon named by `<repo>/api`, with the repository's token; nil when none is announced.
    init?(repository path: String) {
        guard let address = try? String(contentsOfFile: path + "/api", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              !address.isEmpty,
              let token = try? String(contentsOfFile: path + "/api-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        else { return nil }
        origin = "http://\(address)"
        self.token = token
        proxied = false
    }

    /// Whether the daemon answers (a stale `api` file after a crash does not).
    func isAlive() -> Bool { (try? call("version", timeout: 2)) != nil }

    /// One RPC call: POST with query items and an optional body; returns the body, or throws the daemon's message.
    func call(_ command: String, _ query: [(String, String)] = [], body: Data? = nil, contentType: String? = nil, bodyFile: URL? = nil, timeout: TimeInterval? = nil) throws -> Data {
        let (status, reply) = try exchange(command, query, body: body, contentType: contentType, bodyFile: bodyFile, timeout: timeout)
        guard (200..<300).contains(status) else { throw RemoteError.reply(status: status, body: reply) }
        return reply
    }

    /// One RPC call; returns the status and the body whatever the status.
    func exchange(_ command: String, _ query: [(String, String)] = [], body: Data? = nil, contentType: String? = nil, bodyFile: URL? = nil, timeout: TimeInterval? = nil) throws -> (Int, Data) {
        try exchange(method: "POST", url: base + command, query, body: body, contentType: contentType, bodyFile: bodyFile, timeout: timeout)
    }

    /// One request to `url` (already percent-encoded); returns the status and the body whatever the
    /// status. `timeout` bounds the whole exchange (a reply silent for an hour ends it anyway).
    func exchange(method: String, url: String, _ query: [(String, String)] = [], body: Data? = nil, contentType: String? = nil, bodyFile: URL? = nil, timeout: TimeInterval? = nil,
                  headers: [String: String] = [:]) throws -> (Int, Data) {
        try DaemonHTTP.send(method: method, url: DaemonHTTP.url(url, query), proxied: proxied, token: token, contentType: contentType, headers: headers,
                            body: body, bodyFile: bodyFile, timeout: timeout, to: CollectedReply())
    }

    /// A streamed RPC reply (cat, get, dag export): the body is handed to `write` piece by piece
    /// as it arrives, never held whole, so the CLI's memory stays flat whatever the size. An error
    /// status gives the daemon's message; a reply cut short (the daemon failed mid-stream) is an error.
    func stream(_ command: String, _ query: [(String, String)], method: String = "POST", url: String? = nil, body: Data? = nil, contentType: String? = nil,
                into write: @escaping ([UInt8]) throws -> Void) throws {
        let reply = StreamedReply(write)
        try DaemonHTTP.send(method: method, url: DaemonHTTP.url(url ?? base + command, query), proxied: proxied, token: token, contentType: contentType,
                            body: body, bodyFile: nil, timeout: nil, to: reply)
        guard (200..<300).contains(reply.status) else { throw RemoteError.reply(status: reply.status, body: reply.errorBody) }
    }

    /// A multipart/form-data body with one file part.
    static func multipart(_ data: [UInt8]) -> (Data, String) {
        let boundary = "qstore-\(UUID().uuidString)"
        var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        body.append(contentsOf: data)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    /// A reply of one value.
    func one<T: Decodable>(_ type: T.Type, _ command: String, _ query: [(String, String)] = [], body: Data? = nil, contentType: String? = nil) throws -> T {
        let data = try call(command, query, body: body, contentType: contentType)
        do { return try KuboJSON.decode(T.self, from: data) } catch { throw CLIError("unexpected reply from the daemon to \(command): \(error)") }
    }

    /// A streamed reply's lines (an error after the 200 is thrown with the daemon's message).
    static func lines<T: Decodable>(_ type: T.Type, _ data: Data, command: String) throws -> [T] {
        do { return try KuboJSON.lines(T.self, from: data) } catch let e as ErrorReply { throw RemoteError(messages: [e.message]) } catch {
            throw CLIError("unexpected reply from the daemon to \(command): \(error)")
        }
    }

    func putBlock(_ data: [UInt8], codec: String, mhtype: String, mhlen: Int, pin: Bool) throws -> BlockStat {
        try reporting("block put") {
            let (body, type) = Self.multipart(data)
            return try one(BlockStat.self, "block/put", [("cid-codec", codec), ("mhtype", mhtype), ("mhlen", String(mhlen)), ("pin", String(pin))], body: body, contentType: type)
        }
    }

    func getBlock(_ cid: CID) throws -> [UInt8] { try reporting("block get") { [UInt8](try call("block/get", [("arg", cid.string)])) } }

    func statBlock(_ cid: CID) throws -> BlockStat { try reporting("block stat") { try one(BlockStat.self, "block/stat", [("arg", cid.string)]) } }

    func removeBlock(_ cid: CID) throws -> BlockRemoval { try reporting("block rm") { try one(BlockRemoval.self, "block/rm", [("arg", cid.string)]) } }

    func putDAG(_ data: [UInt8], input: String, store: String, hash: String, pin: Bool) throws -> DAGPutResult {
        try reporting("dag put") {
            let (body, type) = Self.multipart(data)
            return try one(DAGPutResult.self, "dag/put", [("input-codec", input), ("store-codec", store), ("hash", hash), ("pin", String(pin))], body: body, contentType: type)
        }
    }

    func getDAG(_ root: CID, path: [String], output: String) throws -> [UInt8] {
        try reporting("dag get") {
            [UInt8](try call("dag/get", [("arg", ([root.string] + path).joined(separator: "/")), ("output-codec", output)]))
        }
    }

    func exportDAG(_ root: CID, progress: Bool) throws {
        try reporting("dag export") {
            let out = FileSink(descriptor: 1)
            try stream("dag/export", [("arg", root.string)]) { bytes in try bytes.withUnsafeBytes { try out.write($0) } }
            try out.flush()
        }
    }

    /// Uploads a multipart body built by `parts` (each `(name, content type, write)`), framed in a
    /// temporary file so any size streams from disk, to the RPC command.
    func upload(_ command: String, _ query: [(String, String)], parts: (_ part: (String, String, (FileHandle) throws -> Void) throws -> Void) throws -> Void) throws -> Data {
        try multipart(parts) { contentType, file in try call(command, query, contentType: contentType, bodyFile: file) }
    }

    /// Frames the parts `parts` makes in a temporary file and hands `send` its content type and
    /// path (the file is removed after).
    func multipart<R>(_ parts: (_ part: (String, String, (FileHandle) throws -> Void) throws -> Void) throws -> Void,
                      send: (_ contentType: String, _ file: URL) throws -> R) throws -> R {
        let boundary = "qstore-\(UUID().uuidString)"
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-upload-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        _ = FileManager.default.createFile(atPath: tmp.path, contents: nil)
        let out = try FileHandle(forWritingTo: tmp)
        try parts { name, type, body in
            let encoded = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? name
            out.write(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(encoded)\"\r\nContent-Type: \(type)\r\n\r\n".utf8))
            try body(out)
            out.write(Data("\r\n".utf8))
        }
        out.write(Data("--\(boundary)--\r\n".utf8))
        try out.close()
        return try send("multipart/form-data; boundary=\(boundary)", tmp)
    }

    /// Copies a file (or standard input, "-") into a part.
    static func copy(_ file: String, into h: FileHandle) throws {
        let input = file == "-" ? FileHandle.standardInput : try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        defer { if file != "-" { try? input.close() } }
        while true {
            let chunk = input.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            h.write(chunk)
        }
    }

    func importCAR(_ file: String, progress: Bool, pinRoots: Bool) throws -> [DAGImportEvent] {
        try reporting(file) {
            let reply = try upload("dag/import", [("stats", "true"), ("pin-roots", String(pinRoots))]) { part in
                try part(file == "-" ? "stdin" : URL(fileURLWithPath: file).lastPathComponent, "application/vnd.ipld.car") { try Self.copy(file, into: $0) }
            }
            return try Self.lines(DAGImportEvent.self, reply, command: "dag/import")
        }
    }

    /// `add` through the daemon: files, trees and standard input as one multipart body (parts
    /// named by relative path; directories as application/x-directory, symlinks as
    /// application/symlink).
    func add(_ paths: [String], options: ImportOptions, wrap: Bool, hidden: Bool, pin: PinOption?, report: (AddedLine) -> Void) throws {
        try reporting("add") {
            var query = Self.addQuery(options) + [("wrap-with-directory", String(wrap)), ("pin", String(pin != nil))]
            if let name = pin?.name { query.append(("pin-name", name)) }
            let reply = try upload("add", query) { part in
                func walk(_ path: String, _ name: String) throws {
                    let attributes = try FileManager.default.attributesOfItem(atPath: path)
                    switch attributes[.type] as? FileAttributeType {
                    case .typeSymbolicLink?:
                        let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
                        try part(name, "application/symlink") { $0.write(Data(target.utf8)) }
                    case .typeDirectory?:
                        try part(name, "application/x-directory") { _ in }
                        for child in try FileManager.default.contentsOfDirectory(atPath: path).sorted() where hidden || !child.hasPrefix(".") {
                            try walk(path + "/" + child, name + "/" + child)
                        }
                    default:
                        try part(name, "application/octet-stream") { try Self.copy(path, into: $0) }
                    }
                }
                for p in paths {
                    if p == "-" { try part("-", "application/octet-stream") { try Self.copy("-", into: $0) } } else {
                        try reporting(p) { try walk(p, URL(fileURLWithPath: p).lastPathComponent) }
                    }
                }
            }
            for line in try Self.lines(AddedLine.self, reply, command: "add") where line.hash != nil { report(line) }
        }
    }

    /// The `/api/v0/add` parameters for import options.
    static func addQuery(_ options: ImportOptions) -> [(String, String)] {
        var query: [(String, String)] = [("cid-version", String(options.cidVersion)), ("chunker", options.chunking.spec),
                                         ("hash", options.hash.name), ("only-hash", String(options.onlyHash))]
        if let r = options.rawLeaves { query.append(("raw-leaves", String(r))) }
        if options.trickle { query.append(("trickle", "true")) }
        if let limit = options.inlineLimit { query += [("inline", "true"), ("inline-limit", String(limit))] }
        return query
    }

    func cat(_ root: CID, path: [String], offset: UInt64, length: UInt64?) throws {
        try reporting("cat") {
            var query = [("arg", ([root.string] + path).joined(separator: "/")), ("offset", String(offset))]
            if let length { query.append(("length", String(length))) }
            let out = FileSink(descriptor: 1)
            try stream("cat", query) { bytes in try bytes.withUnsafeBytes { try out.write($0) } }
            try out.flush()
        }
    }

    func tar(_ root: CID, path: [String], name: String, write: ([UInt8]) throws -> Void) throws {
        try reporting("get") {
            try withoutActuallyEscaping(write) { write in
                try stream("get", [("arg", ([root.string] + path).joined(separator: "/"))], into: write)
            }
        }
    }

    func list(_ root: CID, path: [String]) throws -> LsResult {
        try reporting("ls") {
            try one(LsResult.self, "ls", [("arg", ([root.string] + path).joined(separator: "/"))])
        }
    }

    func repoStat() throws -> RepoStat { try reporting("repo stat") { try one(RepoStat.self, "repo/stat") } }

    func repoVerify(progress: Bool, repair: Bool) throws -> [RepoVerifyLine] {
        try reporting("repo verify") {
            // An unclean repository answers 500 with the same lines.
            let (status, data) = try exchange("repo/verify", [("repair", String(repair))])
            if let lines = try? KuboJSON.lines(RepoVerifyLine.self, from: data), !lines.isEmpty { return lines }
            throw RemoteError.reply(status: status, body: data)
        }
    }

    func pinAdd(_ refs: [String], options: PinOption) throws -> PinsResult {
        try reporting("pin add") {
            try one(PinsResult.self, "pin/add", refs.map { ("arg", $0) } + options.query)
        }
    }

    func pinRemove(_ refs: [String], recursive: Bool) throws -> PinsResult {
        try reporting("pin rm") {
            try one(PinsResult.self, "pin/rm", refs.map { ("arg", $0) } + [("recursive", String(recursive))])
        }
    }

    func pinList(_ refs: [String], type: String, name: String?) throws -> [PinLsEntry] {
        try reporting("pin ls") {
            var query = refs.map { ("arg", $0) } + [("type", type), ("stream", "true"), ("names", "true")]
            if let name { query.append(("name", name)) }
            return try Self.lines(PinLsEntry.self, try call("pin/ls", query), command: "pin/ls")
        }
    }

    func pinVerify(verbose: Bool) throws -> [PinVerifyResult] {
        try reporting("pin verify") {
            try Self.lines(PinVerifyResult.self, try call("pin/verify", [("verbose", String(verbose))]), command: "pin/verify")
        }
    }

    func pinUpdate(from: String, to: String, unpin: Bool) throws -> PinsResult {
        try reporting("pin update") {
            try one(PinsResult.self, "pin/update", [("arg", from), ("arg", to), ("unpin", String(unpin))])
        }
    }

    func pinPolicies() throws -> PolicyListing { try reporting("pin policies") { try one(PolicyListing.self, "pin/policies") } }

    func repoGC(_ removed: (RepoGCLine) -> Void) throws -> String? {
        try reporting("repo gc") {
            try Self.lines(RepoGCLine.self, try call("repo/gc"), command: "repo/gc").forEach(removed)
            return nil  // the daemon logs its pack compaction
        }
    }
}

extension RemoteBackend {
    /// A Q API call (`/q/v1/…`, `path` percent-encoded): the reply's `data`, or the error it carries.
    func q<T: Codable & Sendable>(_ type: T.Type, _ method: String, _ path: String, _ query: [(String, String)] = [], body: Data? = nil, contentType: String? = nil,
                                  bodyFile: URL? = nil) throws -> T {
        let (status, reply) = try exchange(method: method, url: origin + "/q/v1/" + path, query, body: body, contentType: contentType, bodyFile: bodyFile)
        do { return try QJSON.data(T.self, from: reply) } catch let e as QErrorReply { throw e } catch {
            throw CLIError("unexpected reply from the daemon (\(status)) to \(method) /q/v1/\(path): \(error)")
        }
    }

    /// The `data` of a /q/v1 reply as the node wrote it (JSON, keys sorted), unparsed.
    func qRaw(_ method: String, _ path: String, _ query: [(String, String)] = []) throws -> Data {
        let (status, reply) = try exchange(method: method, url: origin + "/q/v1/" + path, query)
        do { return try QJSON.rawData(from: reply) } catch let e as QErrorReply { throw e } catch {
            throw CLIError("unexpected reply from the daemon (\(status)) to \(method) /q/v1/\(path): \(error)")
        }
    }

    /// `index/{type}/{key}` with the key percent-encoded whole (its "/" too, so a key ending in
    /// "/history" is not read as the history route).
    static func pointerPath(_ type: String, _ key: String) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        var encodedKey = key.addingPercentEncoding(withAllowedCharacters: unreserved) ?? key
        // A segment "." or ".." would be collapsed by URL normalisation: its dots go encoded.
        if key == "." || key == ".." { encodedKey = String(repeating: "%2E", count: key.count) }
        return "index/" + (type.addingPercentEncoding(withAllowedCharacters: unreserved) ?? type) + "/" + encodedKey
    }

    func putPointer(type: String, key: String, _ update: PointerUpdate?, expectedVersion: Int64?) async throws -> PointerRecord {
        try reporting(update == nil ? "index rm" : "index put") {
            guard let update else {
                return try q(PointerRecord.self, "DELETE", Self.pointerPath(type, key), expectedVersion.map { [("expectedVersion", String($0))] } ?? [])
            }
            let encoder = JSONEncoder()
            return try q(PointerRecord.self, "PUT", Self.pointerPath(type, key), body: try encoder.encode(update), contentType: "application/json")
        }
    }

    func getPointer(type: String, key: String, version: Int64?, at: String?) throws -> PointerRecord {
        try reporting("index get") {
            var query: [(String, String)] = []
            if let version { query.append(("version", String(version))) }
            if let at { query.append(("at", at)) }
            return try q(PointerRecord.self, "GET", Self.pointerPath(type, key), query)
        }
    }

    func pointerHistory(type: String, key: String, limit: Int, cursor: Int64?) throws -> PointerHistory {
        try reporting("index history") {
            try q(PointerHistory.self, "GET", Self.pointerPath(type, key) + "/history", [("limit", String(limit))] + (cursor.map { [("cursor", String($0))] } ?? []))
        }
    }

    func listPointers(_ query: PointerQuery) throws -> PointerList {
        try reporting("index ls") { try q(PointerList.self, "GET", "index", query.parameters) }
    }

    func importPointers(_ file: String) async throws -> PointerMerge {
        try reporting("index import") {
            guard file == "-" || FileManager.default.isReadableFile(atPath: file) else { throw CLIError("index import: cannot read \(file)") }
            let input = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            return try q(PointerMerge.self, "POST", "index/import", body: input, contentType: "application/vnd.ipld.car")
        }
    }
}

extension RemoteBackend {
    func publishPointer(type: String, key: String, keyName: String, lifetime: String, ttl: String) throws -> NamePublication {
        try reporting("index publish") {
            try q(NamePublication.self, "POST", Self.pointerPath(type, key) + "/publish", [("key", keyName), ("lifetime", lifetime), ("ttl", ttl)])
        }
    }

    func publishName(_ path: String, key: String, lifetime: String, ttl: String, resolve: Bool) throws -> NamePublished {
        try reporting("name publish") {
            try one(NamePublished.self, "name/publish", [("arg", path), ("key", key), ("lifetime", lifetime), ("ttl", ttl), ("resolve", String(resolve))])
        }
    }

    func resolveName(_ name: String?, recursive: Bool) throws -> NameResolved {
        try reporting("name resolve") { try one(NameResolved.self, "name/resolve", (name.map { [("arg", $0)] } ?? []) + [("recursive", String(recursive))]) }
    }

    func putNameRecord(_ key: String, _ record: [UInt8]) throws {
        try reporting("routing put") {
            _ = try LocalBackend.ipnsKey(key)
            let (body, type) = Self.multipart(record)
            _ = try Self.lines(RoutingEvent.self, try call("routing/put", [("arg", key)], body: body, contentType: type), command: "routing put")
        }
    }

    func nameRecord(_ key: String) throws -> [UInt8] {
        try reporting("routing get") {
            _ = try LocalBackend.ipnsKey(key)
            let events = try Self.lines(RoutingEvent.self, try call("routing/get", [("arg", key)]), command: "routing get")
            guard let extra = events.first(where: { $0.type == 5 })?.extra, let bytes = Data(base64Encoded: extra) else {
                throw CLIError("routing get: the daemon's reply holds no record")
            }
            return [UInt8](bytes)
        }
    }

    func generateKey(_ name: String, type: String) throws -> KeyEntry {
        try reporting("key gen") { try one(KeyEntry.self, "key/gen", [("arg", name), ("type", type)]) }
    }

    func keys() throws -> KeyList { try reporting("key ls") { try one(KeyList.self, "key/list") } }

    func renameKey(_ name: String, to new: String, force: Bool) throws -> KeyRenamed {
        try reporting("key rename") { try one(KeyRenamed.self, "key/rename", [("arg", name), ("arg", new), ("force", String(force))]) }
    }

    func removeKeys(_ names: [String]) throws -> KeyList {
        try reporting("key rm") { try one(KeyList.self, "key/rm", names.map { ("arg", $0) }) }
    }
}

/// The daemon answered with an error (Kubo's `{"Message", "Code", "Type"}`).
struct RemoteError: Error, CustomStringConvertible {
    let messages: [String]
    var description: String { messages.joined(separator: "\n") }

    /// The error an unsuccessful reply carries: its messages (Kubo's `Message`, `Msg` lines), else its status.
    static func reply(status: Int, body: Data) -> any Error {
        let messages = body.split(separator: 0x0a).compactMap { line -> String? in
            (try? JSONDecoder().decode(ErrorReply.self, from: Data(line)))?.message
        }
        if messages.isEmpty {
            // The Q API's envelope: {"status": "error", "code", "message"}.
            struct QError: Decodable { var code: String?; var message: String }
            if let q = try? JSONDecoder().decode(QError.self, from: body) { return RemoteError(messages: [q.message + (q.code.map { " (\($0))" } ?? "")]) }
        }
        return messages.isEmpty ? CLIError("daemon answered \(status)") : RemoteError(messages: messages)
    }
}
