import Foundation
import IPLD
import Multiformats
import Pinning
import Storage
import TestSupport

/// A real repository on a temporary directory with a counted store and pins over it.
/// `putGrace` is the default policy's grace period (so puts are collectable at once when 0).
final class PinningHarness: @unchecked Sendable {
    // Set in init; `reopen` replaces the store objects while no other task uses them.
    let dir = TemporaryDirectory()
    var repository: Repository!
    var store: CountedBlockStore
    var pins: Pinner
    let policies: PolicySet
    /// The store's clock: it moves only when a test moves it.
    let clock = ManualClock()

    init(putGrace: String = "0s", unpinGrace: String = "0s", configuration: Configuration = Configuration()) throws {
        try Repository.initialize(at: dir.path, configuration: configuration)
        repository = try Repository(path: dir.path, purpose: "pinning tests")
        let files = defaultPolicyFiles.map { f -> (String, Data) in
            var text = f.contents
            if f.name == "default.json" { text = text.replacingOccurrences(of: "\"gracePeriod\": \"1h\"", with: "\"gracePeriod\": \"\(putGrace)\"") }
            if f.name == "qdrive-files.json" { text = text.replacingOccurrences(of: "\"gracePeriod\": \"7d\"", with: "\"gracePeriod\": \"\(unpinGrace)\"") }
            return (f.name, Data(text.utf8))
        }
        policies = try PolicySet(files: files, source: "test")
        store = CountedBlockStore(base: repository.blocks, putGracePeriod: policies.defaultPolicy.gracePeriod, clock: clock)
        pins = Pinner(store: store, policies: policies, queuedTimeout: 60_000)
    }

    /// Closes and reopens the repository (what a crash between two operations leaves, since
    /// every operation is one batch).
    func reopen() throws {
        repository.close()
        repository = nil
        repository = try Repository(path: dir.path, purpose: "pinning tests")
        store = CountedBlockStore(base: repository.blocks, putGracePeriod: policies.defaultPolicy.gracePeriod, clock: clock)
        pins = Pinner(store: store, policies: policies, queuedTimeout: 60_000)
    }

    var collector: GarbageCollector { GarbageCollector(store: store, batchSize: 7) }

    /// A dag-cbor block linking to `links`, made unique by `tag`.
    static func node(_ tag: Int, links: [CID]) throws -> Block {
        let value: IPLDNode = .map(IPLDMap(uniqueKeysWithValues: [("tag", .int(tag)), ("links", .list(links.map { .link($0) }))]))
        return try Block(data: try DAGCBOR().encode(value), codec: .dagCBOR)
    }

    func count(_ cid: CID) throws -> UInt64? { try store.countRecord(cid.multihash)?.count }

    func verifyClean() throws -> [String] { try CountVerifier(pinner: pins).check().problems }
}
