#!/usr/bin/env bash
# Two qstore builds side by side in one run (Docs/benchmarks.md): for each binary in turn, a fresh
# repository, the daemon on loopback, then wrk (2 threads, 16 connections, 10 s) on the gateway's
# raw 1 KiB and 256 KiB blocks, a streamed 4 MiB UnixFS file (the download path) and block/put of
# 1 KiB. Rounds alternate between the binaries so drift of the machine hits both.
# Usage: compare.sh OLD_QSTORE NEW_QSTORE [rounds, default 2]
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1; NEW=$2; ROUNDS=${3:-2}
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
WORK=$(mktemp -d /tmp/qstore-compare.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
head -c 1024 /dev/urandom > "$WORK/1k.bin"; head -c 262144 /dev/urandom > "$WORK/256k.bin"; head -c 4194304 /dev/urandom > "$WORK/4m.bin"
bench() { printf "%-34s" "$1"; shift; wrk "$@" | awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} /Transfer\/sec/ {t=$2} END {printf "%10s req/s  p99 %8s  %s/s\n", r, p, t}'; }
run() {
    local name=$1 Q=$2
    export QSTORE_PATH=$WORK/repo-$name
    rm -rf "$QSTORE_PATH"; $Q init >/dev/null
    local c1 c256 f4
    c1=$($Q block put "$WORK/1k.bin"); c256=$($Q block put "$WORK/256k.bin"); f4=$($Q add -q --cid-version 1 "$WORK/4m.bin")
    $Q daemon --api 127.0.0.1:5921 --gateway 127.0.0.1:8921 --log-level warning > "$WORK/daemon-$name.log" 2>&1 &
    local pid=$!
    until curl -sf http://127.0.0.1:8921/health >/dev/null; do sleep 0.1; done
    echo "-- $name ($Q)"
    bench "gateway raw 1 KiB" -t2 -c16 -d10s --latency "http://127.0.0.1:8921/ipfs/$c1?format=raw"
    bench "gateway raw 256 KiB" -t2 -c16 -d10s --latency "http://127.0.0.1:8921/ipfs/$c256?format=raw"
    bench "gateway file 4 MiB (streamed)" -t2 -c16 -d10s --latency "http://127.0.0.1:8921/ipfs/$f4"
    QSTORE_TOKEN=$(cat "$QSTORE_PATH/api-token") bench "block/put 1 KiB (sync)" -t2 -c16 -d10s --latency -s Benchmarks/HTTP/put-block.lua "http://127.0.0.1:5921"
    echo "   daemon RSS after the runs: $(grep -E '^VmHWM' /proc/$pid/status | tr -s ' \t' ' ')"
    kill -TERM $pid; wait $pid || true
}
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r"
    run old "$OLD"
    run new "$NEW"
done
