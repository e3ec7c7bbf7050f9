import Foundation

/// A node of the cluster, as it registers itself under its lease (`members/<id>`).
public struct Member: Codable, Sendable, Equatable {
    public var id: String
    /// Where its API and its trustless gateway answer (`http://host:port`).
    public var api: String
    public var gateway: String
    /// Bytes free where its repository is, as it last said.
    public var freeBytes: UInt64
    /// `zone=eu-1`, `rack=3`: placement spreads copies over distinct zones.
    public var tags: [String: String]
    public var version: String
    public var startedAt: UInt64
    /// Draining: it holds what it has but takes nothing new, and its pins move away.
    public var draining: Bool?

    public init(id: String, api: String, gateway: String, freeBytes: UInt64, tags: [String: String], version: String, startedAt: UInt64) {
        (self.id, self.api, self.gateway, self.freeBytes, self.tags, self.version, self.startedAt) = (id, api, gateway, freeBytes, tags, version, startedAt)
    }

    public var zone: String? { tags["zone"] }
}

/// A pin of the cluster (`pins/<cid>`): how many copies, and what to call them.
public struct ClusterPin: Codable, Sendable, Equatable {
    public var cid: String
    public var name: String?
    /// At least `rmin` nodes hold it when that many are up; at most `rmax`.
    public var rmin: Int
    public var rmax: Int
    /// The pinning policy the copies are pinned under (nil: the node's default).
    public var policy: String?
    public var addedAt: UInt64
    /// Bumped by `cluster recover`: failed copies try again.
    public var attempt: Int?

    public init(cid: String, name: String?, rmin: Int, rmax: Int, policy: String?, addedAt: UInt64) {
        (self.cid, self.name, self.rmin, self.rmax, self.policy, self.addedAt) = (cid, name, rmin, rmax, policy, addedAt)
    }
}

/// Which nodes must hold a pin (`alloc/<cid>`), written by the allocator only.
public struct Allocation: Codable, Sendable, Equatable {
    public var nodes: [String]
    public var updatedAt: UInt64
    public init(nodes: [String], updatedAt: UInt64) { (self.nodes, self.updatedAt) = (nodes, updatedAt) }
}

/// One node's state of one pin (`status/<cid>/<node>`), written by that node only.
public struct PinStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case queued, pinning, pinned, failed }
    public var state: State
    public var error: String?
    public var updatedAt: UInt64
    /// When this node was first told to hold the pin (a queued pin fails after the timeout).
    public var since: UInt64
    /// The pin's `attempt` this status is for.
    public var attempt: Int
    public init(state: State, error: String? = nil, updatedAt: UInt64, since: UInt64, attempt: Int) {
        (self.state, self.error, self.updatedAt, self.since, self.attempt) = (state, error, updatedAt, since, attempt)
    }
}

/// Where each record lives under the cluster's prefix (`/qstore/<cluster>/`).
public struct ClusterKeys: Sendable {
    public let root: String
    public init(cluster: String) { root = "/qstore/\(cluster)/" }

    public var members: String { root + "members/" }
    public func member(_ id: String) -> String { members + id }
    public var pins: String { root + "pins/" }
    public func pin(_ cid: String) -> String { pins + cid }
    public var allocations: String { root + "alloc/" }
    public func allocation(_ cid: String) -> String { allocations + cid }
    /// `assign/<node>/<cid>`: a node reads and watches its own allocations only.
    public func assigned(_ node: String) -> String { root + "assign/\(node)/" }
    public func assignment(_ node: String, _ cid: String) -> String { assigned(node) + cid }
    public var statuses: String { root + "status/" }
    public func statuses(_ cid: String) -> String { statuses + cid + "/" }
    public func status(_ cid: String, _ node: String) -> String { statuses(cid) + node }
    /// When the allocator saw a member go (`down/<node>` → ms): its pins move after the grace.
    public var down: String { root + "down/" }
    public func down(_ node: String) -> String { down + node }
    /// The allocator's seat (held under its lease: one at a time).
    public var allocator: String { root + "allocator" }
    /// Qindex heads moved by compare-and-swap across the cluster.
    public func indexHead(_ type: String, _ key: String) -> String { root + "index/\(type)/\(key)" }

    /// The last name of `key` under `prefix`.
    public static func name(_ key: String, under prefix: String) -> String { String(key.dropFirst(prefix.count)) }
}

enum ClusterJSON {
    static func encode<T: Encodable>(_ v: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return Array(try e.encode(v))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> T? { try? JSONDecoder().decode(type, from: Data(bytes)) }
}
