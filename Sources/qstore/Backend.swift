import CAR
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import IPLD
import Multiformats
import Node
import Pinning
import Storage
import UnixFS

/// What the repository commands need, served either by a running daemon (over its
/// RPC API, with the repository's token) or, when no daemon is running, by opening
/// the repository directly — as `ipfs` does with `$IPFS_PATH/api`.
protocol Backend {
    func putBlock(_ data: [UInt8], codec: String, mhtype: String, mhlen: Int, pin: Bool) throws -> (cid: String, size: Int)
    func getBlock(_ cid: CID) throws -> [UInt8]
    func statBlock(_ cid: CID) throws -> Int
    /// False when the block was not there.
    func removeBlock(_ cid: CID) throws -> Bool
    func putDAG(_ data: [UInt8], input: String, store: String, hash: String, pin: Bool) throws -> String
    func getDAG(_ root: CID, path: [String], output: String) throws -> [UInt8]
    /// Writes the CAR to standard output.
    func exportDAG(_ root: CID, progress: Bool) throws
    /// Imports a CAR; with `pinRoots`, pins each root (the error per root that could not be).
    func importCAR(_ file: String, progress: Bool, pinRoots: Bool) throws -> (roots: [(cid: String, pinError: String)], blocks: Int, bytes: UInt64)
    func repoStat() throws -> [(String, Any)]
    func repoVerify(progress: Bool, repair: Bool) throws -> (blocks: Int, bytes: UInt64, problems: [String])
    /// Imports a file ("-": standard input) as UnixFS, pinned unless `pin` is nil; returns its CID and DAG size.
    func addFile(_ file: String, options: ImportOptions, pin: PinOption?) throws -> (cid: String, dagSize: UInt64)
    /// Writes a UnixFS file's bytes (a range of them) to standard output.
    func cat(_ root: CID, path: [String], offset: UInt64, length: UInt64?) throws
    /// A directory's entries: name, CID, size, Kubo type (1 dir, 2 file, 4 symlink).
    func list(_ root: CID, path: [String]) throws -> [(name: String, cid: String, size: UInt64, type: Int)]
    /// The tree at root/path as a tar stream.
    func tar(_ root: CID, path: [String], name: String, write: ([UInt8]) throws -> Void) throws
    /// Kubo's `pin add`: returns the CIDs pinned.
    func pinAdd(_ refs: [String], options: PinOption) throws -> [String]
    /// Kubo's `pin rm`.
    func pinRemove(_ refs: [String], recursive: Bool) throws -> [String]
    /// Kubo's `pin ls`: (cid, type, name) per line.
    func pinList(_ refs: [String], type: String, name: String?) throws -> [(cid: String, type: String, name: String)]
    /// Kubo's `pin verify`: (cid, ok, bad nodes) per pin checked (failing ones only unless `verbose`).
    func pinVerify(verbose: Bool) throws -> [(cid: String, ok: Bool, bad: [(cid: String, error: String)])]
    /// Kubo's `pin update`.
    func pinUpdate(from: String, to: String, unpin: Bool) throws
    /// The policies in force: {"Source", "Policies": [...]}.
    func pinPolicies() throws -> [String: Any]
    /// Kubo's `repo gc`: tells `removed` each block deleted; returns how many.
    /// Collects garbage; returns the blocks removed and, when known, a line about pack compaction.
    func repoGC(_ removed: (String) -> Void) throws -> (blocks: Int, packs: String?)
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
            r.expires = millisecondsNow() + ms
        }
        r.replicationFactor = replication
        return r
    }
}

/// The daemon when one answers at `<repo>/api`, else the repository itself.
func backend(purpose: String) throws -> any Backend {
    let path = Repository.defaultPath()
    if let remote = RemoteBackend(repository: path), remote.isAlive() { return remote }
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

    func putBlock(_ data: [UInt8], codec: String, mhtype: String, mhlen: Int, pin: Bool) throws -> (cid: String, size: Int) {
        let b = try reporting("block put") {
            try node.putBlock(data, codec: try multicodec(codec, what: "codec"), hash: try multicodec(mhtype, what: "hash function"), hashLength: mhlen < 0 ? nil : mhlen, pin: pin)
        }
        return (b.cid.string, data.count)
    }

    func getBlock(_ cid: CID) throws -> [UInt8] { try reporting("block get") { try node.block(cid) } }
    func statBlock(_ cid: CID) throws -> Int { try reporting("block stat") { try node.blockSize(cid) } }
    func removeBlock(_ cid: CID) throws -> Bool {
        try reporting("block rm") {
            do { try node.removeBlock(cid) } catch NodeError.notFound { return false }
            return true
        }
    }

    func putDAG(_ data: [UInt8], input: String, store: String, hash: String, pin: Bool) throws -> String {
        try reporting("dag put") {
            try node.putDAG(data, input: try multicodec(input, what: "codec"), store: try multicodec(store, what: "codec"), hash: try multicodec(hash, what: "hash function"), pin: pin).string
        }
    }

    func getDAG(_ root: CID, path: [String], output: String) throws -> [UInt8] {
        try reporting("dag get") { try node.getDAG(root, path: path, output: try multicodec(output, what: "codec")) }
    }

    func exportDAG(_ root: CID, progress: Bool) throws {
        var p = Progress("exporting", total: nil, enabled: progress)
        try reporting("dag export") {
            var w = try CARWriter(roots: [root], sink: FileSink(descriptor: 1))
            do {
                try DAGTransfer.export(root: root, from: node.blocks, to: &w) { n, bytes in p.update(bytes: bytes, items: n) }
            } catch DAGTransferError.missingBlock(let c) { throw NodeError.notFound(c) }
            try w.finish().flush()
        }
        p.finish()
    }

    func importCAR(_ file: String, progress: Bool, pinRoots: Bool) throws -> (roots: [(cid: String, pinError: String)], blocks: Int, bytes: UInt64) {
        var p = Progress("importing \(file)", total: nil, enabled: progress)
        let (s, errors) = try reporting(file) { () throws -> (ImportSummary, [CID: String]) in
            try node.withLease {
                let source = file == "-" ? FileSource(descriptor: 0) : try FileSource(path: file)
                let s = try node.importCAR(source, fileSize: source.size) { n, b in p.update(bytes: b, items: n) }
                return (s, pinRoots ? try node.pinRoots(s.roots) : [:])
            }
        }
        p.finish()
        return (s.roots.map { ($0.string, errors[$0] ?? "") }, s.blocks, s.bytes)
    }

    func repoStat() throws -> [(String, Any)] {
        let s = try reporting("repo stat") { try node.repository.stat() }
        return [
            ("NumObjects", s.blocks), ("RepoSize", s.repositoryBytes), ("BlockBytes", s.blockBytes),
            ("InlineBlocks", s.inlineBlocks), ("PackedBlocks", s.packedBlocks), ("PackBytes", s.packBytes),
            ("RepoPath", node.repository.path), ("Version", "qstore-repo@\(Repository.currentVersion)"),
        ]
    }

    func addFile(_ file: String, options: ImportOptions, pin: PinOption?) throws -> (cid: String, dagSize: UInt64) {
        let f = try reporting(file) { () throws -> ImportedFile in
            try node.withLease {
                let source = file == "-" ? FileSource(descriptor: 0) : try FileSource(path: file)
                let f = try node.addFile(progressSource(source, label: "adding", total: file == "-" ? nil : source.size, enabled: true), options: options)
                if let pin { try node.pins.pin(try pin.request(f.cid)) }
                return f
            }
        }
        return (f.cid.string, f.dagSize)
    }

    func cat(_ root: CID, path: [String], offset: UInt64, length: UInt64?) throws {
        let out = FileHandle.standardOutput
        try reporting("cat") { try node.cat(root, path: path, offset: offset, length: length) { out.write(Data($0)) } }
    }

    func tar(_ root: CID, path: [String], name: String, write: ([UInt8]) throws -> Void) throws {
        try reporting("get") { try node.tar(root, path: path, name: name, write: write) }
    }

    func list(_ root: CID, path: [String]) throws -> [(name: String, cid: String, size: UInt64, type: Int)] {
        try reporting("ls") { try node.list(root, path: path).map { ($0.name, $0.cid.string, $0.size, $0.type) } }
    }

    func repoVerify(progress: Bool, repair: Bool) throws -> (blocks: Int, bytes: UInt64, problems: [String]) {
        var p = Progress("verifying", total: nil, enabled: progress)
        let r = try reporting("repo verify") { try node.verifyRepository(repair: repair) { n, bytes in p.update(bytes: bytes, items: n) } }
        p.finish()
        var problems = r.problems
        if r.counts.repaired > 0 { problems.append("repaired \(r.counts.repaired) count and index entries") }
        return (r.blocks.blocks, r.blocks.bytes, r.isClean ? [] : problems)
    }

    private func resolved(_ ref: String) throws -> CID {
        let (root, path) = try parseRef(ref)
        return path.isEmpty ? root : try node.resolve(root, path: path).terminal
    }

    func pinAdd(_ refs: [String], options: PinOption) throws -> [String] {
        try reporting("pin add") { try refs.map { r in let c = try resolved(r); try node.pins.pin(try options.request(c)); return c.string } }
    }

    func pinRemove(_ refs: [String], recursive: Bool) throws -> [String] {
        try reporting("pin rm") { try refs.map { r in let c = try resolved(r); try node.pins.unpin(c, recursive: recursive); return c.string } }
    }

    func pinList(_ refs: [String], type: String, name: String?) throws -> [(cid: String, type: String, name: String)] {
        try reporting("pin ls") {
            var out: [(cid: String, type: String, name: String)] = []
            if refs.isEmpty {
                try node.listPins(type: type, nameContains: name) { out.append(($0.cid.string, $0.type, $0.name)) }
            }
            for r in refs {
                let c = try resolved(r)
                guard let l = try node.pinListing(of: c, type: type) else { throw CLIError("path '\(r)' is not pinned") }
                out.append((l.cid.string, l.type, l.name))
            }
            return out
        }
    }

    func pinVerify(verbose: Bool) throws -> [(cid: String, ok: Bool, bad: [(cid: String, error: String)])] {
        try reporting("pin verify") {
            var out: [(cid: String, ok: Bool, bad: [(cid: String, error: String)])] = []
            try node.pins.verify { v in if !v.ok || verbose { out.append((v.cid.string, v.ok, v.badNodes.map { ($0.cid.string, $0.error) })) } }
            return out
        }
    }

    func pinUpdate(from: String, to: String, unpin: Bool) throws {
        try reporting("pin update") { _ = try node.pins.update(from: try resolved(from), to: try resolved(to), unpin: unpin) }
    }

    func pinPolicies() throws -> [String: Any] { node.pins.policies.jsonObject }

    func repoGC(_ removed: (String) -> Void) throws -> (blocks: Int, packs: String?) {
        let r = try reporting("repo gc") { try node.collectGarbage { cid, _ in removed(cid.string); return true } }
        return (r.blocks, r.packsCompacted > 0 ? "\(r.packsCompacted) pack files compacted, \(r.packBytesReclaimed) bytes given back" : nil)
    }
}

/// A running daemon's RPC API.
struct RemoteBackend: Backend {
    let base: String
    let token: String

    /// The daemon named by `<repo>/api`, with the repository's token; nil when none is announced.
    init?(repository path: String) {
        guard let address = try? String(contentsOfFile: path + "/api", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              !address.isEmpty,
              let token = try? String(contentsOfFile: path + "/api-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        else { return nil }
        base = "http://\(address)/api/v0/"
        self.token = token
    }

    /// Whether the daemon answers (a stale `api` file after a crash does not).
    func isAlive() -> Bool { (try? call("version", timeout: 2)) != nil }

    /// One RPC call: POST with query items and an optional body; returns the body, or throws the daemon's message.
    func call(_ command: String, _ query: [(String, String)] = [], body: Data? = nil, contentType: String? = nil, bodyFile: URL? = nil, timeout: TimeInterval = 3600) throws -> Data {
        var components = URLComponents(string: base + command)!
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        var request = URLRequest(url: components.url!, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let box = ResultBox()
        let task: URLSessionTask
        if let bodyFile {
            task = URLSession.shared.uploadTask(with: request, fromFile: bodyFile) { d, r, e in box.set(d, r, e) }
        } else {
            request.httpBody = body
            task = URLSession.shared.dataTask(with: request) { d, r, e in box.set(d, r, e) }
        }
        task.resume()
        return try box.wait()
    }

    /// A streamed RPC reply (cat, get, dag export): the body is handed to `write` piece by piece
    /// as it arrives, never held whole, so the CLI's memory stays flat whatever the size. An error
    /// status gives the daemon's message; a reply cut short (the daemon failed mid-stream) is an error.
    func stream(_ command: String, _ query: [(String, String)], into write: @escaping ([UInt8]) throws -> Void) throws {
        var components = URLComponents(string: base + command)!
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        var request = URLRequest(url: components.url!, timeoutInterval: 3600)
        request.httpMethod = "POST"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let receiver = StreamReceiver(write)
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: .ephemeral, delegate: receiver, delegateQueue: queue)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: request).resume()
        try receiver.wait()
    }

    /// A multipart/form-data body with one file part.
    static func multipart(_ data: [UInt8]) -> (Data, String) {
        let boundary = "qstore-\(UUID().uuidString)"
        var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        body.append(contentsOf: data)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    static func json(_ data: Data) throws -> [String: Any] {
        guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first,
              let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { throw CLIError("unexpected reply from the daemon") }
        return o
    }

    func putBlock(_ data: [UInt8], codec: String, mhtype: String, mhlen: Int, pin: Bool) throws -> (cid: String, size: Int) {
        let (body, type) = Self.multipart(data)
        let query = [("cid-codec", codec), ("mhtype", mhtype), ("mhlen", String(mhlen)), ("pin", String(pin))]
        let o = try Self.json(call("block/put", query, body: body, contentType: type))
        return (o["Key"] as? String ?? "", o["Size"] as? Int ?? data.count)
    }

    func getBlock(_ cid: CID) throws -> [UInt8] { [UInt8](try call("block/get", [("arg", cid.string)])) }

    func statBlock(_ cid: CID) throws -> Int { try Self.json(call("block/stat", [("arg", cid.string)]))["Size"] as? Int ?? 0 }

    func removeBlock(_ cid: CID) throws -> Bool {
        let o = try Self.json(call("block/rm", [("arg", cid.string)]))
        let error = o["Error"] as? String ?? ""
        if error.hasPrefix("pinned") { throw CLIError("block rm: \(cid): \(error)") }
        return error.isEmpty
    }

    func putDAG(_ data: [UInt8], input: String, store: String, hash: String, pin: Bool) throws -> String {
        let (body, type) = Self.multipart(data)
        let o = try Self.json(call("dag/put", [("input-codec", input), ("store-codec", store), ("hash", hash), ("pin", String(pin))], body: body, contentType: type))
        return (o["Cid"] as? [String: Any])?["/"] as? String ?? ""
    }

    func getDAG(_ root: CID, path: [String], output: String) throws -> [UInt8] {
        [UInt8](try call("dag/get", [("arg", ([root.string] + path).joined(separator: "/")), ("output-codec", output)]))
    }

    func exportDAG(_ root: CID, progress: Bool) throws {
        let out = FileSink(descriptor: 1)
        try stream("dag/export", [("arg", root.string)]) { bytes in try bytes.withUnsafeBytes { try out.write($0) } }
        try out.flush()
    }

    /// Uploads a file ("-": standard input) as the one part of a multipart body, framed in a
    /// temporary file so any size streams from disk.
    func upload(_ command: String, _ query: [(String, String)], file: String, partType: String) throws -> Data {
        let boundary = "qstore-\(UUID().uuidString)"
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-upload-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        _ = FileManager.default.createFile(atPath: tmp.path, contents: nil)
        let out = try FileHandle(forWritingTo: tmp)
        let name = file == "-" ? "stdin" : URL(fileURLWithPath: file).lastPathComponent
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name
        out.write(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(encoded)\"\r\nContent-Type: \(partType)\r\n\r\n".utf8))
        let input = file == "-" ? FileHandle.standardInput : try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        while true {
            let chunk = input.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            out.write(chunk)
        }
        out.write(Data("\r\n--\(boundary)--\r\n".utf8))
        try out.close()
        return try call(command, query, contentType: "multipart/form-data; boundary=\(boundary)", bodyFile: tmp)
    }

    func importCAR(_ file: String, progress: Bool, pinRoots: Bool) throws -> (roots: [(cid: String, pinError: String)], blocks: Int, bytes: UInt64) {
        let reply = try upload("dag/import", [("stats", "true"), ("pin-roots", String(pinRoots))], file: file, partType: "application/vnd.ipld.car")
        var roots: [(cid: String, pinError: String)] = []
        var blocks = 0
        var bytes: UInt64 = 0
        for line in String(decoding: reply, as: UTF8.self).split(separator: "\n") {
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            if let root = o["Root"] as? [String: Any], let r = (root["Cid"] as? [String: Any])?["/"] as? String {
                roots.append((r, root["PinErrorMsg"] as? String ?? ""))
            }
            if let s = o["Stats"] as? [String: Any] {
                blocks = s["BlockCount"] as? Int ?? 0
                bytes = (s["BlockBytesCount"] as? NSNumber)?.uint64Value ?? 0
            }
        }
        return (roots, blocks, bytes)
    }

    /// `add -r`/`-w` through the daemon: the trees as one multipart body (parts named by relative
    /// path; directories as application/x-directory, symlinks as application/symlink), framed in a
    /// temporary file; returns Kubo's `(name, cid)` lines.
    func addTrees(_ paths: [String], options: ImportOptions, wrap: Bool, hidden: Bool, pin: PinOption?) throws -> [(name: String, cid: String)] {
        let boundary = "qstore-\(UUID().uuidString)"
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-upload-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        _ = FileManager.default.createFile(atPath: tmp.path, contents: nil)
        let out = try FileHandle(forWritingTo: tmp)
        func part(_ name: String, _ type: String, _ body: (FileHandle) throws -> Void) rethrows {
            let encoded = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? name
            out.write(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(encoded)\"\r\nContent-Type: \(type)\r\n\r\n".utf8))
            try body(out)
            out.write(Data("\r\n".utf8))
        }
        func walk(_ path: String, _ name: String) throws {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            switch attributes[.type] as? FileAttributeType {
            case .typeSymbolicLink?:
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
                part(name, "application/symlink") { $0.write(Data(target.utf8)) }
            case .typeDirectory?:
                part(name, "application/x-directory") { _ in }
                for child in try FileManager.default.contentsOfDirectory(atPath: path).sorted() where hidden || !child.hasPrefix(".") {
                    try walk(path + "/" + child, name + "/" + child)
                }
            default:
                try part(name, "application/octet-stream") { h in
                    let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
                    defer { try? input.close() }
                    while true {
                        let chunk = input.readData(ofLength: 1 << 20)
                        if chunk.isEmpty { break }
                        h.write(chunk)
                    }
                }
            }
        }
        for p in paths { try walk(p, URL(fileURLWithPath: p).lastPathComponent) }
        out.write(Data("--\(boundary)--\r\n".utf8))
        try out.close()
        var query = Self.addQuery(options) + [("wrap-with-directory", String(wrap)), ("pin", String(pin != nil))]
        if let name = pin?.name { query.append(("pin-name", name)) }
        let reply = try Self.lines(call("add", query, contentType: "multipart/form-data; boundary=\(boundary)", bodyFile: tmp))
        return try Self.checkStream(reply).map { ($0["Name"] as? String ?? "", $0["Hash"] as? String ?? "") }
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

    func addFile(_ file: String, options: ImportOptions, pin: PinOption?) throws -> (cid: String, dagSize: UInt64) {
        var query = Self.addQuery(options) + [("pin", String(pin != nil))]
        if let name = pin?.name { query.append(("pin-name", name)) }
        let lines = try Self.checkStream(Self.lines(upload("add", query, file: file, partType: "application/octet-stream")))
        guard let o = lines.first(where: { $0["Hash"] != nil }) else { throw CLIError("unexpected reply from the daemon") }
        return (o["Hash"] as? String ?? "", UInt64(o["Size"] as? String ?? "") ?? 0)
    }

    func cat(_ root: CID, path: [String], offset: UInt64, length: UInt64?) throws {
        var query = [("arg", ([root.string] + path).joined(separator: "/")), ("offset", String(offset))]
        if let length { query.append(("length", String(length))) }
        let out = FileSink(descriptor: 1)
        try stream("cat", query) { bytes in try bytes.withUnsafeBytes { try out.write($0) } }
        try out.flush()
    }

    func tar(_ root: CID, path: [String], name: String, write: ([UInt8]) throws -> Void) throws {
        try withoutActuallyEscaping(write) { write in
            try stream("get", [("arg", ([root.string] + path).joined(separator: "/"))], into: write)
        }
    }

    func list(_ root: CID, path: [String]) throws -> [(name: String, cid: String, size: UInt64, type: Int)] {
        let o = try Self.json(call("ls", [("arg", ([root.string] + path).joined(separator: "/"))]))
        let links = ((o["Objects"] as? [[String: Any]])?.first?["Links"] as? [[String: Any]]) ?? []
        return links.map { l in
            (l["Name"] as? String ?? "", l["Hash"] as? String ?? "", (l["Size"] as? NSNumber)?.uint64Value ?? 0, l["Type"] as? Int ?? 0)
        }
    }

    func repoStat() throws -> [(String, Any)] {
        let o = try Self.json(call("repo/stat"))
        return ["NumObjects", "RepoSize", "StorageMax", "RepoPath", "Version"].compactMap { k in o[k].map { (k, $0) } }
    }

    func repoVerify(progress: Bool, repair: Bool) throws -> (blocks: Int, bytes: UInt64, problems: [String]) {
        do {
            let data = try call("repo/verify", [("repair", String(repair))])
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
            let last = lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return (last?["Progress"] as? Int ?? 0, 0, [])
        } catch let e as RemoteError {
            return (0, 0, e.messages)
        }
    }
}

extension RemoteBackend {
    /// A streamed reply's lines; an error that came after the 200 (Kubo's error object as the
    /// last line) is thrown.
    static func checkStream(_ lines: [[String: Any]]) throws -> [[String: Any]] {
        if let last = lines.last, last["Type"] as? String == "error" {
            throw RemoteError(messages: [last["Message"] as? String ?? "the daemon reported an error"])
        }
        return lines
    }

    static func lines(_ data: Data) -> [[String: Any]] {
        String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func pinAdd(_ refs: [String], options: PinOption) throws -> [String] {
        try Self.json(call("pin/add", refs.map { ("arg", $0) } + options.query))["Pins"] as? [String] ?? []
    }

    func pinRemove(_ refs: [String], recursive: Bool) throws -> [String] {
        try Self.json(call("pin/rm", refs.map { ("arg", $0) } + [("recursive", String(recursive))]))["Pins"] as? [String] ?? []
    }

    func pinList(_ refs: [String], type: String, name: String?) throws -> [(cid: String, type: String, name: String)] {
        var query = refs.map { ("arg", $0) } + [("type", type), ("stream", "true"), ("names", "true")]
        if let name { query.append(("name", name)) }
        return Self.lines(try call("pin/ls", query)).map { ($0["Cid"] as? String ?? "", $0["Type"] as? String ?? "", $0["Name"] as? String ?? "") }
    }

    func pinVerify(verbose: Bool) throws -> [(cid: String, ok: Bool, bad: [(cid: String, error: String)])] {
        Self.lines(try call("pin/verify", [("verbose", String(verbose))])).map { o in
            let bad = (o["BadNodes"] as? [[String: Any]] ?? []).map { ($0["Cid"] as? String ?? "", $0["Err"] as? String ?? "") }
            return (o["Cid"] as? String ?? "", o["Ok"] as? Bool ?? false, bad)
        }
    }

    func pinUpdate(from: String, to: String, unpin: Bool) throws {
        _ = try call("pin/update", [("arg", from), ("arg", to), ("unpin", String(unpin))])
    }

    func pinPolicies() throws -> [String: Any] { try Self.json(call("pin/policies")) }

    func repoGC(_ removed: (String) -> Void) throws -> (blocks: Int, packs: String?) {
        let keys = Self.lines(try call("repo/gc")).compactMap { ($0["Key"] as? [String: Any])?["/"] as? String }
        keys.forEach(removed)
        return (keys.count, nil)  // the daemon logs its pack compaction
    }
}

/// The daemon answered with an error (Kubo's `{"Message", "Code", "Type"}`).
struct RemoteError: Error, CustomStringConvertible {
    let messages: [String]
    var description: String { messages.joined(separator: "\n") }

    /// The error an unsuccessful reply carries: its messages (Kubo's `Message`, `Msg` lines), else its status.
    static func reply(status: Int, body: Data) -> any Error {
        let messages = String(decoding: body, as: UTF8.self).split(separator: "\n").compactMap { line -> String? in
            let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (o?["Message"] ?? o?["Msg"]) as? String
        }
        return messages.isEmpty ? CLIError("daemon answered \(status)") : RemoteError(messages: messages)
    }
}

/// Carries a URLSession completion to the waiting thread.
final class ResultBox: @unchecked Sendable {
    // Written once by URLSession's callback before `done` is signalled, read after the wait.
    private var data: Data?
    private var response: URLResponse?
    private var error: (any Error)?
    private let done = DispatchSemaphore(value: 0)

    func set(_ d: Data?, _ r: URLResponse?, _ e: (any Error)?) {
        data = d
        response = r
        error = e
        done.signal()
    }

    func wait() throws -> Data {
        done.wait()
        if let error { throw CLIError("cannot reach the daemon: \(error.localizedDescription)") }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let body = data ?? Data()
        guard (200..<300).contains(status) else { throw RemoteError.reply(status: status, body: body) }
        return body
    }
}

/// Receives a streamed reply for `RemoteBackend.stream`: a success body goes to `write` as it
/// arrives (on the session's one delegate thread), an error body is kept to read its message.
final class StreamReceiver: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Touched only on the session's serial delegate queue until `done` is signalled; read after the
    // wait. `write` is dropped before `done` is signalled: the caller's closure must not outlive the call.
    private var write: (([UInt8]) throws -> Void)?
    private var status = 0
    private var errorBody = Data()
    private var failure: (any Error)?
    private let done = DispatchSemaphore(value: 0)

    init(_ write: @escaping ([UInt8]) throws -> Void) { self.write = write }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        status = (response as? HTTPURLResponse)?.statusCode ?? 0
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard failure == nil else { return }
        guard (200..<300).contains(status) else { errorBody.append(data); return }
        do { try write?([UInt8](data)) } catch {
            failure = error
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        write = nil
        if failure == nil, let error {
            failure = CLIError(status == 0 ? "cannot reach the daemon: \(error.localizedDescription)" : "the daemon's reply ended early: \(error.localizedDescription)")
        }
        done.signal()
    }

    func wait() throws {
        done.wait()
        if let failure { throw failure }
        guard (200..<300).contains(status) else { throw RemoteError.reply(status: status, body: errorBody) }
    }
}
