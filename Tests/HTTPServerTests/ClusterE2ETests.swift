import Crypto
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

    /// What goes wrong, and its way back: a CID no node has stays queued (with the reason) and
    /// is failed after the pin timeout; once a node has it, `recover` pins it on both allocated
    /// nodes. A node drained gives its copies up to the others (only once they hold them), shows
    /// as draining, and takes pins again once the drain is cancelled; draining a node that is
    /// not a member is 404.
    @Test func failedPinsRecoverAndADrainedNodeHandsItsCopiesOver() async throws {
        guard EtcdProcess.binary != nil else {
            Issue.record("etcd (Debian etcd-server) is not installed: make test installs it")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cluster-fail-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let etcd = try EtcdProcess(directory: dir)
        defer { etcd.stop() }
        let nodes = try ["a", "b", "c"].map {
            try ChildDaemon(directory: "\(dir)/\($0)", environment: ["QSTORE_CLUSTER_ETCD": etcd.url, "QSTORE_CLUSTER_NODE_ID": $0, "QSTORE_CLUSTER_NAME": "fail",
                                                                   "QSTORE_CLUSTER_LEASE_TTL": "2s", "QSTORE_CLUSTER_PIN_TIMEOUT": "3s"])
        }
        defer { for n in nodes { n.stop() } }
        let a = nodes[0]
        #expect(try Self.eventually(10) { (Self.data(try a.request("GET", "/q/v1/cluster/peers", api: true)) as? [Any])?.count == 3 })
        func state(_ cid: String) throws -> [String: Any] { Self.data(try a.request("GET", "/q/v1/cluster/pins/\(cid)", api: true)) as? [String: Any] ?? [:] }
        func statuses(_ cid: String) throws -> [String: String] { try state(cid)["status"] as? [String: String] ?? [:] }
        func pin(_ cid: String) throws {
            let r = try a.request("POST", "/q/v1/cluster/pins", api: true, headers: ["Content-Type": "application/json"],
                                  body: Array(#"{"cid": "\#(cid)", "rmin": 2, "rmax": 2}"#.utf8))
            #expect(r.status == 201, "\(r.text)")
        }

        // Nobody has it: queued with the reason while it waits, failed after the timeout.
        let content = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let orphan = Self.raw(content)
        try pin(orphan)
        // (Each retry shows `pinning` for a moment: the nodes are sampled one by one.)
        var waiting = Set<String>()
        #expect(try Self.eventually(15) {
            let current = try state(orphan)
            let errors = current["errors"] as? [String: String] ?? [:]
            for (node, st) in current["status"] as? [String: String] ?? [:] where st == "queued" && errors[node]?.contains(orphan) == true { waiting.insert(node) }
            return waiting.count == 2
        },
                "\((try? state(orphan)) ?? [:])")
        #expect(try Self.eventually(20) { let s = try statuses(orphan); return s.count == 2 && s.values.allSatisfy { $0 == "failed" } }, "\((try? state(orphan)) ?? [:])")
        let reasons = try state(orphan)["errors"] as? [String: String] ?? [:]
        #expect(reasons.count == 2 && reasons.values.allSatisfy { $0.contains(orphan) && $0.contains("missing") }, "\(reasons)")
        // Failed stays failed (no retry behind the user's back)...
        sleep(2)
        #expect(try statuses(orphan).values.allSatisfy { $0 == "failed" })

        // ...until a node has it and `recover` asks again.
        let file = "\(dir)/orphan"
        try Data(content).write(to: URL(fileURLWithPath: file))
        let (rc, out) = try await BackupE2ETests.qstore(["add", "-Q", "--cid-version", "1", "--pin=false", file], a.repository, home: dir)
        #expect(rc == 0 && out.trimmingCharacters(in: .whitespacesAndNewlines) == orphan, "\(out)")
        let recovered = try a.request("POST", "/q/v1/cluster/pins/\(orphan)/recover", api: true)
        #expect(recovered.status == 200, "\(recovered.text)")
        #expect(try Self.eventually(20) { let s = try statuses(orphan); return s.count == 2 && s.values.allSatisfy { $0 == "pinned" } }, "\((try? state(orphan)) ?? [:])")
        #expect(try state(orphan)["errors"] == nil)

        // A drained holder hands its copy over, and holds it until the others do.
        let holder = try statuses(orphan).keys.sorted()[0]
        #expect(try a.request("POST", "/q/v1/cluster/drain/\(holder)", api: true).status == 200)
        #expect(try Self.eventually(20) {
            let s = try statuses(orphan)
            return Set(s.keys) == Set(["a", "b", "c"].filter { $0 != holder }) && s.values.allSatisfy { $0 == "pinned" }
        }, "\((try? state(orphan)) ?? [:])")
        let peers = Self.data(try a.request("GET", "/q/v1/cluster/peers", api: true)) as? [[String: Any]] ?? []
        #expect(peers.first { $0["id"] as? String == holder }?["state"] as? String == "draining", "\(peers)")
        let drained = nodes[["a", "b", "c"].firstIndex(of: holder)!]
        #expect(try Self.eventually(15) { !(try drained.request("POST", "/api/v0/pin/ls?type=recursive", api: true).text.contains(orphan)) })
        // A new pin goes to the two others only; cancelled, the node is up again.
        let next = Self.raw(Array(content.reversed()))
        try pin(next)
        #expect(try Self.eventually(10) { Set((try state(next)["allocations"] as? [String]) ?? []) == Set(["a", "b", "c"].filter { $0 != holder }) })
        #expect(try a.request("POST", "/q/v1/cluster/drain/\(holder)?cancel=true", api: true).status == 200)
        #expect(try Self.eventually(10) {
            (Self.data(try a.request("GET", "/q/v1/cluster/peers", api: true)) as? [[String: Any]] ?? []).first { $0["id"] as? String == holder }?["state"] as? String == "up"
        })
        let unknown = try a.request("POST", "/q/v1/cluster/drain/nobody", api: true)
        #expect(unknown.status == 404 && unknown.text.contains("CLUSTER_NOT_FOUND"), "\(unknown.status) \(unknown.text)")

        // A policy's replicationFactor is the number of copies unless rmin/rmax are given; an
        // unknown policy is refused.
        func add(_ body: String) throws -> RawConnection.Response {
            try a.request("POST", "/q/v1/cluster/pins", api: true, headers: ["Content-Type": "application/json"], body: Array(body.utf8))
        }
        let logs = Self.data(try add(#"{"cid": "\#(Self.inline("logs"))", "policy": "audit-logs"}"#)) as? [String: Any]
        #expect(logs?["rmin"] as? Int == 3 && logs?["rmax"] as? Int == 3 && logs?["policy"] as? String == "audit-logs", "\(logs ?? [:])")
        let given = Self.data(try add(#"{"cid": "\#(Self.inline("given"))", "policy": "audit-logs", "rmin": 1, "rmax": 2}"#)) as? [String: Any]
        #expect(given?["rmin"] as? Int == 1 && given?["rmax"] as? Int == 2, "\(given ?? [:])")
        let bad = try add(#"{"cid": "\#(Self.inline("bad"))", "policy": "no-such-policy"}"#)
        #expect(bad.status == 400 && bad.text.contains("no-such-policy"), "\(bad.status) \(bad.text)")
    }

    /// A raw CID inlining `text` (an identity multihash): a target every node has.
    static func inline(_ text: String) -> String { base32([0x01, 0x55, 0x00, UInt8(text.utf8.count)] + Array(text.utf8)) }

    /// The raw CIDv1 of `data` (sha2-256): what `add --cid-version 1` gives a file of one chunk.
    static func raw(_ data: [UInt8]) -> String { base32([0x01, 0x55, 0x12, 0x20] + Array(SHA256.hash(data: data))) }

    static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var out = "b", buffer = 0, bits = 0
        for b in bytes {
            buffer = buffer << 8 | Int(b)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return out
    }

    /// Three nodes moving one Qindex pointer by compare-and-swap at once: every acknowledged
    /// update is in the history, which is one chain (versions one apart, each record's prev the
    /// one before, no merge) and the same on every node. Then etcd goes away, two nodes write the
    /// pointer each on its own, etcd comes back: both end at the same head, a merge of the two.
    @Test func pointersMoveLinearlyAcrossNodesAndMergeAfterAPartition() async throws {
        guard EtcdProcess.binary != nil else {
            Issue.record("etcd (Debian etcd-server) is not installed: make test installs it")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-cluster-cas-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let etcd = try EtcdProcess(directory: dir)
        defer { etcd.stop() }
        let nodes = try ["a", "b", "c"].map {
            try ChildDaemon(directory: "\(dir)/\($0)", environment: ["QSTORE_CLUSTER_ETCD": etcd.url, "QSTORE_CLUSTER_NODE_ID": $0, "QSTORE_CLUSTER_NAME": "cas",
                                                                   "QSTORE_CLUSTER_LEASE_TTL": "3s"])
        }
        defer { for n in nodes { n.stop() } }
        #expect(try Self.eventually(10) { (Self.data(try nodes[0].request("GET", "/q/v1/cluster/peers", api: true)) as? [Any])?.count == 3 })
        @Sendable func put(_ n: APIEndpoint, _ body: String) throws -> RawConnection.Response {
            try n.request("PUT", "/q/v1/index/docs/shared", headers: ["Content-Type": "application/json"], body: Array(body.utf8))
        }
        let endpoints = nodes.map { APIEndpoint(port: $0.apiPort, token: $0.token) }
        #expect(try put(endpoints[0], #"{"cid": "\#(Self.inline("start"))"}"#).status == 201)
        // Each node: 8 increments by compare-and-swap, re-reading after a conflict.
        let perNode = 8
        let acknowledged = Locked<[String]>([])
        let failures = Locked<[String]>([])
        await withTaskGroup(of: Void.self) { group in
            for (i, n) in endpoints.enumerated() {
                group.addTask {
                    _ = try? await ThirdPartyClientTests.aside {
                        var done = 0, tries = 0
                        while done < perNode && tries < 400 {
                            tries += 1
                            guard let current = Self.data(try n.request("GET", "/q/v1/index/docs/shared")) as? [String: Any],
                                  let version = current["version"] as? Int else { continue }
                            let target = Self.inline("n\(i)-\(done)")
                            let r = try put(n, #"{"cid": "\#(target)", "expectedVersion": \#(version)}"#)
                            if r.status == 200 {
                                acknowledged.withLock { $0.append(target) }
                                done += 1
                            } else if r.status != 409 {
                                failures.withLock { $0.append("\(r.status) \(r.text.prefix(200))") }
                            }
                        }
                    }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count == 3 * perNode)
        var chains: [[String]] = []
        for n in nodes {
            let page = Self.data(try n.request("GET", "/q/v1/index/docs/shared/history?limit=1000", api: true)) as? [String: Any]
            let records = (page?["records"] as? [[String: Any]] ?? []).reversed().map { $0 }
            // One chain ending at version 1 + every acknowledged update (none lost, none twice):
            // versions one apart, each prev the record before, no merge. (The history keeps the
            // index-records policy's keepLatest newest records.)
            let versions = records.compactMap { $0["version"] as? Int }
            #expect(versions.last == 3 * perNode + 1 && versions == Array((versions.first ?? 0)...(versions.last ?? 0)), "\(versions)")
            for (k, r) in records.enumerated() where k > 0 { #expect(r["prev"] as? String == records[k - 1]["record"] as? String && r["merged"] == nil) }
            // The newest acknowledged updates are the chain's newest targets.
            #expect(Set(records.compactMap { $0["cid"] as? String }).isSubset(of: Set(acked + [Self.inline("start")])))
            chains.append(records.compactMap { $0["record"] as? String })
        }
        #expect(chains[0] == chains[1] && chains[1] == chains[2])

        // A partition: etcd away, a and b each write; back, they converge on one merged head.
        etcd.stop()
        #expect(try put(endpoints[0], #"{"cid": "\#(Self.inline("offline-a"))"}"#).status == 200)
        #expect(try put(endpoints[1], #"{"cid": "\#(Self.inline("offline-b"))"}"#).status == 200)
        try etcd.start()
        let converged = try Self.eventually(30) {
            let heads = try nodes.prefix(2).map { (Self.data(try $0.request("GET", "/q/v1/index/docs/shared", api: true)) as? [String: Any])?["record"] as? String }
            return heads[0] != nil && heads[0] == heads[1]
        }
        #expect(converged)
        let history = Self.data(try nodes[1].request("GET", "/q/v1/index/docs/shared/history?limit=1000", api: true)) as? [String: Any]
        let targets = Set((history?["records"] as? [[String: Any]] ?? []).compactMap { $0["cid"] as? String })
        let head = Self.data(try nodes[1].request("GET", "/q/v1/index/docs/shared", api: true)) as? [String: Any]
        #expect((head?["merged"] as? [String])?.count == 1, "\(String(describing: head))")
        // The merge's target is one of the two writes; the other is the branch it joins.
        #expect([Self.inline("offline-a"), Self.inline("offline-b")].contains(head?["cid"] as? String ?? ""), "\(targets)")
    }
}

/// `Scripts/cluster-up.sh`: 3 etcd members and 3 nodes, each in a network namespace of its own
/// (separate hosts on one machine). The etcd leader killed: the cluster keeps placing pins. A
/// node's link cut (`ip link set … down`): its pins move to the others after the grace period;
/// the link back: the statuses converge (two copies of each pin, the node's surplus released).
@Suite(.serialized) struct ClusterNamespaceTests {
    /// Runs `command` through `system(3)` with its output in a file: the daemons and etcd members
    /// it starts in the background keep what it had open (a pipe would never end), and
    /// `system` waits for the shell itself only.
    static func sh(_ command: String, _ env: [String: String] = [:]) throws -> (Int32, String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-sh-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let exports = env.map { "export \($0.key)='\($0.value)'; " }.joined()
        let script = log + ".sh"
        defer { try? FileManager.default.removeItem(atPath: script) }
        try (exports + command + "\n").write(toFile: script, atomically: true, encoding: .utf8)
        let status = system("/bin/bash \(script) > \(log) 2>&1 < /dev/null")
        return ((status >> 8) & 0xff, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    @Test func aClusterOfNamespacesSurvivesItsEtcdLeaderAndACutLink() async throws {
        guard EtcdProcess.binary != nil, getuid() == 0, (try? Self.sh("ip netns list"))?.0 == 0, (try? Self.sh("command -v etcdctl"))?.0 == 0 else {
            Issue.record("needs root, iproute2, etcd and etcdctl (make test installs iproute2, etcd-server and etcd-client)")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-netns-\(UUID().uuidString)").path
        let root = Fixtures.repositoryRoot
        // A subnet and names of this run's own: another test run on the machine may have its
        // cluster up at the same time.
        let run = Int(getpid()) % 200 + 20
        let net = "10.77.\(run)", name = "q\(run)"
        func ip(_ node: Int) -> String { "\(net).1\(node)" }
        let env = ["CLUSTER_DIR": dir, "QSTORE_BIN": ChildDaemon.binary, "QSTORE_CLUSTER_REPAIR_GRACE": "2s", "CLUSTER_NET": net, "CLUSTER_NAME": name]
        defer {
            _ = try? Self.sh("\(root)/Scripts/cluster-up.sh down", env)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let (rc, out) = try await ThirdPartyClientTests.aside { try Self.sh("\(root)/Scripts/cluster-up.sh up", env) }
        try #require(rc == 0, "\(out)")
        let token = try String(contentsOfFile: dir + "/n1/repo/api-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        func api(_ method: String, _ path: String, node: Int = 1, body: String? = nil) throws -> (Int, Any?) {
            var command = "curl -s -w '\\n%{http_code}' -X \(method) -H 'Authorization: Bearer \(token)' --max-time 10"
            if let body { command += " -H 'Content-Type: application/json' --data '\(body)'" }
            let (_, text) = try Self.sh(command + " http://\(ip(node)):5001\(path)")
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let status = Int(lines.last ?? "") ?? 0
            let json = try? JSONSerialization.jsonObject(with: Data(lines.dropLast().joined(separator: "\n").utf8))
            return (status, (json as? [String: Any])?["data"])
        }
        // Every node's token is its own: read each from its repository.
        func pinned(_ cid: String) throws -> [String] {
            let (_, d) = try api("GET", "/q/v1/cluster/pins/\(cid)")
            return ((d as? [String: Any])?["status"] as? [String: String] ?? [:]).filter { $0.value == "pinned" }.map(\.key).sorted()
        }
        func add(_ text: String) throws -> String {
            let file = dir + "/add-\(UUID().uuidString)"
            try Data(text.utf8).write(to: URL(fileURLWithPath: file))
            let (rc, out) = try Self.sh("QSTORE_API=\(ip(1)):5001 QSTORE_API_TOKEN=\(token) \(ChildDaemon.binary) add -Q --cid-version 1 --pin=false \(file)")
            try #require(rc == 0, "qstore add: \(out)")
            return out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let first = try add(String(repeating: "first ", count: 50_000))
        #expect(try api("POST", "/q/v1/cluster/pins", body: #"{"cid": "\#(first)", "rmin": 2, "rmax": 2}"#).0 == 201)
        #expect(try ClusterE2ETests.eventually(30) { try pinned(first).count == 2 }, "\((try? pinned(first)) ?? [])")

        // The etcd leader killed: the cluster goes on.
        let (_, statusJSON) = try Self.sh("ETCDCTL_API=3 etcdctl --endpoints=http://\(ip(1)):2379,http://\(ip(2)):2379,http://\(ip(3)):2379 endpoint status -w json")
        let statuses = (try? JSONSerialization.jsonObject(with: Data(statusJSON.utf8))) as? [[String: Any]] ?? []
        let leaderID = (statuses.first?["Status"] as? [String: Any])?["leader"] as? NSNumber
        let leader = statuses.first { (($0["Status"] as? [String: Any])?["header"] as? [String: Any])?["member_id"] as? NSNumber == leaderID }?["Endpoint"] as? String
        let leaderNode = try #require(leader.flatMap { $0.split(separator: ".").last?.prefix(2).last }.flatMap { Int(String($0)) }, "\(statusJSON)")
        _ = try Self.sh("kill -9 $(cat \(dir)/n\(leaderNode)/etcd.pid)")
        let second = try add(String(repeating: "second ", count: 50_000))
        let asked = try ClusterE2ETests.eventually(20) { try api("POST", "/q/v1/cluster/pins", body: #"{"cid": "\#(second)", "rmin": 2, "rmax": 2}"#).0 == 201 }
        #expect(asked)
        #expect(try ClusterE2ETests.eventually(40) { try pinned(second).count == 2 }, "\((try? pinned(second)) ?? [])")
        // The member back (same data), so the cut below leaves a quorum.
        _ = try Self.sh("""
            i=\(leaderNode); a=\(net).1$i; ip netns exec \(name)$i etcd --name e$i --data-dir \(dir)/n$i/etcd --listen-client-urls http://$a:2379 \
            --advertise-client-urls http://$a:2379 --listen-peer-urls http://$a:2380 --initial-advertise-peer-urls http://$a:2380 \
            --initial-cluster e1=http://\(ip(1)):2380,e2=http://\(ip(2)):2380,e3=http://\(ip(3)):2380 >> \(dir)/n$i/etcd.log 2>&1 &
            echo $! > \(dir)/n$i/etcd.pid
            """)

        // Node 3's link cut: its pins move after the grace; back, everything converges.
        let third = try add(String(repeating: "third ", count: 50_000))
        _ = try api("POST", "/q/v1/cluster/pins", body: #"{"cid": "\#(third)", "rmin": 3, "rmax": 3}"#)
        #expect(try ClusterE2ETests.eventually(40) { try pinned(third).count == 3 })
        _ = try Self.sh("ip link set \(name)3-h down")
        let moved = try ClusterE2ETests.eventually(60) {
            let (_, peers) = try api("GET", "/q/v1/cluster/peers")
            return (peers as? [[String: Any]] ?? []).contains { $0["id"] as? String == "n3" && $0["state"] as? String == "down" }
                && [first, second].allSatisfy { (try? pinned($0).filter { $0 != "n3" }.count) == 2 }
        }
        #expect(moved)
        _ = try Self.sh("ip link set \(name)3-h up")
        let converged = try ClusterE2ETests.eventually(60) {
            try [first, second].allSatisfy { try pinned($0).count == 2 } && pinned(third).count == 3
        }
        #expect(converged, "\((try? [first, second, third].map { try pinned($0) }) ?? [])")
    }
}

/// A daemon's API as concurrent tasks reach it.
struct APIEndpoint: Sendable {
    let port: Int
    let token: String
    func request(_ method: String, _ target: String, headers: [String: String] = [:], body: [UInt8] = []) throws -> RawConnection.Response {
        let c = try RawConnection(port: port)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer \(token)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        try c.send(Array(head.utf8) + body)
        return try c.response()
    }
}

/// A value shared by concurrent tasks.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func withLock<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
}
