#!/usr/bin/env bash
# Module docs through the gateway (Docs/benchmarks.md, "Registry"), side by side in one run on one
# daemon: GET /modules/{name}/docs/{path} (the name resolved to its docs, then the file) against
# GET /ipfs/{docs CID}/{path} (the file), for a 4 KiB page and a 256 KiB file; wrk for throughput
# and latency, curl for the time to the first byte of a fresh connection. Needs wrk (installed when
# missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
swift build -c release --product qstore >/dev/null
Q=$PWD/.build/release/qstore
DURATION=${DURATION:-10}
WORK=$(mktemp -d /tmp/qstore-registrybench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export QSTORE_PATH=$WORK/repo
$Q init >/dev/null
M=$WORK/q-bench
mkdir -p "$M/package" "$M/docs/guide"
echo "export default 1" > "$M/package/index.js"
head -c 4096 /dev/urandom | base64 -w 76 | head -c 4096 > "$M/docs/guide/page.html"
head -c 262144 /dev/urandom > "$M/docs/guide/big.bin"
echo '{"module": "q-bench", "version": "1.0.0", "type": "library", "description": "docs benchmark"}' > "$M/module.json"
$Q module publish "$M" >/dev/null
DOCS=$($Q module docs q-bench)
$Q daemon --api 127.0.0.1:5951 --gateway 127.0.0.1:8951 --log-level warning > "$WORK/daemon.log" 2>&1 &
until curl -s http://127.0.0.1:8951/health >/dev/null; do sleep 0.1; done
G=http://127.0.0.1:8951
bench() { echo "== $1"; shift; wrk "$@" | grep -E "Requests/sec| 50%| 99%|non-2xx|Socket errors"; }
W="-t1 -c16 -d${DURATION}s --latency"
for file in page.html big.bin; do
  for round in 1 2; do
    bench "/ipfs/<docs>/guide/$file [$round]" $W "$G/ipfs/$DOCS/guide/$file"
    bench "/modules/q-bench/docs/guide/$file [$round]" $W "$G/modules/q-bench/docs/guide/$file"
  done
done
ttfb() { # url: median time to first byte over 200 fresh connections, ms
  for i in $(seq 200); do curl -s -o /dev/null -w '%{time_starttransfer}\n' "$1"; done | sort -n | awk '{a[NR]=$1} END {printf "%.3f ms median, %.3f ms p99\n", a[int(NR/2)]*1000, a[int(NR*0.99)]*1000}'
}
echo "== first byte, /ipfs/<docs>/guide/page.html: $(ttfb "$G/ipfs/$DOCS/guide/page.html")"
echo "== first byte, /modules/q-bench/docs/guide/page.html: $(ttfb "$G/modules/q-bench/docs/guide/page.html")"
echo "== first byte, /modules/q-bench@^1/docs/guide/page.html: $(ttfb "$G/modules/q-bench@%5E1/docs/guide/page.html")"
