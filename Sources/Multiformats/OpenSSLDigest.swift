import COpenSSL

/// Hash functions computed by OpenSSL's libcrypto (EVP). OpenSSL uses the
/// CPU's SHA extensions (SHA-NI) for SHA-1 and SHA-2, which is why Qstore
/// hashes through it (see Docs/multiformats.md for the measurement).
struct OpenSSLDigest: StreamingHasher {
    /// The digests taken from OpenSSL, with their multicodec codes.
    enum Algorithm: CaseIterable, Sendable {
        case sha1, sha2_224, sha2_256, sha2_384, sha2_512, sha2_512_224, sha2_512_256
        case sha3_224, sha3_256, sha3_384, sha3_512, shake128, shake256, md5

        var multicodec: UInt64 {
            switch self {
            case .sha1: 0x11
            case .sha2_256: 0x12
            case .sha2_512: 0x13
            case .sha3_512: 0x14
            case .sha3_384: 0x15
            case .sha3_256: 0x16
            case .sha3_224: 0x17
            case .shake128: 0x18
            case .shake256: 0x19
            case .sha2_384: 0x20
            case .md5: 0xd5
            case .sha2_224: 0x1013
            case .sha2_512_224: 0x1014
            case .sha2_512_256: 0x1015
            }
        }

        /// The multihash digest length; for the SHAKE XOFs it is the length the multihash table fixes.
        var digestLength: Int {
            switch self {
            case .md5: 16
            case .sha1: 20
            case .sha2_224, .sha3_224, .sha2_512_224: 28
            case .sha2_256, .sha3_256, .sha2_512_256, .shake128: 32
            case .sha2_384, .sha3_384: 48
            case .sha2_512, .sha3_512, .shake256: 64
            }
        }

        var isXOF: Bool { self == .shake128 || self == .shake256 }

        var openSSLName: String {
            switch self {
            case .sha1: "SHA1"
            case .sha2_224: "SHA2-224"
            case .sha2_256: "SHA2-256"
            case .sha2_384: "SHA2-384"
            case .sha2_512: "SHA2-512"
            case .sha2_512_224: "SHA2-512/224"
            case .sha2_512_256: "SHA2-512/256"
            case .sha3_224: "SHA3-224"
            case .sha3_256: "SHA3-256"
            case .sha3_384: "SHA3-384"
            case .sha3_512: "SHA3-512"
            case .shake128: "SHAKE-128"
            case .shake256: "SHAKE-256"
            case .md5: "MD5"
            }
        }

        /// The fetched EVP_MD, fetched once per process (fetching per call costs more than hashing a small block).
        var md: OpaquePointer { Self.fetched[self]!.pointer }

        private static let fetched: [Algorithm: FetchedMD] = {
            var r: [Algorithm: FetchedMD] = [:]
            for a in allCases {
                guard let p = EVP_MD_fetch(nil, a.openSSLName, nil) else {
                    fatalError("OpenSSL has no \(a.openSSLName): libcrypto 3 is required")
                }
                r[a] = FetchedMD(pointer: p)
            }
            return r
        }()
    }

    /// An EVP_MD from EVP_MD_fetch. `@unchecked Sendable` is sound: fetched
    /// EVP_MD objects are immutable, never freed here (they live for the
    /// process), and OpenSSL documents them as safe to share between threads.
    struct FetchedMD: @unchecked Sendable { let pointer: OpaquePointer }

    /// Owns one EVP_MD_CTX; freed with the last reference.
    final class Context {
        let ctx: OpaquePointer
        init(_ md: OpaquePointer) {
            guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex2(c, md, nil) == 1 else {
                fatalError("OpenSSL: cannot start a digest (out of memory)")
            }
            ctx = c
        }
        deinit { EVP_MD_CTX_free(ctx) }
    }

    let algorithm: Algorithm
    let context: Context

    init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        self.context = Context(algorithm.md)
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        EVP_DigestUpdate(context.ctx, bytes.baseAddress, bytes.count)
    }

    mutating func finalize() -> [UInt8] {
        let n = algorithm.digestLength
        return [UInt8](unsafeUninitializedCapacity: max(n, 64)) { buf, count in
            if algorithm.isXOF {
                EVP_DigestFinalXOF(context.ctx, buf.baseAddress, n)
            } else {
                var len: UInt32 = 0
                EVP_DigestFinal_ex(context.ctx, buf.baseAddress, &len)
            }
            count = n
        }
    }

    /// One-shot digest of `bytes`: no context kept, the fastest path for whole blocks.
    static func digest(_ algorithm: Algorithm, _ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        if algorithm.isXOF {
            var h = OpenSSLDigest(algorithm)
            h.update(bytes)
            return h.finalize()
        }
        // The block hash: OpenSSL's SHA-256 block functions on a stack context skip EVP's
        // per-call context allocation, which costs ~25% on 1 KiB blocks (Docs/benchmarks.md).
        if algorithm == .sha2_256 {
            return [UInt8](unsafeUninitializedCapacity: 32) { buf, count in
                var ctx = SHA256_CTX()
                SHA256_Init(&ctx)
                if let p = bytes.baseAddress { SHA256_Update(&ctx, p, bytes.count) }
                SHA256_Final(buf.baseAddress, &ctx)
                count = 32
            }
        }
        return [UInt8](unsafeUninitializedCapacity: 64) { buf, count in
            var len: UInt32 = 0
            // EVP_Digest accepts a null pointer only with length 0; give it a valid one.
            let base = bytes.baseAddress ?? UnsafeRawPointer(buf.baseAddress!)
            guard EVP_Digest(base, bytes.count, buf.baseAddress, &len, algorithm.md, nil) == 1 else {
                fatalError("OpenSSL: digest failed")
            }
            count = Int(len)
        }
    }
}
