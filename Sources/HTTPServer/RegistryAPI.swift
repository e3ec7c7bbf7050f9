import CAR
import Foundation
import HTTPMessages
import HTTPTypes
import Hummingbird
import Multiformats
import NIOCore
import Node
import Pinning
import QAPI
import Registry
import Signing

/// The module registry on the Q API (`/q/v1/modules`, Docs/registry.md), in the Q envelope.
///
/// `/q/v1/modules/{ref}[/{action}]`, `ref` being `name`, `name@version` or `name@range`
/// (percent-encoded): GET (show), `…/verify`, `…/graph`, `…/rdeps`, `…/docs`, `…/package` (the
/// tar stream); POST (publish: a multipart upload of the module directory), `…/promote`,
/// `…/deprecate`, `…/yank`; PATCH (status); DELETE (deregister). `?namespace=sandbox` reads and
/// writes the sandbox.
struct RegistryAPI {
    let node: Node
    let io: StorageThreads
    let downloads: Downloads
    let limits: ServerLimits
    /// Threads for uploads being read (a slow client never holds a storage thread).
    let uploads: ClientSlots

    init(node: Node, io: StorageThreads, downloads: Downloads, limits: ServerLimits) {
        (self.node, self.io, self.downloads, self.limits) = (node, io, downloads, limits)
        uploads = ClientSlots(limits.uploads)
    }

    static let prefix = "/q/v1/modules"
    /// The largest module upload (module.json, package/, docs/ as one multipart body).
    static let maximumUpload = 256 << 20

    func register(on router: Router<ServerContext>) {
        router.get(RouterPath(Self.prefix)) { request, _ in await qAsync { try await self.search(request) } }
        for method in [HTTPRequest.Method.get, .post, .patch, .delete] {
            router.on(RouterPath(Self.prefix + "/**"), method: method) { request, context in await qAsync { try await self.route(request, context) } }
        }
    }

    /// `{ref}` (percent-decoded) and the action after it, if any.
    static func parse(_ path: String) throws -> (ref: String, action: String?) {
        let parts = path.dropFirst(prefix.count + 1).split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, let ref = String(parts[0]).decodingPercentEscapes() else {
            throw RequestError(.notFound, "expected /q/v1/modules/{name}[@range][/verify|graph|rdeps|docs|package|promote|deprecate|yank]")
        }
        return (ref, parts.count == 2 ? String(parts[1]) : nil)
    }

    static func namespace(_ request: Request) throws -> ModuleNamespace {
        try ModuleNamespace(parameter: request.uri.queryParameters.get("namespace").map { String($0) })
    }

    func route(_ request: Request, _ context: ServerContext) async throws -> Response {
        let (ref, action) = try Self.parse(request.uri.path)
        let namespace = try Self.namespace(request)
        switch (request.method, action) {
        case (.get, nil): return try await show(ref, namespace)
        case (.get, "verify"):
            let (name, range) = try Node.moduleReference(ref)
            let report = try await io.run { try self.node.verifyModule(name, range: range, namespace: namespace) }
            return QindexAPI.ok(ModuleVerifyReport(report))
        case (.get, "graph"):
            let (name, range) = try Node.moduleReference(ref)
            let r = try range ?? SemVerRange("*")
            let graph = try await io.run { try self.node.resolveModule(name, r, namespace: namespace) }
            return QindexAPI.ok(ModuleGraphInfo(root: name, range: r.text, namespace: namespace, graph))
        case (.get, "rdeps"):
            let (name, range) = try Node.moduleReference(ref)
            guard range == nil else { throw RegistryError.invalid("rdeps takes a module name, without a range") }
            let ds = try await io.run { try self.node.moduleDependents(name, namespace: namespace) }
            return QindexAPI.ok(ModuleDependents(module: name, ds))
        case (.get, "docs"):
            guard namespace == .production else { throw RegistryError.invalid("docs are resolved in production") }
            let (name, range) = try Node.moduleReference(ref)
            let r = try await io.run { try self.node.moduleDocs(name, range: range) }
            return QindexAPI.ok(ModuleDocsInfo(r), cid: r.metadata.documentation)
        case (.get, "package"): return try await package(ref, namespace)
        case (.post, nil): return try await publish(request, context, ref, namespace)
        case (.post, "promote"):
            guard namespace == .production else { throw RegistryError.invalid("promote moves a version from the sandbox to production; no namespace parameter") }
            let (name, version) = try Node.moduleVersion(ref)
            let by = RequestCaller.principal?.identity
            let r = try await io.run { try self.node.promoteModule(name, version, by: by) }
            return QindexAPI.ok(ModuleInfo(r), cid: r.signed)
        case (.post, "deprecate"), (.post, "yank"), (.patch, nil):
            let (name, version) = try Node.moduleVersion(ref)
            let body = try await RequestBodies.collect(request, limit: 16 << 10, timeout: limits.requestTimeout)
            let change: ModuleChangeRequest
            if body.readableBytes == 0, action != nil { change = ModuleChangeRequest() } else {
                do { change = try JSONDecoder().decode(ModuleChangeRequest.self, from: Data(buffer: body)) } catch {
                    throw RegistryError.invalid("the body is a JSON object {status?, yanked?, reason?}")
                }
            }
            let (requested, event) = try change.change(action: action)
            let r = try await io.run { try self.node.changeModule(name, version, namespace: namespace, requested, event: event) }
            return QindexAPI.ok(ModuleInfo(r), cid: r.signed)
        case (.delete, nil):
            let (name, rest) = ref.contains("@") ? try Node.moduleVersion(ref) : (try Node.moduleReference(ref).name, nil)
            let removed = try await io.run { try self.node.deregisterModule(name, version: rest, namespace: namespace) }
            return QindexAPI.ok(ModuleDeregistered(module: name, namespace: namespace, versions: removed))
        case (.get, _), (.post, _):
            throw RequestError(.notFound, "no route \(request.method) \(request.uri.path) (actions: verify, graph, rdeps, docs, package; POST: promote, deprecate, yank)")
        default:
            throw RequestError(.methodNotAllowed, "\(request.method) is not allowed here")
        }
    }

    /// `GET /q/v1/modules?q=&type=&capability=&publisher=&status=&namespace=&sort=&order=&limit=&cursor=`.
    func search(_ request: Request) async throws -> Response {
        let query = try ModuleSearch(parameters: request.uri.queryParameters.map { (String($0.key), String($0.value)) })
        let page = try await io.run { try self.node.searchModules(query) }
        return QindexAPI.ok(ModulePage(modules: page.modules.map(ModuleSummaryInfo.init), next: page.next))
    }

    /// The module's versions, or the one a range picks.
    func show(_ ref: String, _ namespace: ModuleNamespace) async throws -> Response {
        let (name, range) = try Node.moduleReference(ref)
        let versions = try await io.run { () throws -> [ModuleRelease] in
            if let range { return [try self.node.moduleRelease(name, range: range, namespace: namespace)] }
            return try self.node.moduleVersions(name, namespace: namespace)
        }
        return QindexAPI.ok(ModuleVersionsInfo(module: name, namespace: namespace, versions: versions.map(ModuleInfo.init)),
                            cid: versions.count == 1 ? versions[0].signed : nil)
    }

    /// The package as a tar stream (what its checksum hashes), counted as a package fetch.
    func package(_ ref: String, _ namespace: ModuleNamespace) async throws -> Response {
        guard namespace == .production else { throw RegistryError.invalid("packages are fetched from production") }
        let (name, range) = try Node.moduleReference(ref)
        let r = try await io.run { try self.node.modulePackage(name, range: range) }
        var headers = HTTPFields()
        headers[.contentType] = "application/x-tar"
        headers[.contentDisposition] = "attachment; filename=\"\(name)-\(r.metadata.version).tar\""
        headers[.xIpfsPath] = "/ipfs/" + r.metadata.package.string
        headers[.xModuleChecksum] = "f" + r.metadata.checksum.bytes.map { String(format: "%02x", $0) }.joined()
        let node = self.node
        return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads, onFailure: .appendMessage) { channel in
            var sink = ChannelSink(channel)
            try node.tar(r.metadata.package, name: name) { bytes in try bytes.withUnsafeBytes { try sink.write($0) } }
            try sink.flush()
        })
    }

    /// Publishes the module directory uploaded as multipart/form-data (parts named by their paths
    /// relative to it: `module.json`, `package/…`, `docs/…`; directories as application/x-directory).
    /// `?key=` names the keystore key that signs (default `self`); a caller that is an identity
    /// publishes as itself and must name one of its keys.
    func publish(_ request: Request, _ context: ServerContext, _ ref: String, _ namespace: ModuleNamespace) async throws -> Response {
        let (name, range) = try Node.moduleReference(ref)
        guard range == nil else { throw RegistryError.invalid("publish to /q/v1/modules/{name}: the version is module.json's") }
        guard let type = request.headers[.contentType], let boundary = MultipartReader<BytesSource>.boundary(of: type) else {
            throw RequestError(.badRequest, "publish takes multipart/form-data: module.json, package/… and docs/… as parts named by their paths (qstore module publish DIR sends it)")
        }
        let identity = RequestCaller.principal?.identity
        let keyName: String = request.uri.queryParameters.get("key").map { String($0) } ?? "self"
        // The body is read as it arrives, each part written to disk in pieces, on a thread of
        // its own (one of the upload slots): an upload is never held whole.
        let node = self.node
        let outcome = try await BodyPipe.consume(request, context, slots: uploads, maximum: Self.maximumUpload) { pipe in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-publish-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try Self.unpack(MultipartReader(pipe, boundary: boundary), into: dir)
            return try node.publishModule(directory: dir, namespace: namespace, identity: identity, keyName: keyName, expectedModule: name)
        }
        return QindexAPI.ok(ModulePublished(created: outcome.created, module: ModuleInfo(outcome.release)), cid: outcome.release.signed,
                            status: outcome.created ? .created : .ok)
    }

    /// Writes the parts of a multipart body under `dir`, refusing paths that would leave it.
    static func unpack<S: ByteSource>(_ reader: MultipartReader<S>, into dir: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var parts = 0
        while let headers = try reader.nextPart() {
            parts += 1
            guard parts <= 100_000 else { throw RegistryError.invalid("the upload has more than 100000 parts") }
            guard let name = KuboRPC.filename(headers["content-disposition"]) else { throw RegistryError.invalid("part \(parts) has no filename (its path)") }
            let segments = name.split(separator: "/", omittingEmptySubsequences: true)
            guard !segments.isEmpty, !name.hasPrefix("/"), name.utf8.count <= 4096, !name.utf8.contains(0), !name.contains("\\"),
                  segments.allSatisfy({ $0 != "." && $0 != ".." && $0.utf8.count <= 255 }) else {
                throw RegistryError.invalid("part \(parts): \"\(name.prefix(200))\" is not a relative path inside the module (segments of 1 to 255 bytes; no ., .., \\ or NUL)")
            }
            let relative = segments.joined(separator: "/")
            let path = dir + "/" + relative
            let contentType = headers["content-type"] ?? ""
            guard !contentType.hasPrefix("application/symlink") else { throw RegistryError.invalid("part \(parts) (\(relative)): a module holds no symlinks") }
            do {
                if contentType.hasPrefix("application/x-directory") {
                    try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
                    continue
                }
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard fm.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteUnknown) }
                defer { try? out.close() }
                // Copied in pieces: a file is never held whole.
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = try chunk.withUnsafeMutableBytes { try reader.read(into: $0) }
                    if n == 0 { break }
                    out.write(Data(chunk[0..<n]))
                }
            } catch let e as RegistryError {
                throw e
            } catch {
                throw RegistryError.invalid("part \(parts): \(relative) cannot be written (a file and a directory of one name, or a name given twice?)")
            }
        }
    }
}
