import ArgumentParser
import CAR
import Foundation
import Node
import QAPI
import QpiC

/// `qstore media`: pictures and videos (QpiC) in the owner's drive, with privacy profiles and variants.
struct MediaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "media", abstract: "QpiC media: upload (with a privacy profile), info, variant.",
        discussion: """
            An upload is told by its content (JPEG, PNG, GIF, WebP, HEIC/AVIF where libvips reads them; MP4, MOV, WebM \
            described, not transcoded). Its metadata is read (size, orientation, colour space, EXIF, GPS); the privacy \
            profile decides what the `public` variant keeps — public: no location, serial numbers, owner, author or maker \
            notes; private: everything; anonymous: nothing, and no original kept. The original is kept encrypted in the \
            owner's drive under /media/<id>/; variants (public, thumb-256, web-1280; any thumb-N or web-N, -webp for WebP, \
            made on first request) are plain files, served by CID like any file. See Docs/media.md.
            """,
        subcommands: [Upload.self, Info.self, Variant.self])

    /// `--owner`, else `$QSTORE_DRIVE_OWNER` (as `qstore drive`), else the daemon's default (admin).
    static func owner(_ given: String?) -> String? {
        given ?? ProcessInfo.processInfo.environment["QSTORE_DRIVE_OWNER"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static func show(_ a: MediaAssetWire, json: Bool) throws {
        if json { try Output.json(a); return }
        print("\(a.id)\t\(a.mediaType)\t\(a.width)×\(a.height)\(a.duration.map { "\t\($0) s" } ?? "")\tprofile \(a.profile)\(a.gps.map { "\tgps \($0.lat),\($0.lon)" } ?? "")")
        for v in a.variants { print("  \(v.name)\t\(v.width)×\(v.height)\t\(v.mediaType)\t\(v.content)") }
    }

    struct Upload: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload a picture or video; prints the asset (its id first).")
        @Argument(help: "The file, or - for standard input.") var file: String
        @Option(help: "The privacy profile: public, private, anonymous or one configured (default: qpic.defaultProfile, public).") var profile: String?
        @Option(help: "Whose drive (the admin token only; default $QSTORE_DRIVE_OWNER, else admin).") var owner: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let bytes: [UInt8]
            if file == "-" { bytes = Array(FileHandle.standardInput.readDataToEndOfFile()) } else {
                guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("media upload: cannot read \(file): no such file, or not readable") }
                bytes = Array(data)
            }
            try MediaCommand.show(try backend(purpose: "media upload").mediaUpload(bytes, owner: MediaCommand.owner(owner), profile: profile), json: json)
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An asset: format, size, metadata, GPS, variants.")
        @Argument var id: String
        @Option(help: "Whose drive (the admin token only; default $QSTORE_DRIVE_OWNER, else admin).") var owner: String?
        @Flag(help: "Print JSON.") var json = false
        func run() throws { try MediaCommand.show(try backend(purpose: "media info").mediaInfo(id, owner: MediaCommand.owner(owner)), json: json) }
    }

    struct Variant: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A variant's bytes to standard output (or -o FILE): public, thumb-N, web-N, …-webp.")
        @Argument var id: String
        @Argument var name: String
        @Option(help: "Whose drive (the admin token only; default $QSTORE_DRIVE_OWNER, else admin).") var owner: String?
        @Option(name: .shortAndLong, help: "Write to this file.") var output: String?
        func run() throws {
            let b = try backend(purpose: "media variant")
            try Output.toFile(output) { sink in try b.mediaVariant(id, name: name, owner: MediaCommand.owner(owner), into: sink) }
        }
    }
}

extension LocalBackend {
    func mediaUpload(_ bytes: [UInt8], owner: String?, profile: String?) throws -> MediaAssetWire {
        try reporting("media upload") { MediaAssetWire(try node.mediaUpload(owner: owner ?? "admin", bytes: bytes, profile: profile)) }
    }
    func mediaInfo(_ id: String, owner: String?) throws -> MediaAssetWire {
        try reporting("media info") { MediaAssetWire(try node.mediaAsset(owner: owner ?? "admin", id: id)) }
    }
    func mediaVariant(_ id: String, name: String, owner: String?, into sink: FileSink) throws {
        try reporting("media variant") {
            let o = owner ?? "admin"
            let (_, file) = try node.mediaVariant(owner: o, id: id, name: name)
            try node.driveRead(file, reader: o) { b in try b.withUnsafeBytes { try sink.write($0) } }
        }
    }
}

extension RemoteBackend {
    func mediaUpload(_ bytes: [UInt8], owner: String?, profile: String?) throws -> MediaAssetWire {
        try reporting("media upload") {
            try q(MediaAssetWire.self, "POST", "media", (profile.map { [("profile", $0)] } ?? []) + (owner.map { [("owner", $0)] } ?? []), body: Data(bytes),
                  contentType: "application/octet-stream")
        }
    }
    func mediaInfo(_ id: String, owner: String?) throws -> MediaAssetWire {
        try reporting("media info") { try q(MediaAssetWire.self, "GET", "media/" + id, owner.map { [("owner", $0)] } ?? []) }
    }
    func mediaVariant(_ id: String, name: String, owner: String?, into sink: FileSink) throws {
        try reporting("media variant") {
            try stream("", [("variant", name)] + (owner.map { [("owner", $0)] } ?? []), method: "GET", url: origin + "/q/v1/media/" + id) { b in
                try b.withUnsafeBytes { try sink.write($0) }
            }
        }
    }
}
