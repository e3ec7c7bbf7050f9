#!/usr/bin/env bash
# Coverage-guided fuzzing (Docs/fuzzing.md).
#   Scripts/fuzz.sh [TARGET…]   build qstore-fuzz with libFuzzer and AddressSanitizer (release,
#                               .build-fuzz/), run each target (default: all) for FUZZ_SECONDS
#                               (default 60) from its seeds in Fuzz/corpus/TARGET, FUZZ_JOBS targets
#                               at a time (default 1), and print
#                               executions, executions per second and coverage per target. A crash
#                               leaves its input in Fuzz/crashers/TARGET/ and the run fails; add the
#                               file there to git: FuzzRegressionTests replays it on every test run.
#   Scripts/fuzz.sh seeds       make Fuzz/corpus again: files of ../shared/fixtures (QSTORE_FIXTURES),
#                               each family's under its target, and the seeds qstore-fuzz writes for
#                               the inputs the fixtures have none of. Fuzz/corpus/SOURCES.md names them.
# `make fuzz` runs the first form; `make test` runs it for 5 s per target, so a target that stops
# building or crashes at once is caught.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FLAGS=(-c release --build-path .build-fuzz --product qstore-fuzz
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING -Xswiftc -use-ld=lld)

if [ "${1:-}" = seeds ]; then
  FIXTURES=${QSTORE_FIXTURES:-../shared/fixtures}
  [ -d "$FIXTURES" ] || { echo "no fixtures at $FIXTURES" >&2; exit 1; }
  "$SWIFT" build --product qstore-fuzz >/dev/null
  rm -rf Fuzz/corpus
  mkdir -p Fuzz/corpus
  python3 - "$FIXTURES" Fuzz/corpus <<'PY'
import base64, csv, glob, hashlib, json, os, sys
fixtures, out = sys.argv[1], sys.argv[2]
sources = {}
def put(target, data, origin, limit=40):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if len(os.listdir(d)) >= limit or len(data) > 65536:
        return
    name = hashlib.sha256(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    sources.setdefault(target, set()).add(origin)
def files(pattern):
    return sorted(glob.glob(os.path.join(fixtures, pattern), recursive=True))
def rel(p):
    return os.path.relpath(p, fixtures)
for codec, target in [("dag-cbor", "dag-cbor"), ("dag-json", "dag-json"), ("dag-pb", "dag-pb")]:
    for p in files(f"codec-fixtures/fixtures/*/*.{codec}"):
        put(target, open(p, "rb").read(), "codec-fixtures/fixtures/*/*." + codec)
        put("cid-string", os.path.basename(p).rsplit(".", 1)[0].encode(), "codec-fixtures/fixtures/*/ (file names)")
for p in files("codec-fixtures/fixtures/cid-*"):
    put("cid-string", os.path.basename(p)[4:].encode(), "codec-fixtures/fixtures/cid-* (folder names)")
for p in files("multiformats/multihash/*.csv"):
    for row in csv.DictReader(open(p)):
        try:
            put("multihash", bytes.fromhex(row.get("multihash", "")), rel(p))
        except ValueError:
            pass
for p in files("multiformats/multibase/tests/*.csv"):
    for row in csv.reader(open(p), skipinitialspace=True):
        if len(row) >= 2 and row[0] and row[1] and row[0] != "encoding":
            put("multibase", row[1].encode(), rel(p))
for p in files("car/*.car") + files("gateway-conformance/**/*.car"):
    put("car", open(p, "rb").read(), "car/*.car, gateway-conformance/**/*.car (up to 64 KiB)")
for p in files("car/*.carindex"):
    put("car-index", open(p, "rb").read(), rel(p))
for p in files("gateway-conformance/**/*.ipns-record"):
    put("ipns-record", open(p, "rb").read(), "gateway-conformance/**/*.ipns-record")
semver = json.load(open(os.path.join(fixtures, "semver/node-semver.json")))
for row in semver.get("rangeInclude", [])[:20] + semver.get("rangeExclude", [])[:20]:
    if isinstance(row.get("version"), str) and isinstance(row.get("range"), str):
        put("semver", (row["version"] + "\n" + row["range"]).encode(), "semver/node-semver.json (rangeInclude, rangeExclude)")
for row in semver.get("invalidVersions", [])[:10]:
    if isinstance(row.get("value"), str):
        put("semver", row["value"].encode(), "semver/node-semver.json (invalidVersions)")
with open(os.path.join(out, "SOURCES.md"), "w") as f:
    f.write("# Fuzz seeds\n\nMade by `Scripts/fuzz.sh seeds`: files of ../shared/fixtures (each named by its SHA-256),\n"
            "and `generated-*` files the project's own encoders write (`FuzzTargets.generatedSeeds`).\n\n")
    f.write("| target | from ../shared/fixtures |\n| --- | --- |\n")
    for t in sorted(sources):
        f.write(f"| `{t}` | {', '.join(sorted(sources[t]))} |\n")
PY
  ./.build/debug/qstore-fuzz --write-seeds Fuzz/corpus
  echo "seeds: $(find Fuzz/corpus -type f ! -name SOURCES.md | wc -l) files in $(ls Fuzz/corpus | grep -vc SOURCES.md) targets"
  exit 0
fi

JOBS=${FUZZ_JOBS:-1}
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "FUZZ_JOBS must be a positive integer, not \"$JOBS\"" >&2; exit 2; }
[ -n "${FUZZ_NO_BUILD:-}" ] || "$SWIFT" build "${FLAGS[@]}" >/dev/null
BIN=$("$SWIFT" build "${FLAGS[@]}" --show-bin-path)/qstore-fuzz
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(QSTORE_FUZZ_TARGET=none "$BIN" 2>&1 | sed -n 's/.*one of: //p' | tr ' ' '\n' | grep -v '^$')
WORK=$(mktemp -d /tmp/qstore-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# Interrupted: the fuzzers go too (each is the child of a job's subshell).
trap 'for j in $(jobs -p); do pkill -TERM -P "$j"; kill "$j"; done 2>/dev/null; exit 130' INT TERM
run_one() {  # fuzz one target (in a subshell); its table row goes to $WORK/$t.row, and $WORK/$t.failed when it crashed
  local t=$1 rc
  set +e +o pipefail  # a target that dies before printing anything must still get its row
  mkdir -p "$WORK/$t" "Fuzz/crashers/$t" "Fuzz/corpus/$t"
  QSTORE_FUZZ_TARGET=$t "$BIN" "$WORK/$t" "Fuzz/corpus/$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 -artifact_prefix="Fuzz/crashers/$t/" >"$WORK/$t.log" 2>&1
  rc=$?
  local execs rate last cov ft result=ok
  execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$WORK/$t.log")
  rate=$(awk '/stat::average_exec_per_sec:/ {print $2}' "$WORK/$t.log")
  last=$(grep -E '^#[0-9]+' "$WORK/$t.log" | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  if [ $rc -ne 0 ]; then
    result="CRASH: $(ls -t "Fuzz/crashers/$t" 2>/dev/null | head -1)"
    touch "$WORK/$t.failed"
    grep -E "ERROR|invariant|Fatal error|SUMMARY" "$WORK/$t.log" | head -5 >&2 || true
  fi
  rmdir "Fuzz/crashers/$t" 2>/dev/null || true
  printf "%-16s %10s %10s %8s %8s  %s\n" "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result" >"$WORK/$t.row"
}
# FUZZ_JOBS targets at a time (default 1); rows are printed in the targets' order as they finish.
printf "%-16s %10s %10s %8s %8s  %s\n" target execs "execs/s" cov features result
printed=0
print_ready() {
  while [ $printed -lt ${#TARGETS[@]} ] && [ -f "$WORK/${TARGETS[$printed]}.row" ]; do
    cat "$WORK/${TARGETS[$printed]}.row"
    printed=$((printed + 1))
  done
}
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; print_ready; done
  run_one "$t" &
done
wait
# The rest, in order; a target with no row (its run ended before it could write one) failed.
failed=0
for ((i = printed; i < ${#TARGETS[@]}; i++)); do
  t=${TARGETS[$i]}
  if [ -f "$WORK/$t.row" ]; then cat "$WORK/$t.row"; else
    printf "%-16s %10s %10s %8s %8s  %s\n" "$t" "?" "?" "?" "?" "NO RESULT (see above)"
    failed=1
  fi
done
for t in "${TARGETS[@]}"; do [ ! -f "$WORK/$t.failed" ] || failed=1; done
exit $failed
