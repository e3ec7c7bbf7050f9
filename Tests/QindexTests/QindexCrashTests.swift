import Foundation
import Multiformats
import Pinning
import Qindex
import Signing
import Storage
import Testing
import TestSupport

/// Kills a `qstore debug write-load --index` process (8 writers moving 16 pointers) at random
/// moments. After each kill the repository verifies clean (blocks, counts, pin indexes), every
/// head points at a complete chain of verifiable records down to its history horizon (the
/// `index-records` policy's `keepLatest`, which the default policies set: history is let go while
/// the process runs), and every acknowledged update is on its pointer's main chain at its version
/// (when within the horizon), with its event.
struct QindexCrashTests {
    @Test func killedDuringUpdatesLosesNothingAcknowledged() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qstore")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "qstore binary not found at \(binary.path)")
        let dir = TemporaryDirectory()
        let repoPath = dir.path + "/repo"
        try Repository.initialize(at: repoPath)
        var rng = SeededGenerator(seed: 12)
        var acknowledged: [String: [Int64: CID]] = [:]
        for round in 0..<6 {
            let lines = try runAndKill(binary, ["debug", "write-load", "--index", "--count", "400000", "--seed", String(round + 1), "--max-size", "3000"],
                                       environment: ["QSTORE_PATH": repoPath], afterLines: Int.random(in: 20...400, using: &rng), using: &rng)
            for line in lines {
                let parts = line.split(separator: " ")
                guard parts.count == 4, parts[0] == "indexed", let version = Int64(parts[2]) else { continue }
                let record = try CID(String(parts[3]))
                if let earlier = acknowledged[String(parts[1]), default: [:]][version] {
                    #expect(earlier == record, "round \(round): version \(version) of \(parts[1]) acknowledged twice")
                }
                acknowledged[String(parts[1]), default: [:]][version] = record
            }
            let repo = try Repository(path: repoPath, purpose: "qindex crash test \(round)")
            let blocks = try repo.verify()
            #expect(blocks.isClean, "round \(round): \(blocks.problems.prefix(3))")
            let policies = try PolicySet(files: defaultPolicyFiles.map { ($0.name, Data($0.contents.utf8)) }, source: "test")
            let store = CountedBlockStore(base: repo.blocks, putGracePeriod: 0)
            let pins = Pinner(store: store, policies: policies)
            let counts = try CountVerifier(pinner: pins).check()
            #expect(counts.problems.isEmpty, "round \(round): \(counts.problems.prefix(3))")
            let events = EventLog(db: repo.blocks.db)
            let index = Qindex(store: store, pins: pins, nodeKey: SigningKey(repo.identity), nodeAuthor: IdentityRef(squidId: repo.identity.peerID), events: events)
            var eventRecords = Set<String>()
            var after: UInt64 = 0
            while true {
                let page = try events.read(after: after, limit: 1000)
                for e in page.events { if case .string(let r)? = e.data["record"] { eventRecords.insert(r) } }
                if page.through == after { break }
                after = page.through
            }
            for (key, versions) in acknowledged {
                let head = try #require(try index.head(type: "load", key: key), "round \(round): pointer \(key) is gone")
                // The head's chain: every record verifies, versions one apart, down to version 1
                // or to the horizon (the newest keepLatest are all there).
                let horizon = max(1, head.version - Int64(index.keepLatest ?? Int(head.version)) + 1)
                var cid: CID? = head.record
                var expected = head.version
                while let c = cid, expected >= horizon {
                    let r = try index.record(c)
                    #expect(r.version == expected, "round \(round): \(key) chain skips at \(c)")
                    #expect(throws: Never.self) { try r.verifySignature() }
                    if let t = r.cid { #expect(try store.has(t), "round \(round): target \(t) of \(key) v\(r.version) is missing") }
                    cid = r.prev
                    expected -= 1
                }
                #expect(expected == horizon - 1)
                for (version, record) in versions where version >= horizon {
                    #expect(version <= head.version, "round \(round): \(key) went back below acknowledged version \(version)")
                    #expect(try index.record(type: "load", key: key, version: version).cid == record, "round \(round): acknowledged \(key) v\(version) is not on the chain")
                    #expect(eventRecords.contains(record.string), "round \(round): acknowledged \(key) v\(version) has no event")
                }
            }
            repo.close()
        }
        #expect(acknowledged.values.map(\.count).reduce(0, +) > 100)
    }
}
