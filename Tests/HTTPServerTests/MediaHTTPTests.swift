import Foundation
import QpiC
import Testing
import TestSupport

/// QpiC over HTTP: a picture tagged by exiftool with a location, serial numbers and an author,
/// uploaded by an identity's token under the public profile — the asset (read only by its owner)
/// keeps the original's metadata and location, the public variant served by the gateway by CID
/// has none of it, thumbnails have their size, a variant asked for the first time is made and
/// announced on the event stream; another identity gets nothing; what is not media is 400.
@Suite struct MediaHTTPTests {
    @Test func uploadProfilesVariantsAndTheGateway() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/exiftool") else {
            Issue.record("exiftool (libimage-exiftool-perl) is not installed: make test installs it")
            return
        }
        let dir = TemporaryDirectory()
        let f = dir.path + "/tagged.jpg"
        try Data(try MediaProcessor.testImage(width: 800, height: 600)).write(to: URL(fileURLWithPath: f))
        let (rc, out) = try await ThirdPartyClientTests.runAside("/usr/bin/exiftool", [
            "-overwrite_original", "-GPSLatitude=48.8584", "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E",
            "-SerialNumber=SN-42", "-Artist=Alice", "-Make=Nikon", f,
        ])
        try #require(rc == 0, "\(out)")
        let photo = Array(try Data(contentsOf: URL(fileURLWithPath: f)))
        try await DaemonHarness.run { h in
            _ = try await h.register("alice", scopes: [])
            _ = try await h.register("bob", scopes: [])
            let (alice, _) = try await h.token(["drive:*"], identity: "alice")
            let (bob, _) = try await h.token(["drive:read"], identity: "bob")
            let (aliceReader, _) = try await h.token(["drive:read"], identity: "alice")
            func call(_ path: String, _ bearer: String, method: String = "GET", body: [UInt8]? = nil) async throws -> DaemonHarness.Reply {
                try await h.request(path, method: method, api: true, headers: ["Authorization": "Bearer " + bearer], body: body, authorized: false)
            }
            let up = try await call("/q/v1/media?profile=public", alice, method: "POST", body: photo)
            #expect(up.status == 201, "\(up.text)")
            let asset = try #require(try up.json()["data"] as? [String: Any])
            // The whole upload is one change of the drive: one version.
            let pointer = try await h.request("/q/v1/index/drive/alice", api: true)
            #expect((try pointer.json()["data"] as? [String: Any])?["version"] as? Int == 1, "\(pointer.text)")
            let id = try #require(asset["id"] as? String)
            #expect(asset["width"] as? Int == 800 && asset["height"] as? Int == 600 && asset["format"] as? String == "jpeg")
            let gps = try #require(asset["gps"] as? [String: Any])
            #expect(abs((gps["lat"] as? Double ?? 0) - 48.8584) < 1e-6 && abs((gps["lon"] as? Double ?? 0) - 2.2945) < 1e-6)
            let variants = try #require(asset["variants"] as? [[String: Any]])
            #expect(Set(variants.compactMap { $0["name"] as? String }) == ["public", "thumb-256", "web-1280"])
            let thumb = try #require(variants.first { $0["name"] as? String == "thumb-256" })
            #expect(thumb["width"] as? Int == 256 && thumb["height"] as? Int == 192)

            // The public variant through the gateway, by CID: no location, serial or author.
            let pub = try #require(variants.first { $0["name"] as? String == "public" }?["content"] as? String)
            let served = try await h.request("/ipfs/\(pub)")
            #expect(served.status == 200)
            let g = dir.path + "/public.jpg"
            try Data(served.body).write(to: URL(fileURLWithPath: g))
            let (_, tags) = try await ThirdPartyClientTests.runAside("/usr/bin/exiftool", ["-j", g])
            for t in ["GPSLatitude", "GPSLongitude", "SerialNumber", "Artist"] { #expect(!tags.contains("\"\(t)\""), "public variant kept \(t)") }
            #expect(tags.contains("Nikon"))

            // A variant not made yet is not made for a reader (it writes the drive)...
            #expect(try await call("/q/v1/media/\(id)?variant=thumb-64-webp", aliceReader).status == 403)
            // ...but for a writer: made, kept, announced; then readers get it too.
            let small = try await call("/q/v1/media/\(id)?variant=thumb-64-webp", alice)
            #expect(small.status == 200 && MediaFormat.detect(small.body) == .webp && small.header("content-type") == "image/webp")
            #expect(try await call("/q/v1/media/\(id)?variant=thumb-64-webp", aliceReader).status == 200)
            let again = try await call("/q/v1/media/\(id)", alice)
            #expect(again.text.contains("thumb-64-webp"))
            // Variants asked for the first time at once all stay in the asset.
            let names = ["thumb-100", "thumb-120", "thumb-140-webp", "web-300"]
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in names { group.addTask { try await call("/q/v1/media/\(id)?variant=\(n)", alice).status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == [200, 200, 200, 200])
            let all = try await call("/q/v1/media/\(id)", alice)
            let listed = Set(((try all.json()["data"] as? [String: Any])?["variants"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
            #expect(listed.isSuperset(of: names), "\(listed)")
            let events = try await h.request("/q/v1/events?follow=false&since=0&topics=q.qpic.*", api: true)
            #expect(events.text.contains("q.qpic.asset.transcoded.v1") && events.text.contains("thumb-64-webp"), "\(events.text.prefix(400))")

            // Bob sees nothing of alice's media; what is not media is refused.
            #expect(try await call("/q/v1/media/\(id)", bob).status == 404)
            #expect(try await call("/q/v1/media/\(id)?owner=alice", bob).status == 403)
            let notMedia = try await call("/q/v1/media", alice, method: "POST", body: Array("just text".utf8))
            #expect(notMedia.status == 400 && notMedia.text.contains("QDRIVE_INVALID"), "\(notMedia.text)")
            #expect(try await call("/q/v1/media/\(id)?variant=huge-1", alice).status == 400)
        }
    }
}
