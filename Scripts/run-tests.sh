#!/usr/bin/env bash
# Runs the whole test suite (`make test`). The full log goes to .build/test.log; when a test
# fails, its failure lines are repeated at the end, where a truncated CI log still shows them.
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
mkdir -p .build
# The cluster suites (real etcd members and three to nine daemons each) run on their own after
# the rest: beside it they loaded the 2-core machine enough to starve its timing-sensitive tests.
cluster='ClusterE2ETests|ClusterNamespaceTests'
"$swift" test --skip "$cluster" 2>&1 | tee .build/test.log
status=${PIPESTATUS[0]}
"$swift" test --filter "$cluster" 2>&1 | tee -a .build/test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
# Every fuzz target for a few seconds (libFuzzer and AddressSanitizer): one that stops building
# or crashes at once fails the run (`make fuzz` fuzzes for real).
FUZZ_SECONDS=${FUZZ_SMOKE_SECONDS:-5} FUZZ_JOBS=${FUZZ_JOBS:-2} SWIFT="$swift" Scripts/fuzz.sh 2>&1 | grep -v -E "^warning:|CMakeLists.txt$" | tee -a .build/test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ "$status" -ne 0 ]; then
    echo
    echo "==== failures (full log: .build/test.log) ===="
    grep -n -A6 -E "✘|error:|Fatal error|CRASH" .build/test.log | grep -v "^--$" | tail -120
fi
exit "$status"
