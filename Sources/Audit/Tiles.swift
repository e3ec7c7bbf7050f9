/// The log's hashes as C2SP tlog-tiles (c2sp.org/tlog-tiles) store them: a tile of level L and
/// index N holds up to 256 hashes of tree level 8·L, those of indices N·256 ..< N·256+256. A full
/// tile never changes (it can be a content-addressed block); the rightmost tile of each level is
/// partial (width < 256) until it fills. Hashes of the tree levels between are computed from a
/// tile's hashes (at most 255 hash operations).
public struct TileCoordinate: Hashable, Sendable, CustomStringConvertible {
    public var level: Int
    public var index: UInt64
    public init(level: Int, index: UInt64) { (self.level, self.index) = (level, index) }
    /// `tile/L/N` as the tlog-tiles spec writes the path (N in groups of three digits, `x` before
    /// all but the last), without the partial-width suffix.
    public var description: String {
        var groups: [String] = []
        var n = index
        repeat {
            groups.insert(String(format: "%03d", Int(n % 1000)), at: 0)
            n /= 1000
        } while n > 0
        return "tile/\(level)/" + groups.dropLast().map { "x" + $0 }.joined(separator: "/") + (groups.count > 1 ? "/" : "") + groups.last!
    }
}

/// What a log keeps of its tiles.
public protocol TileReader {
    /// The hashes of a tile: a full one (256), or the current partial one; nil if none.
    func tile(_ c: TileCoordinate) throws -> [[UInt8]]?
}

/// The right edge of a tiled log: each level's partial tile, and what appending leaves changes.
public struct TileEdge: Sendable, Equatable {
    public static let width = 256
    /// `partial[L]`: the hashes of level L's rightmost, not yet full tile.
    public private(set) var partial: [[[UInt8]]] = [[]]
    /// The leaves appended so far.
    public private(set) var size: UInt64 = 0

    public init() {}

    /// Appends a leaf hash; returns the tiles it filled (each full tile: its coordinate and its
    /// 256 hashes, to be stored for good). The partial tiles after it are `partial`.
    public mutating func append(leafHash: [UInt8]) -> [(TileCoordinate, [[UInt8]])] {
        var filled: [(TileCoordinate, [[UInt8]])] = []
        var hash = leafHash
        var level = 0
        var indexAtLevel = size  // the index, at tree level 8·level, of the hash being added
        size += 1
        while true {
            if partial.count == level { partial.append([]) }
            partial[level].append(hash)
            guard partial[level].count == Self.width else { break }
            let full = partial[level]
            filled.append((TileCoordinate(level: level, index: indexAtLevel / UInt64(Self.width)), full))
            partial[level] = []
            hash = Self.reduce(full[...])
            indexAtLevel /= UInt64(Self.width)
            level += 1
        }
        return filled
    }

    /// The root of a run of hashes whose count is a power of two (pairwise, level by level).
    static func reduce(_ hashes: ArraySlice<[UInt8]>) -> [UInt8] {
        var row = Array(hashes)
        while row.count > 1 {
            row = stride(from: 0, to: row.count, by: 2).map { MerkleHash.node(row[$0], row[$0 + 1]) }
        }
        return row[0]
    }

    /// The coordinate of each partial tile that holds any hash, with its hashes.
    public var partialTiles: [(TileCoordinate, [[UInt8]])] {
        var out: [(TileCoordinate, [[UInt8]])] = []
        var perLevelSize = size
        for (level, hashes) in partial.enumerated() {
            if !hashes.isEmpty { out.append((TileCoordinate(level: level, index: perLevelSize / UInt64(Self.width)), hashes)) }
            perLevelSize /= UInt64(Self.width)
        }
        return out
    }
}

/// Complete-subtree hashes read from tiles: the one at tree level `8·L + k` and index `i` is
/// computed from the 2^k hashes of level-L tile `(i·2^k) / 256` it covers.
public struct TiledHashes<Reader: TileReader>: SubtreeHashes {
    public let reader: Reader
    public init(_ reader: Reader) { self.reader = reader }

    public func hash(level: Int, index: UInt64) throws -> [UInt8] {
        let tileLevel = level / 8, k = level % 8
        let first = index << UInt64(k), count = 1 << k
        let width = UInt64(TileEdge.width)
        let c = TileCoordinate(level: tileLevel, index: first / width)
        guard let tile = try reader.tile(c) else { throw MerkleError.outOfRange("no \(c)") }
        let offset = Int(first % width)
        guard offset + count <= tile.count else { throw MerkleError.outOfRange("\(c) has \(tile.count) hashes, not \(offset + count)") }
        return TileEdge.reduce(tile[offset..<(offset + count)])
    }
}

extension TileEdge {
    /// The edge of a log of `size` leaves whose partial tiles hold `partial` (what a stored log
    /// reads back to go on appending).
    public init(size: UInt64, partial: [[[UInt8]]]) {
        self.size = size
        self.partial = partial.isEmpty ? [[]] : partial
    }

    /// The root hash of the tree of the `size` leaves appended (RFC 9162 MTH), from the partial
    /// tiles alone: each set bit of the size is one complete subtree, the largest leftmost.
    public func rootHash() -> [UInt8] {
        guard size > 0 else { return MerkleHash.empty }
        var subtrees: [[UInt8]] = []
        for level in partial.indices.reversed() {
            let hashes = partial[level]
            var start = 0
            for bit in stride(from: 7, through: 0, by: -1) where hashes.count & (1 << bit) != 0 {
                subtrees.append(Self.reduce(hashes[start..<(start + (1 << bit))]))
                start += 1 << bit
            }
        }
        var acc = subtrees.removeLast()
        while let left = subtrees.popLast() { acc = MerkleHash.node(left, acc) }
        return acc
    }
}
