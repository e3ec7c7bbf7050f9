import Multiformats

/// RFC 9162 §2.1 Merkle tree hashing: a leaf is SHA-256(0x00 ‖ data), an interior node
/// SHA-256(0x01 ‖ left ‖ right); the tree of n leaves splits at the largest power of two below n.
public enum MerkleHash {
    public static func leaf(_ data: some Sequence<UInt8>) -> [UInt8] { sha256([0x00] + data) }

    /// SHA-256(0x01 ‖ left ‖ right), assembled on the stack (proofs and tiles hash many).
    public static func node(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1 + left.count + right.count) { buf in
            buf[0] = 0x01
            _ = UnsafeMutableBufferPointer(rebasing: buf[1...]).initialize(from: left)
            _ = UnsafeMutableBufferPointer(rebasing: buf[(1 + left.count)...]).initialize(from: right)
            return Multihash.sha256Digest(UnsafeRawBufferPointer(buf))
        }
    }

    /// The hash of the empty tree: SHA-256 of nothing.
    public static let empty: [UInt8] = sha256([])

    /// The project's SHA-256 (OpenSSL on the CPU's SHA extensions, through `Multihash.compute`;
    /// sha2-256 never fails there).
    static func sha256(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { Multihash.sha256Digest($0) } }
}

/// Where the hashes of complete subtrees come from: the one at `level` and `index` covers
/// leaves `index·2^level ..< (index+1)·2^level` (level 0: a leaf hash). A log backs it with its
/// stored tiles; tests with memory.
public protocol SubtreeHashes {
    func hash(level: Int, index: UInt64) throws -> [UInt8]
}

/// Why a proof or a tree size is refused.
public enum MerkleError: Error, Equatable, CustomStringConvertible {
    case outOfRange(String)
    case invalidProof(String)

    public var description: String {
        switch self {
        case .outOfRange(let m), .invalidProof(let m): m
        }
    }
}

/// The RFC 9162 algorithms over complete-subtree hashes: the root of a tree of any size
/// (MTH), inclusion proofs (PATH, §2.1.3.1) and consistency proofs (PROOF, §2.1.4.1), each
/// reading O(log n) subtree hashes; and their verification (§2.1.3.2, §2.1.4.2).
public enum MerkleTree {
    /// The largest power of two below `n` (n ≥ 2).
    static func split(_ n: UInt64) -> UInt64 { 1 << (63 - UInt64((n - 1).leadingZeroBitCount)) }

    /// MTH of the `n` leaves from `start` (`start` a multiple of the largest power of two ≤ n).
    static func root(_ hashes: some SubtreeHashes, start: UInt64, count n: UInt64) throws -> [UInt8] {
        if n & (n - 1) == 0 {
            let level = n.trailingZeroBitCount
            return try hashes.hash(level: level, index: start >> UInt64(level))
        }
        let k = split(n)
        return MerkleHash.node(try root(hashes, start: start, count: k), try root(hashes, start: start + k, count: n - k))
    }

    /// The root of the tree of the first `size` leaves.
    public static func root(of size: UInt64, _ hashes: some SubtreeHashes) throws -> [UInt8] {
        size == 0 ? MerkleHash.empty : try root(hashes, start: 0, count: size)
    }

    /// PATH(index, D[size]): the inclusion proof of leaf `index` in the tree of `size` leaves.
    public static func inclusionProof(index: UInt64, size: UInt64, _ hashes: some SubtreeHashes) throws -> [[UInt8]] {
        guard index < size else { throw MerkleError.outOfRange("index \(index) is not below the tree size \(size)") }
        var proof: [[UInt8]] = []
        try path(index, start: 0, count: size, hashes, &proof)
        return proof
    }

    private static func path(_ m: UInt64, start: UInt64, count n: UInt64, _ hashes: some SubtreeHashes, _ out: inout [[UInt8]]) throws {
        guard n > 1 else { return }
        let k = split(n)
        if m < k {
            try path(m, start: start, count: k, hashes, &out)
            out.append(try root(hashes, start: start + k, count: n - k))
        } else {
            try path(m - k, start: start + k, count: n - k, hashes, &out)
            out.append(try root(hashes, start: start, count: k))
        }
    }

    /// PROOF(from, D[to]): the consistency proof between the trees of `from` and `to` leaves.
    public static func consistencyProof(from m: UInt64, to n: UInt64, _ hashes: some SubtreeHashes) throws -> [[UInt8]] {
        guard m <= n else { throw MerkleError.outOfRange("from \(m) is above to \(n)") }
        guard m > 0, m < n else { return [] }
        var proof: [[UInt8]] = []
        try subproof(m, start: 0, count: n, complete: true, hashes, &proof)
        return proof
    }

    private static func subproof(_ m: UInt64, start: UInt64, count n: UInt64, complete b: Bool, _ hashes: some SubtreeHashes,
                                 _ out: inout [[UInt8]]) throws {
        if m == n {
            if !b { out.append(try root(hashes, start: start, count: n)) }
            return
        }
        let k = split(n)
        if m <= k {
            try subproof(m, start: start, count: k, complete: b, hashes, &out)
            out.append(try root(hashes, start: start + k, count: n - k))
        } else {
            try subproof(m - k, start: start + k, count: n - k, complete: false, hashes, &out)
            out.append(try root(hashes, start: start, count: k))
        }
    }

    /// RFC 9162 §2.1.3.2: whether `proof` shows `leafHash` at `index` in the tree of `size`
    /// leaves whose root is `root`.
    public static func verifyInclusion(leafHash: [UInt8], index: UInt64, size: UInt64, proof: [[UInt8]], root: [UInt8]) -> Bool {
        guard index < size else { return false }
        var fn = index, sn = size - 1
        var r = leafHash
        for p in proof {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                r = MerkleHash.node(p, r)
                if fn & 1 == 0 {
                    repeat { fn >>= 1; sn >>= 1 } while fn & 1 == 0 && fn != 0
                }
            } else {
                r = MerkleHash.node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `to` leaves (root `newRoot`)
    /// extends the tree of `from` leaves (root `oldRoot`).
    public static func verifyConsistency(from first: UInt64, to second: UInt64, proof: [[UInt8]], oldRoot: [UInt8], newRoot: [UInt8]) -> Bool {
        guard first <= second else { return false }
        if first == second { return proof.isEmpty && oldRoot == newRoot }
        if first == 0 { return proof.isEmpty }
        guard !proof.isEmpty else { return false }
        var path = proof
        if first & (first - 1) == 0 { path.insert(oldRoot, at: 0) }
        var fn = first - 1, sn = second - 1
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        var fr = path.first!, sr = path.first!
        for c in path.dropFirst() {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHash.node(c, fr)
                sr = MerkleHash.node(c, sr)
                if fn & 1 == 0 {
                    repeat { fn >>= 1; sn >>= 1 } while fn & 1 == 0 && fn != 0
                }
            } else {
                sr = MerkleHash.node(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && fr == oldRoot && sr == newRoot
    }
}

/// Complete-subtree hashes kept in memory, every level: a reference (tests, small logs).
public struct MemoryHashes: SubtreeHashes, Sendable {
    /// `levels[k][i]`: the hash of the complete subtree at level k, index i.
    public private(set) var levels: [[[UInt8]]] = [[]]

    public init() {}

    public var count: UInt64 { UInt64(levels[0].count) }

    /// Appends a leaf (its hash) and the complete subtrees it closes.
    public mutating func append(leafHash: [UInt8]) {
        levels[0].append(leafHash)
        var level = 0
        while levels[level].count % 2 == 0 {
            let n = levels[level].count
            let parent = MerkleHash.node(levels[level][n - 2], levels[level][n - 1])
            if levels.count == level + 1 { levels.append([]) }
            levels[level + 1].append(parent)
            level += 1
        }
    }

    public func hash(level: Int, index: UInt64) throws -> [UInt8] {
        guard level < levels.count, index < UInt64(levels[level].count) else {
            throw MerkleError.outOfRange("no complete subtree at level \(level), index \(index)")
        }
        return levels[level][Int(index)]
    }
}
