#!/usr/bin/env bash
# Qdrive and QpiC (Docs/benchmarks.md, "Qdrive and QpiC"), side by side in one run on one disk
# (release build, the repository opened directly by the CLI, peak RSS from /usr/bin/time -v):
#   qstore add (stored, CIDv1 raw leaves) vs qstore drive put (encrypted)    — MB/s, ratio, RSS
#   qstore cat vs qstore drive get (decrypted), to /dev/null                 — MB/s, ratio, RSS
#   Range reads of 64 KiB at random offsets through the daemon (curl)        — median ms
#   media upload of a 12-megapixel JPEG and a 4-megapixel PNG (noise), and a thumbnail made on
#   first request (media variant ID thumb-300)                               — ms
set -euo pipefail
cd "$(dirname "$0")/../.."
source Benchmarks/measure.sh
SIZE_MIB=${SIZE_MIB:-1024}
swift build -c release --product qstore >/dev/null
Q=$PWD/.build/release/qstore
WORK=${WORK:-$(mktemp -d /var/tmp/qstore-drivebench.XXXXXX)}
trap 'pkill -f "$Q daemon" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export QSTORE_PATH=$WORK/repo HOME=$WORK
BYTES=$((SIZE_MIB * 1024 * 1024))
$Q init >/dev/null
head -c "$BYTES" /dev/urandom > "$WORK/data.bin"
sync
echo "== $SIZE_MIB MiB of random data (release build)"
read -r _ A ARSS < <(timed add $Q add -q --cid-version 1 "$WORK/data.bin")
CID=$($Q add -q --cid-version 1 --only-hash "$WORK/data.bin")
sync; sleep 2
read -r _ P PRSS < <(timed put $Q drive put "$WORK/data.bin" /bench/data.bin)
echo "add (stored): ${A}s, $(mb $BYTES $A) MB/s, peak RSS $((ARSS / 1024)) MiB"
echo "drive put (encrypted): ${P}s, $(mb $BYTES $P) MB/s, $(ratio $A $P)x add, peak RSS $((PRSS / 1024)) MiB"
# Reads after the writes have settled, each twice in turn (the faster of the two: warm cache).
sync; sleep 2
read -r _ C CRSS < <(timed cat $Q cat "$CID")
read -r _ G GRSS < <(timed get $Q drive get /bench/data.bin)
read -r _ C2 _ < <(timed cat $Q cat "$CID")
read -r _ G2 _ < <(timed get $Q drive get /bench/data.bin)
C=$(python3 -c "print(min($C, $C2))"); G=$(python3 -c "print(min($G, $G2))")
echo "cat: ${C}s, $(mb $BYTES $C) MB/s, peak RSS $((CRSS / 1024)) MiB"
echo "drive get (decrypted): ${G}s, $(mb $BYTES $G) MB/s, $(ratio $C $G)x cat, peak RSS $((GRSS / 1024)) MiB"
$Q drive get /bench/data.bin | cmp - "$WORK/data.bin" && echo "drive get: bytes equal"

# Range reads through the daemon.
$Q daemon --api 127.0.0.1:0 --gateway 127.0.0.1:0 > "$WORK/daemon.log" 2>&1 &
for _ in $(seq 1 100); do [ -s "$QSTORE_PATH/api" ] && grep -q "api listening" "$WORK/daemon.log" && break; sleep 0.1; done
API=$(cat "$QSTORE_PATH/api"); TOKEN=$(cat "$QSTORE_PATH/api-token")
python3 - "$API" "$TOKEN" "$BYTES" <<'PY'
import random, subprocess, sys, statistics
api, token, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(1)
times = []
for _ in range(50):
    a = random.randrange(0, size - 65536)
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-H", f"Authorization: Bearer {token}",
                          "-H", f"Range: bytes={a}-{a + 65535}", f"http://{api}/q/v1/drive/admin/bench/data.bin"], capture_output=True, text=True).stdout.split()
    assert out[0] == "206", out
    times.append(float(out[1]) * 1000)
print(f"Range read of 64 KiB at a random offset (50 through the daemon, curl): median {statistics.median(times):.1f} ms, p90 {sorted(times)[44]:.1f} ms")
PY
pkill -f "$Q daemon" || true
sleep 0.5

# QpiC.
$Q debug image --width 4000 --height 3000 --noise > "$WORK/12mp.jpg"
$Q debug image --width 2400 --height 1600 --png --noise > "$WORK/4mp.png"
for f in 12mp.jpg 4mp.png; do
  read -r _ U URSS < <(timed upload $Q media upload "$WORK/$f")
  ID=$($Q media upload "$WORK/$f" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
  read -r _ T TRSS < <(timed thumb $Q media variant "$ID" thumb-300 -o /dev/null)
  echo "media upload $f ($(stat -c %s "$WORK/$f") bytes; analysed, public variant, thumb-256, web-1280, original encrypted): ${U}s, peak RSS $((URSS / 1024)) MiB"
  echo "first thumb-300 of $f (decrypt the original, shrink-on-load, store): ${T}s, peak RSS $((TRSS / 1024)) MiB"
done
