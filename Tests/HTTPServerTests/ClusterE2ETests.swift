import Foundation
import Testing
import TestSupport

/// An etcd of the test's own (a real `etcd` process on free loopback ports, its data in a
/// temporary directory), stopped and started again as the test says.
final class EtcdProcess {
    let directory: String
    let clientPort: Int
    let peerPort: Int
    private var process: Process?

    static var binary: String? { ["/usr/bin/etcd", "/usr/local/bin/etcd"].first { FileManager.default.isExecutableFile(atPath: $0) } }

    var url: String { "http://127.0.0.1:\(clientPort)" }

    init(directory: String) throws {
        self.directory = directory
        (clientPort, peerPort) = (try Self.freePort(), try Self.freePort())
        try start()
    }

    /// A port nothing listens on now (bound, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw RawConnection.Failure(description: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func start() throws {
        guard let binary = Self.binary else { throw RawConnection.Failure(description: "etcd is not installed (Debian etcd-server): make test installs it") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--name", "test", "--data-dir", directory + "/etcd", "--listen-client-urls", url, "--advertise-client-urls", url,
                       "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                       "--initial-cluster", "test=http://127.0.0.1:\(peerPort)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        // Ready when a range answers.
        for _ in 0..<100 {
            if let c = try? RawConnection(port: clientPort) {
                let body = Array(#"{"key":"AA=="}"#.utf8)
                try? c.send(Array("POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
                if (try? c.response(timeout: 2))?.status == 200 { return }
            }
            usleep(100_000)
        }
        throw RawConnection.Failure(description: "etcd did not start on \(url)")
    }

    func stop() {
        guard let p = process, p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit { stop() }
}

/// A Qstore cluster over a real etcd, with real daemons on loopback: pins held by exactly
/// rmin = rmax = 2 nodes (the DAG whole on each, absent from the third), a holder killed with
/// SIGKILL — its pins complete on the third node after the grace period, never more than K at
/// once per node — then back: its copies released; etcd stopped: cluster calls answer 503
/// SERVICE_UNAVAILABLE while the node's own reads go on, and work again once etcd is back;
/// `pin rm` releases everywhere.
@Suite(.serialized) struct ClusterE2ETests {
    static func json(_ r: RawConnection.Response) -> Any? { try? JSONSerialization.jsonObject(with: Data(r.body)) }
    static func data(_ r: RawConnection.Response) -> Any? { (json(r) as? [String: Any])?["data"] }

    /// Polls `condition` every 200 ms for at most `seconds`; whether it held.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(200_000)
        }
        return try condition()
    }

    @Test func pinsAreHeldRepairedReleasedAndSurviveEtcdGoingAway() async throws {
        guard EtcdProcess.binary != nil else {
            Issue.record("etcd (Debian etcd-server) is not installed: make test installs it")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cluster-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let etcd = try EtcdProcess(directory: dir)
        defer { etcd.stop() }
        let k = 2
        func environment(_ id: String) -> [String: String] {
            ["QSTORE_CLUSTER_ETCD": etcd.url, "QSTORE_CLUSTER_NODE_ID": id, "QSTORE_CLUSTER_NAME": "e2e", "QSTORE_CLUSTER_REPAIR_GRACE": "2s",
             "QSTORE_CLUSTER_LEASE_TTL": "2s", "QSTORE_CLUSTER_MAX_PENDING": String(k), "QSTORE_CLUSTER_PIN_TIMEOUT": "60s"]
        }
        var nodes = try ["a", "b", "c"].map { try ChildDaemon(directory: "\(dir)/\($0)", environment: environment($0)) }
        defer { for n in nodes { n.stop() } }
        func node(_ id: String) -> ChildDaemon { nodes[["a", "b", "c"].firstIndex(of: id)!] }
        #expect(try Self.eventually(10) { (Self.data(try nodes[0].request("GET", "/q/v1/cluster/peers", api: true)) as? [Any])?.count == 3 })

        // Six files added on a (not pinned there), each pinned on the cluster with two copies.
        var files: [String: [UInt8]] = [:]
        for i in 0..<6 {
            let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: ($0 &* (i + 7)) ^ ($0 >> 7)) }
            let f = "\(dir)/file-\(i)"
            try Data(bytes).write(to: URL(fileURLWithPath: f))
            let (rc, out) = try await BackupE2ETests.qstore(["add", "-Q", "--cid-version", "1", "--pin=false", f], nodes[0].repository, home: dir)
            #expect(rc == 0, "\(out)")
            let cid = out.trimmingCharacters(in: .whitespacesAndNewlines)
            files[cid] = bytes
            let r = try nodes[0].request("POST", "/q/v1/cluster/pins", api: true, headers: ["Content-Type": "application/json"],
                                         body: Array(#"{"cid": "\#(cid)", "rmin": 2, "rmax": 2, "name": "file \#(i)"}"#.utf8))
            #expect(r.status == 201, "\(r.text)")
        }
        func states() throws -> [[String: Any]] { Self.data(try nodes[0].request("GET", "/q/v1/cluster/pins", api: true)) as? [[String: Any]] ?? [] }
        func holders(_ s: [String: Any]) -> [String] { (s["status"] as? [String: String] ?? [:]).filter { $0.value == "pinned" }.map(\.key).sorted() }
        let settled = try Self.eventually(60) { try states().count == 6 && states().allSatisfy { holders($0).count == 2 } }
        #expect(settled, "\((try? states()) ?? [])")
        // Exactly the two allocated nodes hold each DAG (b and c have nothing else of it).
        for s in try states() {
            let cid = s["cid"] as! String
            for id in ["b", "c"] {
                let r = try node(id).request("GET", "/ipfs/\(cid)", api: false)
                if holders(s).contains(id) { #expect(r.status == 200 && r.body == files[cid], "\(id) \(cid)") } else { #expect(r.status != 200, "\(id) \(cid)") }
            }
        }

        // Kill -9 the node (b or c) holding the most; its pins complete elsewhere, at most K
        // pending per node at any time.
        let counts = try ["b", "c"].map { id in try states().filter { holders($0).contains(id) }.count }
        let victim = counts[0] >= counts[1] ? "b" : "c"
        let moved = try states().filter { holders($0).contains(victim) }.map { $0["cid"] as! String }
        node(victim).kill9()
        var mostPending = 0
        let repaired = try Self.eventually(60) {
            let all = try states()
            for id in ["a", "b", "c"] where id != victim {
                let pending = all.filter { ($0["allocations"] as? [String] ?? []).contains(id) && ($0["status"] as? [String: String])?[id] != "pinned" }.count
                mostPending = max(mostPending, pending)
            }
            return all.allSatisfy { s in holders(s).filter { $0 != victim }.count == 2 }
        }
        #expect(repaired, "\((try? states()) ?? [])")
        #expect(mostPending <= k, "\(mostPending) pins pending on one node at once (K = \(k))")
        let survivor = ["a", "b", "c"].first { $0 != victim && $0 != "a" }!
        for cid in moved { #expect(try node(survivor).request("GET", "/ipfs/\(cid)", api: false).body == files[cid]) }
        let peers = Self.data(try nodes[0].request("GET", "/q/v1/cluster/peers", api: true)) as? [[String: Any]] ?? []
        #expect(peers.first { $0["id"] as? String == victim }?["state"] as? String == "down", "\(peers)")

        // Back: its copies are released (its pins of those CIDs go).
        let index = ["a", "b", "c"].firstIndex(of: victim)!
        nodes[index] = try ChildDaemon(directory: "\(dir)/\(victim)", environment: environment(victim))
        let released = try Self.eventually(30) {
            let listed = try node(victim).request("POST", "/api/v0/pin/ls?type=recursive", api: true).text
            return moved.allSatisfy { !listed.contains($0) }
        }
        #expect(released)

        // etcd away: 503 with the reason; the node's own reads go on. Back: it answers again.
        etcd.stop()
        let away = try nodes[0].request("GET", "/q/v1/cluster/peers", api: true)
        #expect(away.status == 503 && away.text.contains("SERVICE_UNAVAILABLE"), "\(away.status) \(away.text)")
        let cid = files.keys.sorted()[0]
        #expect(try nodes[0].request("GET", "/ipfs/\(cid)", api: false).status == 200)
        try etcd.start()
        #expect(try Self.eventually(20) { try nodes[0].request("GET", "/q/v1/cluster/peers", api: true).status == 200 })

        // Unpinned from the cluster: every node lets its copy go.
        #expect(try nodes[0].request("DELETE", "/q/v1/cluster/pins/\(cid)", api: true).status == 200)
        let gone = try Self.eventually(20) {
            try ["a", "b", "c"].allSatisfy { !(try node($0).request("POST", "/api/v0/pin/ls?type=recursive", api: true).text.contains(cid)) }
        }
        #expect(gone)
        #expect(try nodes[0].request("DELETE", "/q/v1/cluster/pins/\(cid)", api: true).status == 404)
    }
}
