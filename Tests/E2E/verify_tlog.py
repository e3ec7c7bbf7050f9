#!/usr/bin/env python3
"""An independent check of Qstore's audit log (RFC 9162 Merkle trees, C2SP signed-note
checkpoints), written from the RFC and the C2SP specs with the standard library's hashlib and
PyPI's `cryptography` (Ed25519) only.

  verify_tlog.py FILE.json   the file: {"leaves": [hex…], "root": {size: hex}, "inclusion":
                             [{index, size, hashes: [base64…]}], "consistency": [{from, to,
                             hashes}], "checkpoint": {note, name, publicKey (base64)}}
Prints what it checked; exits 1 on the first failure.
"""
import base64, hashlib, json, sys
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
