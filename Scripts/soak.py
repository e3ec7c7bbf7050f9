#!/usr/bin/env python3
"""Soak: MINUTES (default 10) of mixed load at CONNECTIONS (default 64) connections against one
daemon on loopback (`make soak MINUTES=10`, Docs/testing.md "Soak").

The load: block put/get, adds (some pinned), pins and unpins, garbage collection every 20 s,
gateway downloads aborted half way, range reads, and bad requests (an invalid CID, an unknown
route, a cut multipart body, a block over the size limit). Every answer is checked: a bad request
must earn its 4xx, everything else must succeed and return the right bytes. RSS is sampled every
5 s: in all, anonymous (the daemon's own allocations) and file-backed (pages of mapped files —
LevelDB maps its table files for reading — which are the page cache, dropped by the kernel when it
needs them, and swing with what was read last). At the end the daemon is stopped with SIGTERM and
`repo verify` and `pin verify` must be clean.

Pass criteria: no crash, no unexpected error, both verifications clean, and the daemon's own memory
flat after the first minute: the anonymous RSS less what its bounded caches hold (LevelDB's
memtables and block cache, which fill over many minutes as more is read and written, and the
gateway's small blocks — `qstore_leveldb_memory_bytes` and `qstore_hot_block_bytes` of /metrics,
sampled with it), its least-squares trend over the rest of the run under 1% of its mean per minute
and the median of the last third within 1.15x of the first third's (the highest sample says little:
multi-megabyte adds in flight swing it by a fifth). Every curve is printed. Exit status 0 when all
hold.
The daemon's rate limit is lifted for the run (the access layer answers 429 past 1,000 requests
a second by default, which is not what is measured here)."""
import http.client, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Q = os.environ.get("QSTORE", os.path.join(ROOT, ".build/release/qstore"))
MINUTES = float(os.environ.get("MINUTES", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
work = tempfile.mkdtemp(prefix="qstore-soak-")
env = dict(os.environ, QSTORE_PATH=work + "/repo", HOME=work, QSTORE_GC_INTERVAL="0s")
subprocess.run([Q, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
config = json.load(open(work + "/repo/config.json"))
config.setdefault("access", {})["rateLimit"] = {"requestsPerSecond": 0, "requestBurst": 0, "bytesPerSecond": 0, "bytesBurst": 0}
# Every connection comes from 127.0.0.1, which the daemon counts as one client: its per-client
# shares (16 uploads, 16 downloads: 429 past them) are raised to the connections it stands for.
http_config = config.setdefault("http", {})
for k in ("uploadSlots", "uploadsPerClient", "downloadSlots", "downloadsPerClient"):
    http_config[k] = max(CONNECTIONS, http_config.get(k, 0))
# SOAK_CACHE_MIB bounds LevelDB's write buffer and block cache (64 MiB each by default), so what
# grows in RSS is not their filling.
if os.environ.get("SOAK_CACHE_MIB"):
    mib = int(os.environ["SOAK_CACHE_MIB"]) << 20
    config.setdefault("datastore", {}).update({"writeBufferSize": mib, "blockCacheSize": mib})
json.dump(config, open(work + "/repo/config.json", "w"), indent=2)
log = open(work + "/daemon.log", "w")
daemon = subprocess.Popen([Q, "daemon", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE, stderr=log, text=True)
ports = {}
while len(ports) < 2:
    line = daemon.stdout.readline()
    if not line:
        sys.exit("the daemon did not start: see " + work + "/daemon.log")
    for name in ("api", "gateway"):
        if line.startswith(name + " listening"):
            ports[name] = int(line.split()[-1])
threading.Thread(target=lambda: [None for _ in daemon.stdout], daemon=True).start()
token = open(work + "/repo/api-token").read().strip()

lock = threading.Lock()
known = {}          # cid -> bytes (what was acknowledged)
pinned = set()
counts = {}
unexpected = []
stop_at = time.time() + MINUTES * 60

def count(kind):
    with lock:
        counts[kind] = counts.get(kind, 0) + 1

def fail(what):
    with lock:
        if len(unexpected) < 50:
            unexpected.append(what)

def multipart(files, boundary="soakboundary"):
    body = b""
    for i, data in enumerate(files):
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f{i}\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"

class Client:
    def __init__(self):
        self.api = http.client.HTTPConnection("127.0.0.1", ports["api"], timeout=60)
        self.gw = http.client.HTTPConnection("127.0.0.1", ports["gateway"], timeout=60)

    def call(self, conn, method, path, body=None, headers=None, api=True):
        h = dict(headers or {})
        if api:
            h["Authorization"] = "Bearer " + token
        for attempt in range(2):
            try:
                conn.request(method, path, body=body, headers=h)
                r = conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError, socket.timeout) as e:
                conn.close()
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")

    def rpc(self, path, body=None, ctype=None):
        return self.call(self.api, "POST", "/api/v0/" + path, body, {"Content-Type": ctype} if ctype else None)

def pick():
    with lock:
        return random.choice(list(known.items())) if known else (None, None)

def worker(seed):
    rnd = random.Random(seed)
    c = Client()
    while time.time() < stop_at:
        op = rnd.random()
        try:
            if op < 0.25:
                data = os.urandom(rnd.randint(1, 64 << 10))
                body, ctype = multipart([data])
                st, out = c.rpc("block/put?cid-codec=raw", body, ctype)
                if st != 200:
                    fail(f"block/put {st} {out[:200]}")
                else:
                    with lock:
                        known[json.loads(out)["Key"]] = data
                count("block/put")
            elif op < 0.45:
                cid, data = pick()
                if cid:
                    st, out = c.call(c.gw, "GET", f"/ipfs/{cid}", api=False)
                    if st == 200 and out != data and len(data) <= 64 << 10:
                        # Raw blocks come back as their bytes; files as their content.
                        fail(f"GET {cid}: {len(out)} bytes, not the {len(data)} put")
                    elif st not in (200,):
                        with lock:
                            still = cid in known
                        if still:
                            fail(f"GET {cid}: {st}")
                    count("get")
            elif op < 0.55:
                # Files of 16 KiB to 512 KiB: a 10-minute run writes a few GiB, not tens.
                data = os.urandom(rnd.randint(16 << 10, 512 << 10))
                pin = rnd.random() < 0.5
                body, ctype = multipart([data])
                st, out = c.rpc(f"add?cid-version=1&pin={'true' if pin else 'false'}&quieter=true", body, ctype)
                line = out.decode(errors="replace").strip().splitlines()[-1] if out else ""
                if st != 200 or '"Hash"' not in line:
                    fail(f"add {st} {out[-200:]}")
                else:
                    cid = json.loads(line)["Hash"]
                    with lock:
                        known[cid] = data
                        if pin:
                            pinned.add(cid)
                count("add")
            elif op < 0.65:
                cid, _ = pick()
                if cid:
                    st, out = c.rpc(f"pin/add?arg={cid}")
                    if st != 200:
                        # A block put without a pin may have been collected since: then it is gone.
                        with lock:
                            gone = cid not in known
                        if not gone and b"not found" not in out.lower() and b"no link" not in out.lower():
                            fail(f"pin/add {cid} {st} {out[:200]}")
                    else:
                        with lock:
                            pinned.add(cid)
                    count("pin/add")
            elif op < 0.72:
                with lock:
                    cid = rnd.choice(sorted(pinned)) if pinned else None
                    if cid:
                        pinned.discard(cid)
                        known.pop(cid, None)
                if cid:
                    st, out = c.rpc(f"pin/rm?arg={cid}")
                    if st != 200 and b"not pinned" not in out:
                        fail(f"pin/rm {cid} {st} {out[:200]}")
                    count("pin/rm")
            elif op < 0.80:
                # A download aborted half way: the connection closed while the body streams.
                cid, data = pick()
                if cid and len(data) > 100_000:
                    s = socket.create_connection(("127.0.0.1", ports["gateway"]), timeout=30)
                    s.sendall(f"GET /ipfs/{cid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    s.recv(65536)
                    s.close()
                    count("aborted download")
            elif op < 0.86:
                cid, data = pick()
                if cid and len(data) > 1000:
                    a = rnd.randint(0, len(data) - 1)
                    b = min(len(data) - 1, a + rnd.randint(0, 100_000))
                    st, out = c.call(c.gw, "GET", f"/ipfs/{cid}", headers={"Range": f"bytes={a}-{b}"}, api=False)
                    if st == 206 and out != data[a:b + 1]:
                        fail(f"range {a}-{b} of {cid}: wrong bytes")
                    elif st not in (206, 200, 404):
                        fail(f"range {cid}: {st}")
                    count("range")
            else:
                kind = rnd.randint(0, 3)
                if kind == 0:
                    st, _ = c.rpc("block/get?arg=notacid")
                    ok = 400 <= st < 500
                elif kind == 1:
                    st, _ = c.call(c.api, "GET", "/api/v0/no/such/route")
                    ok = st in (404, 405)
                elif kind == 2:
                    body, ctype = multipart([b"x" * 1000])
                    st, _ = c.rpc("block/put", body[: len(body) // 2], ctype)
                    ok = 400 <= st < 500
                else:
                    body, ctype = multipart([b"x" * (3 << 20)])
                    try:
                        st, _ = c.rpc("block/put", body, ctype)
                        ok = st == 413
                    except (ConnectionError, http.client.HTTPException, socket.timeout):
                        # Refused before the whole body was sent: the connection closes under it.
                        st, ok = "closed", True
                        c = Client()
                if not ok:
                    fail(f"bad request {kind}: {st}")
                count("bad request")
        except Exception as e:
            fail(f"{type(e).__name__}: {e}")
            c = Client()

def collector():
    c = Client()
    while time.time() < stop_at:
        time.sleep(20)
        st, out = c.rpc("repo/gc")
        if st != 200:
            fail(f"repo/gc {st} {out[:200]}")
        count("gc")

def caches():
    """MiB the daemon's bounded caches hold, as /metrics reports them: LevelDB's memtables and
    block cache, and the gateway's small blocks. None if unreadable."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", ports["api"], timeout=30)
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
        text = conn.getresponse().read().decode()
        conn.close()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(("qstore_leveldb_memory_bytes", "qstore_hot_block_bytes")):
                total += float(line.split()[-1])
        return int(total) // (1 << 20)
    except (OSError, ValueError, http.client.HTTPException):
        return None


def rss():
    """(all, anonymous, file-backed, anonymous less the caches) MiB, or None."""
    try:
        fields = {}
        for line in open(f"/proc/{daemon.pid}/status"):
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "RssShmem:")):
                fields[line.split(":")[0]] = int(line.split()[1]) // 1024
        held = caches()
        if held is None:
            return None
        return (fields["VmRSS"], fields["RssAnon"], fields["RssFile"] + fields.get("RssShmem", 0), fields["RssAnon"] - held)
    except (OSError, KeyError):
        return None

threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)] + [threading.Thread(target=collector)]
start = time.time()
for t in threads:
    t.start()
curve = []
while any(t.is_alive() for t in threads[:-1]):
    time.sleep(5)
    curve.append((round(time.time() - start), rss()))
    if daemon.poll() is not None:
        fail(f"the daemon exited with {daemon.returncode}")
        break
for t in threads:
    t.join(timeout=90)
alive = daemon.poll() is None
daemon.send_signal(signal.SIGTERM)
code = daemon.wait(timeout=120)
verify = subprocess.run([Q, "repo", "verify"], env=env, capture_output=True, text=True)
pins = subprocess.run([Q, "pin", "verify"], env=env, capture_output=True, text=True)

print(f"soak: {MINUTES:g} min at {CONNECTIONS} connections against one daemon ({work})")
print("operations: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
samples = [(t, r) for t, r in curve if r]
step = max(1, len(samples) // 24)
CURVES = (("RSS", 0), ("anonymous", 1), ("file-backed", 2), ("anonymous less caches", 3))
for label, i in CURVES:
    print(f"{label} (s: MiB): " + " ".join(f"{t}:{r[i]}" for t, r in samples[::step]))


def trend(points):
    """Least-squares slope (MiB per minute) and the medians of the thirds of `points`."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    slope = sum((t - mean_t) * (m - mean_m) for t, m in points) / max(1e-9, sum((t - mean_t) ** 2 for t, _ in points))
    thirds = [sorted(m for _, m in points[k * n // 3:(k + 1) * n // 3]) for k in range(3)]
    return slope * 60, mean_m, [third[len(third) // 2] for third in thirds]


flat = False
after = [(t, r) for t, r in samples if t >= 60]
if len(after) >= 6:
    for label, i in CURVES:
        slope, mean, medians = trend([(t, r[i]) for t, r in after])
        print(f"{label} after the first minute: trend {slope:+.2f} MiB/min (mean {mean:.0f}), medians of its thirds {medians[0]}, {medians[1]}, {medians[2]} MiB")
        if i == 3:
            flat = slope < 0.01 * mean and medians[2] <= 1.15 * medians[0]
print(f"anonymous RSS less the bounded caches: {'flat' if flat else 'GROWING'}")
print(f"daemon: {'ran to the end' if alive else 'DIED'}, exit {code} on SIGTERM")
print(f"repo verify: {verify.returncode} {verify.stdout.strip()[-200:]}{verify.stderr.strip()[-300:]}")
print(f"pin verify: {pins.returncode} {pins.stderr.strip()[-300:]}")
for u in unexpected:
    print("unexpected:", u)
ok = alive and code == 0 and not unexpected and flat and verify.returncode == 0 and pins.returncode == 0 and sum(counts.values()) > 0 and curve
print("soak: " + ("PASSED" if ok else "FAILED"))
if ok:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if ok else 1)
