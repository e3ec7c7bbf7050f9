#!/usr/bin/env bash
# Runs the whole test suite (`make test`). The full log goes to .build/test.log; when a test
# fails, its failure lines are repeated at the end, where a truncated CI log still shows them.
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
mkdir -p .build
"$swift" test 2>&1 | tee .build/test.log
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo
    echo "==== failures (full log: .build/test.log) ===="
    grep -n -A6 -E "✘|error:|Fatal error" .build/test.log | grep -v "^--$" | tail -120
fi
exit "$status"
