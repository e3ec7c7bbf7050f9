import IPLD
import Multiformats
import Storage

/// Reading HAMT-sharded UnixFS directories (specs/ipfs/unixfs.md, "HAMTDirectory"):
/// entry names are hashed with murmur3-x64-64; each level consumes log2(fanout) bits
/// of the hash, most significant first. A shard's links are named by the bucket index
/// in uppercase hex (two digits for fanout 256): the bare index for a sub-shard, the
/// index followed by the entry name for an entry.
public enum HAMT {
    /// The shard nodes walked and the entry found, looking `name` up below `shard`.
    public static func lookup(_ name: String, in shard: CID, store: any BlockStore) throws -> (walked: [CID], entry: CID?) {
        let hash = murmur3x64_64(Array(name.utf8))
        var walked: [CID] = []
        var current = shard
        var bitOffset = 0
        while true {
            walked.append(current)
            let (node, fanout) = try load(current, store)
            let bits = fanout.trailingZeroBitCount
            let digits = String(fanout - 1, radix: 16).count
            guard bitOffset + bits <= 64 else { throw UnixFSError.invalid("HAMT deeper than its 64-bit hash") }
            let index = Int((hash << UInt64(bitOffset)) >> UInt64(64 - bits))
            var prefix = String(index, radix: 16, uppercase: true)
            while prefix.count < digits { prefix = "0" + prefix }
            guard let link = node.links.first(where: { ($0.name ?? "").hasPrefix(prefix) && (($0.name ?? "").count == digits || String(($0.name ?? "").dropFirst(digits)) == name) }) else {
                return (walked, nil)
            }
            if (link.name ?? "").count == digits {
                current = link.hash
                bitOffset += bits
                continue
            }
            return (walked, link.hash)
        }
    }

    /// Every entry below `shard`, in shard order.
    public static func entries(_ shard: CID, store: any BlockStore) throws -> [DirectoryEntry] { try entries(shard, store: store, depth: 0) }

    /// Each level takes at least one bit of the 64-bit name hash: a shard deeper than 64 levels is
    /// not a HAMT (and is not followed until the stack runs out).
    static func entries(_ shard: CID, store: any BlockStore, depth: Int) throws -> [DirectoryEntry] {
        guard depth < 64 else { throw UnixFSError.invalid("\(shard): a HAMT deeper than 64 levels") }
        let (node, fanout) = try load(shard, store)
        let digits = String(fanout - 1, radix: 16).count
        var out: [DirectoryEntry] = []
        for link in node.links {
            let name = link.name ?? ""
            if name.count == digits { out += try entries(link.hash, store: store, depth: depth + 1) } else {
                out.append(DirectoryEntry(name: String(name.dropFirst(digits)), cid: link.hash, size: link.tsize))
            }
        }
        return out
    }

    static func load(_ cid: CID, _ store: any BlockStore) throws -> (PBNode, Int) {
        guard let bytes = try store.get(cid) else { throw UnixFSError.missingBlock(cid) }
        let node = try DAGPB.decodeNode(bytes)
        guard let d = node.data else { throw UnixFSError.invalid("\(cid) has no UnixFS data") }
        let fs = try UnixFSData(bytes: d)
        guard fs.kind == .hamtShard, let fanout = fs.fanout, fanout >= 2, fanout <= 1 << 16, fanout & (fanout - 1) == 0 else {
            throw UnixFSError.invalid("\(cid) is not a HAMT shard with a power-of-two fanout")
        }
        return (node, Int(fanout))
    }

    /// Builds a HAMT-sharded directory of `entries` (fanout 256, murmur3-x64-64), as
    /// go-unixfs does: each bucket holds one entry or a sub-shard; an entry landing on an
    /// occupied bucket pushes both one level down. Shards are emitted bottom-up; each
    /// node's Data is `UnixFS{Type: HAMTShard, Data: bitfield, hashType: 0x22, fanout}` with
    /// the bitfield as a big-endian integer without leading zero bytes, links in bucket order.
    public static func build(
        _ entries: [(name: String, cid: CID, dagSize: UInt64)], fanout: Int = 256, cidVersion: Int, hash: Multicodec,
        emit: (Block) throws -> Void
    ) throws -> (cid: CID, dagSize: UInt64) {
        let bits = fanout.trailingZeroBitCount
        final class Shard {
            var buckets: [Int: Slot] = [:]
        }
        enum Slot {
            case entry(name: String, hash: UInt64, cid: CID, dagSize: UInt64)
            case shard(Shard)
        }
        func index(_ h: UInt64, level: Int) -> Int { Int((h << UInt64(level * bits)) >> UInt64(64 - bits)) }
        func insert(_ shard: Shard, _ e: (name: String, hash: UInt64, cid: CID, dagSize: UInt64), level: Int) throws {
            guard (level + 1) * bits <= 64 else { throw UnixFSError.invalid("HAMT: more than \(64 / bits) levels of collisions for \(e.name)") }
            let i = index(e.hash, level: level)
            switch shard.buckets[i] {
            case nil:
                shard.buckets[i] = .entry(name: e.name, hash: e.hash, cid: e.cid, dagSize: e.dagSize)
            case .entry(let name, let h, let cid, let size)?:
                guard name != e.name else { throw UnixFSError.invalid("duplicate directory entry \(name)") }
                let child = Shard()
                try insert(child, (name, h, cid, size), level: level + 1)
                try insert(child, e, level: level + 1)
                shard.buckets[i] = .shard(child)
            case .shard(let child)?:
                try insert(child, e, level: level + 1)
            }
        }
        let root = Shard()
        for e in entries { try insert(root, (e.name, murmur3x64_64(Array(e.name.utf8)), e.cid, e.dagSize), level: 0) }
        let digits = String(fanout - 1, radix: 16).count
        func prefix(_ i: Int) -> String {
            var p = String(i, radix: 16, uppercase: true)
            while p.count < digits { p = "0" + p }
            return p
        }
        func serialize(_ shard: Shard) throws -> (cid: CID, dagSize: UInt64) {
            var links: [PBLink] = []
            var bitfield = [UInt8](repeating: 0, count: fanout / 8)
            var total: UInt64 = 0
            for i in shard.buckets.keys.sorted() {
                bitfield[fanout / 8 - 1 - i / 8] |= UInt8(1) << UInt8(i % 8)
                switch shard.buckets[i]! {
                case .entry(let name, _, let cid, let size):
                    links.append(PBLink(hash: cid, name: prefix(i) + name, tsize: size))
                    total += size
                case .shard(let child):
                    let c = try serialize(child)
                    links.append(PBLink(hash: c.cid, name: prefix(i), tsize: c.dagSize))
                    total += c.dagSize
                }
            }
            // go-unixfs writes the bitfield as a big integer's minimal big-endian bytes.
            var data = UnixFSData(kind: .hamtShard, data: Array(bitfield.drop { $0 == 0 }))
            data.hashType = 0x22
            data.fanout = UInt64(fanout)
            let bytes = try DAGPB.encodeNode(PBNode(links: links, data: data.encode()))
            let block = try Block(data: bytes, codec: .dagPB, hash: hash, cidVersion: cidVersion == 0 && hash == .sha2_256 ? 0 : 1)
            try emit(block)
            return (block.cid, UInt64(bytes.count) + total)
        }
        return try serialize(root)
    }

    /// The first 64 bits of MurmurHash3 x64 128 (seed 0), as go-unixfs hashes entry names.
    public static func murmur3x64_64(_ data: [UInt8]) -> UInt64 {
        let c1: UInt64 = 0x87c3_7b91_1142_53d5, c2: UInt64 = 0x4cf5_ad43_2745_937f
        var h1: UInt64 = 0, h2: UInt64 = 0
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
        func le(_ at: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(data[at + $1]) << (8 * UInt64($1)) } }
        let blocks = data.count / 16
        for i in 0..<blocks {
            var k1 = le(i * 16, 8), k2 = le(i * 16 + 8, 8)
            k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
            h1 = rotl(h1, 27); h1 &+= h2; h1 = h1 &* 5 &+ 0x52dc_e729
            k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
            h2 = rotl(h2, 31); h2 &+= h1; h2 = h2 &* 5 &+ 0x3849_5ab5
        }
        let tail = data.count & 15, base = blocks * 16
        if tail > 8 {
            var k2 = le(base + 8, tail - 8)
            k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
        }
        if tail > 0 {
            var k1 = le(base, min(tail, 8))
            k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
        }
        func fmix(_ k: UInt64) -> UInt64 {
            var k = k
            k ^= k >> 33; k &*= 0xff51_afd7_ed55_8ccd; k ^= k >> 33; k &*= 0xc4ce_b9fe_1a85_ec53; k ^= k >> 33
            return k
        }
        h1 ^= UInt64(data.count); h2 ^= UInt64(data.count)
        h1 &+= h2; h2 &+= h1
        h1 = fmix(h1); h2 = fmix(h2)
        h1 &+= h2
        return h1
    }
}
