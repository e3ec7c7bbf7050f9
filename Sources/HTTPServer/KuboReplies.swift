import Foundation
import KuboAPI
import Node
import Pinning
import Storage

// Node's values in the Kubo RPC's wire types (KuboAPI): built here once, used by the RPC routes
// and by the CLI when it opens the repository itself, so both print from the same values.

extension RepoStat {
    /// The repository's statistics as `repo/stat` answers them.
    public init(_ s: RepositoryStat, path: String) {
        self.init(repoSize: s.repositoryBytes, storageMax: 0, numObjects: s.blocks, repoPath: path,
                  version: "qstore-repo@\(Repository.currentVersion)", blockBytes: s.blockBytes,
                  inlineBlocks: s.inlineBlocks, packedBlocks: s.packedBlocks, packBytes: s.packBytes)
    }
}

extension PolicyListing {
    /// The policies in force as `pin/policies` answers them.
    public init(_ set: PolicySet) {
        self.init(source: set.source, policies: set.policies.keys.sorted().map { key in
            let p = set.policies[key]!
            return Policy(resourceType: p.resourceType, pinningStrategy: p.pinningStrategy.rawValue, replicationFactor: p.replicationFactor,
                          accessPattern: p.accessPattern.rawValue, gracePeriod: formatDuration(p.gracePeriod), retention: formatDuration(p.retention),
                          description: p.description, ttl: p.ttl.map(formatDuration), condition: p.condition.map { .init(keepLatest: $0.keepLatest) })
        })
    }
}

extension LsResult.Link {
    /// A directory entry as `ls` answers it.
    public init(_ e: ListedEntry) { self.init(name: e.name, hash: e.cid.string, size: e.size, type: e.type, target: e.target) }
}

extension PinVerifyResult {
    /// A pin's verdict as `pin/verify` answers it (bad nodes left out with `quiet`).
    public init(_ v: Pinner.Verification, quiet: Bool = false) {
        self.init(cid: v.cid.string, ok: v.ok, badNodes: v.ok || quiet ? nil : v.badNodes.map { .init(cid: $0.cid.string, err: $0.error) })
    }
}

extension RepoVerifyLine {
    /// `repo/verify`'s lines for a check: each problem, the repair made, then the verdict.
    public static func lines(_ report: Node.RepositoryCheck) -> [RepoVerifyLine] {
        var out = report.problems.map { RepoVerifyLine(msg: $0, progress: 0, problem: true) }
        if report.counts.repaired > 0 {
            out.append(RepoVerifyLine(msg: "repaired \(report.counts.repaired) count and index entries", progress: 0, problem: true))
        }
        let verdict = report.isClean ? "verified repo integrity" : "repo verification failed: \(report.problems.count) problems"
        out.append(RepoVerifyLine(msg: verdict, progress: report.blocks.blocks, bytes: report.blocks.bytes))
        return out
    }
}
