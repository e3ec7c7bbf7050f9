#!/usr/bin/env bash
# The cost of the audit log on loopback (Docs/benchmarks.md, "Audit log"), side by side in one
# run: block/put of 1 KiB (16 connections, each acknowledged once durable, its event in the same
# batch) on a daemon with the log on and one with it off (QSTORE_AUDIT=off), each case three times
# in turn (on off on off on off) so background work (LevelDB compaction after puts) does not
# favour one. Needs wrk (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
swift build -c release --product qstore >/dev/null
Q=$PWD/.build/release/qstore
DURATION=${DURATION:-10}
WORK=$(mktemp -d /tmp/qstore-auditbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
start() { # dir apiport gwport audit
  QSTORE_PATH=$1 $Q init >/dev/null
  QSTORE_PATH=$1 QSTORE_AUDIT=$4 $Q daemon --api 127.0.0.1:$2 --gateway 127.0.0.1:$3 --log-level warning > "$1/daemon.log" 2>&1 &
  until curl -s http://127.0.0.1:$3/health >/dev/null; do sleep 0.1; done
}
start "$WORK/on" 5941 8941 on
start "$WORK/off" 5942 8942 off
bench() { echo "== $1"; shift; wrk "$@" | grep -E "Requests/sec| 50%| 99%|non-2xx|Socket errors"; }
W="-t2 -c16 -d${DURATION}s --latency"
for round in 1 2 3; do
  QSTORE_RUN=on$round QSTORE_TOKEN=$(cat "$WORK/on/api-token") bench "block/put 1 KiB, audit log on [$round]" $W -s Benchmarks/HTTP/put-block.lua http://127.0.0.1:5941
  QSTORE_RUN=off$round QSTORE_TOKEN=$(cat "$WORK/off/api-token") bench "block/put 1 KiB, audit log off [$round]" $W -s Benchmarks/HTTP/put-block.lua http://127.0.0.1:5942
done
echo "== events logged (on): $(curl -s -H "Authorization: Bearer $(cat "$WORK/on/api-token")" -H 'Accept: application/json' http://127.0.0.1:5941/q/v1/audit/checkpoint | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["size"])' 2>/dev/null || echo '?') at the latest checkpoint"
