import Access
import Audit
import CAR
import Foundation
import HTTPMessages
import IPLD
import Multiformats
import Qindex
import Registry
import Signing
import Storage
import UnixFS

/// One fuzz target per untrusted input (Docs/fuzzing.md). Each takes any bytes and checks what
/// must hold whatever they are: it returns, or throws one of its module's own errors — anything
/// else, a trap, or a broken invariant (a canonical codec whose output does not read back as the
/// input) stops the process (`FuzzFailure.stop`), which libFuzzer reports with the input.
///
/// The same functions run in three places: `qstore-fuzz` built with `-sanitize=fuzzer,address`
/// (`make fuzz`), `qstore-fuzz TARGET FILE…` built normally (replaying a corpus or a crasher),
/// and `FuzzRegressionTests` (every seed and every crasher, on each test run).
public enum FuzzTargets {
    public struct Target: Sendable {
        public let name: String
        /// What it parses, for `--list` and the docs.
        public let input: String
        public let run: @Sendable ([UInt8]) -> Void
    }

    public static let all: [Target] = [
        Target(name: "varint", input: "unsigned varints", run: varint),
        Target(name: "multibase", input: "multibase strings", run: multibase),
        Target(name: "cid-string", input: "CIDs as text (v0 base58, multibase v1)", run: cidString),
        Target(name: "cid-bytes", input: "CIDs as bytes", run: cidBytes),
        Target(name: "multihash", input: "multihashes", run: multihash),
        Target(name: "dag-cbor", input: "DAG-CBOR blocks (strict decoder, link scanner)", run: dagCBOR),
        Target(name: "dag-json", input: "DAG-JSON blocks (strict and lenient decoders)", run: dagJSON),
        Target(name: "dag-pb", input: "DAG-PB blocks", run: dagPB),
        Target(name: "unixfs-data", input: "UnixFS Data messages", run: unixfsData),
        Target(name: "hamt", input: "HAMT shard DAGs (the input cut into dag-pb blocks)", run: hamt),
        Target(name: "car", input: "CAR v1 and v2 files (header, sections, inner CAR)", run: car),
        Target(name: "car-index", input: "CARv2 indexes (IndexSorted, MultihashIndexSorted)", run: carIndex),
        Target(name: "multipart", input: "multipart/form-data bodies", run: multipart),
        Target(name: "http-headers", input: "Range, Accept and If-None-Match header values", run: httpHeaders),
        Target(name: "dag-path", input: "paths through a DAG (the input: blocks, then a path)", run: dagPath),
        Target(name: "ipns-record", input: "IPNS records (protobuf with DAG-CBOR data)", run: ipnsRecord),
        Target(name: "qindex-record", input: "Qindex pointer records, and merges of two", run: qindexRecord),
        Target(name: "audit-event", input: "Qerberos audit events (DAG-CBOR)", run: auditEvent),
        Target(name: "checkpoint", input: "audit checkpoints and signed notes (text)", run: checkpoint),
        Target(name: "module-metadata", input: "registry module metadata (DAG-CBOR)", run: moduleMetadata),
        Target(name: "semver", input: "semver versions and ranges", run: semver),
        Target(name: "signed-request", input: "signed-request headers (x-ts, x-nonce, x-sig, x-subid, query)", run: signedRequest),
    ]

    public static func target(_ name: String) -> Target? { all.first { $0.name == name } }

    // MARK: checks

    /// A broken invariant: the process stops with what broke (libFuzzer keeps the input).
    static func stop(_ why: @autoclosure () -> String, _ file: StaticString = #fileID, _ line: UInt = #line) -> Never {
        fatalError("fuzz invariant broken: \(why())", file: file, line: line)
    }

    static func check(_ condition: Bool, _ why: @autoclosure () -> String, _ file: StaticString = #fileID, _ line: UInt = #line) {
        if !condition { stop(why(), file, line) }
    }

    /// Runs `body`; an error must be one of `allowed` (the module's own), else the process stops.
    static func expecting(_ allowed: [any Error.Type], _ body: () throws -> Void, _ file: StaticString = #fileID, _ line: UInt = #line) {
        do { try body() } catch {
            let type = type(of: error as Any)
            guard allowed.contains(where: { $0 == type }) else { stop("an error of type \(type) escaped: \(error)", file, line) }
        }
    }

    static func text(_ data: [UInt8]) -> String { String(decoding: data, as: UTF8.self) }

    /// The input cut into pieces at each occurrence of `separator` (a byte sequence unlikely by
    /// chance, so a mutated seed keeps its shape).
    static func pieces(_ data: [UInt8], _ separator: [UInt8] = Array("\n--8<--\n".utf8)) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var start = 0, i = 0
        while i + separator.count <= data.count {
            if data[i..<i + separator.count].elementsEqual(separator) {
                out.append(Array(data[start..<i]))
                i += separator.count
                start = i
            } else {
                i += 1
            }
        }
        out.append(Array(data[start...]))
        return out
    }

    // MARK: multiformats

    static func varint(_ data: [UInt8]) {
        expecting([VarintError.self]) {
            let (value, length) = try Varint.decode(data)
            check(Varint.encode(value) == Array(data.prefix(length)), "varint \(value) re-encodes differently")
        }
    }

    static func multibase(_ data: [UInt8]) {
        guard data.count <= 4096 else { return }  // the big-number bases are quadratic
        expecting([MultibaseError.self]) {
            let (base, bytes) = try Multibase.decode(text(data))
            let again = try Multibase.decode(base.encode(bytes))
            check(again.bytes == bytes && again.base == base, "multibase \(base) does not read back what it writes")
        }
    }

    static func cidString(_ data: [UInt8]) {
        guard data.count <= 4096 else { return }
        expecting([CIDError.self]) {
            let cid = try CID(text(data))
            check(try CID(cid.string) == cid, "\(cid) does not read back from its own text")
            check(try CID(bytes: cid.bytes) == cid, "\(cid) does not read back from its bytes")
        }
    }

    static func cidBytes(_ data: [UInt8]) {
        expecting([CIDError.self]) {
            let cid = try CID(bytes: data)
            check(cid.bytes == data, "CID bytes are not canonical")
            check(try CID(cid.string) == cid, "\(cid) does not read back from its text")
        }
    }

    static func multihash(_ data: [UInt8]) {
        expecting([MultihashError.self]) {
            let mh = try Multihash(bytes: data)
            check(mh.bytes == data, "multihash bytes are not canonical")
            check(try Multihash(code: mh.code, digest: mh.digest).bytes == data, "multihash rebuilt differently")
        }
    }

    // MARK: IPLD

    static func dagCBOR(_ data: [UInt8]) {
        expecting([IPLDError.self]) { _ = try DAGCBOR().links(in: data) }
        expecting([IPLDError.self]) {
            let node = try DAGCBOR().decode(data)
            check(try DAGCBOR().encode(node) == data, "DAG-CBOR decode→encode is not the input")
            // Whatever DAG-JSON can hold of it reads back the same.
            if let json = try? DAGJSON().encode(node) { check(try DAGJSON().decode(json) == node, "DAG-CBOR → DAG-JSON → node differs") }
        }
    }

    static func dagJSON(_ data: [UInt8]) {
        expecting([IPLDError.self]) {
            let node = try DAGJSON().decode(data)
            check(try DAGJSON().encode(node) == data, "DAG-JSON decode→encode is not the input")
        }
        expecting([IPLDError.self]) {
            let node = try DAGJSON(strict: false).decode(data)
            let canonical = try DAGJSON().encode(node)
            check(try DAGJSON().decode(canonical) == node, "lenient DAG-JSON → canonical → node differs")
        }
        expecting([IPLDError.self]) { _ = try DAGJSON().links(in: data) }
    }

    static func dagPB(_ data: [UInt8]) {
        expecting([IPLDError.self]) { _ = try DAGPB().links(in: data) }
        expecting([IPLDError.self]) {
            let node = try DAGPB.decodeNode(data)
            // Links in order encode; the encoding reads back as the same node (the decoder also
            // takes Data before Links, which the encoder never writes).
            guard node.linksAreSorted else { return }
            let bytes = try DAGPB.encodeNode(node)
            check(try DAGPB.decodeNode(bytes) == node, "DAG-PB encode→decode differs")
            check(try DAGPB.encodeNode(DAGPB.decodeNode(bytes)) == bytes, "DAG-PB encoding is not stable")
        }
    }

    // MARK: UnixFS, CAR, paths

    static func unixfsData(_ data: [UInt8]) {
        expecting([UnixFSError.self]) {
            let d = try UnixFSData(bytes: data)
            check(try UnixFSData(bytes: d.encode()) == d, "UnixFS Data encode→decode differs")
        }
    }

    /// The blocks of the input (as dag-pb, else raw), stored; the CID of the last.
    static func store(_ pieces: [[UInt8]], into store: MemoryBlockStore) -> CID? {
        var last: CID?
        for p in pieces.prefix(64) {
            let codec: Multicodec = (try? DAGPB.decodeNode(p)) != nil ? .dagPB : .raw
            guard let b = try? Block(data: p, codec: codec) else { continue }
            try? store.put(b)
            last = b.cid
        }
        return last
    }

    static func hamt(_ data: [UInt8]) {
        let blocks = MemoryBlockStore()
        guard let root = store(pieces(data), into: blocks) else { return }
        let errors: [any Error.Type] = [UnixFSError.self, IPLDError.self, BlockStoreError.self]
        expecting(errors) { _ = try HAMT.entries(root, store: blocks) }
        expecting(errors) { _ = try HAMT.lookup("a", in: root, store: blocks) }
    }

    static func car(_ data: [UInt8]) {
        var blocks: [(CID, [UInt8])] = []
        var cleanEnd = false
        var roots: [CID] = []
        var isV2 = false
        expecting([CARError.self]) {
            var reader = try CARReader(BytesSource(data), fileSize: UInt64(data.count))
            roots = reader.roots
            isV2 = reader.version == 2
            while let b = try reader.next() {
                blocks.append((b.cid, b.data))
                check(blocks.count <= data.count, "more blocks than bytes")
            }
            cleanEnd = true
        }
        // A CARv1 read to its end writes back as the same bytes when its header is exactly
        // {roots, version: 1} (extra header keys are read and dropped).
        guard cleanEnd, !isV2, !roots.isEmpty else { return }
        expecting([CARError.self, IPLDError.self]) {
            var w = try CARWriter(roots: roots, sink: ArraySink())
            for (cid, bytes) in blocks { try w.write(cid: cid, data: bytes) }
            let out = try w.finish().bytes
            var again = try CARReader(BytesSource(out))
            var n = 0
            while let b = try again.next() {
                check(n < blocks.count && b.cid == blocks[n].0 && b.data == blocks[n].1, "a CAR written from what was read reads differently")
                n += 1
            }
            check(n == blocks.count, "a CAR written from what was read has \(n) blocks, not \(blocks.count)")
        }
    }

    static func carIndex(_ data: [UInt8]) {
        expecting([CARError.self]) {
            let index = try CARIndex(bytes: data)
            let once = index.encode()
            check(try CARIndex(bytes: once).encode() == once, "a CARv2 index's encoding is not stable")
        }
    }

    static func multipart(_ data: [UInt8]) {
        // The first line is the boundary (as a Content-Type would give it), the rest the body.
        guard let nl = data.firstIndex(of: 0x0a) else { return }
        let boundaryLine = text(Array(data[..<nl]))
        guard let boundary = MultipartReader<BytesSource>.boundary(of: "multipart/form-data; boundary=" + boundaryLine) else { return }
        let body = Array(data[(nl + 1)...])
        expecting([MultipartMalformed.self, BodyTooLarge.self]) {
            let reader = MultipartReader(BytesSource(body), boundary: boundary, readSize: 4096)
            var parts = 0, total = 0
            while let headers = try reader.nextPart() {
                parts += 1
                check(headers.keys.allSatisfy { $0 == $0.lowercased() }, "multipart header names are not lower case")
                total += try reader.readBody(limit: 1 << 20).count
                check(total <= body.count && parts <= body.count, "multipart read more than the body holds")
            }
        }
    }

    static func httpHeaders(_ data: [UInt8]) {
        // Lines: a size, then Range, Accept and If-None-Match values (and an entity tag).
        let lines = text(data).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let size = UInt64(lines.first ?? "") ?? UInt64(data.count)
        if lines.count > 1 {
            do {
                if let ranges = try ByteRanges.parse(lines[1], size: size, maximum: 100) {
                    check(!ranges.isEmpty && ranges.count <= 100, "\(ranges.count) ranges")
                    check(ranges.allSatisfy { $0.upperBound < size }, "a range past the end: \(ranges) of \(size)")
                    let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
                    check(zip(sorted, sorted.dropFirst()).allSatisfy { $0.upperBound + 1 < $1.lowerBound }, "ranges overlap or touch: \(ranges)")
                    check(ranges.reduce(UInt64(0)) { $0 + $1.upperBound - $1.lowerBound + 1 } <= size, "more bytes than the body: \(ranges)")
                }
            } catch {
                check(size > 0 || error.header == lines[1], "416 for \(lines[1])")
            }
        }
        if lines.count > 2 {
            for m in MediaRange.list(lines[2]) {
                check(!m.type.isEmpty && m.type == m.type.lowercased() && m.weight.isFinite, "media range \(m)")
            }
        }
        if lines.count > 3 {
            let etag = lines.count > 4 ? lines[4] : "\"x\""
            // A match is `*` or the tag itself (weak or strong) among the header's entries.
            let opaque = etag.hasPrefix("W/") ? String(etag.dropFirst(2)) : etag
            if EntityTags.matches(lines[3], etag: etag) {
                check(lines[3].contains("*") || (!opaque.isEmpty && lines[3].contains(opaque)), "If-None-Match \(lines[3]) matched \(etag)")
            }
        }
    }

    static func dagPath(_ data: [UInt8]) {
        var parts = pieces(data)
        guard parts.count >= 2 else { return }
        let path = text(parts.removeLast()).split(separator: "/").map(String.init)
        let blocks = MemoryBlockStore()
        var root: CID?
        for p in parts.prefix(64) {
            for codec in [Multicodec.dagCBOR, .dagJSON, .dagPB] where (try? Codecs.codec(for: codec).decode(p)) != nil {
                if let b = try? Block(data: p, codec: codec) {
                    try? blocks.put(b)
                    root = b.cid
                }
            }
        }
        guard let root else { return }
        expecting([DAGPath.Failure.self, DAGTransferError.self, IPLDError.self, BlockStoreError.self]) {
            _ = try DAGPath.resolve(root, Array(path.prefix(64)), in: blocks)
        }
    }

    // MARK: records

    static func ipnsRecord(_ data: [UInt8]) {
        expecting([IPNSError.self]) {
            let record = try IPNSRecord.parse(data)
            if let now = RFC3339Time(rfc3339: "2026-12-05T00:00:00Z"), let mh = try? Multihash.compute(Array(data.prefix(8)), function: .identity) {
                expecting([IPNSError.self]) { try record.verify(name: mh, now: now) }
            }
        }
    }

    static func qindexRecord(_ data: [UInt8]) {
        let parts = pieces(data)
        var decoded: [(cid: CID, record: IndexRecord)] = []
        for p in parts.prefix(4) {
            expecting([QindexError.self]) {
                let r = try IndexRecord(decoding: p)
                check(r.encoded == p, "a Qindex record's encoding is not its bytes")
                expecting([SigningError.self]) { try r.verifySignature() }
                if let b = try? Block(data: p, codec: .dagCBOR) { decoded.append((b.cid, r)) }
            }
        }
        // Heads of one pointer, distinct, merge into a record that decodes.
        let sameKey = decoded.filter { $0.record.type == decoded.first?.record.type && $0.record.key == decoded.first?.record.key }
        guard Set(sameKey.map(\.cid)).count >= 2, sameKey.count == Set(sameKey.map(\.cid)).count else { return }
        let merged = IndexRecord.merge(sameKey)
        expecting([QindexError.self]) {
            // Its version may pass the last one (then it is refused, not a trap); else it reads back.
            let again = try IndexRecord(decoding: merged.encoded)
            check(again == merged, "a merge record does not read back")
        }
    }

    static func auditEvent(_ data: [UInt8]) {
        expecting([SigningError.self, IPLDError.self]) {
            let event = try AuditEvent(decoding: data)
            let bytes = try event.encoded()
            check(try AuditEvent(decoding: bytes) == event, "an audit event does not read back from its encoding")
        }
    }

    static func checkpoint(_ data: [UInt8]) {
        let t = text(data)
        expecting([CheckpointError.self]) {
            let c = try Checkpoint(text: t)
            check(try Checkpoint(text: c.text) == c, "a checkpoint does not read back from its text")
        }
        // A signed note: its body, if it opens for some key.
        expecting([CheckpointError.self]) { _ = try SignedNote.open(t, name: "fuzz", publicKey: [UInt8](repeating: 7, count: 32)) }
        expecting([AuditError.self]) { _ = try SignedNote.parseVerifierKey(t) }
    }

    static func moduleMetadata(_ data: [UInt8]) {
        expecting([SigningError.self, IPLDError.self]) {
            let m = try ModuleMetadata(decoding: data)
            check(try ModuleMetadata(decoding: m.encoded()) == m, "module metadata does not read back from its encoding")
        }
    }

    static func semver(_ data: [UInt8]) {
        let lines = text(data).split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        for loose in [false, true] {
            let options = SemVer.Options(loose: loose, includePrerelease: data.first.map { $0 & 1 == 1 } ?? false)
            var version: SemVer?
            expecting([SemVerError.self]) {
                let v = try SemVer(lines[0], options: options)
                check(try SemVer(v.description) == v, "\(v) does not read back from its text")
                version = v
            }
            if lines.count > 1 {
                expecting([SemVerError.self]) {
                    let r = try SemVerRange(lines[1], options: options)
                    if let version {
                        let again = try SemVerRange(r.description, options: options)
                        check(again.contains(version) == r.contains(version), "range \(r) and its text disagree on \(version)")
                    }
                }
            }
        }
    }

    static func signedRequest(_ data: [UInt8]) {
        // Lines: x-ts, x-nonce, x-sig, x-subid, a query.
        var lines = text(data).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.count < 5 { lines.append("") }
        let request = SignedRequest(method: "POST", path: "/q/v1/index/a/b", query: lines[4], squidId: "fuzz", subId: lines[3].isEmpty ? nil : lines[3],
                                    timestamp: lines[0], nonce: lines[1], signature: lines[2], bodySHA256: "")
        expecting([AccessError.self]) {
            let (ms, signature) = try request.parsed()
            check(signature.count == 64 && String(ms) == lines[0], "x-ts \(lines[0]) read as \(ms)")
        }
        let query = SignedRequest.canonicalQuery(lines[4])
        check(SignedRequest.canonicalQuery(query) == query, "the canonical query is not canonical: \(query)")
        _ = request.canonicalString
    }
}
