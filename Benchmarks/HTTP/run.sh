#!/usr/bin/env bash
# HTTP benchmarks on loopback (Docs/benchmarks.md): gateway GET of 1 KiB and 256 KiB raw
# blocks beside nginx serving the same bytes, block/put of 1 KiB with 16 connections,
# daemon RSS idle and under load, cold start with N blocks in the repository.
# Needs wrk and nginx (Debian); installs them when missing. Usage: run.sh [blocks for cold start, default 1000000]
set -euo pipefail
cd "$(dirname "$0")/../.."
COLD_BLOCKS=${1:-1000000}
for p in wrk nginx; do command -v $p >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq $p || sudo apt-get install -y -qq $p; }; done
swift build -c release --product qstore >/dev/null
Q=$PWD/.build/release/qstore
WORK=$(mktemp -d /tmp/qstore-httpbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$WORK"' EXIT
export QSTORE_PATH=$WORK/repo
$Q init >/dev/null
head -c 1024 /dev/urandom > "$WORK/1k.bin"; head -c 262144 /dev/urandom > "$WORK/256k.bin"
C1=$($Q block put "$WORK/1k.bin"); C256=$($Q block put "$WORK/256k.bin")
# VmRSS = RssAnon (the daemon's own memory) + RssFile (its code and libraries, ~48 MiB, and
# LevelDB's table files, which it maps to read: page cache the kernel may drop at any time).
rss() { grep -E "^(VmRSS|VmHWM|RssAnon|RssFile)" /proc/$1/status | tr -s ' \t' ' ' | tr '\n' ' '; }

$Q daemon --api 127.0.0.1:5911 --gateway 127.0.0.1:8911 --log-level warning > "$WORK/daemon.log" 2>&1 &
DPID=$!
until curl -sf http://127.0.0.1:8911/health >/dev/null; do sleep 0.1; done
sleep 1; echo "daemon RSS idle: $(rss $DPID)"

mkdir -p "$WORK/nginx/html" "$WORK/nginx/logs"; chmod 755 "$WORK" "$WORK/nginx" "$WORK/nginx/html"
cp "$WORK/1k.bin" "$WORK/nginx/html/1k.bin"; cp "$WORK/256k.bin" "$WORK/nginx/html/256k.bin"; chmod 644 "$WORK"/nginx/html/*
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 127.0.0.1:8912; root $WORK/nginx/html; } }
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"

bench() { echo "== $1"; shift; wrk "$@" | grep -E "Requests/sec|Transfer/sec| 99%|non-2xx|Socket errors"; }
bench "qstore gateway GET 1 KiB raw" -t2 -c16 -d10s --latency "http://127.0.0.1:8911/ipfs/$C1?format=raw"
bench "nginx GET 1 KiB static" -t2 -c16 -d10s --latency "http://127.0.0.1:8912/1k.bin"
bench "qstore gateway GET 256 KiB raw" -t2 -c16 -d10s --latency "http://127.0.0.1:8911/ipfs/$C256?format=raw"
echo "daemon RSS after GET load: $(rss $DPID)"
bench "nginx GET 256 KiB static" -t2 -c16 -d10s --latency "http://127.0.0.1:8912/256k.bin"
QSTORE_TOKEN=$(cat $QSTORE_PATH/api-token) bench "qstore block/put 1 KiB, 16 connections" -t2 -c16 -d10s --latency -s Benchmarks/HTTP/put-block.lua "http://127.0.0.1:5911"
echo "daemon RSS after put load: $(rss $DPID)"
kill -TERM $DPID; wait $DPID || true

echo "== cold start with $COLD_BLOCKS blocks"
$Q debug write-load --count "$COLD_BLOCKS" --max-size 1024 --batch 1000 > /dev/null
$Q repo stat | head -1
START=$(date +%s.%N)
$Q daemon --api 127.0.0.1:5911 --gateway 127.0.0.1:8911 --log-level warning > "$WORK/daemon2.log" 2>&1 &
DPID=$!
until curl -sf http://127.0.0.1:8911/health >/dev/null; do sleep 0.01; done
END=$(date +%s.%N)
echo "cold start to first /health 200: $(echo "$END - $START" | bc) s; RSS $(rss $DPID)"
curl -s -o /dev/null -w "first raw GET after start: %{time_total} s\n" "http://127.0.0.1:8911/ipfs/$C1?format=raw"
kill -TERM $DPID; wait $DPID || true
