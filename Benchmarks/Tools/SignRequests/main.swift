// Pre-signs requests for the authentication benchmark (Benchmarks/HTTP/auth.sh): wrk's Lua
// cannot make Ed25519 signatures, so each request's nonce and signature are made here, one per
// line ("nonce sig"), and the Lua script sends them in order. Signing is the client's cost and is
// not measured; the daemon's verification is.
//
//   SignRequests pubkey SEED_HEX
//   SignRequests get SEED_HEX SQUID PATH QUERY COUNT RUN        (GET, empty body)
//   SignRequests put SEED_HEX SQUID PATH QUERY COUNT RUN        (POST of signed.lua's block bodies)
// RUN ([A-Za-z0-9], at most 24) goes into every nonce (and block), so runs never replay each other.
import Access
import Crypto
import Foundation
import Multiformats

let args = CommandLine.arguments
guard args.count >= 3, let seed = try? Base16.decode(args[2]), seed.count == 32,
      let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
    FileHandle.standardError.write(Data("usage: SignRequests pubkey|get|put SEED_HEX [SQUID PATH QUERY COUNT]\n".utf8))
    exit(2)
}
if args[1] == "pubkey" {
    print(key.publicKey.rawRepresentation.base64EncodedString())
    exit(0)
}
if args[1] == "verify-speed" {
    // What one verification costs the daemon (the canonical string, its signature check).
    let r = SignedRequest(method: "GET", path: "/ipfs/bafkqaaa", query: "format=raw", squidId: "bench", subId: nil,
                          timestamp: "1767225600000", nonce: "bench-0000000000000000", signature: "", bodySHA256: SignedRequest.emptyBodySHA256)
    let message = Array(r.canonicalString.utf8)
    let sig = try key.signature(for: message)
    let pub = key.publicKey
    var ok = 0
    let n = 20_000
    let start = ContinuousClock.now
    for _ in 0..<n where pub.isValidSignature(sig, for: message) { ok += 1 }
    let elapsed = ContinuousClock.now - start
    print("Ed25519 verify (swift-crypto): \(elapsed / n) per signature (\(ok) of \(n) valid)")
    exit(0)
}
guard args.count == 8, let count = Int(args[6]) else { exit(2) }
let run = args[7]
let (kind, squid, path, query) = (args[1], args[3], args[4], args[5])
let ts = String(UInt64(Date().timeIntervalSince1970 * 1000))
let filler = String(repeating: "x", count: 1000)
var out = ts + "\n"
out.reserveCapacity(count * 120)
for i in 0..<count {
    let nonce = "b" + run + "-" + String(format: "%016d", i)
    var body: [UInt8] = []
    if kind == "put" {
        // The same bytes signed.lua builds for request i (a distinct 1 KiB block each).
        let payload = String((run + String(format: "%016d-", i) + filler).prefix(1024))
        body = Array(("--qstorebench\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            + payload + "\r\n--qstorebench--\r\n").utf8)
    }
    let r = SignedRequest(method: kind == "put" ? "POST" : "GET", path: path, query: query.isEmpty ? nil : query, squidId: squid, subId: nil,
                          timestamp: ts, nonce: nonce, signature: "", bodySHA256: SignedRequest.sha256Hex(body))
    let sig = try key.signature(for: Array(r.canonicalString.utf8)).base64EncodedString()
    out += nonce + " " + sig + "\n"
}
FileHandle.standardOutput.write(Data(out.utf8))
