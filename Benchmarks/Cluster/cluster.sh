#!/usr/bin/env bash
# The cluster (Docs/benchmarks.md, "Cluster"), on loopback with one etcd member (release build):
#   replicating a DAG node to node (a cluster pin with rmin = rmax = 2: node B pulls it from A's
#   gateway) vs a local `dag import` of the same CAR                       — MB/s, ratio
#   re-replicating PINS small pins after a holder is killed (grace 1 s)     — seconds
#   `cluster status` over STATUS_PINS pins (each with two copies recorded)  — seconds
#   etcd's database per pin                                                 — bytes
# SIZE_MIB (default 1024), PINS (default 1000), STATUS_PINS (default 100000); PARTS (default
# "replication repair status") runs some of them.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Benchmarks/measure.sh
SIZE_MIB=${SIZE_MIB:-1024}
PINS=${PINS:-1000}
STATUS_PINS=${STATUS_PINS:-100000}
PARTS=" ${PARTS:-replication repair status} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
swift build -c release --product qstore >/dev/null
Q=$PWD/.build/release/qstore
WORK=${WORK:-$(mktemp -d /var/tmp/qstore-clusterbench.XXXXXX)}
PORT=$((23000 + RANDOM % 2000))
ETCD=http://127.0.0.1:$PORT
cleanup() {
  for f in "$WORK"/*/pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/etcd"
etcd --data-dir "$WORK/etcd/data" --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((PORT + 1))" \
  --initial-cluster "default=http://127.0.0.1:$((PORT + 1))" --quota-backend-bytes 8589934592 >"$WORK/etcd/log" 2>&1 &
echo $! >"$WORK/etcd/pid"
sleep 2

start() { # start NAME CLUSTER [ENV…]
  mkdir -p "$WORK/$1"
  env QSTORE_PATH="$WORK/$1/repo" HOME="$WORK/$1" QSTORE_CLUSTER_NODE_ID="$1" QSTORE_CLUSTER_NAME="$2" QSTORE_CLUSTER_ETCD="$ETCD" \
    QSTORE_GC_INTERVAL=0s "${@:3}" "$Q" daemon --api 127.0.0.1:0 --gateway 127.0.0.1:0 >"$WORK/$1/log" 2>&1 &
  echo $! >"$WORK/$1/pid"
  for _ in $(seq 1 100); do grep -q "gateway listening" "$WORK/$1/log" 2>/dev/null && break; sleep 0.1; done
}
api() { # api NODE METHOD PATH [BODY]
  local token; token=$(cat "$WORK/$1/repo/api-token")
  curl -s -X "$2" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${4:+--data "$4"} "http://$(cat "$WORK/$1/repo/api")$3"
}
pinned() { api "$1" GET "/q/v1/cluster/pins/$2" | python3 -c "import json,sys; print(sum(1 for v in json.load(sys.stdin)['data']['status'].values() if v == 'pinned'))"; }
now() { date +%s.%N; }

if part replication; then
echo "== replication: $SIZE_MIB MiB node to node (release build)"
start a rep QSTORE_CLUSTER_MAX_PENDING=64
start b rep QSTORE_CLUSTER_MAX_PENDING=64
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$WORK/data.bin"
CID=$(QSTORE_PATH="$WORK/a/repo" HOME="$WORK/a" "$Q" add -Q --cid-version 1 --pin=false "$WORK/data.bin")
QSTORE_PATH="$WORK/a/repo" HOME="$WORK/a" "$Q" dag export "$CID" >"$WORK/data.car"
rm "$WORK/data.bin"
BYTES=$(stat -c %s "$WORK/data.car")
QSTORE_PATH="$WORK/ref" HOME="$WORK" "$Q" init >/dev/null
sync
read -r _ IMPORT _ < <(timed import env QSTORE_PATH="$WORK/ref" HOME="$WORK" "$Q" dag import "$WORK/data.car")
rm -rf "$WORK/ref"
sync
T0=$(now)
api a POST /q/v1/cluster/pins "{\"cid\": \"$CID\", \"rmin\": 2, \"rmax\": 2}" >/dev/null
until [ "$(pinned a "$CID")" = 2 ]; do sleep 0.1; done
REPL=$(python3 -c "print(f'{$(now) - $T0:.2f}')")
echo "local dag import of the CAR ($BYTES bytes): ${IMPORT}s, $(mb "$BYTES" "$IMPORT") MB/s"
echo "replicated to b (pin to pinned, 1 s polling of the allocator and worker included): ${REPL}s, $(mb "$BYTES" "$REPL") MB/s, $(ratio "$IMPORT" "$REPL")x the local import"
for n in a b; do kill -9 "$(cat "$WORK/$n/pid")"; rm -f "$WORK/$n/pid"; done
rm -f "$WORK/data.car"
fi

if part repair; then
echo "== re-replication of $PINS pins after a holder is killed (grace 1 s, at most 8 pending per node)"
for n in c d e; do start "$n" rerep QSTORE_CLUSTER_REPAIR_GRACE=1s QSTORE_CLUSTER_LEASE_TTL=2s; done
mkdir -p "$WORK/files"
python3 - "$WORK/files" "$PINS" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"f{i}"), "wb") as f: f.write(os.urandom(4096))
PY
QSTORE_PATH="$WORK/c/repo" HOME="$WORK/c" "$Q" add -r -q --cid-version 1 --pin=false "$WORK/files" | head -n "$PINS" >"$WORK/cids"
python3 - "$(cat "$WORK/c/repo/api")" "$(cat "$WORK/c/repo/api-token")" "$WORK/cids" <<'PY'
import json, sys, urllib.request
api, token, cids = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().split()
for c in cids:
    r = urllib.request.Request(f"http://{api}/q/v1/cluster/pins", data=json.dumps({"cid": c, "rmin": 2, "rmax": 2}).encode(), method="POST",
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(r).read()
PY
settled() { api c GET /q/v1/cluster/pins | python3 -c "
import json,sys
d=json.load(sys.stdin)['data']; dead=sys.argv[1]
print(sum(1 for p in d if sum(1 for k,v in p['status'].items() if v=='pinned' and k!=dead) >= 2))" "${1:-}"; }
until [ "$(settled)" = "$PINS" ]; do sleep 0.5; done
VICTIM=d
MOVED=$(api c GET /q/v1/cluster/pins | python3 -c "import json,sys; print(sum(1 for p in json.load(sys.stdin)['data'] if '$VICTIM' in p['allocations']))")
kill -9 "$(cat "$WORK/$VICTIM/pid")"; rm -f "$WORK/$VICTIM/pid"
T0=$(now)
until [ "$(settled $VICTIM)" = "$PINS" ]; do sleep 0.5; done
REPAIR=$(python3 -c "print(f'{$(now) - $T0:.1f}')")
echo "$MOVED of $PINS pins were on $VICTIM: all whole again on the others after ${REPAIR}s (lease 2 s + grace 1 s included)"
for n in c e; do kill -9 "$(cat "$WORK/$n/pid")"; rm -f "$WORK/$n/pid"; done
fi

if part status; then
echo "== cluster status over $STATUS_PINS pins"
SIZE_BEFORE=$(curl -s "$ETCD/v3/maintenance/status" -X POST -d '{}' | python3 -c "import json,sys; print(json.load(sys.stdin)['dbSize'])")
python3 - "$ETCD" "$STATUS_PINS" <<'PY'
import base64, json, os, sys, urllib.request
etcd, n = sys.argv[1], int(sys.argv[2])
b = lambda s: base64.b64encode(s.encode()).decode()
def cid(i):  # a raw CIDv1 inlining 8 bytes (identity multihash), base32
    raw = bytes([1, 0x55, 0, 8]) + i.to_bytes(8, "big")
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")
ops = []
def flush():
    global ops
    if ops:
        urllib.request.urlopen(urllib.request.Request(f"{etcd}/v3/kv/txn", data=json.dumps({"success": ops}).encode())).read()
    ops = []
for i in range(n):
    c = cid(i)
    root = "/qstore/status-bench/"
    put = lambda k, v: ops.append({"request_put": {"key": b(root + k), "value": b(json.dumps(v, separators=(",", ":")))}})
    put(f"pins/{c}", {"cid": c, "rmin": 2, "rmax": 2, "addedAt": 1})
    put(f"alloc/{c}", {"nodes": ["x", "y"], "updatedAt": 1})
    put(f"status/{c}/x", {"state": "pinned", "updatedAt": 1, "since": 1, "attempt": 0})
    put(f"status/{c}/y", {"state": "pinned", "updatedAt": 1, "since": 1, "attempt": 0})
    if len(ops) >= 120: flush()
flush()
PY
SIZE_AFTER=$(curl -s "$ETCD/v3/maintenance/status" -X POST -d '{}' | python3 -c "import json,sys; print(json.load(sys.stdin)['dbSize'])")
start f status-bench QSTORE_CLUSTER_REPAIR_GRACE=24h
sleep 3
export QSTORE_PATH="$WORK/f/repo" HOME="$WORK/f"
"$Q" cluster status --json >/dev/null
read -r _ STATUS _ < <(timed status "$Q" cluster status --json)
read -r _ STATUS2 _ < <(timed status "$Q" cluster status --json)
TOKEN=$(cat "$WORK/f/repo/api-token")
read -r _ HTTP _ < <(timed http curl -s -H "Authorization: Bearer $TOKEN" -o "$WORK/status.json" "http://$(cat "$WORK/f/repo/api")/q/v1/cluster/pins")
echo "GET /q/v1/cluster/pins alone: ${HTTP}s ($(stat -c %s "$WORK/status.json") bytes)"
read -r _ PLAIN _ < <(timed plain sh -c "\"$Q\" cluster status >/dev/null")
echo "cluster status (text, 300k lines) over $STATUS_PINS pins: ${PLAIN}s"
read -r _ ONE _ < <(timed one "$Q" cluster status "$(python3 -c "import base64; print('b' + base64.b32encode(bytes([1,0x55,0,8]) + (7).to_bytes(8,'big')).decode().lower().rstrip('='))")")
echo "cluster status --json over $STATUS_PINS pins (2 copies each): ${STATUS}s, ${STATUS2}s again; one pin: ${ONE}s"
echo "etcd database: $(( (SIZE_AFTER - SIZE_BEFORE) / STATUS_PINS )) bytes per pin (pin, allocation and two statuses; before compaction)"
fi
