"""Independent check of an IPNS record, written from the IPNS record spec (not from Qstore):
parses the IpnsEntry protobuf, takes the Ed25519 key the name inlines (base36 libp2p-key CID,
identity multihash of the libp2p PublicKey protobuf) and verifies signatureV2 over
b"ipns-signature:" + data with the `cryptography` package. Prints a JSON verdict.

usage: verify_ipns.py NAME RECORD_FILE
"""
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


def fields(b):
    out, i = {}, 0
    while i < len(b):
        key, i = varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
        elif wire == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % wire)
        out[num] = v
    return out


def name_key(name):
    assert name[0] == "k", "expected a base36 name"
    n = int(name[1:], 36)
    cid = n.to_bytes((n.bit_length() + 7) // 8, "big")
    version, i = varint(cid, 0)
    codec, i = varint(cid, i)
    code, i = varint(cid, i)
    length, i = varint(cid, i)
    assert (version, codec, code) == (1, 0x72, 0), (version, codec, code)
    pub = cid[i:i + length]
    assert pub[:4] == bytes([0x08, 0x01, 0x12, 0x20]), "not an Ed25519 libp2p key"
    return pub[4:]


def main():
    name, path = sys.argv[1], sys.argv[2]
    record = open(path, "rb").read()
    f = fields(record)
    verdict = {"size": len(record), "hasData": 9 in f, "hasSignatureV2": 8 in f}
    try:
        Ed25519PublicKey.from_public_bytes(name_key(name)).verify(f[8], b"ipns-signature:" + f[9])
        verdict["valid"] = True
    except InvalidSignature:
        verdict["valid"] = False
    verdict["value"] = f.get(1, b"").decode()
    verdict["sequence"] = f.get(5, 0)
    # The V1 signature, for old readers: value + validity + "EOL".
    try:
        Ed25519PublicKey.from_public_bytes(name_key(name)).verify(f[2], f[1] + f[4] + b"EOL")
        verdict["validV1"] = True
    except (InvalidSignature, KeyError):
        verdict["validV1"] = False
    print(json.dumps(verdict))


if __name__ == "__main__":
    main()
