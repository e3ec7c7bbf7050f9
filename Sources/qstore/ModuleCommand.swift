import ArgumentParser
import Foundation
import Multiformats
import Node
import QAPI
import Registry

/// `qstore module`: the signed module registry.
struct ModuleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "module", abstract: "The module registry: publish, verify, promote, deprecate, yank, deregister, list, search, dependencies, docs.",
        discussion: """
            A module version is a directory: module.json (module, version, type, description, dependencies, …), package/ \
            and docs/. Publishing adds both folders as UnixFS, signs the metadata with a key of the publisher, and names it \
            by the pointers module-version/<name>@<version> and module/<name>; a version is never published twice. \
            --sandbox publishes where production queries and resolution do not look, until `module promote`. REF is \
            name, name@version or name@range (npm ranges: ^1.2, ~1.2.3, >=1 <2, 1.x). See Docs/registry.md.
            """,
        subcommands: [Publish.self, Verify.self, Promote.self, Deprecate.self, Yank.self, Status.self, Deregister.self,
                      List.self, Show.self, Search.self, Deps.self, Rdeps.self, Docs.self])

    struct Space: ParsableArguments {
        @Flag(help: "The sandbox namespace instead of production.") var sandbox = false
        var namespace: ModuleNamespace { sandbox ? .sandbox : .production }
    }

    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a module directory (module.json, package/, docs/), or many with --batch.",
            discussion: """
                Each module is all or nothing: a failure leaves no version pointer. Publishing a release that is already \
                published (the same contents) completes what an interrupted run left and says `exists`, so a batch can be \
                run again after a crash. With --batch FILE (one directory per line; blank lines and # comments skipped) \
                every directory is tried and a summary printed; the exit status is 1 when any failed.
                """)
        @Argument(help: "The module directory.") var directory: String?
        @Option(help: "A file listing module directories, one per line.") var batch: String?
        @OptionGroup var space: Space
        @Option(help: "The keystore key that signs (default self, the node).") var key = "self"
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (directory == nil) != (batch == nil) else { throw ValidationError("give a directory or --batch FILE") }
        }

        func run() throws {
            let b = try backend(purpose: "module publish")
            guard let batch else {
                let p = try b.publishModule(directory!, namespace: space.namespace, key: key)
                if json { try Output.json(p) } else { print("\(p.created ? "published" : "exists")\t\(p.module.module)@\(p.module.version)\t\(p.module.signed)") }
                return
            }
            guard let text = try? String(contentsOfFile: batch, encoding: .utf8) else { throw CLIError("cannot read \(batch)") }
            let base = (batch as NSString).deletingLastPathComponent
            var published = 0, existing = 0
            var failures: [[String: String]] = []
            for line in text.split(whereSeparator: \.isNewline) {
                let entry = line.trimmingCharacters(in: .whitespaces)
                guard !entry.isEmpty, !entry.hasPrefix("#") else { continue }
                let dir = entry.hasPrefix("/") || base.isEmpty ? entry : base + "/" + entry
                do {
                    let p = try b.publishModule(dir, namespace: space.namespace, key: key)
                    if p.created { published += 1 } else { existing += 1 }
                    if !json { print("\(p.created ? "published" : "exists")\t\(p.module.module)@\(p.module.version)\t\(p.module.signed)") }
                } catch {
                    failures.append(["directory": entry, "error": "\(error)"])
                    if !json { print("failed\t\(entry)\t\(error)") }
                }
            }
            if json {
                try Output.json(["published": published, "exists": existing, "failed": failures.count, "failures": failures] as [String: Any])
            } else {
                print("\(published) published, \(existing) already published, \(failures.count) failed")
            }
            if !failures.isEmpty { throw ExitCode(1) }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check versions: the signature chain, package and docs complete here, the checksum, dependencies, status.",
            discussion: "Every version REF admits (all without a range). One line per check; the exit status is 1 when any fails.")
        @Argument(help: "name[@range]") var ref: String
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let report = try backend(purpose: "module verify").verifyModule(ref, namespace: space.namespace)
            if json { try Output.json(report) } else {
                for v in report.versions {
                    print("\(v.module)@\(v.version)\t\(v.ok ? "ok" : "FAILED")")
                    for c in v.checks { print("  \(c.ok ? "ok  " : "FAIL")\t\(c.name)\t\(c.detail)") }
                }
            }
            if !report.ok { throw ExitCode(1) }
        }
    }

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move name@version from the sandbox to production, after a full verify against production (needs registry:promote).")
        @Argument(help: "name@version") var ref: String
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let m = try backend(purpose: "module promote").promoteModule(ref)
            if json { try Output.json(m) } else { print("promoted\t\(m.module)@\(m.version)\t\(m.signed)") }
        }
    }

    static func changed(_ m: ModuleInfo, json: Bool) throws {
        if json { try Output.json(m); return }
        print("\(m.module)@\(m.version)\t\(m.status)\(m.yanked ? " yanked" : "")\(m.reason.map { "\t\($0)" } ?? "")\trevision \(m.revision)")
    }

    struct Deprecate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark name@version DEPRECATED, saying why (it still resolves).")
        @Argument(help: "name@version") var ref: String
        @Option(help: "Why, and what to use instead.") var reason: String
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            try changed(try backend(purpose: "module deprecate").changeModule(ref, action: "deprecate", ModuleChangeRequest(reason: reason), namespace: space.namespace), json: json)
        }
    }

    struct Yank: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw name@version from resolution (an exact request still gets it; its content stays).",
            discussion: "--undo puts it back.")
        @Argument(help: "name@version") var ref: String
        @Option(help: "Why.") var reason: String?
        @Flag(help: "Undo a yank.") var undo = false
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            try changed(try backend(purpose: "module yank").changeModule(ref, action: "yank", ModuleChangeRequest(yanked: !undo, reason: reason), namespace: space.namespace), json: json)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move name@version's status: DEVELOPMENT → TESTING → PRODUCTION ⇄ DEPRECATED, DEVELOPMENT → PRODUCTION, TESTING → DEVELOPMENT; any → SUSPENDED → any.")
        @Argument(help: "name@version") var ref: String
        @Argument(help: "DEVELOPMENT, TESTING, PRODUCTION, DEPRECATED or SUSPENDED.") var status: String
        @Option(help: "Why.") var reason: String?
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            try changed(try backend(purpose: "module status").changeModule(ref, action: nil, ModuleChangeRequest(status: status.uppercased(), reason: reason), namespace: space.namespace), json: json)
        }
    }

    struct Deregister: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove name@version (or every version of name) from the registry.",
            discussion: "The version pointers get tombstones (their history stays; a version is never published again), the package and docs lose their policy pins, and module/<name> moves to the highest version left.")
        @Argument(help: "name or name@version") var ref: String
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let d = try backend(purpose: "module deregister").deregisterModule(ref, namespace: space.namespace)
            if json { try Output.json(d) } else { for v in d.versions { print("deregistered\t\(d.module)@\(v)") } }
        }
    }

    static func printSummaries(_ page: ModulePage, json: Bool) throws {
        if json { try Output.json(page); return }
        for m in page.modules {
            print("\(m.module)\t\(m.latest)\t\(m.status)\t\(m.versions) version\(m.versions == 1 ? "" : "s")\t\(m.type)\t\(m.description)")
        }
        if let next = page.next { print("next: --cursor \(next)") }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "Modules by name: `<name> <latest> <status> <versions> <type> <description>`.")
        @OptionGroup var space: Space
        @Option(help: "Modules per page (1–1000).") var limit = 100
        @Option(help: "Continue from here (the `next` of the previous page).") var cursor: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            var q = [("namespace", space.namespace.rawValue), ("limit", String(limit))]
            if let cursor { q.append(("cursor", cursor)) }
            try printSummaries(try backend(purpose: "module ls").searchModules(q), json: json)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A module's versions, or the version a range picks, with every metadata field.")
        @Argument(help: "name[@range]") var ref: String
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let info = try backend(purpose: "module show").module(ref, namespace: space.namespace)
            if json { try Output.json(info); return }
            for m in info.versions {
                print("\(m.module)@\(m.version)\t\(m.status)\(m.yanked ? " yanked" : "")\t\(m.type)\t\(m.description)")
                print("  publisher \(m.publisher)  revision \(m.revision)  updated \(m.updatedAt)\(m.activatedBy.map { "  activated by \($0)" } ?? "")")
                print("  package \(m.package)  checksum \(m.checksum)")
                print("  docs    \(m.documentation)")
                if let r = m.reason { print("  reason  \(r)") }
                for d in m.dependencies { print("  requires \(d.module) \(d.range)\(d.kind == "dependency" ? "" : " (\(d.kind))")\(d.optional ? " optional" : "")") }
            }
        }
    }

    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Search modules by text (name and description), type, capability, publisher, status.")
        @Argument(help: "Words that must all appear in the name or description.") var text: [String] = []
        @Option(help: "Only this type.") var type: String?
        @Option(help: "Only modules with this capability.") var capability: String?
        @Option(help: "Only this publisher (a sQuid id).") var publisher: String?
        @Option(help: "Only this status.") var status: String?
        @Option(help: "name, updated, versions or fetches.") var sort = "name"
        @Option(help: "asc or desc (default: names ascending, the others descending).") var order: String?
        @Option(help: "Modules per page (1–1000).") var limit = 50
        @Option(help: "Continue from here (the `next` of the previous page).") var cursor: String?
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            var q = [("namespace", space.namespace.rawValue), ("sort", sort), ("limit", String(limit))]
            if !text.isEmpty { q.append(("q", text.joined(separator: " "))) }
            for (k, v) in [("type", type), ("capability", capability), ("publisher", publisher), ("status", status), ("order", order), ("cursor", cursor)] {
                if let v { q.append((k, v)) }
            }
            try printSummaries(try backend(purpose: "module search").searchModules(q), json: json)
        }
    }

    struct Deps: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve name@range's dependencies to exact versions (the highest satisfying every requirement).",
            discussion: "Cycles, missing modules and conflicts are reported by name (DEPENDENCY_CYCLE, DEPENDENCY_MISSING, VERSION_CONFLICT).")
        @Argument(help: "name[@range]") var ref: String
        @Flag(help: "Draw the graph as a tree.") var tree = false
        @OptionGroup var space: Space
        @Flag(help: "Print JSON (nodes and typed edges).") var json = false
        func run() throws {
            let g = try backend(purpose: "module deps").moduleGraph(ref, namespace: space.namespace)
            if json { try Output.json(g); return }
            let versions = Dictionary(uniqueKeysWithValues: g.nodes.map { ($0.module, $0.version) })
            guard tree else {
                for n in g.nodes { print("\(n.module)@\(n.version)") }
                return
            }
            var children: [String: [ModuleGraphEdge]] = [:]
            for e in g.edges { children[e.from, default: []].append(e) }
            func draw(_ m: String, _ prefix: String, _ seen: Set<String>) {
                let kids = children[m] ?? []
                for (i, e) in kids.enumerated() {
                    let last = i == kids.count - 1
                    let label = "\(e.to)@\(versions[e.to] ?? "?")" + (e.kind == "dependency" ? "" : " (\(e.kind))")
                    print(prefix + (last ? "└── " : "├── ") + label + (seen.contains(e.to) ? " …" : ""))
                    if !seen.contains(e.to) { draw(e.to, prefix + (last ? "    " : "│   "), seen.union([e.to])) }
                }
            }
            print("\(g.root)@\(versions[g.root] ?? "?")")
            draw(g.root, "", [g.root])
        }
    }

    struct Rdeps: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The modules whose latest version requires name: `<module> <version> <range> <kind> <satisfied by name's latest>`.")
        @Argument(help: "name") var name: String
        @OptionGroup var space: Space
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let d = try backend(purpose: "module rdeps").moduleDependents(name, namespace: space.namespace)
            if json { try Output.json(d); return }
            for x in d.dependents {
                print("\(x.module)\t\(x.version)\t\(x.range)\t\(x.kind)\(x.optional ? " optional" : "")\t\(x.satisfiedByLatest ? "satisfied" : "unsatisfied")")
            }
        }
    }

    struct Docs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The docs CID name@range resolves to now, or with PATH the file's bytes.",
            discussion: "The daemon's gateway serves the same at /modules/<name>[@range]/docs/<path>.")
        @Argument(help: "name[@range]") var ref: String
        @Argument(help: "A file in the docs.") var path: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let b = try backend(purpose: "module docs")
            let d = try b.moduleDocs(ref)
            guard let path else {
                if json { try Output.json(d) } else { print(d.cid) }
                return
            }
            try b.cat(try CID(d.cid), path: path.split(separator: "/").map(String.init), offset: 0, length: nil)
        }
    }
}

extension LocalBackend {
    func publishModule(_ directory: String, namespace: ModuleNamespace, key: String) throws -> ModulePublished {
        try reporting(directory) {
            let p = try node.publishModule(directory: directory, namespace: namespace, keyName: key)
            return ModulePublished(created: p.created, module: ModuleInfo(p.release))
        }
    }

    func module(_ ref: String, namespace: ModuleNamespace) throws -> ModuleVersionsInfo {
        try reporting("module show") {
            let (name, range) = try Node.moduleReference(ref)
            let releases = try range.map { [try node.moduleRelease(name, range: $0, namespace: namespace)] } ?? node.moduleVersions(name, namespace: namespace)
            return ModuleVersionsInfo(module: name, namespace: namespace, versions: releases.map(ModuleInfo.init))
        }
    }

    func verifyModule(_ ref: String, namespace: ModuleNamespace) throws -> ModuleVerifyReport {
        try reporting("module verify") {
            let (name, range) = try Node.moduleReference(ref)
            return ModuleVerifyReport(try node.verifyModule(name, range: range, namespace: namespace))
        }
    }

    func changeModule(_ ref: String, action: String?, _ change: ModuleChangeRequest, namespace: ModuleNamespace) throws -> ModuleInfo {
        try reporting("module \(action ?? "status")") {
            let (name, version) = try Node.moduleVersion(ref)
            let (c, event) = try change.change(action: action)
            return ModuleInfo(try node.changeModule(name, version, namespace: namespace, c, event: event))
        }
    }

    func promoteModule(_ ref: String) throws -> ModuleInfo {
        try reporting("module promote") {
            let (name, version) = try Node.moduleVersion(ref)
            return ModuleInfo(try node.promoteModule(name, version))
        }
    }

    func deregisterModule(_ ref: String, namespace: ModuleNamespace) throws -> ModuleDeregistered {
        try reporting("module deregister") {
            let (name, version) = ref.contains("@") ? try Node.moduleVersion(ref) : (try Node.moduleReference(ref).name, nil)
            return ModuleDeregistered(module: name, namespace: namespace, versions: try node.deregisterModule(name, version: version, namespace: namespace))
        }
    }

    func searchModules(_ parameters: [(String, String)]) throws -> ModulePage {
        try reporting("module search") {
            let page = try node.searchModules(try ModuleSearch(parameters: parameters))
            return ModulePage(modules: page.modules.map(ModuleSummaryInfo.init), next: page.next)
        }
    }

    func moduleGraph(_ ref: String, namespace: ModuleNamespace) throws -> ModuleGraphInfo {
        try reporting("module deps") {
            let (name, range) = try Node.moduleReference(ref)
            let r = try range ?? SemVerRange("*")
            return ModuleGraphInfo(root: name, range: r.text, namespace: namespace, try node.resolveModule(name, r, namespace: namespace))
        }
    }

    func moduleDependents(_ name: String, namespace: ModuleNamespace) throws -> ModuleDependents {
        try reporting("module rdeps") { ModuleDependents(module: name, try node.moduleDependents(name, namespace: namespace)) }
    }

    func moduleDocs(_ ref: String) throws -> ModuleDocsInfo {
        try reporting("module docs") {
            let (name, range) = try Node.moduleReference(ref)
            return ModuleDocsInfo(try node.moduleDocs(name, range: range))
        }
    }
}

extension RemoteBackend {
    /// `modules/{ref}[/{action}]`, the ref percent-encoded whole.
    static func modulePath(_ ref: String, _ action: String? = nil) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~@")
        return "modules/" + (ref.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ref) + (action.map { "/" + $0 } ?? "")
    }

    static func space(_ n: ModuleNamespace) -> [(String, String)] { n == .sandbox ? [("namespace", "sandbox")] : [] }

    /// Uploads the directory (module.json, package/, docs/) as multipart parts named by their
    /// paths relative to it.
    func publishModule(_ directory: String, namespace: ModuleNamespace, key: String) throws -> ModulePublished {
        try reporting(directory) {
            guard let data = FileManager.default.contents(atPath: directory + "/module.json"),
                  let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let name = manifest["module"] as? String else {
                throw CLIError("\(directory)/module.json: missing, or without a module name")
            }
            var components = URLComponents(string: origin + "/q/v1/" + Self.modulePath(name))!
            components.queryItems = ([("key", key)] + Self.space(namespace)).map { URLQueryItem(name: $0.0, value: $0.1) }
            let (status, reply) = try multipart({ part in
                func walk(_ path: String, _ relative: String) throws {
                    if isDirectory(path) {
                        try part(relative, "application/x-directory") { _ in }
                        for child in try FileManager.default.contentsOfDirectory(atPath: path).sorted() { try walk(path + "/" + child, relative + "/" + child) }
                    } else {
                        try part(relative, "application/octet-stream") { try Self.copy(path, into: $0) }
                    }
                }
                try part("module.json", "application/json") { $0.write(data) }
                for top in ["package", "docs"] where FileManager.default.fileExists(atPath: directory + "/" + top) { try walk(directory + "/" + top, top) }
            }) { contentType, file in try exchange(method: "POST", url: components.url!.absoluteString, contentType: contentType, bodyFile: file) }
            do { return try QJSON.data(ModulePublished.self, from: reply) } catch let e as QErrorReply { throw e } catch {
                throw CLIError("unexpected reply from the daemon (\(status)) to POST /q/v1/modules/\(name): \(error)")
            }
        }
    }

    func module(_ ref: String, namespace: ModuleNamespace) throws -> ModuleVersionsInfo {
        try reporting("module show") { try q(ModuleVersionsInfo.self, "GET", Self.modulePath(ref), Self.space(namespace)) }
    }

    func verifyModule(_ ref: String, namespace: ModuleNamespace) throws -> ModuleVerifyReport {
        try reporting("module verify") { try q(ModuleVerifyReport.self, "GET", Self.modulePath(ref, "verify"), Self.space(namespace)) }
    }

    func changeModule(_ ref: String, action: String?, _ change: ModuleChangeRequest, namespace: ModuleNamespace) throws -> ModuleInfo {
        try reporting("module \(action ?? "status")") {
            try q(ModuleInfo.self, action == nil ? "PATCH" : "POST", Self.modulePath(ref, action), Self.space(namespace),
                  body: try JSONEncoder().encode(change), contentType: "application/json")
        }
    }

    func promoteModule(_ ref: String) throws -> ModuleInfo {
        try reporting("module promote") { try q(ModuleInfo.self, "POST", Self.modulePath(ref, "promote")) }
    }

    func deregisterModule(_ ref: String, namespace: ModuleNamespace) throws -> ModuleDeregistered {
        try reporting("module deregister") { try q(ModuleDeregistered.self, "DELETE", Self.modulePath(ref), Self.space(namespace)) }
    }

    func searchModules(_ parameters: [(String, String)]) throws -> ModulePage {
        try reporting("module search") { try q(ModulePage.self, "GET", "modules", parameters) }
    }

    func moduleGraph(_ ref: String, namespace: ModuleNamespace) throws -> ModuleGraphInfo {
        try reporting("module deps") { try q(ModuleGraphInfo.self, "GET", Self.modulePath(ref, "graph"), Self.space(namespace)) }
    }

    func moduleDependents(_ name: String, namespace: ModuleNamespace) throws -> ModuleDependents {
        try reporting("module rdeps") { try q(ModuleDependents.self, "GET", Self.modulePath(name, "rdeps"), Self.space(namespace)) }
    }

    func moduleDocs(_ ref: String) throws -> ModuleDocsInfo {
        try reporting("module docs") { try q(ModuleDocsInfo.self, "GET", Self.modulePath(ref, "docs")) }
    }
}
