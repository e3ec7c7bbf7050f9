import CAR
import Foundation
import Multiformats
@testable import Node
@testable import Replication
import Storage
import Testing

/// Pulling a cluster pin's DAG from peers into a real repository: a peer whose block does not
/// hash to its CID is dropped and the DAG fetched from the next one, with the bad block never
/// stored; a cut stream keeps what came and the next request asks only for what is missing; a
/// DAG no source has is an error naming what is missing.
@Suite struct ClusterTransferTests {
    /// Peers answering from bytes in memory (the network is not what is under test; the
    /// repository they write into is real).
    final class Peers: PeerTransport, @unchecked Sendable {
        let lock = NSLock()
        var bodies: [String: (String) -> [UInt8]?] = [:]
        var asked: [String] = []
        func open(_ url: String) async throws -> any PeerStream {
            let base = String(url[..<url.range(of: "/ipfs/")!.lowerBound])
            let cid = String(url[url.range(of: "/ipfs/")!.upperBound...].prefix { $0 != "?" })
            let answer = lock.withLock { () -> (String) -> [UInt8]? in
                asked.append(url)
                return bodies[base] ?? { _ in nil }
            }
            // As PeerHTTP: a gateway without the block answers 404, which is `notFound`.
            guard let body = answer(cid) else { throw ClusterError.notFound("\(base): 404") }
            return Stream(body)
        }
    }

    final class Stream: PeerStream, @unchecked Sendable {
        var bytes: [UInt8]
        var at = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let n = min(buffer.count, bytes.count - at, 1000)
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.withUnsafeBytes { $0 }[at..<at + n]))
            at += n
            return n
        }
        func close() {}
    }

    final class Repo {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-transfer-\(UUID().uuidString)").path
        let repository: Repository
        let node: Node
        init() throws {
            try Repository.initialize(at: path)
            repository = try Repository(path: path, purpose: "transfer tests")
            node = try Node(repository: repository)
        }
        deinit {
            repository.close()
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// A DAG of `n` leaves under one dag-json root, and its CAR (root first, then the leaves).
    static func dag(_ origin: Node, leaves n: Int) throws -> (root: CID, leaves: [CID], car: [UInt8]) {
        let leaves = try (0..<n).map { i in try origin.putBlock((0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }, codec: .raw, hash: .sha2_256, hashLength: nil).cid }
        let json = "{\"l\":[" + leaves.map { "{\"/\":\"\($0)\"}" }.joined(separator: ",") + "]}"
        let root = try origin.putDAG(Array(json.utf8), input: .dagJSON, store: .dagCBOR, hash: .sha2_256)
        let car = try origin.exportDAG(root, to: ArraySink()).bytes
        return (root, leaves, car)
    }

    @Test func aBadPeerIsDroppedAndTheDAGComesFromTheNext() async throws {
        let origin = try Repo(), here = try Repo()
        let (root, leaves, car) = try Self.dag(origin.node, leaves: 12)
        // The bad peer flips a byte in the last block's data (its CID unchanged).
        var bad = car
        bad[bad.count - 10] ^= 0xff
        let peers = Peers()
        peers.bodies = ["http://bad": { _ in bad }, "http://good": { _ in car }]
        let local = NodeClusterStore(node: here.node)
        let stored = try await Transfer.fetch(root, from: ["http://bad", "http://good"], transport: peers, local: local, log: { _ in })
        #expect(try local.missing(root, limit: 100).isEmpty)
        #expect(stored >= 1)
        for c in [root] + leaves { #expect(try here.node.block(c) == origin.node.block(c), "\(c)") }
        // The bad source was asked once, then dropped.
        #expect(peers.asked.filter { $0.hasPrefix("http://bad") }.count == 1, "\(peers.asked)")
    }

    @Test func aCutStreamIsResumedWithOnlyWhatIsMissing() async throws {
        let origin = try Repo(), here = try Repo()
        let (root, leaves, car) = try Self.dag(origin.node, leaves: 20)
        let peers = Peers()
        let local = NodeClusterStore(node: here.node)
        // The first answer for the root stops half way; afterwards each CID asked is served
        // whole (a gateway's CAR of that block's DAG).
        let lock = NSLock()
        var cut = false
        peers.bodies = ["http://p": { cid in
            lock.withLock {
                if cid == root.description && !cut {
                    cut = true
                    return Array(car.prefix(car.count / 2))
                }
                guard let c = try? CID(cid), let data = try? origin.node.block(c) else { return nil }
                var w = try! CARWriter(roots: [c], sink: ArraySink())
                try! w.write(cid: c, data: data)
                return try! w.finish().bytes
            }
        }]
        _ = try await Transfer.fetch(root, from: ["http://p"], transport: peers, local: local, log: { _ in })
        #expect(try local.missing(root, limit: 100).isEmpty)
        for c in leaves { #expect(try here.node.block(c) == origin.node.block(c)) }
        // After the cut, the root was not asked for again: only the leaves still missing, each once.
        let after = peers.asked.dropFirst()
        #expect(!after.contains { $0.contains("/ipfs/\(root)?") }, "\(peers.asked)")
        #expect(Set(after).count == after.count && after.count < leaves.count, "\(after.count) requests after the cut")
    }

    @Test func aDAGNoSourceHasNamesWhatIsMissing() async throws {
        let origin = try Repo(), here = try Repo()
        let (root, _, _) = try Self.dag(origin.node, leaves: 3)
        let peers = Peers()
        await #expect {
            try await Transfer.fetch(root, from: ["http://empty"], transport: peers, local: NodeClusterStore(node: here.node), log: { _ in })
        } throws: { e in
            guard case ClusterError.notFound(let m) = e else { return false }
            return m.contains("\(root)") && m.contains("1 blocks missing")
        }
    }
}
