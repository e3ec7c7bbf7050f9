import Foundation
import Multiformats
import Storage
import UnixFS

/// Writing a UnixFS tree as a POSIX ustar archive (`ipfs get`'s format), streamed.
extension Node {
    /// Writes the tree at `root`/`path` as tar to `write`, under `name` (the top entry).
    /// Entry names that would escape the archive's root (`..`, absolute, containing `/`) are refused.
    public func tar(_ root: CID, path: [String] = [], name: String, write: ([UInt8]) throws -> Void) throws {
        let cid = path.isEmpty ? root : try resolve(root, path: path).terminal
        let top = try Self.safeName(name)
        try withoutActuallyEscaping(write) { write in try tarEntry(cid, path: top, write: write) }
        try write([UInt8](repeating: 0, count: 1024))  // end of archive
    }

    /// Throws what `tar` of the same tree would throw on its way for the tree's shape — an unsafe
    /// entry name, a directory or file node missing, a file too large for ustar — reading each
    /// entry's node but no file's data: a streamed `get` checks first, so those errors get a
    /// status and a message instead of a reply cut short.
    public func checkTar(_ root: CID, path: [String] = [], name: String) throws {
        let cid = path.isEmpty ? root : try resolve(root, path: path).terminal
        try tarEntry(cid, path: try Self.safeName(name), write: nil)
    }

    static func safeName(_ name: String) throws -> String {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0") else {
            // Kubo's words (boxo's tar writer, typo included), which clients and the gateway
            // conformance suite look for.
            throw NodeError.badInput("relative UnixFS paths outside the root are now allowed, use CAR instead: unsafe entry name \"\(name)\"")
        }
        return name
    }

    /// One entry and what is under it; `write` nil: only checked (`checkTar`).
    private func tarEntry(_ cid: CID, path: String, write: (([UInt8]) throws -> Void)?) throws {
        let node: UnixFSNode
        do { node = try UnixFSNode.load(cid, from: blocks) } catch UnixFSError.missingBlock(let c) { throw NodeError.notFound(c) }
        switch node {
        case .file(let size):
            let header = try TarHeader.make(name: path, type: "0", size: size, mode: 0o644)
            guard let write else { return }
            try write(header)
            try cat(cid) { try write($0) }
            let pad = Int((512 - size % 512) % 512)
            if pad > 0 { try write([UInt8](repeating: 0, count: pad)) }
        case .symlink(let target):
            let header = try TarHeader.make(name: path, type: "2", size: 0, mode: 0o777, linkTarget: target)
            try write?(header)
        case .directory, .shardedDirectory:
            try write?(TarHeader.make(name: path + "/", type: "5", size: 0, mode: 0o755))
            let entries: [DirectoryEntry]
            if case .directory(let e) = node { entries = e } else { entries = try HAMT.entries(cid, store: blocks) }
            for e in entries { try tarEntry(e.cid, path: path + "/" + (try Self.safeName(e.name)), write: write) }
        }
    }
}

/// ustar headers, with GNU long-name records for paths over 100 bytes.
enum TarHeader {
    static func make(name: String, type: Character, size: UInt64, mode: Int, linkTarget: String = "") throws -> [UInt8] {
        var out: [UInt8] = []
        let nameBytes = Array(name.utf8)
        if nameBytes.count > 100 {
            // GNU ././@LongLink record carrying the full name.
            out += try make(name: "././@LongLink", type: "L", size: UInt64(nameBytes.count + 1), mode: 0o644)
            var body = nameBytes + [0]
            body += [UInt8](repeating: 0, count: (512 - body.count % 512) % 512)
            out += body
        }
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: [UInt8], _ at: Int, _ len: Int) { for (i, b) in s.prefix(len).enumerated() { h[at + i] = b } }
        func octal(_ v: UInt64, _ at: Int, _ len: Int) { put(Array(String(String(v, radix: 8).suffix(len - 1)).leftPad(len - 1).utf8) + [0], at, len) }
        put(Array(nameBytes.prefix(100)), 0, 100)
        octal(UInt64(mode), 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        guard size < 1 << 33 else { throw NodeError.badInput("file of \(size) bytes is too large for a ustar header") }
        octal(size, 124, 12)
        octal(0, 136, 12)
        put([UInt8](repeating: 0x20, count: 8), 148, 8)
        h[156] = UInt8(ascii: type.unicodeScalars.first!)
        put(Array(linkTarget.utf8), 157, 100)
        put(Array("ustar".utf8) + [0], 257, 6)
        put(Array("00".utf8), 263, 2)
        let sum = h.reduce(0) { $0 + Int($1) }
        put(Array(String(String(sum, radix: 8)).leftPad(6).utf8) + [0, 0x20], 148, 8)
        return out + h
    }
}

extension String {
    /// Zero-padded on the left to `width`.
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
