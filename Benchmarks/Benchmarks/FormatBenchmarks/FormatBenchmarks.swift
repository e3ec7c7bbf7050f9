import Benchmark
import CAR
import Crypto
import IPLD
import Multiformats

// Throughput figures: each benchmark processes a known number of bytes per
// iteration (named in its title), so MB/s = that size × iterations per second.

let mebibyte = [UInt8]((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) })
let kibibyte = Array(mebibyte.prefix(1024))
let block256KiB = Array(mebibyte.prefix(256 << 10))

/// A DAG-CBOR document shaped like Q ecosystem metadata: maps, strings, ints, links, bytes.
let sampleNode: IPLDNode = {
    let link = IPLDNode.link(CID(codec: .raw, multihash: try! Multihash.compute(kibibyte)))
    let entries: [IPLDNode] = (0..<64).map { i in
        let tags: [IPLDNode] = [.string("docs"), .string("audit"), .string("t\(i)")]
        let pairs: [(String, IPLDNode)] = [
            ("module", .string("q-module-\(i)")), ("version", .string("1.\(i).0")), ("size", .int(i * 1000 + 7)),
            ("checksum", .bytes(Array(kibibyte[i..<i + 32]))), ("package", link), ("tags", .list(tags)),
            ("ratio", .float(Double(i) / 3)), ("active", .bool(i % 2 == 0)),
        ]
        return .map(IPLDMap(uniqueKeysWithValues: pairs))
    }
    return ["entries": .list(entries), "count": 64, "name": "registry-snapshot"]
}()
let sampleCBOR = try! DAGCBOR().encode(sampleNode)
let cidStrings = (0..<1000).map { i in CID(codec: .dagCBOR, multihash: try! Multihash.compute(Array("\(i)".utf8))).string }
let cids = cidStrings.map { try! CID($0) }

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.throughput, .wallClock, .mallocCountTotal], maxDuration: .seconds(3), maxIterations: 1_000_000)

    Benchmark("SHA-256 OpenSSL (Multihash.compute), 1 MiB") { b in
        for _ in b.scaledIterations { blackHole(try Multihash.compute(mebibyte)) }
    }
    Benchmark("SHA-256 swift-crypto, 1 MiB") { b in
        for _ in b.scaledIterations { blackHole(SHA256.hash(data: mebibyte)) }
    }
    Benchmark("SHA-256 OpenSSL (Multihash.compute), 256 KiB") { b in
        for _ in b.scaledIterations { blackHole(try Multihash.compute(block256KiB)) }
    }
    Benchmark("SHA-256 swift-crypto, 256 KiB") { b in
        for _ in b.scaledIterations { blackHole(SHA256.hash(data: block256KiB)) }
    }
    Benchmark("SHA-256 OpenSSL (Multihash.compute), 1 KiB") { b in
        for _ in b.scaledIterations { blackHole(try Multihash.compute(kibibyte)) }
    }
    Benchmark("SHA-256 swift-crypto, 1 KiB") { b in
        for _ in b.scaledIterations { blackHole(SHA256.hash(data: kibibyte)) }
    }
    // Like for like with Multihash.compute: the same digest wrapped as a multihash.
    Benchmark("SHA-256 swift-crypto as Multihash, 1 KiB") { b in
        for _ in b.scaledIterations { blackHole(Multihash(code: .sha2_256, digest: Array(SHA256.hash(data: kibibyte)))) }
    }
    Benchmark("BLAKE2b-256, 1 MiB") { b in
        for _ in b.scaledIterations { blackHole(try Multihash.compute(mebibyte, function: .blake2b_256)) }
    }
    Benchmark("CID parse, 1000 base32 CIDv1") { b in
        for _ in b.scaledIterations { for s in cidStrings { blackHole(try CID(s)) } }
    }
    Benchmark("CID format, 1000 CIDv1 to base32") { b in
        for _ in b.scaledIterations { for c in cids { blackHole(c.string) } }
    }
    Benchmark("DAG-CBOR encode, \(sampleCBOR.count) B document") { b in
        for _ in b.scaledIterations { blackHole(try DAGCBOR().encode(sampleNode)) }
    }
    Benchmark("DAG-CBOR decode, \(sampleCBOR.count) B document") { b in
        for _ in b.scaledIterations { blackHole(try DAGCBOR().decode(sampleCBOR)) }
    }
    Benchmark("DAG-CBOR links, \(sampleCBOR.count) B document") { b in
        for _ in b.scaledIterations { blackHole(try DAGCBOR().links(in: sampleCBOR)) }
    }
}
