import ArgumentParser
import CAR
@preconcurrency import Crypto
import Foundation
import Node
import Pinning
import QAPI
import Qdrive

/// `qstore drive`: owned files, encrypted by default, with history, sharing and crypto-erase.
struct DriveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drive", abstract: "Qdrive: owned files, encrypted by default — put, get, ls, info, mv, rm [--erase], share, revoke, restore, key.",
        discussion: """
            Each owner's files are a tree under the pointer drive/<owner>, so every change is a version (`restore PATH \
            --version N` puts back what PATH was) — as many versions as the index-records policy keeps (its keepLatest, \
            10 by default; `qstore index history drive <owner>` lists them). Files are encrypted in segments (ChaCha20-Poly1305, age's STREAM) under \
            a per-file key wrapped (HPKE, X25519) for each recipient: by default for the owner's key the node holds \
            (sealed under keystore/drive-master.key); with --recipient for a client's key only — then the CLI encrypts before the upload, so the node never has \
            a key that opens the file, and `get --identity FILE` decrypts it here (`keygen` makes such a key). `rm --erase` destroys \
            every wrap of the key (crypto-shredding). --owner defaults to $QSTORE_DRIVE_OWNER, else admin (a token acting \
            as an identity must name that identity). See Docs/drive.md.
            """,
        subcommands: [Put.self, Get.self, List.self, Info.self, Move.self, Remove.self, Share.self, Revoke.self, Restore.self, Key.self, Keygen.self])

    struct Owner: ParsableArguments {
        @Option(help: "Whose drive (default $QSTORE_DRIVE_OWNER, else admin).") var owner: String?
        @Flag(help: "Print JSON.") var json = false
        var name: String { owner ?? ProcessInfo.processInfo.environment["QSTORE_DRIVE_OWNER"].flatMap { $0.isEmpty ? nil : $0 } ?? "admin" }
    }

    static func printFile(_ f: DriveFileWire, json: Bool) throws {
        if json { try Output.json(f); return }
        let enc = f.encryption.map { "encrypted for \($0.recipients.map(\.identity).joined(separator: ", "))" } ?? "not encrypted"
        print("\(f.path)\t\(f.size) bytes\t\(f.mediaType)\tversion \(f.version)\t\(enc)\t\(f.cid)")
    }

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store SRC (a file, or - for standard input) at PATH, replacing what was there.")
        @Argument(help: "The file to store, or -.") var source: String
        @Argument(help: "Where in the drive.") var path: String
        @OptionGroup var owner: Owner
        @Option(help: "The media type (default application/octet-stream).") var mediaType: String?
        @Option(help: "Tags, comma-separated.") var tags: String?
        @Option(help: "Wrap the file key only for this X25519 public key (base64url, written --recipient=KEY when it begins with -; repeatable): client-held — encrypted here before the upload, the node never has a key that opens it.") var recipient: [String] = []
        @Flag(help: "Store it unencrypted.") var plain = false
        @Option(help: "Segment size in bytes (65536 to 1048576; default 262144).") var segmentSize: Int?
        @Option(help: "The file ends this long after the put (7d, 12h): removed, its keys erased. A TEMPORARY qdrive-files policy's TTL caps it.") var expiresIn: String?
        func validate() throws {
            if plain, !recipient.isEmpty { throw ValidationError("--plain stores the file unencrypted: it takes no --recipient") }
        }

        func run() throws {
            var o = DrivePutOptions()
            if let expiresIn {
                guard let ms = parseDuration(expiresIn), ms > 0 else { throw ValidationError("--expires-in: a duration such as 7d, 12h, 30m") }
                o.expiresIn = ms
            }
            if let mediaType { o.mediaType = mediaType }
            o.tags = tags.map { $0.split(separator: ",").map(String.init) } ?? []
            o.encrypt = !plain
            if let segmentSize { o.segmentSize = segmentSize }
            var sealing: FileSealing?
            if !recipient.isEmpty {
                // Client-held: sealed here; the node gets the ciphertext and the wraps only.
                var s = try FileSealing(segmentSize: o.segmentSize)
                for r in recipient {
                    guard let k = DriveKeyWire.decode(r), k.count == 32 else { throw ValidationError("--recipient: an X25519 public key, 32 bytes base64url") }
                    do { try s.wrap(for: k) } catch let e as DriveError { throw ValidationError("--recipient: \(e)") }
                }
                o.sealed = (s.encryption, s.wraps)
                sealing = s
            }
            try printFile(try backend(purpose: "drive put").drivePut(source: source, owner: owner.name, path: path, options: o, sealing: sealing), json: owner.json)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the file at PATH (decrypted) to standard output, or to -o FILE.")
        @Argument var path: String
        @OptionGroup var owner: Owner
        @Option(name: .shortAndLong, help: "Write to this file.") var output: String?
        @Option(help: "Read the drive as it was at this version.") var version: Int64?
        @Option(help: "Decrypt here with this X25519 private key file (from `drive keygen`): for files sealed for a client's key (--recipient). The node never sees the key.")
        var identity: String?
        func run() throws {
            let b = try backend(purpose: "drive get")
            guard let identity else {
                try Output.toFile(output) { sink in try b.driveGet(owner: owner.name, path: path, version: version, into: sink) }
                return
            }
            let key = try DriveIdentityFile.read(identity)
            let info = try b.driveInfo(owner: owner.name, path: path, version: version)
            guard let e = info.encryption else { throw CLIError("\(info.path) is not encrypted: read it without --identity") }
            let keyID = KeyWrap.keyID(Array(key.publicKey.rawRepresentation))
            guard e.recipients.contains(where: { $0.keyId == keyID }) else { throw CLIError("\(info.path) is not sealed for the key in \(identity) (\(keyID))") }
            let wrapped = try b.driveWrappedKey(owner: owner.name, path: info.path, version: info.version, keyID: keyID)
            let fileKey: [UInt8]
            do { fileKey = try KeyWrap.unwrap(wrapped, with: key, id: e.id) } catch let error as DriveError { throw CLIError(error.description) }
            guard let nonce = DriveKeyWire.decode(e.nonce) else { throw CLIError("\(info.path): the daemon sent no nonce") }
            let cipher = try SegmentCipher(fileKey: fileKey, nonce: nonce, segmentSize: e.segmentSize)
            try Output.toFile(output) { sink in
                var writer = DecryptingWriter(cipher: cipher, size: info.size, from: 0, length: info.size) { b in try b.withUnsafeBytes { try sink.write($0) } }
                try b.driveSealedGet(owner: owner.name, path: info.path, version: info.version) { try writer.write($0) }
                do { try writer.finish() } catch let error as DriveError { throw CLIError("\(info.path): \(error)") }
            }
        }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an X25519 key pair for client-held files: the private key to -o FILE (mode 0600) or standard output, the public key to standard error.",
            discussion: "Give the public key to `drive put --recipient KEY` or `drive share --recipient KEY`; read with `drive get --identity FILE`. The node never sees the private key.")
        @Option(name: .shortAndLong, help: "Write the private key to this new file (refused if it exists).") var output: String?
        func run() throws {
            let key = Curve25519.KeyAgreement.PrivateKey()
            let pub = DriveKeyWire.encode(Array(key.publicKey.rawRepresentation))
            let text = DriveIdentityFile.text(key)
            if let output {
                guard !FileManager.default.fileExists(atPath: output) else { throw CLIError("\(output) exists: a key is not written over") }
                guard FileManager.default.createFile(atPath: output, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                    throw CLIError("cannot write \(output)")
                }
            } else {
                print(text, terminator: "")
            }
            FileHandle.standardError.write(Data("public key: \(pub)\tkey id: \(KeyWrap.keyID(Array(key.publicKey.rawRepresentation)))\n".utf8))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "The entries of a directory: `<name> <file|directory> <size> <cid>`.")
        @Argument var path: String = "/"
        @OptionGroup var owner: Owner
        @Option(help: "As it was at this version.") var version: Int64?
        func run() throws {
            let l = try backend(purpose: "drive ls").driveList(owner: owner.name, path: path, version: version)
            if owner.json { try Output.json(l); return }
            for e in l.entries { print("\(e.name)\(e.kind == "directory" ? "/" : "")\t\(e.kind)\t\(e.size)\t\(e.cid)") }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A file's metadata: size, media type, version, recipients, CIDs.")
        @Argument var path: String
        @OptionGroup var owner: Owner
        @Option(help: "As it was at this version.") var version: Int64?
        func run() throws { try printFile(try backend(purpose: "drive info").driveInfo(owner: owner.name, path: path, version: version), json: owner.json) }
    }

    struct Move: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "mv", abstract: "Move (rename) FROM to TO.")
        @Argument var from: String
        @Argument var to: String
        @OptionGroup var owner: Owner
        func run() throws {
            let c = try backend(purpose: "drive mv").driveChange(owner: owner.name, path: from, DriveActionWire(action: "move", to: to))
            if owner.json { try Output.json(c) } else { print("moved \(from) to \(to): version \(c.version)") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove a file or directory (the history keeps it; --erase destroys its keys).",
            discussion: "--erase destroys every wrap of the key of every file removed: their ciphertext opens nowhere from then on, in old versions and backups too, and an audit event names their CIDs.")
        @Argument var path: String
        @OptionGroup var owner: Owner
        @Flag(help: "Crypto-erase: destroy every wrap of the files' keys.") var erase = false
        func run() throws {
            let c = try backend(purpose: "drive rm").driveRemove(owner: owner.name, path: path, erase: erase)
            if owner.json { try Output.json(c) } else { print("removed \(path): version \(c.version)\(c.erased.map { ", \($0.count / 2) files erased" } ?? "")") }
        }
    }

    struct Share: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Wrap the file's key for an identity (--with) or a client's public key (--recipient).")
        @Argument var path: String
        @OptionGroup var owner: Owner
        @Option(name: .customLong("with"), help: "An identity (the node holds its key).") var identity: String?
        @Option(help: "An X25519 public key, base64url (written --recipient=KEY when it begins with -).") var recipient: String?
        func validate() throws { guard (identity == nil) != (recipient == nil) else { throw ValidationError("give --with IDENTITY or --recipient KEY") } }
        func run() throws {
            try printFile(try backend(purpose: "drive share").driveShareRevoke(owner: owner.name, path: path, DriveActionWire(action: "share", identity: identity, publicKey: recipient)), json: owner.json)
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take WHO (an identity, or key:<keyId>) off the file's recipients, destroying its wrap.",
            discussion: "A recipient who already read the file has had it. --rotate re-encrypts the file under a new key for the remaining recipients.")
        @Argument var path: String
        @Argument var who: String
        @OptionGroup var owner: Owner
        @Flag(help: "Re-encrypt under a new key.") var rotate = false
        func run() throws {
            try printFile(try backend(purpose: "drive revoke").driveShareRevoke(owner: owner.name, path: path, DriveActionWire(action: "revoke", who: who, rotate: rotate)), json: owner.json)
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put back what PATH was at the drive's --version N (as a new version).")
        @Argument var path: String
        @OptionGroup var owner: Owner
        @Option(help: "The drive's version to take PATH from (see `index history drive <owner>`).") var version: Int64
        func run() throws {
            let c = try backend(purpose: "drive restore").driveChange(owner: owner.name, path: path, DriveActionWire(action: "restore", version: version))
            if owner.json { try Output.json(c) } else { print("restored \(path) from version \(version): version \(c.version)") }
        }
    }

    struct Key: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The owner's X25519 public key (what files shared with it are wrapped for).")
        @OptionGroup var owner: Owner
        func run() throws {
            let k = try backend(purpose: "drive key").drivePublicKey(owner: owner.name)
            if owner.json { try Output.json(k) } else { print("\(k.publicKey ?? "")\t\(k.keyId)") }
        }
    }
}

/// A client's X25519 private key in a file: comment lines (`#`), then the 32-byte key in base64url.
enum DriveIdentityFile {
    static func text(_ key: Curve25519.KeyAgreement.PrivateKey) -> String {
        let pub = DriveKeyWire.encode(Array(key.publicKey.rawRepresentation))
        return "# qstore drive identity (X25519)\n# public key: \(pub)\n\(DriveKeyWire.encode(Array(key.rawRepresentation)))\n"
    }

    static func read(_ path: String) throws -> Curve25519.KeyAgreement.PrivateKey {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { throw CLIError("cannot read \(path)") }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1, let raw = DriveKeyWire.decode(lines[0]), raw.count == 32, let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw) else {
            throw CLIError("\(path) is not a drive identity (one line: a 32-byte X25519 private key, base64url; see `qstore drive keygen`)")
        }
        return key
    }
}

extension LocalBackend {
    func drivePut(source: String, owner: String, path: String, options: DrivePutOptions, sealing: FileSealing?) throws -> DriveFileWire {
        try reporting("drive put") {
            let file = source == "-" ? FileSource(descriptor: 0) : try FileSource(path: source)
            let input: any ByteSource = sealing.map { EncryptingSource($0.cipher, file) } ?? file
            let i = try node.drivePut(owner: owner, path: path, from: input, options: options)
            return DriveFileWire(path: i.path, cid: i.cid.string, version: i.version, file: i.file)
        }
    }

    func driveGet(owner: String, path: String, version: Int64?, into sink: FileSink) throws {
        try reporting("drive get") {
            try node.driveRead(try node.driveInfo(owner: owner, path: path, version: version), reader: owner) { b in try b.withUnsafeBytes { try sink.write($0) } }
        }
    }

    func driveList(owner: String, path: String, version: Int64?) throws -> DriveListingWire {
        try reporting("drive ls") {
            DriveListingWire(owner: owner, path: path, entries: try node.driveList(owner: owner, path: path, version: version).map {
                .init(name: $0.name, kind: $0.kind, size: $0.size, cid: $0.cid.string, mediaType: $0.file?.mediaType, modifiedAt: $0.file?.modifiedAt,
                      encrypted: $0.file.map { $0.encryption != nil })
            })
        }
    }

    func driveInfo(owner: String, path: String, version: Int64?) throws -> DriveFileWire {
        try reporting("drive info") {
            let i = try node.driveInfo(owner: owner, path: path, version: version)
            return DriveFileWire(path: i.path, cid: i.cid.string, version: i.version, file: i.file)
        }
    }

    func driveRemove(owner: String, path: String, erase: Bool) throws -> DriveChangeWire {
        try reporting("drive rm") {
            let r = try node.driveRemove(owner: owner, path: path, erase: erase)
            return DriveChangeWire(version: r.version, erased: erase ? r.erased.map(\.string) : nil)
        }
    }

    func driveChange(owner: String, path: String, _ a: DriveActionWire) throws -> DriveChangeWire {
        try reporting("drive \(a.action)") {
            if a.action == "move" { return DriveChangeWire(version: try node.driveMove(owner: owner, from: path, to: a.to ?? "")) }
            return DriveChangeWire(version: try node.driveRestore(owner: owner, path: path, version: a.version ?? 0))
        }
    }

    func driveShareRevoke(owner: String, path: String, _ a: DriveActionWire) throws -> DriveFileWire {
        try reporting("drive \(a.action)") {
            let i: DriveFileInfo
            if a.action == "share" {
                let pub = try a.publicKey.map { p -> [UInt8] in
                    guard let k = DriveKeyWire.decode(p), k.count == 32 else { throw CLIError("--recipient: an X25519 public key, 32 bytes base64url") }
                    return k
                }
                i = try node.driveShare(owner: owner, path: path, identity: a.identity, publicKey: pub)
            } else {
                i = try node.driveRevoke(owner: owner, path: path, who: a.who ?? "", rotate: a.rotate ?? false)
            }
            return DriveFileWire(path: i.path, cid: i.cid.string, version: i.version, file: i.file)
        }
    }

    func drivePublicKey(owner: String) throws -> DriveKeyWire {
        try reporting("drive key") {
            let pub = try node.drivePublicKey(owner)
            return DriveKeyWire(owner: owner, keyId: KeyWrap.keyID(pub), publicKey: DriveKeyWire.encode(pub), wrappedKey: nil)
        }
    }

    func driveWrappedKey(owner: String, path: String, version: Int64?, keyID: String) throws -> [UInt8] {
        try reporting("drive get") { try node.driveWrappedKey(try node.driveInfo(owner: owner, path: path, version: version), keyID: keyID) }
    }

    func driveSealedGet(owner: String, path: String, version: Int64?, _ body: ([UInt8]) throws -> Void) throws {
        try reporting("drive get") { try node.cat(try node.driveInfo(owner: owner, path: path, version: version).file.content, body) }
    }
}

extension RemoteBackend {
    /// `drive/{owner}{path}`, each name percent-encoded.
    static func drivePath(_ owner: String, _ path: String) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let names = path.split(separator: "/").map { String($0).addingPercentEncoding(withAllowedCharacters: unreserved) ?? String($0) }
        return "drive/" + (owner.addingPercentEncoding(withAllowedCharacters: unreserved) ?? owner) + "/" + names.joined(separator: "/")
    }

    func drivePut(source: String, owner: String, path: String, options o: DrivePutOptions, sealing: FileSealing?) throws -> DriveFileWire {
        try reporting("drive put") {
            var query: [(String, String)] = [("mediaType", o.mediaType), ("encrypt", String(o.encrypt)), ("segmentSize", String(o.segmentSize))]
            if let e = o.expiresIn { query.append(("expiresIn", "\((e + 999) / 1000)s")) }
            if !o.tags.isEmpty { query.append(("tags", o.tags.joined(separator: ","))) }
            for r in o.recipients { query.append(("recipient", DriveKeyWire.encode(r))) }
            var file = URL(fileURLWithPath: source)
            var spooled: URL?
            defer { if let spooled { try? FileManager.default.removeItem(at: spooled) } }
            if source == "-" || sealing != nil {
                // Standard input, or the ciphertext sealed here, goes through a temporary file (0600).
                let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-drive-\(UUID().uuidString)")
                spooled = tmp
                _ = FileManager.default.createFile(atPath: tmp.path, contents: nil, attributes: [.posixPermissions: 0o600])
                let h = try FileHandle(forWritingTo: tmp)
                if let sealing {
                    let reader = EncryptingSource(sealing.cipher, source == "-" ? FileSource(descriptor: 0) : try FileSource(path: source))
                    var buffer = [UInt8](repeating: 0, count: 1 << 20)
                    while true {
                        let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                        if n == 0 { break }
                        try h.write(contentsOf: buffer[..<n])
                    }
                    query += [("sealed", "true"), ("id", sealing.encryption.id), ("nonce", DriveKeyWire.encode(sealing.encryption.nonce))]
                    query += sealing.wraps.sorted { $0.key < $1.key }.map { ("wrap", "\($0.key):\(DriveKeyWire.encode($0.value))") }
                } else {
                    try Self.copy("-", into: h)
                }
                try h.close()
                file = tmp
            }
            let (status, reply) = try exchange(method: "PUT", url: origin + "/q/v1/" + Self.drivePath(owner, path), query, contentType: o.mediaType, bodyFile: file)
            do { return try QJSON.data(DriveFileWire.self, from: reply) } catch let e as QErrorReply { throw e } catch {
                throw CLIError("unexpected reply from the daemon (\(status)) to PUT: \(error)")
            }
        }
    }

    func driveGet(owner: String, path: String, version: Int64?, into sink: FileSink) throws {
        try reporting("drive get") {
            try stream("", version.map { [("version", String($0))] } ?? [], method: "GET", url: origin + "/q/v1/" + Self.drivePath(owner, path)) { b in
                try b.withUnsafeBytes { try sink.write($0) }
            }
        }
    }

    func driveWrappedKey(owner: String, path: String, version: Int64?, keyID: String) throws -> [UInt8] {
        try reporting("drive get") {
            let k = try q(DriveKeyWire.self, "GET", Self.drivePath(owner, path), [("key", keyID)] + (version.map { [("version", String($0))] } ?? []))
            guard let w = k.wrappedKey.flatMap(DriveKeyWire.decode) else { throw CLIError("the daemon sent no wrap for \(keyID)") }
            return w
        }
    }

    func driveSealedGet(owner: String, path: String, version: Int64?, _ body: ([UInt8]) throws -> Void) throws {
        try reporting("drive get") {
            try withoutActuallyEscaping(body) { write in
                try stream("", [("sealed", "true")] + (version.map { [("version", String($0))] } ?? []), method: "GET", url: origin + "/q/v1/" + Self.drivePath(owner, path), into: write)
            }
        }
    }

    func driveList(owner: String, path: String, version: Int64?) throws -> DriveListingWire {
        try reporting("drive ls") { try q(DriveListingWire.self, "GET", Self.drivePath(owner, path), version.map { [("version", String($0))] } ?? []) }
    }

    func driveInfo(owner: String, path: String, version: Int64?) throws -> DriveFileWire {
        try reporting("drive info") { try q(DriveFileWire.self, "GET", Self.drivePath(owner, path), [("info", "")] + (version.map { [("version", String($0))] } ?? [])) }
    }

    func driveRemove(owner: String, path: String, erase: Bool) throws -> DriveChangeWire {
        try reporting("drive rm") { try q(DriveChangeWire.self, "DELETE", Self.drivePath(owner, path), erase ? [("erase", "true")] : []) }
    }

    func driveChange(owner: String, path: String, _ a: DriveActionWire) throws -> DriveChangeWire {
        try reporting("drive \(a.action)") {
            try q(DriveChangeWire.self, "POST", Self.drivePath(owner, path), [("action", a.action)], body: try JSONEncoder().encode(a), contentType: "application/json")
        }
    }

    func driveShareRevoke(owner: String, path: String, _ a: DriveActionWire) throws -> DriveFileWire {
        try reporting("drive \(a.action)") {
            try q(DriveFileWire.self, "POST", Self.drivePath(owner, path), [("action", a.action)], body: try JSONEncoder().encode(a), contentType: "application/json")
        }
    }

    func drivePublicKey(owner: String) throws -> DriveKeyWire {
        try reporting("drive key") { try q(DriveKeyWire.self, "GET", "drive-keys/" + (owner.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? owner)) }
    }
}
