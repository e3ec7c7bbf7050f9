import Foundation
import Testing
import TestSupport
import Multiformats
@testable import Storage
#if canImport(Glibc)
import Glibc
#endif

/// Kills a writing `qstore` process at random moments, many times, and checks after
/// each kill that the repository opens, verifies clean, and holds every block whose
/// put was acknowledged (printed by the child after the put returned).
struct CrashTests {
    /// The `qstore` binary built beside this test bundle.
    static var qstoreBinary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qstore")
    }

    @Test func killedWritersLeaveACleanRepositoryWithEveryAcknowledgedBlock() throws {
        let binary = Self.qstoreBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "qstore binary not found at \(binary.path)")
        let dir = TemporaryDirectory()
        try Repository.initialize(at: dir.path)
        var rng = SeededGenerator(seed: 2026)
        var acknowledged: [CID] = []
        let rounds = 16
        for round in 0..<rounds {
            let batch = [1, 1, 4, 16].randomElement(using: &rng)!
            // Let it acknowledge a random number of puts, then kill it at a random instant.
            let target = Int.random(in: 1...120, using: &rng)
            let lines = try runAndKill(binary, ["debug", "write-load", "--count", "1000000", "--seed", String(round + 1), "--max-size", "200000", "--batch", String(batch)],
                                       environment: ["QSTORE_PATH": dir.path], afterLines: target, using: &rng)
            acknowledged += try lines.map { try CID(String($0)) }

            let repo = try Repository(path: dir.path, purpose: "crash test round \(round)")
            let report = try repo.verify()
            #expect(report.isClean, "round \(round): \(report.problems.prefix(3))")
            for cid in acknowledged {
                let data = try #require(try repo.blocks.get(cid), "round \(round): acknowledged \(cid) is missing")
                #expect(try cid.multihash.verify(data))
            }
            repo.close()
        }
        #expect(acknowledged.count >= rounds)
    }
}
