import Foundation
import IPLD
import Multiformats
import Pinning
import Qindex
import Signing
import Storage
import Testing
import TestSupport

/// One node's Qindex over a real repository on a temporary directory.
final class Replica: @unchecked Sendable {
    // Set in init; `reopen` replaces the objects while no other task uses them.
    let dir = TemporaryDirectory()
    var repository: Repository!
    var store: CountedBlockStore
    var pins: Pinner
    var index: Qindex
    var events: EventLog
    let policies: PolicySet
    let clock = ManualClock(start: 1_790_000_000_000)
    let key: SigningKey

    /// A replica with the default policies; `keepLatest` replaces the `index-records` policy's
    /// (the most it allows, 1,000,000, keeps every history these tests make).
    init(keepLatest: Int? = nil) throws {
        try Repository.initialize(at: dir.path)
        repository = try Repository(path: dir.path, purpose: "qindex tests")
        policies = try PolicySet(files: defaultPolicyFiles.map { f in
            var text = f.contents
            if let keepLatest, f.name == "index-records.json" {
                text = text.replacing(#/"keepLatest": [0-9]+/#, with: "\"keepLatest\": \(keepLatest)")
            }
            return (f.name, Data(text.utf8))
        }, source: "test")
        key = SigningKey(repository.identity)
        (store, pins, index, events) = Self.open(repository, policies, clock)
    }

    static func open(_ r: Repository, _ policies: PolicySet, _ clock: ManualClock, retention: UInt64 = 1_000_000) -> (CountedBlockStore, Pinner, Qindex, EventLog) {
        let store = CountedBlockStore(base: r.blocks, putGracePeriod: policies.defaultPolicy.gracePeriod, clock: clock)
        let pins = Pinner(store: store, policies: policies)
        let events = EventLog(db: r.blocks.db, retention: retention)
        return (store, pins, Qindex(store: store, pins: pins, nodeKey: SigningKey(r.identity), nodeAuthor: IdentityRef(squidId: r.identity.peerID), events: events), events)
    }

    func reopen(retention: UInt64 = 1_000_000) throws {
        repository.close()
        repository = nil
        repository = try Repository(path: dir.path, purpose: "qindex tests")
        (store, pins, index, events) = Self.open(repository, policies, clock, retention: retention)
    }

    /// A stored raw block made of `text`.
    func target(_ text: String) throws -> CID {
        let b = try Block(data: Array(text.utf8))
        try store.put(b)
        return b.cid
    }

    @discardableResult
    func put(_ type: String, _ key: String, _ target: CID?, tags: [String] = [], expected: Int64? = nil) async throws -> Head {
        var u = Qindex.Update(type: type, key: key, target: target, tags: tags)
        u.expectedVersion = expected
        return try await index.put(u)
    }

    /// Every record reachable from the pointer's head (prev and merged).
    func historySet(_ type: String, _ key: String) throws -> Set<CID> {
        guard let h = try index.head(type: type, key: key) else { return [] }
        var stack = [h.record]
        var seen = Set<CID>()
        while let c = stack.popLast() {
            guard seen.insert(c).inserted else { continue }
            let r = try index.record(c)
            stack.append(contentsOf: [r.prev].compactMap { $0 } + r.merged)
        }
        return seen
    }

    /// Copies the records (and targets) of `cids` from `other`'s store into this one's.
    func receive(_ cids: Set<CID>, from other: Replica) throws {
        var blocks: [Block] = []
        for c in cids {
            blocks.append(try Block(cid: c, data: try other.store.get(c)!))
            if let t = try other.index.record(c).cid, let data = try other.store.get(t) { blocks.append(try Block(cid: t, data: data)) }
        }
        try store.putMany(blocks)
    }

    func countsClean() throws -> [String] { try CountVerifier(pinner: pins).check().problems }
}

@Suite struct QindexTests {
    @Test func updatesMakeAVerifiableChain() async throws {
        let n = try Replica()
        let a = try n.target("a"), b = try n.target("b"), c = try n.target("c")
        let h1 = try await n.put("docs", "mod/x", a, tags: ["stable"])
        n.clock.advance(by: .seconds(1))
        let h2 = try await n.put("docs", "mod/x", b)
        n.clock.advance(by: .seconds(1))
        let h3 = try await n.put("docs", "mod/x", c, tags: ["beta"])
        #expect([h1.version, h2.version, h3.version] == [1, 2, 3])
        #expect(try n.index.current(type: "docs", key: "mod/x").target == c)
        // Each record links the one before it and is signed by the node key.
        let r3 = try n.index.record(h3.record)
        #expect(r3.prev == h2.record && r3.cid == c && r3.tags == ["beta"])
        try r3.verifySignature()
        #expect(r3.sig?.pub == n.key.publicKey)
        #expect(try n.index.record(h2.record).prev == h1.record)
        #expect(try n.index.record(h1.record).prev == nil)
        // By version, by time, history pages newest first.
        #expect(try n.index.record(type: "docs", key: "mod/x", version: 2).cid == h2.record)
        #expect(try n.index.record(type: "docs", key: "mod/x", at: h2.updatedAt + 500).cid == h2.record)
        #expect(throws: QindexError.self) { try n.index.record(type: "docs", key: "mod/x", at: h1.updatedAt - 1) }
        let page1 = try n.index.history(type: "docs", key: "mod/x", limit: 2)
        #expect(page1.records.map(\.record.version) == [3, 2] && page1.next == 2)
        let page2 = try n.index.history(type: "docs", key: "mod/x", limit: 2, before: page1.next)
        #expect(page2.records.map(\.record.version) == [1] && page2.next == nil)
        // The head is pinned; old targets stay (history keeps them); counts verify clean.
        let pins = try n.pins.pins(of: h3.record.multihash)
        #expect(pins.count == 1 && pins[0].resourceType == "index-records" && pins[0].name == "qindex:docs/mod/x")
        #expect(try n.pins.pins(of: h2.record.multihash).isEmpty)
        _ = try GarbageCollector(store: n.store).collect()
        #expect(try n.store.has(a) && n.store.has(h1.record))
        #expect(try n.countsClean() == [])
        // Everything survives a reopen.
        try n.reopen()
        #expect(try n.index.current(type: "docs", key: "mod/x") == h3)
        #expect(try n.countsClean() == [])
    }

    @Test func compareAndSwapRefusesAStaleVersionAndNamesTheHead() async throws {
        let n = try Replica()
        let a = try n.target("a"), b = try n.target("b")
        try await n.put("t", "k", a, expected: 0)
        await #expect(throws: QindexError.self) { try await n.put("t", "k", b, expected: 0) }
        do {
            try await n.put("t", "k", b, expected: 7)
            Issue.record("a stale version was accepted")
        } catch QindexError.versionConflict(_, let current) {
            #expect(current?.version == 1 && current?.target == a)
        }
        var u = Qindex.Update(type: "t", key: "k", target: b)
        u.expectedHead = try n.index.current(type: "t", key: "k").record
        #expect(try await n.index.put(u).version == 2)
        await #expect(throws: QindexError.self) { try await n.index.put(u) }
        // A target that is not here is refused unless allowed, then its pin is queued.
        let absent = try Block(data: Array("not stored".utf8)).cid
        await #expect(throws: QindexError.targetMissing(absent)) { try await n.put("t", "k", absent) }
        var m = Qindex.Update(type: "t", key: "k", target: absent)
        m.allowMissing = true
        let h = try await n.index.put(m)
        #expect(h.target == absent)
        #expect(try n.pins.pins(of: absent.multihash).first?.status == .queued)
        #expect(try n.countsClean() == [])
    }

    @Test func concurrentWritersLoseNoUpdate() async throws {
        let n = try Replica(keepLatest: 1_000_000)
        let targets = try (0..<8).map { try n.target("writer \($0)") }
        try await n.put("ctr", "shared", targets[0])
        let wins = try await withThrowingTaskGroup(of: Int.self) { group in
            for w in 0..<8 {
                group.addTask {
                    var won = 0
                    for _ in 0..<400 where won < 25 {
                        let h = try n.index.current(type: "ctr", key: "shared")
                        do {
                            try await n.put("ctr", "shared", targets[w], expected: h.version)
                            won += 1
                        } catch QindexError.versionConflict {}
                    }
                    return won
                }
            }
            return try await group.reduce(0, +)
        }
        let head = try n.index.current(type: "ctr", key: "shared")
        // Every acknowledged update is one version: none was lost, none reused.
        #expect(head.version == Int64(1 + wins))
        let all = try n.index.history(type: "ctr", key: "shared", limit: 1000)
        #expect(all.records.map(\.record.version) == Array((1...head.version).reversed()))
        #expect(try n.countsClean() == [])
    }

    @Test func namesAndTagsAreChecked() async throws {
        let n = try Replica()
        let a = try n.target("a")
        for (type, key) in [("", "k"), ("Upper", "k"), ("-x", "k"), (String(repeating: "a", count: 65), "k"), ("t", ""),
                            ("t", "tab\there"), ("t", String(repeating: "k", count: 513))] {
            await #expect(throws: QindexError.self, "\(type)/\(key)") { try await n.put(type, key, a) }
        }
        await #expect(throws: QindexError.self) { try await n.put("t", "k", a, tags: ["x", "x"]) }
        // Authors are checked before anything is signed: no control characters, at most 256 bytes.
        for author in [IdentityRef(squidId: "tab\there"), IdentityRef(squidId: "ok", subId: "new\nline"), IdentityRef(squidId: String(repeating: "s", count: 257))] {
            var u = Qindex.Update(type: "t", key: "authored", target: a)
            u.author = author
            await #expect(throws: SigningError.self) { try await n.index.put(u) }
        }
        #expect(try n.index.head(type: "t", key: "authored") == nil)
        #expect(try await n.put("a.b_c-9", String(repeating: "é", count: 256), a).version == 1)
        #expect(try n.countsClean() == [])
    }

    @Test func deleteLeavesATombstoneAndHistory() async throws {
        let n = try Replica()
        let a = try n.target("a"), b = try n.target("b")
        try await n.put("t", "k", a, tags: ["x"])
        let gone = try await n.put("t", "k", nil)
        #expect(gone.isDeleted && gone.version == 2)
        #expect(throws: QindexError.self) { try n.index.current(type: "t", key: "k") }
        await #expect(throws: QindexError.self) { try await n.put("t", "k", nil) }
        var q = Qindex.Query()
        q.type = "t"
        #expect(try n.index.list(q).heads.isEmpty)
        q.type = nil
        q.tag = "x"
        #expect(try n.index.list(q).heads.isEmpty)
        #expect(try n.index.pointers(to: a).isEmpty)
        #expect(try n.index.history(type: "t", key: "k", limit: 10).records.count == 2)
        // A new update continues the versions.
        #expect(try await n.put("t", "k", b).version == 3)
        #expect(try n.countsClean() == [])
    }

    @Test func listsPageByKeyTimeTagAndTarget() async throws {
        let n = try Replica()
        let a = try n.target("a"), b = try n.target("b")
        for i in 0..<25 {
            n.clock.advance(by: .milliseconds(10))
            try await n.put(i % 2 == 0 ? "even" : "odd", String(format: "key-%02d", i), i < 5 ? a : b, tags: i % 5 == 0 ? ["five"] : [])
        }
        var q = Qindex.Query()
        q.type = "even"
        q.limit = 5
        var keys: [String] = []
        while true {
            let page = try n.index.list(q)
            keys += page.heads.map(\.key)
            guard let next = page.next else { break }
            q.cursor = next
        }
        #expect(keys == stride(from: 0, to: 25, by: 2).map { String(format: "key-%02d", $0) })
        q = Qindex.Query()
        q.prefix = "key-1"
        #expect(Set(try n.index.list(q).heads.map(\.key)) == Set((10...19).map { String(format: "key-%02d", $0) }))
        q = Qindex.Query()
        q.sort = .updatedAt
        q.limit = 3
        let newest = try n.index.list(q)
        #expect(newest.heads.map(\.key) == ["key-24", "key-23", "key-22"])
        q.cursor = newest.next
        #expect(try n.index.list(q).heads.map(\.key) == ["key-21", "key-20", "key-19"])
        // One type by time, from that type's own index, paged; a moved pointer moves up, a deleted one leaves.
        q = Qindex.Query()
        q.type = "odd"
        q.sort = .updatedAt
        q.limit = 4
        var odd: [String] = []
        while true {
            let page = try n.index.list(q)
            odd += page.heads.map(\.key)
            guard let next = page.next else { break }
            q.cursor = next
        }
        #expect(odd == stride(from: 23, through: 1, by: -2).map { String(format: "key-%02d", $0) })
        n.clock.advance(by: .milliseconds(10))
        try await n.put("odd", "key-01", a)
        var del = Qindex.Update(type: "odd", key: "key-23", target: nil)
        del.expectedVersion = 1
        _ = try await n.index.put(del)
        q.cursor = nil
        q.limit = 3
        #expect(try n.index.list(q).heads.map(\.key) == ["key-01", "key-21", "key-19"])
        q = Qindex.Query()
        q.tag = "five"
        #expect(try n.index.list(q).heads.map(\.key).sorted() == ["key-00", "key-05", "key-10", "key-15", "key-20"])
        #expect(try n.index.pointers(to: a).map(\.key).sorted() == (0..<5).map { String(format: "key-%02d", $0) })
        // Moving a pointer moves it out of the old target's reverse lookup.
        try await n.put("even", "key-00", b)
        #expect(try n.index.pointers(to: a).map(\.key).sorted() == ["key-01", "key-02", "key-03", "key-04"])
        // …and out of the tags it no longer has.
        q = Qindex.Query()
        q.tag = "five"
        #expect(try n.index.list(q).heads.map(\.key).sorted() == ["key-05", "key-10", "key-15", "key-20"])
    }

    @Test func clientSignedRecordsAreVerified() async throws {
        let n = try Replica()
        let a = try n.target("a")
        let client = SigningKey()
        // The pointer's key is the client key's name: the client may sign it, as itself (its key's
        // peer ID the author); naming anyone else as the author is a forgery.
        let name = Libp2pKey.name(client.publicKey).string
        for forged in [IdentityRef(squidId: "alice"), IdentityRef(squidId: n.index.nodeAuthor.squidId),
                       IdentityRef(squidId: NodeIdentity.peerID(ofPublicKey: client.publicKey), subId: "phone")] {
            var f = IndexRecord(type: "ipns", key: name, cid: a, version: 1, prev: nil, tags: [], createdAt: Timestamps.format(n.clock.now), author: forged)
            f.sign(with: client, ts: Int64(n.clock.now))
            var u = Qindex.Update(type: "ipns", key: name, target: a)
            u.signed = f
            await #expect(throws: SigningError.self, "author \(forged)") { try await n.index.put(u) }
        }
        var r = IndexRecord(type: "ipns", key: name, cid: a, version: 1, prev: nil, tags: [], createdAt: Timestamps.format(n.clock.now),
                            author: IdentityRef(squidId: NodeIdentity.peerID(ofPublicKey: client.publicKey)))
        r.sign(with: client, ts: Int64(n.clock.now))
        var u = Qindex.Update(type: "ipns", key: name, target: a)
        u.signed = r
        #expect(try await n.index.put(u).record == r.block.cid)
        // Tampered after signing: refused, nothing stored.
        var t = r
        t.version = 2
        t.prev = r.block.cid
        t.tags = ["forged"]
        t.sig = r.sig
        u.signed = t
        await #expect(throws: SigningError.self) { try await n.index.put(u) }
        #expect(try !n.store.has(t.block.cid))
        // Signed by a key that is not the name's and not registered: refused.
        var other = IndexRecord(type: "ipns", key: "someone-else", cid: a, version: 1, prev: nil, tags: [], createdAt: Timestamps.format(n.clock.now),
                                author: IdentityRef(squidId: "client"))
        other.sign(with: client, ts: 1)
        var v = Qindex.Update(type: "ipns", key: "someone-else", target: a)
        v.signed = other
        await #expect(throws: SigningError.invalid("sig.pub is not a key of client (register it, or sign with the key the pointer's name is made of)")) {
            try await n.index.put(v)
        }
    }

    @Test func recordsDecodeStrictly() throws {
        let n = try Replica()
        let a = try n.target("a")
        var r = IndexRecord(type: "t", key: "k", cid: a, version: 1, prev: nil, tags: ["x"], createdAt: "2026-12-02T18:48:07.123Z",
                            author: IdentityRef(squidId: "s", subId: "sub"))
        r.sign(with: n.key, ts: 5)
        let back = try IndexRecord(decoding: r.encoded)
        #expect(back == r)
        try back.verifySignature()
        // One flipped byte anywhere: a decode error or a signature that fails.
        for i in r.encoded.indices {
            var bytes = r.encoded
            bytes[i] ^= 0x01
            let refused: Bool
            if let d = try? IndexRecord(decoding: bytes) { refused = (try? d.verifySignature()) == nil } else { refused = true }
            #expect(refused, "byte \(i)")
        }
        // The signature covers the domain: the same bytes signed without it do not verify.
        var bare = r
        bare.sig = LockSig(alg: "ed25519", pub: n.key.publicKey, sig: n.key.sign(r.signingPayload), ts: 5, nonce: [])
        #expect(throws: SigningError.self) { try bare.verifySignature() }
        #expect(Timestamps.parse("2026-12-02T18:48:07.123Z") == 1_796_237_287_123)
        #expect(Timestamps.format(1_796_237_287_123) == "2026-12-02T18:48:07.123Z")
        #expect(Timestamps.parse("2026-12-02T18:48:07+00:00") == 1_796_237_287_000)
        for bad in ["2026-13-02T18:48:07Z", "2026-02-30T00:00:00Z", "2026-12-02 18:48:07Z", "2026-12-02T18:48:07", "x"] {
            #expect(Timestamps.parse(bad) == nil, "\(bad)")
        }
    }

    @Test(arguments: 0..<6) func replicasConvergeInAnyOrder(seed: UInt64) async throws {
        var rng = SeededGenerator(seed: seed)
        let replicas = try (0..<3).map { _ in try Replica() }
        // A shared start, merged everywhere (a created pointer on the others).
        let start = try await replicas[0].put("doc", "k", try replicas[0].target("start"))
        for r in replicas.dropFirst() {
            try r.receive(try replicas[0].historySet("doc", "k"), from: replicas[0])
            #expect(try await r.index.merge(roots: [start.record]).first?.action == .created)
        }
        // Each replica updates on its own, then they swap heads in random orders, twice over.
        for (i, r) in replicas.enumerated() {
            for u in 0..<Int.random(in: 0...3, using: &rng) {
                r.clock.advance(by: .milliseconds(Int64.random(in: 1...50, using: &rng)))
                try await r.put("doc", "k", try r.target("r\(i) u\(u)"))
            }
        }
        for _ in 0..<2 {
            for r in replicas {
                for other in replicas.shuffled(using: &rng) where other !== r {
                    let h = try #require(try other.index.head(type: "doc", key: "k"))
                    try r.receive(try other.historySet("doc", "k"), from: other)
                    _ = try await r.index.merge(roots: [h.record])
                }
            }
        }
        let heads = try replicas.map { try #require(try $0.index.head(type: "doc", key: "k")).record }
        #expect(Set(heads).count == 1, "heads \(heads)")
        let histories = try replicas.map { try $0.historySet("doc", "k") }
        #expect(histories.allSatisfy { $0 == histories[0] })
        // Nothing signed was lost: every replica's own updates are in the merged history.
        for r in replicas {
            #expect(try r.countsClean() == [])
            let versions = try r.index.history(type: "doc", key: "k", limit: 1000).records.map(\.record.version)
            #expect(versions == versions.sorted(by: >) && Set(versions).count == versions.count)
        }
    }

    /// An import checks who signed, as a put does: a record by a key that is neither the node's,
    /// nor the pointer name's, nor the peer ID its author claims is refused, nothing changed; a
    /// node's own record (author = the peer ID of its signing key) merges.
    @Test func anImportRefusesAStrangersRecord() async throws {
        let n = try Replica()
        let h = try await n.put("doc", "k", try n.target("x"))
        let next = try n.target("y")
        func record(_ key: SigningKey, author: String) -> IndexRecord {
            var r = IndexRecord(type: "doc", key: "k", cid: next, version: 2, prev: h.record, tags: [], createdAt: Timestamps.format(n.clock.now + 1),
                                author: IdentityRef(squidId: author))
            r.sign(with: key, ts: Int64(n.clock.now + 1))
            return r
        }
        let stranger = SigningKey()
        let forged = record(stranger, author: "tester")
        try n.store.put(forged.block)
        await #expect(throws: SigningError.self) { try await n.index.merge(roots: [forged.block.cid]) }
        #expect(try n.index.head(type: "doc", key: "k")?.record == h.record)
        // A record made "before" its prev is refused too (time only goes forward along a history).
        var early = IndexRecord(type: "doc", key: "k", cid: next, version: 2, prev: h.record, tags: [], createdAt: Timestamps.format(0),
                                author: IdentityRef(squidId: NodeIdentity.peerID(ofPublicKey: stranger.publicKey)))
        early.sign(with: stranger, ts: 0)
        try n.store.put(early.block)
        await #expect(throws: QindexError.self) { try await n.index.merge(roots: [early.block.cid]) }
        let otherNode = record(stranger, author: NodeIdentity.peerID(ofPublicKey: stranger.publicKey))
        try n.store.put(otherNode.block)
        #expect(try await n.index.merge(roots: [otherNode.block.cid]).first?.action == .fastForward)
    }

    @Test func aMergeRefusesForgedHistory() async throws {
        let a = try Replica(), b = try Replica()
        try await a.put("doc", "k", try a.target("x"))
        let h = try await a.put("doc", "k", try a.target("y"))
        // A record whose signature does not verify, below a valid head: refused, head unchanged.
        var forged = try a.index.record(h.record)
        forged.tags = ["forged"]
        let block = forged.block
        try b.store.put(block)
        try b.receive(try a.historySet("doc", "k").subtracting([h.record]), from: a)
        await #expect(throws: SigningError.self) { try await b.index.merge(roots: [block.cid]) }
        #expect(try b.index.head(type: "doc", key: "k") == nil)
        // A history with a record missing: refused.
        let c = try Replica()
        try c.receive([h.record], from: a)
        await #expect(throws: QindexError.self) { try await c.index.merge(roots: [h.record]) }
        // A block that is not a record: refused.
        let raw = try b.target("not a record")
        await #expect(throws: QindexError.self) { try await b.index.merge(roots: [raw]) }
    }

    /// Found by reading for the fuzz targets: a merge record joining one head (version 1, no
    /// prev, one merged link) decoded, and merging it trapped on `merge`'s precondition — any
    /// import of pointer records could stop the daemon. A version near Int64.max overflowed the
    /// same way. Both are refused when decoded now, and by the merge itself.
    @Test func aMergeOfOneHeadOrAnOverflowingVersionIsRefusedNotATrap() async throws {
        let a = try Replica()
        let h = try await a.put("doc", "k", try a.target("x"))
        let author = IdentityRef(squidId: "someone")
        let lonely = IndexRecord(type: "doc", key: "k", cid: try a.target("y"), version: 1, prev: nil, merged: [h.record], tags: [],
                                 createdAt: "2026-12-05T00:00:00.000Z", author: author)
        #expect(throws: QindexError.self) { try IndexRecord(decoding: lonely.encoded) }
        let selfMerge = IndexRecord(type: "doc", key: "k", cid: try a.target("y"), version: 2, prev: h.record, merged: [h.record], tags: [],
                                    createdAt: "2026-12-05T00:00:00.000Z", author: author)
        #expect(throws: QindexError.self) { try IndexRecord(decoding: selfMerge.encoded) }
        var huge = try a.index.record(h.record)
        huge.version = Int64.max
        #expect(throws: QindexError.self) { try IndexRecord(decoding: huge.encoded) }
        // Through the merge of an import: refused, the node goes on.
        let block = try Block(data: lonely.encoded, codec: .dagCBOR)
        try a.store.put(block)
        await #expect(throws: QindexError.self) { try await a.index.merge(roots: [block.cid]) }
        #expect(try a.index.head(type: "doc", key: "k")?.record == h.record)
    }
}
