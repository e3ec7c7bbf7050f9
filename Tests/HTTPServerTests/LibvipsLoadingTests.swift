import Crypto
import Foundation
import QpiC
import Testing

/// libvips is loaded when media is first worked on, not when the daemon starts (Docs/media.md):
/// a daemon that has served other requests maps no libvips; its first picture upload loads it,
/// and the upload works. Fails if anything makes `qstore` link libvips again (a direct call to it
/// outside Sources/CVips) or if loading it on demand breaks.
@Suite struct LibvipsLoadingTests {
    @Test func libvipsIsLoadedByTheFirstMediaRequestOnly() throws {
        let d = try ChildDaemon()
        defer { d.discard() }
        /// The daemon's mappings (read to the end: /proc files have no size to read up to).
        func maps() -> String {
            String(decoding: FileHandle(forReadingAtPath: "/proc/\(d.process.processIdentifier)/maps")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
        }
        func mapped() -> Bool { maps().contains("/libvips.so") }
        func json(_ path: String, _ body: [String: Any]) throws -> RawConnection.Response {
            try d.request("POST", path, api: true, headers: ["Content-Type": "application/json"],
                          body: [UInt8](try JSONSerialization.data(withJSONObject: body)))
        }
        #expect(try d.request("GET", "/health", api: false).status == 200)
        #expect(try d.request("POST", "/api/v0/version", api: true).status == 200)
        #expect(!mapped(), "libvips is mapped before any media request")

        let key = Curve25519.Signing.PrivateKey()
        #expect(try json("/q/v1/identities", ["squidId": "alice", "key": key.publicKey.rawRepresentation.base64EncodedString()]).status == 201)
        #expect(try json("/q/v1/grants", ["subject": "alice", "scopes": ["drive:*"]]).status == 201)
        let t = try json("/q/v1/tokens", ["scopes": ["drive:*"], "identity": "alice"])
        let secret = try #require(((try JSONSerialization.jsonObject(with: Data(t.body)) as? [String: Any])?["data"] as? [String: Any])?["token"] as? String)
        #expect(!mapped())

        let up = try d.request("POST", "/q/v1/media?profile=public", api: true, bearer: secret, body: try MediaProcessor.testImage(width: 800, height: 600))
        #expect(up.status == 201, "\(up.text)")  // with its thumbnails made by libvips
        #expect(mapped(), "libvips is not mapped after a picture was uploaded")
    }
}
