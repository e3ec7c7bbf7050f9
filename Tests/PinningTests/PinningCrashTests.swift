import Foundation
import Multiformats
@testable import Pinning
@testable import Storage
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Kills a `qstore` process that puts, pins, unpins, collects garbage and compacts packs at random moments;
/// after each kill the repository's blocks, counts and pin indexes verify clean and every pin
/// acknowledged (and not unpinned) has its whole DAG.
struct PinningCrashTests {
    @Test func killedDuringPinUnpinAndGCVerifiesClean() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qstore")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "qstore binary not found at \(binary.path)")
        let dir = TemporaryDirectory()
        let repoPath = dir.path + "/repo"
        // Small pack files, so collections compact packs while the process runs (and is killed).
        var configuration = Configuration()
        configuration.blockstore.maximumPackSize = 300_000
        var gc = GCConfiguration()
        gc.packCompactionThreshold = 0.05
        try configuration.setSection(gc)
        try Repository.initialize(at: repoPath, configuration: configuration)
        // Policies with no grace period, so the collector deletes while the process runs.
        let policies = dir.path + "/policies"
        try FileManager.default.createDirectory(atPath: policies, withIntermediateDirectories: true)
        for f in defaultPolicyFiles {
            try Data(f.contents.replacingOccurrences(of: #""gracePeriod": "1h""#, with: #""gracePeriod": "0s""#).utf8)
                .write(to: URL(fileURLWithPath: policies + "/" + f.name))
        }
        var rng = SeededGenerator(seed: 6)
        var pinned = Set<CID>()
        var heldData = Set<UInt32>()  // packs seen with data after some round
        for round in 0..<10 {
            let lines = try runAndKill(binary, ["debug", "write-load", "--pins", "--count", "100000", "--seed", String(round + 1), "--max-size", "40000"],
                                       environment: ["QSTORE_PATH": repoPath, "QSTORE_POLICIES": policies], afterLines: Int.random(in: 5...60, using: &rng), using: &rng)
            for line in lines {
                let parts = line.split(separator: " ")
                guard parts.count == 2 else { continue }
                let cid = try CID(String(parts[1]))
                if parts[0] == "pinned" { pinned.insert(cid) } else if parts[0] == "unpinning" { pinned.remove(cid) }
            }
            let repo = try Repository(path: repoPath, purpose: "pinning crash test \(round)")
            let blocks = try repo.verify()
            #expect(blocks.isClean, "round \(round): \(blocks.problems.prefix(3))")
            let pins = Pinner(store: CountedBlockStore(base: repo.blocks, putGracePeriod: 0), policies: try PolicySet.load(directory: policies))
            let counts = try CountVerifier(pinner: pins).check()
            #expect(counts.problems.isEmpty, "round \(round): \(counts.problems.prefix(3))")
            for cid in pinned {
                #expect(try !pins.pins(of: cid.multihash).isEmpty, "round \(round): acknowledged pin \(cid) is gone")
                #expect(try pins.check(cid, type: .recursive).missing == nil, "round \(round): pinned DAG \(cid) is incomplete")
            }
            repo.close()
            for n in try PackStore.packNumbers(in: repoPath + "/packs") where (PackStore.fileSize(PackStore.path(repoPath + "/packs", n)) ?? 0) > 0 {
                heldData.insert(n)
            }
        }
        #expect(!pinned.isEmpty)
        // Compaction ran while the process was killed: packs that held data are gone (an empty
        // pack an open made is removed by the next one, which says nothing of compaction).
        let packs = Set(try PackStore.packNumbers(in: repoPath + "/packs"))
        #expect(!heldData.subtracting(packs).isEmpty, "no pack that held data was compacted away: \(heldData.sorted()) → \(packs.sorted())")
    }
}
