#!/usr/bin/env bash
# Daemon RSS under load (Docs/benchmarks.md, "where the daemon's memory is"): a fresh repository,
# RSS idle, after 8 s of raw 1 KiB GETs, after 15 s of 1 KiB block/puts (16 connections, wrk), after
# 8 s more GETs, and the peak; one line per variant.
# Usage: rss.sh NAME CACHE_MIB [GLIBC_TUNABLES]   (CACHE_MIB 0: LevelDB's defaults; else the
# write buffer and block cache are set to that many MiB each)
set -uo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
swift build -c release --product qstore >/dev/null 2>&1
Q=$PWD/.build/release/qstore
NAME=$1; MIB=$2; TUNABLES=${3:-}
W=$(mktemp -d /tmp/qstore-rss.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
export QSTORE_PATH=$W/repo
$Q init >/dev/null
if [ "$MIB" != 0 ]; then
    python3 - "$W/repo/config.json" "$MIB" <<'PY'
import json, sys
path, mib = sys.argv[1], int(sys.argv[2]) << 20
config = json.load(open(path))
config.setdefault("datastore", {}).update({"writeBufferSize": mib, "blockCacheSize": mib})
json.dump(config, open(path, "w"))
PY
fi
head -c 1024 /dev/urandom > "$W/1k.bin"; C1=$($Q block put "$W/1k.bin")
[ -n "$TUNABLES" ] && export GLIBC_TUNABLES=$TUNABLES
$Q daemon --api 127.0.0.1:5951 --gateway 127.0.0.1:8951 --log-level warning > "$W/daemon.log" 2>&1 &
P=$!
unset GLIBC_TUNABLES
until curl -sf http://127.0.0.1:8951/health >/dev/null; do sleep 0.1; done
sleep 1
rss() { awk '/VmRSS/ {printf "%d", $2 / 1024}' /proc/$P/status; }
get() { wrk -t2 -c16 -d8s "http://127.0.0.1:8951/ipfs/$C1?format=raw" | awk '/Requests\/sec/ {print $2}'; }
idle=$(rss)
g1=$(get); r1=$(rss)
put=$(QSTORE_TOKEN=$(cat "$W/repo/api-token") wrk -t2 -c16 -d15s -s Benchmarks/HTTP/put-block.lua http://127.0.0.1:5951 | awk '/Requests\/sec/ {print $2}')
r2=$(rss)
g2=$(get); r3=$(rss)
peak=$(awk '/VmHWM/ {printf "%d", $2 / 1024}' /proc/$P/status)
printf "%-10s idle %4s MiB | GET %9s/s → %4s | put %9s/s → %4s | GET %9s/s → %4s | peak %4s\n" "$NAME" "$idle" "$g1" "$r1" "$put" "$r2" "$g2" "$r3" "$peak"
