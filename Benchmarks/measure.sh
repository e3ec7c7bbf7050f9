# Shared helpers of the benchmark scripts (sourced).
# timed LABEL COMMAND…: runs COMMAND (its output dropped) under /usr/bin/time -v and prints
# "LABEL SECONDS PEAK_RSS_KIB".
timed() {
  local out; out=$( { /usr/bin/time -v "${@:2}" >/dev/null; } 2>&1 )
  local secs rss
  secs=$(echo "$out" | awk -F': ' '/Elapsed \(wall clock\)/ {split($2,a,":"); if (length(a)==3) print a[1]*3600+a[2]*60+a[3]; else print a[1]*60+a[2]}')
  rss=$(echo "$out" | awk -F': ' '/Maximum resident set size/ {print $2}')
  echo "$1 $secs $rss"
}
# mb BYTES SECONDS: MB/s; ratio A B: A / B to two places.
mb() { python3 -c "print(f'{$1 / $2 / 1e6:.0f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
