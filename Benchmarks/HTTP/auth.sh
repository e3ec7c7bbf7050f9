#!/usr/bin/env bash
# The cost of authentication on loopback (Docs/benchmarks.md, Docs/access.md), side by side in one
# run: block/put of 1 KiB (16 connections, each acknowledged once durable) with the admin token, a
# scoped token and a signed request; gateway GET of a 1 KiB raw block public (none), with a
# bearer token and signed (access.gatewayRequiresRead). Signed requests are made ahead of time by
# Tools/SignRequests (the client's signing is not measured; the daemon's verification is).
# Needs wrk (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
swift build -c release --product qstore >/dev/null
(cd Benchmarks && swift build -c release --product SignRequests >/dev/null)
Q=$PWD/.build/release/qstore
SIGN=$PWD/Benchmarks/.build/release/SignRequests
DURATION=${DURATION:-10}
WORK=$(mktemp -d /tmp/qstore-authbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
export QSTORE_PATH=$WORK/repo
$Q init >/dev/null
SEED=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
$Q identity add bench --key "$($SIGN pubkey $SEED)" >/dev/null
$Q grant add bench --scope read,write >/dev/null
TOKEN=$($Q token create --scope read,write --identity bench)
ADMIN=$(cat "$QSTORE_PATH/api-token")
head -c 1024 /dev/urandom > "$WORK/1k.bin"
C1=$($Q block put "$WORK/1k.bin")
# The bench identity without rate limits (its subject is "bench" for the token too).
config() { python3 - "$QSTORE_PATH/config.json" "$1" <<'PY'
import json, sys
path, gated = sys.argv[1], sys.argv[2] == "true"
c = json.load(open(path))
c["access"] = {"rateLimitOverrides": {"bench": {"requestsPerSecond": 0, "bytesPerSecond": 0}}, "gatewayRequiresRead": gated}
json.dump(c, open(path, "w"), indent=1)
PY
}
start() {
  $Q daemon --api 127.0.0.1:5931 --gateway 127.0.0.1:8931 --log-level warning > "$WORK/daemon.log" 2>&1 &
  DPID=$!
  until curl -s http://127.0.0.1:8931/health >/dev/null; do sleep 0.1; done
}
bench() { echo "== $1"; shift; wrk "$@" | grep -E "Requests/sec| 50%| 99%|non-2xx|Socket errors"; }
signed() { # kind path?query count
  $SIGN "$1" $SEED bench "${2%%\?*}" "$( [[ "$2" == *\?* ]] && echo "${2#*\?}" )" "$3" > "$WORK/signed.txt"
}
export QSTORE_SQUID=bench QSTORE_THREADS=2 QSTORE_SIGNED=$WORK/signed.txt

config false; start
bench "gateway GET 1 KiB raw, public (none)" -t2 -c16 -d${DURATION}s --latency "http://127.0.0.1:8931/ipfs/$C1?format=raw"
export QSTORE_TOKEN=$ADMIN
bench "block/put 1 KiB, admin token" -t2 -c16 -d${DURATION}s --latency -s Benchmarks/HTTP/put-block.lua http://127.0.0.1:5931
export QSTORE_TOKEN=$TOKEN
bench "block/put 1 KiB, scoped token" -t2 -c16 -d${DURATION}s --latency -s Benchmarks/HTTP/put-block.lua http://127.0.0.1:5931
signed put "/api/v0/block/put?cid-codec=raw" $((DURATION * 40000))
QSTORE_KIND=put QSTORE_PATH_QUERY="/api/v0/block/put?cid-codec=raw" \
  bench "block/put 1 KiB, signed" -t2 -c16 -d${DURATION}s --latency -s Benchmarks/HTTP/signed.lua http://127.0.0.1:5931
kill $DPID; wait $DPID 2>/dev/null || true

config true; start
bench "gateway GET 1 KiB raw, bearer token (gatewayRequiresRead)" -t2 -c16 -d${DURATION}s --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8931/ipfs/$C1?format=raw"
signed get "/ipfs/$C1?format=raw" $((DURATION * 60000))
QSTORE_KIND=get QSTORE_PATH_QUERY="/ipfs/$C1?format=raw" \
  bench "gateway GET 1 KiB raw, signed (gatewayRequiresRead)" -t2 -c16 -d${DURATION}s --latency -s Benchmarks/HTTP/signed.lua http://127.0.0.1:8931
