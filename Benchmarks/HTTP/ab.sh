#!/usr/bin/env bash
# Two qstore builds A/B in one run with both daemons up at once (Docs/benchmarks.md): each on a
# fresh repository of its own on loopback, then wrk (2 threads, 16 connections, 5 s) alternates
# between them for every request kind, round after round, so drift of the machine (which moves
# figures by ±20% between minutes here) hits both alike. Kinds: the gateway's raw 1 KiB and
# 256 KiB blocks, a streamed 4 MiB UnixFS file, block/put of 1 KiB.
# Usage: ab.sh OLD_QSTORE NEW_QSTORE [rounds, default 6]
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1; NEW=$2; ROUNDS=${3:-6}
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
W=$(mktemp -d /tmp/qstore-ab.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
head -c 1024 /dev/urandom > "$W/1k.bin"; head -c 262144 /dev/urandom > "$W/256k.bin"; head -c 4194304 /dev/urandom > "$W/4m.bin"
i=0
for Q in "$OLD" "$NEW"; do
    i=$((i + 1))
    export QSTORE_PATH=$W/repo$i
    $Q init >/dev/null
    $Q block put "$W/1k.bin" > "$W/c1-$i"; $Q block put "$W/256k.bin" > "$W/c256-$i"; $Q add -q --cid-version 1 "$W/4m.bin" > "$W/f4-$i"
    cp "$QSTORE_PATH/api-token" "$W/token$i"
    $Q daemon --api 127.0.0.1:593$i --gateway 127.0.0.1:893$i --log-level warning > "$W/daemon$i.log" 2>&1 &
    until curl -sf "http://127.0.0.1:893$i/health" >/dev/null; do sleep 0.1; done
done
rate() { wrk -t2 -c16 -d5s "$@" | awk '/Requests\/sec/ {print $2}'; }
printf "%-6s %-4s %12s %12s %12s %12s\n" round build "raw 1 KiB" "raw 256 KiB" "file 4 MiB" "put 1 KiB"
for r in $(seq 1 "$ROUNDS"); do
    for i in 1 2; do
        g=http://127.0.0.1:893$i/ipfs
        printf "%-6s %-4s %12s %12s %12s %12s\n" "$r" "$([ $i = 1 ] && echo old || echo new)" \
            "$(rate "$g/$(cat "$W/c1-$i")?format=raw")" "$(rate "$g/$(cat "$W/c256-$i")?format=raw")" "$(rate "$g/$(cat "$W/f4-$i")")" \
            "$(QSTORE_TOKEN=$(cat "$W/token$i") rate -s Benchmarks/HTTP/put-block.lua "http://127.0.0.1:593$i")"
    done
done
