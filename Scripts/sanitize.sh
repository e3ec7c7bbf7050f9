#!/usr/bin/env bash
# The whole suite under a sanitizer: Scripts/sanitize.sh address|thread (`make test-asan`,
# `make test-tsan`), in a build directory of its own (.build-asan, .build-tsan). The daemons the
# tests start are built with the same sanitizer. The log goes to .build-<s>/test.log; every
# process's reports (the test runner's and the daemons' and CLIs' it starts, whose stderr the tests
# do not keep) go to .build-<s>/reports/<pid>, and their summary lines are repeated at the end.
# Suppressions: none (Docs/testing.md, "Sanitizers").
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
kind=${1:?address or thread}
dir=.build-$([ "$kind" = address ] && echo asan || echo tsan)
mkdir -p "$dir"
reports=$PWD/$dir/reports
rm -rf "$reports" && mkdir -p "$reports"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:log_path=$reports/asan}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:log_path=$reports/tsan}
# The Swift backtracer reads other threads' stacks when a test traps, which ASan reports as an
# overflow in CrashHandlerLinux: off, so a report is always about our code.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
"$swift" build --build-tests --sanitize="$kind" --build-path "$dir" 2>&1 | grep -E "error|Compiling|Build" | tail -3
"$swift" test --skip-build --sanitize="$kind" --build-path "$dir" ${FILTER:+--filter "$FILTER"} 2>&1 | tee "$dir/test.log"
status=${PIPESTATUS[0]}
if cat "$dir/test.log" "$reports"/* 2>/dev/null | grep -q -E "WARNING: ThreadSanitizer|ERROR: AddressSanitizer"; then
    echo
    echo "==== sanitizer reports ($reports, one file per process) ===="
    cat "$dir/test.log" "$reports"/* 2>/dev/null | grep -E "SUMMARY: (Thread|Address)Sanitizer" | sort | uniq -c | sort -rn | head -40
    status=1
fi
exit "$status"
