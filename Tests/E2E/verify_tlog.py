#!/usr/bin/env python3
"""An independent check of Qstore's audit log (RFC 9162 Merkle trees, C2SP signed-note
checkpoints), written from the RFC and the C2SP specs with the standard library's hashlib and
PyPI's `cryptography` (Ed25519) only.

  verify_tlog.py FILE.json   the file: {"leaves": [hex…], "root": {size: hex}, "inclusion":
                             [{index, size, hashes: [base64…]}], "consistency": [{from, to,
                             hashes}], "checkpoint": {note, name, publicKey (base64)}}
  verify_tlog.py daemon URL TOKEN
                             a running daemon's log: the node key from /api/v0/id, every
                             checkpoint's signature and root (recomputed here from the event
                             blocks, each checked against its CID), inclusion proofs of several
                             events in each checkpoint, consistency proofs between checkpoints,
                             and the tiles it serves.
Prints what it checked; exits 1 on the first failure.
"""
import base64, hashlib, json, sys, urllib.request, urllib.parse
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """RFC 9162 2.1.1, recursively over the leaf data."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, proof, first_hash, second_hash):
    """RFC 9162 2.1.4.2."""
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def verify_note(note, name, public_key):
    """C2SP signed-note: text (with its final newline), a blank line, signature lines
    '— name base64(keyID(4) || signature)'; key ID = SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    split = note.rindex("\n\n")
    text = note[: split + 1]
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]
    for line in note[split + 2 :].splitlines():
        dash, signer, blob = line.split(" ")
        raw = base64.b64decode(blob)
        if dash != "\u2014" or signer != name or raw[:4] != key_id:
            continue
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], text.encode())
        return text
    raise ValueError("no signature of " + name)


def main(path):
    spec = json.load(open(path))
    leaves = [bytes.fromhex(x) for x in spec["leaves"]]
    roots = {int(k): bytes.fromhex(v) for k, v in spec["root"].items()}
    for size, root in roots.items():
        if mth(leaves[:size]) != root:
            print(f"root of {size} differs"); return 1
    for p in spec["inclusion"]:
        hashes = [base64.b64decode(h) for h in p["hashes"]]
        if not verify_inclusion(leaf_hash(leaves[p["index"]]), p["index"], p["size"], hashes, roots[p["size"]]):
            print(f"inclusion of {p['index']} in {p['size']} does not verify"); return 1
    for p in spec["consistency"]:
        hashes = [base64.b64decode(h) for h in p["hashes"]]
        if not verify_consistency(p["from"], p["to"], hashes, roots[p["from"]], roots[p["to"]]):
            print(f"consistency {p['from']} -> {p['to']} does not verify"); return 1
    c = spec["checkpoint"]
    text = verify_note(c["note"], c["name"], base64.b64decode(c["publicKey"]))
    origin, size, root = text.split("\n")[:3]
    if origin != c["name"] or base64.b64decode(root) != roots[int(size)]:
        print("the checkpoint does not match the tree"); return 1
    print(f"ok: {len(roots)} roots, {len(spec['inclusion'])} inclusion and {len(spec['consistency'])} consistency proofs, checkpoint of {size}")
    return 0


def fetch(url, token, method="GET", accept=None):
    req = urllib.request.Request(url, method=method, headers={"Authorization": "Bearer " + token})
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req) as r:
        return r.read()


def q(base, token, path, **params):
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    reply = json.loads(fetch(base + "/q/v1/" + path + query, token))
    if reply["status"] != "ok":
        raise ValueError(f"{path}: {reply}")
    return reply["data"]


def cid_digest(cid):
    """A base32 CIDv1 with a sha2-256 multihash: its digest."""
    if not cid.startswith("b"):
        raise ValueError("not a base32 CIDv1: " + cid)
    body = cid[1:].upper()
    raw = base64.b32decode(body + "=" * (-len(body) % 8))
    i = 0
    for _ in range(2):  # version, codec (varints)
        while raw[i] & 0x80:
            i += 1
        i += 1
    if raw[i] != 0x12 or raw[i + 1] != 0x20:
        raise ValueError("not sha2-256: " + cid)
    return raw[i + 2 : i + 34]


def tile_path(level, n, width=None):
    groups = []
    while True:
        groups.insert(0, "%03d" % (n % 1000))
        n //= 1000
        if n == 0:
            break
    path = "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])
    return f"tile/{level}/{path}" + (f".p/{width}" if width else "")


def daemon(base, token):
    # The node's key as /api/v0/id reports it (libp2p protobuf: 08 01 12 20 ‖ Ed25519 key).
    ident = json.loads(fetch(base + "/api/v0/id", token, method="POST"))
    pb = base64.b64decode(ident["PublicKey"])
    if pb[:4] != b"\x08\x01\x12\x20":
        print("the node key is not Ed25519"); return 1
    public_key = pb[4:]
    checkpoints = q(base, token, "audit/checkpoints", limit=1000)
    if not checkpoints:
        print("no checkpoints"); return 1
    signed = []
    for c in checkpoints:
        origin = c["note"].split("\n")[0]
        text = verify_note(c["note"], origin, public_key)
        _, size, root = text.split("\n")[:3]
        signed.append((int(size), base64.b64decode(root)))
    served = fetch(base + "/q/v1/audit/checkpoint", token).decode()
    if served != checkpoints[-1]["note"]:
        print("GET checkpoint is not the latest checkpoint"); return 1
    # Every event, in order, from its block (checked against its CID).
    leaves, cursor = [], None
    while True:
        params = {"limit": 1000}
        if cursor is not None:
            params["cursor"] = cursor
        page = q(base, token, "audit/events", **params)
        for e in page["events"]:
            if e["index"] != len(leaves):
                print(f"event {len(leaves)} is missing from the listing"); return 1
            block = fetch(base + "/api/v0/block/get?arg=" + e["cid"], token, method="POST")
            if hashlib.sha256(block).digest() != cid_digest(e["cid"]):
                print(f"event {e['index']}: block does not match its CID"); return 1
            leaves.append(block)
        cursor = page["cursor"]
        if cursor is None:
            break
    hashes = [leaf_hash(b) for b in leaves]
    proofs = 0
    for size, root in signed:
        if size > len(leaves) or mth(leaves[:size]) != root:
            print(f"checkpoint {size}: root differs from the events'"); return 1
        for i in sorted({0, size // 3, size // 2, size - 1}):
            p = q(base, token, "audit/proof/inclusion", index=i, size=size)
            if base64.b64decode(p["leafHash"]) != hashes[i]:
                print(f"proof of {i}: leafHash differs"); return 1
            if not verify_inclusion(hashes[i], i, size, [base64.b64decode(h) for h in p["hashes"]], root):
                print(f"inclusion of {i} in {size} does not verify"); return 1
            proofs += 1
    for (a, ra), (b, rb) in zip(signed, signed[1:]):
        p = q(base, token, "audit/proof/consistency", **{"from": a, "to": b})
        if not verify_consistency(a, b, [base64.b64decode(h) for h in p["hashes"]], ra, rb):
            print(f"consistency {a} -> {b} does not verify"); return 1
        proofs += 1
    n = len(leaves)
    tiles = 0
    for t in range(n // 256):
        if fetch(base + "/q/v1/audit/" + tile_path(0, t), token) != b"".join(hashes[t * 256 : t * 256 + 256]):
            print(f"tile 0/{t} differs"); return 1
        tiles += 1
    if n % 256:
        t = n // 256
        if fetch(base + "/q/v1/audit/" + tile_path(0, t, n % 256), token) != b"".join(hashes[t * 256 :]):
            print(f"partial tile 0/{t} differs"); return 1
        tiles += 1
    print(f"ok: {n} events, {len(signed)} checkpoints, {proofs} proofs, {tiles} tiles")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "daemon":
        sys.exit(daemon(sys.argv[2], sys.argv[3]))
    sys.exit(main(sys.argv[1]))
