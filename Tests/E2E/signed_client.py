#!/usr/bin/env python3
"""A Qstore client that signs its requests, written from Docs/access.md alone with PyPI's
`cryptography` (an implementation independent of the daemon's swift-crypto).

  signed_client.py vectors              print signature vectors (JSON) from a fixed key
  signed_client.py run API ADMIN_TOKEN   register an identity, grant it scopes, and talk to the
                                         daemon at API (http://host:port) with signed requests;
                                         prints a JSON report, exit 0 when every check held
"""
import base64, hashlib, json, os, secrets, sys, time, urllib.error, urllib.request
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization


def canonical_query(query):
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if part == "":
            continue
        k, _, v = part.partition("=")
        pairs.append((k, v))
    pairs.sort(key=lambda p: (p[0].encode(), p[1].encode()))
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_string(method, path, query, ts, nonce, body, squid, subid):
    return "\n".join([method.upper(), path, canonical_query(query), str(ts), nonce,
                      hashlib.sha256(body).hexdigest(), squid, subid or ""])


def sign(key, method, path, query, body, squid, subid=None, ts=None, nonce=None):
    ts = ts if ts is not None else int(time.time() * 1000)
    nonce = nonce or secrets.token_urlsafe(24)
    text = canonical_string(method, path, query, ts, nonce, body, squid, subid)
    sig = base64.b64encode(key.sign(text.encode())).decode()
    headers = {"x-squid-id": squid, "x-ts": str(ts), "x-nonce": nonce, "x-sig": sig}
    if subid:
        headers["x-subid"] = subid
    return headers, text


def public_b64(key):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def vectors():
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    cases = [
        ("GET", "/q/v1/whoami", "", b"", "alice", None),
        ("PUT", "/q/v1/index/notes/hello%20world", "b=2&a=1&a=0", b'{"cid":"bafkqaaa"}', "alice", "phone-1"),
        ("POST", "/api/v0/block/put", "cid-codec=raw&pin=false", b"hello\n", "alice", None),
    ]
    out = []
    for i, (m, p, q, b, s, sub) in enumerate(cases):
        ts, nonce = 1767225600000 + i, "vector-nonce-%04d-abcdef" % i
        headers, text = sign(key, m, p, q, b, s, sub, ts, nonce)
        out.append({"method": m, "path": p, "query": q, "body": base64.b64encode(b).decode(), "squidId": s, "subId": sub,
                    "ts": str(ts), "nonce": nonce, "canonical": text, "sig": headers["x-sig"]})
    return {"source": "Tests/E2E/signed_client.py vectors (Python cryptography, Ed25519 seed 00 01 .. 1f)",
            "privateKeySeed": base64.b64encode(bytes(range(32))).decode(), "publicKey": public_b64(key), "requests": out}


class Client:
    def __init__(self, base, key=None, squid=None, token=None):
        self.base, self.key, self.squid, self.token = base, key, squid, token

    def call(self, method, path, query="", body=b"", headers=None, replay=None):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if replay is not None:
            h.update(replay)
        elif self.key is not None:
            signed, _ = sign(self.key, method, path, query, body, self.squid)
            h.update(signed)
        url = self.base + path + ("?" + query if query else "")
        req = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method, headers=h)
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.read(), h
        except urllib.error.HTTPError as e:
            return e.code, e.read(), h


def run(base, admin_token):
    report, ok = {}, True
    admin = Client(base, token=admin_token)
    key = Ed25519PrivateKey.generate()
    squid = "py-" + secrets.token_hex(6)

    def check(name, cond, detail):
        nonlocal ok
        report[name] = {"ok": bool(cond), "detail": detail}
        ok = ok and bool(cond)

    st, body, _ = admin.call("POST", "/q/v1/identities", body=json.dumps({"squidId": squid, "key": public_b64(key)}).encode(),
                             headers={"Content-Type": "application/json"})
    check("register", st == 201, body.decode())
    st, body, _ = admin.call("POST", "/q/v1/grants", body=json.dumps({"subject": squid, "scopes": ["read", "write", "index:write:notes"]}).encode())
    check("grant", st == 201, body.decode())

    me = Client(base, key=key, squid=squid)
    st, body, _ = me.call("GET", "/q/v1/whoami")
    who = json.loads(body)
    check("whoami", st == 200 and who["data"]["credential"] == "signature" and who["data"]["identity"]["squidId"] == squid, who)

    boundary = "pyboundary7"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\nsigned by python\n\r\n--{boundary}--\r\n").encode()
    st, body, _ = me.call("POST", "/api/v0/block/put", query="pin=false&cid-codec=raw", body=multipart,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    check("block put", st == 200, body.decode())
    cid = json.loads(body)["Key"] if st == 200 else "bafkqaaa"

    put = json.dumps({"cid": cid, "tags": ["py"]}).encode()
    st, body, sent = me.call("PUT", "/q/v1/index/notes/from%20python", body=put, headers={"Content-Type": "application/json"})
    reply = json.loads(body)
    check("index put", st in (200, 201) and reply["data"]["author"]["squidId"] == squid, reply)

    st, body, _ = me.call("PUT", "/q/v1/index/notes/from%20python", body=put, replay={k: v for k, v in sent.items() if k.startswith("x-")})
    check("replay refused", st == 401 and json.loads(body)["code"] == "SIGNATURE_INVALID", body.decode())

    st, body, _ = me.call("PUT", "/q/v1/index/other/x", body=put)
    check("scope refused", st == 403 and json.loads(body)["code"] == "QONSENT_DENIED", body.decode())

    st, body, _ = me.call("GET", "/q/v1/index", query="type=notes&limit=5&tag=py")
    check("query signed in request order", st == 200, body.decode()[:200])

    stale, _ = sign(key, "GET", "/q/v1/whoami", "", b"", squid, ts=int(time.time() * 1000) - 10 * 60 * 1000)
    st, body, _ = me.call("GET", "/q/v1/whoami", replay=stale)
    check("stale refused", st == 401, body.decode())

    print(json.dumps(report, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "vectors":
        print(json.dumps(vectors(), indent=1))
    elif len(sys.argv) == 4 and sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3]))
    else:
        print(__doc__)
        sys.exit(2)
