import Access
import Foundation
import Testing
import TestSupport

/// Qdrive over HTTP with callers other than the admin: an identity's token writes its own drive
/// only, reads its files (whole and by Range), is refused another's file until it is shared with
/// it (drive:share to share), loses it again when revoked; an erased file answers QDRIVE_NO_KEY;
/// the storage quota answers 507 QDRIVE_STORAGE_FULL.
@Suite struct DriveHTTPTests {
    @Test func identitiesOwnShareAndAreRefused() async throws {
        try await DaemonHarness.run(configure: { c in
            var a = AccessConfiguration()
            a.storageQuota = 600_000
            try c.setSection(a)
        }) { h in
            _ = try await h.register("alice", scopes: [])
            _ = try await h.register("bob", scopes: [])
            let (alice, _) = try await h.token(["drive:*"], identity: "alice")
            let (bob, _) = try await h.token(["drive:read", "drive:write"], identity: "bob")
            let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 8) }
            // call(path, bearer) reads; call(path, method, bearer) otherwise.
            func call(_ path: String, _ a: String, _ b: String? = nil, body: [UInt8]? = nil, headers: [String: String] = [:]) async throws -> DaemonHarness.Reply {
                let (method, bearer) = b.map { (a, $0) } ?? ("GET", a)
                return try await h.request(path, method: method, api: true, headers: headers.merging(["Authorization": "Bearer " + bearer]) { a, _ in a }, body: body, authorized: false)
            }
            let put = try await call("/q/v1/drive/alice/photos/p%201.bin?mediaType=image/x-test", "PUT", alice, body: data)
            #expect(put.status == 201, "\(put.text)")
            #expect(try await call("/q/v1/drive/bob/x.bin", "PUT", alice, body: [1]).status == 403)
            let whole = try await call("/q/v1/drive/alice/photos/p%201.bin", alice)
            #expect(whole.status == 200 && whole.body == data && whole.header("content-type") == "image/x-test")
            let part = try await call("/q/v1/drive/alice/photos/p%201.bin", alice, headers: ["Range": "bytes=262140-262150"])
            #expect(part.status == 206 && part.body == Array(data[262140...262150]), "\(part.status)")
            let listing = try await call("/q/v1/drive/alice/photos", alice)
            #expect(listing.status == 200 && listing.text.contains("p 1.bin"), "\(listing.text)")
            // Bob: not shared with him; shared, he reads it; revoked, not again.
            let refused = try await call("/q/v1/drive/alice/photos/p%201.bin", bob)
            #expect(refused.status == 403 && refused.text.contains("QDRIVE_FORBIDDEN"), "\(refused.text)")
            #expect(try await call("/q/v1/drive/alice/photos", bob).status == 403)
            let headers = ["Content-Type": "application/json"]
            let bobCannotShare = try await call("/q/v1/drive/bob/any?action=share", "POST", bob, body: Array(#"{"identity": "alice"}"#.utf8), headers: headers)
            #expect(bobCannotShare.status == 403, "\(bobCannotShare.text)")
            let share = try await call("/q/v1/drive/alice/photos/p%201.bin?action=share", "POST", alice, body: Array(#"{"identity": "bob"}"#.utf8), headers: headers)
            #expect(share.status == 200, "\(share.text)")
            let shared = try await call("/q/v1/drive/alice/photos/p%201.bin", bob)
            #expect(shared.status == 200 && shared.body == data)
            let revoke = try await call("/q/v1/drive/alice/photos/p%201.bin?action=revoke", "POST", alice, body: Array(#"{"who": "bob"}"#.utf8), headers: headers)
            #expect(revoke.status == 200, "\(revoke.text)")
            #expect(try await call("/q/v1/drive/alice/photos/p%201.bin", bob).status == 403)
            // Over the quota: 507 with its code; nothing changed.
            let over = try await call("/q/v1/drive/alice/big.bin", "PUT", alice, body: data + data)
            #expect(over.status == 507 && over.text.contains("QDRIVE_STORAGE_FULL"), "\(over.text)")
            // Erased: the path is gone; the file, restored from history, opens no more.
            let info = try await call("/q/v1/drive/alice/photos/p%201.bin?info", alice)
            let version = try #require((try info.json()["data"] as? [String: Any])?["version"] as? Int)
            #expect(try await call("/q/v1/drive/alice/photos?erase=true", "DELETE", alice).status == 200)
            #expect(try await call("/q/v1/drive/alice/photos/p%201.bin", alice).status == 404)
            let back = try await call("/q/v1/drive/alice/photos?action=restore", "POST", alice, body: Array(#"{"version": \#(version)}"#.utf8), headers: headers)
            #expect(back.status == 200, "\(back.text)")
            let gone = try await call("/q/v1/drive/alice/photos/p%201.bin", alice)
            #expect(gone.status == 409 && gone.text.contains("QDRIVE_NO_KEY"), "\(gone.text)")
            // The drive's pointer is Qdrive's alone: not moved, read or listed through the index API
            // but by the admin.
            let generic = try await h.json("/q/v1/index/drive/alice", ["target": "bafkqaaa"], method: "PUT")
            #expect(generic.status == 400, "\(generic.text)")
            let (reader, _) = try await h.token(["read"], identity: "bob")
            #expect(try await call("/q/v1/index/drive/alice", reader).status == 400)
            #expect(try await call("/q/v1/index/drive/alice/history", reader).status == 400)
            let listed = try await call("/q/v1/index", reader)
            #expect(listed.status == 200 && !listed.text.contains("\"drive\""), "\(listed.text)")
            #expect(try await h.request("/q/v1/index/drive/alice", api: true).status == 200)
            // Nor named anywhere a reader lists (the gateway serves any CID it is given, so the
            // pointer's CID is the way into alice's files): not by pin/ls, pin/verify or the
            // event stream; the admin sees it in each.
            let pins = try await h.rpc("pin/ls?names=true")
            let keys = try #require(try pins.json()["Keys"] as? [String: [String: Any]], "\(pins.text)")
            let pointer = try #require(keys.first { $0.value["Name"] as? String == "qindex:drive/alice" }?.key, "\(pins.text)")
            for (path, method) in [("/api/v0/pin/ls?names=true", "POST"), ("/api/v0/pin/ls?names=true&type=direct", "POST"),
                                   ("/api/v0/pin/verify?verbose=true", "POST"), ("/q/v1/events?follow=false&since=0", "GET")] {
                let asReader = try await call(path, method, reader)
                #expect(asReader.status == 200 && !asReader.text.contains(pointer) && !asReader.text.contains("\"type\":\"drive\""), "reader: \(path): \(asReader.text)")
                let asAdmin = try await h.request(path, method: method, api: true)
                #expect(asAdmin.status == 200 && asAdmin.text.contains(pointer), "admin: \(path): \(asAdmin.text)")
            }
            let through = try await call("/api/v0/pin/ls?arg=\(pointer)", "POST", reader)
            #expect(through.status != 200, "\(through.text)")
        }
    }

    /// A file shared, then overwritten (a new key, shared with nobody), then revoked: the revoke
    /// destroys the recipient's wrap of the earlier version's key too, so `?version=` of that
    /// version no longer opens for them (it answered 404 "not a recipient" and left it readable).
    @Test func aRevokeReachesTheVersionsBeforeAnOverwrite() async throws {
        try await DaemonHarness.run { h in
            _ = try await h.register("alice", scopes: [])
            _ = try await h.register("bob", scopes: [])
            let (alice, _) = try await h.token(["drive:*"], identity: "alice")
            let (bob, _) = try await h.token(["drive:read"], identity: "bob")
            func call(_ path: String, _ method: String, _ bearer: String, body: [UInt8]? = nil) async throws -> DaemonHarness.Reply {
                try await h.request(path, method: method, api: true, headers: ["Authorization": "Bearer " + bearer, "Content-Type": "application/json"],
                                    body: body, authorized: false)
            }
            #expect(try await call("/q/v1/drive/alice/s.txt", "PUT", alice, body: Array("secret".utf8)).status == 201)
            let shared = try await call("/q/v1/drive/alice/s.txt?action=share", "POST", alice, body: Array(#"{"identity": "bob"}"#.utf8))
            let version = try #require((try shared.json()["data"] as? [String: Any])?["version"] as? Int, "\(shared.text)")
            #expect(try await call("/q/v1/drive/alice/s.txt", "PUT", alice, body: Array("secret v2".utf8)).status == 201)
            #expect(try await call("/q/v1/drive/alice/s.txt?version=\(version)", "GET", bob).body == Array("secret".utf8))
            let revoked = try await call("/q/v1/drive/alice/s.txt?action=revoke", "POST", alice, body: Array(#"{"who": "bob"}"#.utf8))
            #expect(revoked.status == 200, "\(revoked.text)")
            let old = try await call("/q/v1/drive/alice/s.txt?version=\(version)", "GET", bob)
            #expect(old.status != 200, "the version shared before the overwrite still opens for bob: \(old.status)")
            #expect(try await call("/q/v1/drive/alice/s.txt?version=\(version)", "GET", alice).body == Array("secret".utf8))
            let again = try await call("/q/v1/drive/alice/s.txt?action=revoke", "POST", alice, body: Array(#"{"who": "bob"}"#.utf8))
            #expect(again.status == 404, "\(again.text)")
        }
    }

    /// Client-held keys with the `qstore` binary, through a daemon and on the repository itself:
    /// `drive put --recipient` seals before the upload (the daemon stores the bytes it was sent:
    /// `?sealed=true` gives them back, and they open with the client's key only); `drive get
    /// --identity` decrypts on the client; the node cannot read the file, nor can another key; a
    /// sealed upload naming another file's key id, a ciphertext no plaintext seals to, and
    /// malformed wraps are refused with QDRIVE_* codes.
    @Test func clientHeldFilesAreSealedAndOpenedOnTheClient() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-drive-client-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try ChildDaemon(directory: dir + "/d")
        defer { daemon.stop() }
        func qstore(_ args: [String], _ repository: String) async throws -> (Int32, String) {
            try await ThirdPartyClientTests.runAside(ChildDaemon.binary, args, environment: ["QSTORE_PATH": repository, "HOME": dir])
        }
        let offline = dir + "/offline"
        #expect(try await qstore(["init"], offline).0 == 0)
        #expect(try await qstore(["drive", "keygen", "-o", dir + "/me.key"], offline).0 == 0)
        #expect(try await qstore(["drive", "keygen", "-o", dir + "/other.key"], offline).0 == 0)
        #expect(try await qstore(["drive", "keygen", "-o", dir + "/me.key"], offline).0 != 0, "a key is not written over")
        let keyText = try String(contentsOfFile: dir + "/me.key", encoding: .utf8)
        let pub = try #require(keyText.split(separator: "\n").first { $0.hasPrefix("# public key: ") }).dropFirst("# public key: ".count)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/me.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // Five segments and a bit at the smallest segment size.
        let data = Data((0..<(5 * 65536 + 100)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })
        try data.write(to: URL(fileURLWithPath: dir + "/plain.bin"))
        for repository in [daemon.repository, offline] {
            let put = try await qstore(["drive", "put", dir + "/plain.bin", "/c.bin", "--recipient=\(pub)", "--segment-size", "65536", "--json"], repository)
            #expect(put.0 == 0, "\(put.1)")
            let got = try await qstore(["drive", "get", "/c.bin", "--identity", dir + "/me.key", "-o", dir + "/out.bin"], repository)
            #expect(got.0 == 0 && (try? Data(contentsOf: URL(fileURLWithPath: dir + "/out.bin"))) == data, "\(got.1)")
            let nodeRead = try await qstore(["drive", "get", "/c.bin"], repository)
            #expect(nodeRead.0 != 0 && nodeRead.1.contains("no key the node holds"), "\(nodeRead.1)")
            let otherRead = try await qstore(["drive", "get", "/c.bin", "--identity", dir + "/other.key"], repository)
            #expect(otherRead.0 != 0 && otherRead.1.contains("not sealed for the key"), "\(otherRead.1)")
        }
        // What the daemon stored is what the client sent: ciphertext, one tag per segment.
        let sealed = try daemon.request("GET", "/q/v1/drive/admin/c.bin?sealed=true", api: true)
        #expect(sealed.status == 200 && sealed.body.count == data.count + 6 * 16 && !Data(sealed.body).contains(data.prefix(64)))
        let info = try daemon.request("GET", "/q/v1/drive/admin/c.bin?info", api: true)
        let e = try #require(((try JSONSerialization.jsonObject(with: Data(info.body)) as? [String: Any])?["data"] as? [String: Any])?["encryption"] as? [String: Any])
        let (id, nonce) = (try #require(e["id"] as? String), try #require(e["nonce"] as? String))
        let wrap = "0123456789abcdef:" + String(repeating: "A", count: 106) + "A"
        func sealedPut(_ path: String, _ query: String, body: [UInt8]) throws -> RawConnection.Response {
            try daemon.request("PUT", "/q/v1/drive/admin/\(path)?sealed=true&segmentSize=65536&\(query)", api: true, body: body)
        }
        // The same bytes again under the file's own key id: refused (erasing one would erase the other).
        let reused = try sealedPut("again.bin", "id=\(id)&nonce=\(nonce)&wrap=\(wrap)", body: sealed.body)
        #expect(reused.status == 409 && String(decoding: reused.body, as: UTF8.self).contains("QDRIVE_CONFLICT"), "\(reused.status)")
        let fresh = "id=00112233445566778899aabbccddeeff&nonce=\(nonce)"
        for (what, query, body) in [("no wrap", fresh, sealed.body), ("short wrap", fresh + "&wrap=0123456789abcdef:AAAA", sealed.body),
                                    ("no nonce", "id=00112233445566778899aabbccddeeff&wrap=\(wrap)", sealed.body),
                                    ("15 bytes", fresh + "&wrap=\(wrap)", Array(repeating: 1, count: 15)),
                                    ("an empty segment after a full one", fresh + "&wrap=\(wrap)", Array(sealed.body.prefix(65536 + 32)))] {
            let r = try sealedPut("bad.bin", query, body: body)
            #expect(r.status == 400 && String(decoding: r.body, as: UTF8.self).contains("QDRIVE_INVALID"), "\(what): \(r.status)")
        }
        #expect(try daemon.request("GET", "/q/v1/drive/admin/bad.bin?info", api: true).status == 404)
    }
}
