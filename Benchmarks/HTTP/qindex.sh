#!/usr/bin/env bash
# Qindex over HTTP on loopback (Docs/benchmarks.md): pointer updates with 16 connections
# (each acknowledged once durable), and reads of a head. Needs wrk (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
swift build -c release --product qstore >/dev/null
Q=$PWD/.build/release/qstore
WORK=$(mktemp -d /tmp/qstore-qindexbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export QSTORE_PATH=$WORK/repo
$Q init >/dev/null
export QSTORE_TARGET=$(echo -n "qindex bench target" | $Q block put)
export QSTORE_TOKEN=$(cat "$QSTORE_PATH/api-token")
$Q daemon --api 127.0.0.1:5921 --gateway 127.0.0.1:8921 --log-level warning > "$WORK/daemon.log" 2>&1 &
until curl -sf http://127.0.0.1:8921/health >/dev/null; do sleep 0.1; done
bench() { echo "== $1"; shift; wrk "$@" | grep -E "Requests/sec| 50%| 99%|non-2xx|Socket errors"; }
bench "PUT /q/v1/index (new pointer per request), 16 connections" -t2 -c16 -d10s --latency -s Benchmarks/HTTP/put-pointer.lua http://127.0.0.1:5921
curl -sf -X PUT -H "Authorization: Bearer $QSTORE_TOKEN" -H "Content-Type: application/json" -d "{\"cid\":\"$QSTORE_TARGET\"}" http://127.0.0.1:5921/q/v1/index/bench/head >/dev/null
bench "GET /q/v1/index/bench/head, 16 connections" -t2 -c16 -d10s --latency -H "Authorization: Bearer $QSTORE_TOKEN" http://127.0.0.1:5921/q/v1/index/bench/head
