import Foundation
import IPLD
import Multiformats
import Qindex
import Signing
import Testing
import TestSupport

/// IPNS records: the gateway-conformance fixtures verify (or fail) as their manifests say,
/// records made here verify and any tampering fails, and a name's record only moves forward.
@Suite struct IPNSTests {
    static let fixtureFiles = Fixtures.files(under: "gateway-conformance", suffix: ".ipns-record")
    static var now: RFC3339Time { RFC3339Time(seconds: Int64(Date().timeIntervalSince1970)) }

    static func manifest(_ file: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: file.path + ".manifest.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func fixturesAreFound() { #expect(!Self.fixtureFiles.isEmpty, "no IPNS records under \(Fixtures.root.path)/gateway-conformance") }

    /// Valid exactly when the manifest expects it; a valid record's fields are the manifest's V2
    /// data; an invalid one fails for the manifest's reason (V2 signature, or V1 differing from V2).
    @Test(arguments: fixtureFiles) func fixtureVerifiesAsItsManifestSays(file: URL) throws {
        let m = try Self.manifest(file)
        let name = try IPNSName.multihash(try #require(m["name"] as? String))
        let bytes = [UInt8](try Data(contentsOf: file))
        let expectedValid = try #require(m["expectedValid"] as? Bool)
        let record = try IPNSRecord.parse(bytes)
        let data = try #require(m["data"] as? [String: Any])
        #expect(record.value == data["Value"] as? String)
        #expect(record.validity == data["Validity"] as? String)
        #expect(Int(record.sequence) == data["Sequence"] as? Int)
        #expect(Int(record.ttl) == data["TTL"] as? Int)
        if expectedValid {
            #expect(throws: Never.self) { try record.verify(name: name, now: Self.now) }
        } else {
            do {
                try record.verify(name: name, now: Self.now)
                Issue.record("\(file.lastPathComponent) verified; its manifest says it is invalid")
            } catch let e as IPNSError {
                if m["signatureV2Valid"] as? Bool == false {
                    guard case .signatureInvalid = e else { Issue.record("expected a bad V2 signature, got \(e)"); return }
                } else if m["v1MatchesV2"] as? Bool == false {
                    guard case .v1Mismatch = e else { Issue.record("expected a V1/V2 mismatch, got \(e)"); return }
                }
            }
        }
        // Under another name the record never verifies.
        let other = Libp2pKey.name(SigningKey().publicKey).multihash
        #expect(throws: IPNSError.self) { try record.verify(name: other, now: Self.now) }
    }

    @Test func recordsMadeHereVerifyAndTamperingFails() throws {
        let key = SigningKey()
        let name = Libp2pKey.name(key.publicKey).multihash
        let value = "/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
        let r = try IPNSRecord.create(value: value, sequence: 7, validUntil: Self.now.adding(nanoseconds: 3_600_000_000_000), ttl: 60_000_000_000, key: key)
        try r.verify(name: name, now: Self.now)
        #expect(try IPNSRecord.parse(r.bytes) == r)
        #expect(r.value == value && r.sequence == 7 && r.ttl == 60_000_000_000)
        // The V2 data is canonical dag-cbor with exactly the spec's five fields.
        guard case .map(let m) = try DAGCBOR().decode(r.data) else { Issue.record("data is not a map"); return }
        #expect(Set(m.entries.map(\.key)) == ["TTL", "Value", "Sequence", "Validity", "ValidityType"])
        // Keys in the order the spec shows (length first, then bytes): where each key's text starts.
        let text = String(decoding: r.data, as: UTF8.self)
        let starts = ["TTL", "Value", "Sequence", "Validity", "ValidityType"].map { text.range(of: $0)!.lowerBound }
        #expect(starts == starts.sorted())
        // No single-bit change makes a record that verifies and says something else (the unsigned
        // signatureV1 may change: the spec never reads it).
        var accepted: [Int] = []
        for i in 0..<r.bytes.count {
            for bit in 0..<8 {
                var b = r.bytes
                b[i] ^= 1 << bit
                guard let t = try? IPNSRecord.parse(b), (try? t.verify(name: name, now: Self.now)) != nil else { continue }
                if (t.value, t.validity, t.sequence, t.ttl) != (r.value, r.validity, r.sequence, r.ttl) { accepted.append(i) }
            }
        }
        #expect(accepted.isEmpty, "bytes \(accepted) could be changed and still verify")
        // Expired, and over the size limit.
        let old = try IPNSRecord.create(value: value, sequence: 1, validUntil: RFC3339Time(seconds: 1_000_000), ttl: 0, key: key)
        #expect(throws: IPNSError.expired(old.validity)) { try old.verify(name: name, now: Self.now) }
        #expect(throws: IPNSError.tooLarge(IPNSRecord.maximumSize + 1)) { try IPNSRecord.parse([UInt8](repeating: 0, count: IPNSRecord.maximumSize + 1)) }
    }

    @Test func timesRoundTripThroughRFC3339() throws {
        var g = SeededGenerator(seed: 9)
        for _ in 0..<500 {
            let t = RFC3339Time(seconds: Int64.random(in: 0...9_000_000_000, using: &g), nanoseconds: Int64.random(in: 0..<1_000_000_000, using: &g))
            #expect(RFC3339Time(rfc3339: t.rfc3339) == t, "\(t.rfc3339)")
        }
        let f = ISO8601DateFormatter()
        let d = try #require(f.date(from: "2123-08-14T12:17:03Z"))
        #expect(RFC3339Time(rfc3339: "2123-08-14T12:17:03.694052Z") == RFC3339Time(seconds: Int64(d.timeIntervalSince1970), nanoseconds: 694_052_000))
        #expect(RFC3339Time(rfc3339: "2123-08-14T14:17:03+02:00") == RFC3339Time(seconds: Int64(d.timeIntervalSince1970)))
        #expect(RFC3339Time(rfc3339: "2024-02-29T00:00:00Z") != nil)
        for bad in ["2123-08-14", "2123-08-14T12:17:03", "2123-13-14T12:17:03Z", "2123-08-14T12:17:03.Z", "x123-08-14T12:17:03Z",
                    "2123-02-31T00:00:00Z", "2023-02-29T00:00:00Z", "2123-08-14T12:17:60Z", "2123-08-14t12:17:03Z", "2123-08-14T12:17:03z"] {
            #expect(RFC3339Time(rfc3339: bad) == nil, "\(bad)")
        }
    }

    /// Published records count up; an older or forged record never replaces the held one.
    @Test func aNameOnlyMovesForward() async throws {
        let replica = try Replica()
        let names = IPNSNames(index: replica.index)
        let key = SigningKey()
        let a = "/ipfs/" + (try replica.target("a")).string, b = "/ipfs/" + (try replica.target("b")).string
        let first = try names.publish(value: a, key: key, lifetime: 3_600_000_000_000, ttl: 1)
        let second = try names.publish(value: b, key: key, lifetime: 3_600_000_000_000, ttl: 1)
        #expect(first.record.sequence == 0 && second.record.sequence == 1)
        #expect(try names.verifiedRecord(second.name).value == b)
        // The old record verifies, but is not newer: kept out.
        #expect(try names.importRecord(first.record.bytes, name: first.name) == false)
        #expect(try names.verifiedRecord(second.name).value == b)
        // A record of another key under this name is refused, and so is a bad value.
        let forged = try IPNSRecord.create(value: a, sequence: 9, validUntil: Self.now.adding(nanoseconds: 3_600_000_000_000), ttl: 1, key: SigningKey())
        #expect(throws: IPNSError.self) { try names.importRecord(forged.bytes, name: second.name) }
        #expect(throws: QindexError.self) { try names.publish(value: "/ipfs/not-a-cid", key: key, lifetime: 3_600_000_000_000, ttl: 1) }
        // A sequence below the held one is a conflict; so is the same one valid for less time
        // (a republished pointer version), and a record valid for no time at all.
        func isConflict(_ body: () throws -> Any) -> Bool {
            do { _ = try body(); return false } catch QindexError.conflict { return true } catch { return false }
        }
        #expect(isConflict { try names.publish(value: a, key: key, lifetime: 3_600_000_000_000, ttl: 1, sequence: 0) })
        #expect(isConflict { try names.publish(value: b, key: key, lifetime: 2_000_000_000, ttl: 1, sequence: 1) })
        #expect(throws: QindexError.self) { try names.publish(value: b, key: key, lifetime: 0, ttl: 1) }
        #expect(throws: QindexError.self) { try names.publish(value: b, key: key, lifetime: 999_999_999, ttl: 1) }
        let longer = try names.publish(value: b, key: key, lifetime: 7_200_000_000_000, ttl: 1, sequence: 1)
        #expect(try names.verifiedRecord(second.name) == longer.record, "the same sequence valid for longer replaces the held record")
        // A different value under a sequence already held: a conflict, however long it is valid.
        #expect(isConflict { try names.publish(value: a, key: key, lifetime: 9_000_000_000_000, ttl: 1, sequence: 1) })
        #expect(try names.verifiedRecord(second.name).value == b)
        // It survives a reopen.
        try replica.reopen()
        #expect(try IPNSNames(index: replica.index).verifiedRecord(second.name).sequence == 1)
    }

    /// The fixtures' records import when valid and are refused (nothing stored) when not.
    @Test func fixtureRecordsImportWhenValid() throws {
        let replica = try Replica()
        let names = IPNSNames(index: replica.index)
        for file in Self.fixtureFiles {
            let m = try Self.manifest(file)
            let name = try IPNSName.multihash(try #require(m["name"] as? String))
            let bytes = [UInt8](try Data(contentsOf: file))
            if m["expectedValid"] as? Bool == true {
                _ = try names.importRecord(bytes, name: name)
                #expect(try names.verifiedRecord(name).bytes == bytes || names.verifiedRecord(name).sequence > IPNSRecord.parse(bytes).sequence)
            } else {
                let before = try names.record(name)
                #expect(throws: IPNSError.self) { try names.importRecord(bytes, name: name) }
                #expect(try names.record(name) == before, "a refused record changed what is held")
            }
        }
    }
}
