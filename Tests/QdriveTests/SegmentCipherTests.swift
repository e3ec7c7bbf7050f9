@preconcurrency import Crypto
import Foundation
import Qdrive
import Testing

/// The STREAM construction: round trips at the sizes around segment borders; every kind of
/// tampering (a flipped byte, a dropped, swapped or repeated segment, a cut, an extension, another
/// key) fails with `DriveError.corrupt`; ranges decrypt only their segments and give the same
/// bytes; HPKE wraps open only with their recipient's key.
@Suite struct SegmentCipherTests {
    static let segment = SegmentCipher.minimumSegment

    static func plaintext(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) } }

    static func encrypt(_ plain: [UInt8], _ cipher: SegmentCipher) throws -> [UInt8] {
        var at = 0
        var reader = EncryptingReader(cipher: cipher) { buffer in
            let n = min(buffer.count, plain.count - at)
            plain.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + at, byteCount: n) }
            at += n
            return n
        }
        var out: [UInt8] = []
        while true {
            let s = try reader.nextSegment()
            if s.isEmpty { break }
            out += s
        }
        return out
    }

    static func decrypt(_ sealed: [UInt8], _ cipher: SegmentCipher, size: UInt64, from: UInt64 = 0, length: UInt64? = nil, pieces: Int = 7777) throws -> [UInt8] {
        var out: [UInt8] = []
        let length = length ?? size - from
        var w = DecryptingWriter(cipher: cipher, size: size, from: from, length: length) { out += $0 }
        var i = 0
        while i < sealed.count {
            try w.write(Array(sealed[i..<min(i + pieces, sealed.count)]))
            i += pieces
        }
        try w.finish()
        return out
    }

    static func cipher(_ key: [UInt8] = KeyWrap.randomKey(), nonce: [UInt8] = Array(repeating: 7, count: 16)) throws -> SegmentCipher {
        try SegmentCipher(fileKey: key, nonce: nonce, segmentSize: segment)
    }

    @Test func roundTripsAroundSegmentBorders() throws {
        let c = try Self.cipher()
        for n in [0, 1, Self.segment - 1, Self.segment, Self.segment + 1, 3 * Self.segment, 3 * Self.segment + 5] {
            let plain = Self.plaintext(n)
            let sealed = try Self.encrypt(plain, c)
            #expect(UInt64(sealed.count) == c.ciphertextSize(UInt64(n)), "\(n)")
            #expect(try Self.decrypt(sealed, c, size: UInt64(n)) == plain, "\(n)")
        }
    }

    /// A sealed upload's size says its plaintext's; sizes no plaintext seals to are refused.
    @Test func ciphertextSizesMapBackToPlaintextSizes() throws {
        let c = try Self.cipher()
        let s = Self.segment + SegmentCipher.tagSize
        for n in [0, 1, Self.segment - 1, Self.segment, Self.segment + 1, 3 * Self.segment, 3 * Self.segment + 17] {
            #expect(c.plaintextSize(c.ciphertextSize(UInt64(n))) == UInt64(n), "\(n)")
            #expect(try Self.encrypt(Self.plaintext(n), c).count == Int(c.ciphertextSize(UInt64(n))))
        }
        for bad in [0, 15, s + 15, s + 16, 2 * s + 3] {
            #expect(c.plaintextSize(UInt64(bad)) == nil, "\(bad)")
        }
    }

    /// Sealing as a client does: the wraps open with their keys and name them; what a client
    /// sends is checked for form.
    @Test func fileSealingWrapsAndIsChecked() throws {
        let a = Curve25519.KeyAgreement.PrivateKey(), b = Curve25519.KeyAgreement.PrivateKey()
        var sealing = try FileSealing(segmentSize: Self.segment)
        for k in [a, b] { try sealing.wrap(for: Array(k.publicKey.rawRepresentation)) }
        #expect(sealing.encryption.recipients.map(\.identity) == [a, b].map { "key:" + KeyWrap.keyID(Array($0.publicKey.rawRepresentation)) })
        for k in [a, b] {
            let id = KeyWrap.keyID(Array(k.publicKey.rawRepresentation))
            #expect(try KeyWrap.unwrap(try #require(sealing.wraps[id]), with: k, id: sealing.encryption.id) == sealing.fileKey)
        }
        try FileSealing.check(sealing.encryption, wraps: sealing.wraps)
        var e = sealing.encryption
        let first = e.recipients[0].keyId
        #expect(throws: DriveError.self) { try FileSealing.check(e, wraps: sealing.wraps.filter { $0.key != first }) }
        #expect(throws: DriveError.self) { try FileSealing.check(e, wraps: sealing.wraps.merging(["00000000000000ff": Array(repeating: 0, count: 80)]) { a, _ in a }) }
        e.recipients[0].identity = "alice"
        #expect(throws: DriveError.self) { try FileSealing.check(e, wraps: sealing.wraps) }
        e = sealing.encryption
        e.id = "XYZ"
        #expect(throws: DriveError.self) { try FileSealing.check(e, wraps: sealing.wraps) }
    }

    @Test func tamperingIsDetected() throws {
        let c = try Self.cipher()
        let n = 3 * Self.segment + 100
        let sealed = try Self.encrypt(Self.plaintext(n), c)
        let s = Self.segment + SegmentCipher.tagSize
        var flipped = sealed
        flipped[s + 10] ^= 1
        let dropped = Array(sealed[..<s] + sealed[(2 * s)...])
        let swapped = Array(sealed[s..<(2 * s)] + sealed[..<s] + sealed[(2 * s)...])
        let cutAtBorder = Array(sealed[..<(3 * s)])
        let cutInside = Array(sealed[..<(sealed.count - 5)])
        let other = try Self.cipher()
        let extended = try Self.encrypt(Self.plaintext(n + Self.segment), c)
        for (what, bytes, size, key) in [("flipped", flipped, n, c), ("dropped", dropped, n, c), ("swapped", swapped, n, c),
                                         ("cut at a border", cutAtBorder, n, c), ("cut inside", cutInside, n, c), ("another key", sealed, n, other),
                                         ("extended", extended, n, c), ("declared shorter", sealed, n - 100, c),
                                         // Cut at a border with the size rewritten to match: only the final-segment flag tells.
                                         ("cut, size rewritten", Array(sealed[..<s]), Self.segment, c)] {
            #expect(throws: DriveError.self, "\(what)") { _ = try Self.decrypt(bytes, key, size: UInt64(size)) }
        }
        // An empty file is one sealed segment: dropping it is detected too.
        #expect(throws: DriveError.self) { _ = try Self.decrypt([], c, size: 0) }
    }

    @Test func rangesDecryptTheirSegmentsOnly() throws {
        let c = try Self.cipher()
        let n = 5 * Self.segment + 77
        let plain = Self.plaintext(n)
        let sealed = try Self.encrypt(plain, c)
        var g = SystemRandomNumberGenerator()
        let borders = [0, Self.segment - 1, Self.segment, 2 * Self.segment + 3, n - 1]
        var ranges = borders.flatMap { a in [(a, 1), (a, 2), (a, Self.segment + 2)] }
        for _ in 0..<20 { let a = Int.random(in: 0..<n, using: &g); ranges.append((a, Int.random(in: 0...(n - a), using: &g))) }
        for (from, length) in ranges {
            let len = min(length, n - from)
            let r = DecryptingWriter.ciphertextRange(c, size: UInt64(n), from: UInt64(from), length: UInt64(len))
            let part = Array(sealed[Int(r.offset)..<Int(r.offset + r.length)])
            #expect(try Self.decrypt(part, c, size: UInt64(n), from: UInt64(from), length: UInt64(len)) == Array(plain[from..<(from + len)]), "\(from)+\(len)")
        }
    }

    @Test func wrapsOpenOnlyForTheirRecipient() throws {
        let alice = Curve25519.KeyAgreement.PrivateKey(), bob = Curve25519.KeyAgreement.PrivateKey()
        let key = KeyWrap.randomKey()
        let wrapped = try KeyWrap.wrap(key, for: Array(alice.publicKey.rawRepresentation), id: "file-1")
        #expect(try KeyWrap.unwrap(wrapped, with: alice, id: "file-1") == key)
        #expect(throws: DriveError.self) { try KeyWrap.unwrap(wrapped, with: bob, id: "file-1") }
        #expect(throws: DriveError.self) { try KeyWrap.unwrap(wrapped, with: alice, id: "file-2") }
        // A small-order point (every sender would share an all-zero secret with it) is no recipient.
        #expect(throws: DriveError.self) { try KeyWrap.wrap(key, for: [UInt8](repeating: 0, count: 32), id: "file-1") }
        #expect(throws: DriveError.self) { try KeyWrap.wrap(key, for: [1] + [UInt8](repeating: 0, count: 31), id: "file-1") }
        let master = SymmetricKey(size: .bits256)
        let sealed = try KeyWrap.seal(alice, owner: "alice", master: master)
        #expect(try KeyWrap.unseal(sealed, owner: "alice", master: master).rawRepresentation == alice.rawRepresentation)
        #expect(throws: DriveError.self) { try KeyWrap.unseal(sealed, owner: "bob", master: master) }
    }
}
