#!/usr/bin/env bash
# The cost of authentication on loopback (Docs/benchmarks.md, Docs/access.md), side by side in one
# run, each case twice in turn (A B C A B C) so background work (LevelDB compaction after puts)
# does not favour one: gateway GET of a 1 KiB raw block public (none), with a bearer token and
# signed (two daemons, the second with access.gatewayRequiresRead); block/put of 1 KiB (16
# connections, each acknowledged once durable) with the admin token, a scoped token and signed.
# Signed requests are made ahead of time by Tools/SignRequests (the client's signing is not
# measured; the daemon's verification is). Needs wrk (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
swift build -c release --product qstore >/dev/null
(cd Benchmarks && swift build -c release --product SignRequests >/dev/null)
Q=$PWD/.build/release/qstore
SIGN=$PWD/Benchmarks/.build/release/SignRequests
DURATION=${DURATION:-10}
WORK=$(mktemp -d /tmp/qstore-authbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
SEED=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
head -c 1024 /dev/urandom > "$WORK/1k.bin"
# A repository with the bench identity (read, write; no rate limit) and a token acting as it.
repo() { # dir gated
  export QSTORE_PATH=$1
  $Q init >/dev/null
  $Q identity add bench --key "$($SIGN pubkey $SEED)" >/dev/null
  $Q grant add bench --scope read,write >/dev/null
  $Q token create --scope read,write --identity bench > "$1/bench-token"
  C1=$($Q block put "$WORK/1k.bin")
  python3 - "$1/config.json" "$2" <<'PY'
import json, sys
path, gated = sys.argv[1], sys.argv[2] == "true"
c = json.load(open(path))
c["access"].update({"rateLimitOverrides": {"bench": {"requestsPerSecond": 0, "bytesPerSecond": 0}}, "gatewayRequiresRead": gated})
json.dump(c, open(path, "w"), indent=1)
PY
}
start() { # dir apiport gwport
  QSTORE_PATH=$1 $Q daemon --api 127.0.0.1:$2 --gateway 127.0.0.1:$3 --log-level warning > "$1/daemon.log" 2>&1 &
  until curl -s http://127.0.0.1:$3/health >/dev/null; do sleep 0.1; done
}
repo "$WORK/public" false; start "$WORK/public" 5931 8931
repo "$WORK/gated" true; start "$WORK/gated" 5932 8932
TOKEN=$(cat "$WORK/gated/bench-token")
ADMIN=$(cat "$WORK/gated/api-token")
bench() { echo "== $1"; shift; wrk "$@" | grep -E "Requests/sec| 50%| 99%|non-2xx|Socket errors"; }
signed() { # kind path?query count run
  $SIGN "$1" $SEED bench "${2%%\?*}" "$( [[ "$2" == *\?* ]] && echo "${2#*\?}" )" "$3" "$4" > "$WORK/signed.txt"
}
export QSTORE_SQUID=bench QSTORE_THREADS=2 QSTORE_SIGNED=$WORK/signed.txt
W="-t2 -c16 -d${DURATION}s --latency"

for round in 1 2; do
  bench "gateway GET 1 KiB raw, public (none) [$round]" $W "http://127.0.0.1:8931/ipfs/$C1?format=raw"
  bench "gateway GET 1 KiB raw, bearer token [$round]" $W -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8932/ipfs/$C1?format=raw"
  signed get "/ipfs/$C1?format=raw" $((DURATION * 60000)) get$round
  QSTORE_KIND=get QSTORE_PATH_QUERY="/ipfs/$C1?format=raw" \
    bench "gateway GET 1 KiB raw, signed [$round]" $W -s Benchmarks/HTTP/signed.lua http://127.0.0.1:8932
done
for round in 1 2; do
  QSTORE_RUN=admin$round QSTORE_TOKEN=$ADMIN bench "block/put 1 KiB, admin token [$round]" $W -s Benchmarks/HTTP/put-block.lua http://127.0.0.1:5932
  QSTORE_RUN=token$round QSTORE_TOKEN=$TOKEN bench "block/put 1 KiB, scoped token [$round]" $W -s Benchmarks/HTTP/put-block.lua http://127.0.0.1:5932
  signed put "/api/v0/block/put?cid-codec=raw" $((DURATION * 40000)) signed$round
  QSTORE_RUN=signed$round QSTORE_KIND=put QSTORE_PATH_QUERY="/api/v0/block/put?cid-codec=raw" \
    bench "block/put 1 KiB, signed [$round]" $W -s Benchmarks/HTTP/signed.lua http://127.0.0.1:5932
done
