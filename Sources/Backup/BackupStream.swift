import CAR
import Foundation
import IPLD
import Multiformats
import Storage

/// A backup set as one stream (`backup create --to -`): a CARv1 whose root is an identity CID
/// naming the set (`{backup: id, stream: true}`), then every block, then the signed manifest as
/// the last block (it has no parts; its counts say how many blocks came before it). A stream cut
/// short has no manifest at its end and is refused.
public enum BackupStream {
    /// The stream's root: the set's id, carried in the CID itself.
    public static func root(_ id: String) throws -> CID {
        let label = try DAGCBOR().encode(.map(IPLDMap(uniqueKeysWithValues: [("backup", .string(id)), ("stream", .bool(true))])))
        return CID(codec: .dagCBOR, multihash: Multihash(code: .identity, digest: label))
    }

    /// Reads a stream: hands `body` each block before the manifest (checked against its CID), in
    /// order, and returns the manifest (its signature not yet checked: `verifySignature`).
    public static func read<S: ByteSource>(_ source: S, body: (Block) throws -> Void) throws -> BackupManifest {
        var options = CARReader<S>.Options()
        options.verifyBlocks = false
        var reader: CARReader<S>
        do { reader = try CARReader(source, options: options) } catch { throw BackupError.corrupt("not a backup stream: \(error)") }
        guard reader.roots.count == 1, let root = reader.roots.first, root.multihash.code == .identity,
              case .map(let label)? = try? DAGCBOR().decode(Array(root.multihash.digest)), case .string(let id)? = label["backup"], BackupManifest.isID(id)
        else { throw BackupError.corrupt("not a backup stream: its root does not name a backup set") }
        var pending: CARBlock?
        var count: UInt64 = 0
        while true {
            let next: CARBlock?
            do { next = try reader.next() } catch { throw BackupError.corrupt("\(id): the stream is unreadable after \(count) blocks: \(error)") }
            guard let b = next else { break }
            if let p = pending {
                let block: Block
                do { block = try Block(cid: p.cid, data: p.data) } catch { throw BackupError.corrupt("\(id): block \(p.cid) does not hash to its CID (at byte \(p.sectionOffset))") }
                try body(block)
                count += 1
            }
            pending = b
        }
        guard let last = pending, last.cid.codec == .dagCBOR, let block = try? Block(cid: last.cid, data: last.data),
              let manifest = try? BackupManifest(decoding: block.data), manifest.id == id
        else { throw BackupError.corrupt("\(id): the stream ends without its manifest (cut short after \(count) blocks?)") }
        guard manifest.blocks == count else { throw BackupError.corrupt("\(id): \(count) blocks in the stream, its manifest says \(manifest.blocks)") }
        guard manifest.parent == nil, manifest.parts.isEmpty else { throw BackupError.corrupt("\(id): a streamed set has no parent and no parts") }
        return manifest
    }

    /// `backup verify -`: the manifest's signature, every block's hash, and every pin of the set
    /// complete within the stream.
    public static func verify<S: ByteSource>(_ source: S, progress: (UInt64) -> Void = { _ in }) throws -> BackupVerification {
        var v = BackupVerification()
        var links: [Multihash: [CID]] = [:]
        let manifest = try read(source) { b in
            v.blocks += 1
            v.bytes += UInt64(b.data.count)
            links[b.cid.multihash] = (try? Codecs.links(in: b.data, codec: b.cid.codec)) ?? []
            if v.blocks % 1000 == 0 { progress(v.blocks) }
        }
        progress(v.blocks)
        v.sets = [manifest.id]
        do { try manifest.verifySignature() } catch { v.problems.append("\(manifest.id): manifest signature: \(error)") }
        v.problems += BackupDirectory.completeness(of: manifest, links: links)
        return v
    }
}
