#!/usr/bin/env bash
# Backup and restore throughput (Docs/benchmarks.md, "Backup"), side by side in one run on one
# disk: a repository holding SIZE_GIB of random data (one file, added stored), then
#   dd of the same bytes to a file on the same disk (conv=fdatasync)      — the reference
#   qstore backup create (full)                                            — MB/s, peak RSS
#   qstore backup verify                                                   — MB/s
#   qstore backup restore --into a new repository                          — MB/s, peak RSS
#   1% of the data changed (a new file of that size added), backup create --incremental — seconds
# Peak RSS from /usr/bin/time -v. Release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Benchmarks/measure.sh
SIZE_GIB=${SIZE_GIB:-2}
swift build -c release --product qstore >/dev/null
Q=$PWD/.build/release/qstore
WORK=${WORK:-$(mktemp -d /var/tmp/qstore-backupbench.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT
export QSTORE_PATH=$WORK/repo
BYTES=$((SIZE_GIB * 1024 * 1024 * 1024))
$Q init >/dev/null
head -c "$BYTES" /dev/urandom > "$WORK/data.bin"
$Q add -q --cid-version 1 "$WORK/data.bin" >/dev/null
sync
echo "== $SIZE_GIB GiB of random data, added (release build)"
read -r _ DD _ < <(timed dd dd if="$WORK/data.bin" of="$WORK/dd.out" bs=4M conv=fdatasync status=none)
rm -f "$WORK/dd.out"
echo "dd conv=fdatasync: ${DD}s, $(mb $BYTES $DD) MB/s"
read -r _ T RSS < <(timed create $Q backup create --to "$WORK/backups")
echo "backup create (full): ${T}s, $(mb $BYTES $T) MB/s, $(python3 -c "print(f'{$DD / $T:.2f}')")x dd, peak RSS $((RSS / 1024)) MiB"
read -r _ T RSS < <(timed verify $Q backup verify "$WORK/backups")
echo "backup verify: ${T}s, $(mb $BYTES $T) MB/s, peak RSS $((RSS / 1024)) MiB"
read -r _ T RSS < <(timed restore $Q backup restore "$WORK/backups" --into "$WORK/restored")
echo "backup restore: ${T}s, $(mb $BYTES $T) MB/s, $(python3 -c "print(f'{$DD / $T:.2f}')")x dd, peak RSS $((RSS / 1024)) MiB"
rm -rf "$WORK/restored"
head -c $((BYTES / 100)) /dev/urandom > "$WORK/change.bin"
$Q add -q --cid-version 1 "$WORK/change.bin" >/dev/null
read -r _ T RSS < <(timed incremental $Q backup create --to "$WORK/backups" --incremental)
echo "backup create --incremental after a 1% change: ${T}s, peak RSS $((RSS / 1024)) MiB"
$Q backup ls "$WORK/backups"
