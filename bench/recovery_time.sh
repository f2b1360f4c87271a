#!/usr/bin/env bash
# Rebuild onto a hot spare, RUNS times: N ranks + 1 spare run checked all-reduces
# (tests/mp/spares_mp); one random rank kills itself at a random iteration; the spare
# takes its number and the job goes on. Per run:
#   rebuild  = failure known (the first "failed" log line, any member) -> every member
#              in the new epoch (the last "rebuilt into epoch" / "spare activated" line);
#   recovery = fault injected (the victim's stamp) -> the retried collective completed
#              (the slowest member's first successful all-reduce after the rebuild).
# Log lines carry wall-clock microseconds, all processes on one host.
# usage: bench/recovery_time.sh NRANKS RUNS [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
n=$1 runs=$2 build=${3:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seconds() { awk '{ split($3, t, ":"); printf "%.6f\n", t[1] * 3600 + t[2] * 60 + t[3] }'; }
for ((i = 0; i < runs; i++)); do
  victim=$(( RANDOM % n ))
  rm -f "$tmp/stamp"
  "$build/tools/ftccl_run" -n $(( n + 1 )) --timeout 120 -- "$build/tests/mp/spares_mp" \
    --spares 1 --iters 400 --kill "$victim@$(( 50 + RANDOM % 200 ))" --expect-ranks "$n" \
    --stamp "$tmp/stamp" > "$tmp/log" 2>&1 || true
  pass=$(grep -c "VERDICT rank=[0-9]* PASS" "$tmp/log" || true)
  if [ "$pass" -ne "$n" ]; then
    echo "run $i: $pass of $n passed"
    continue
  fi
  first=$(grep -E "\[Health\].* failed: " "$tmp/log" | seconds | sort -g | head -1)
  last=$(grep -E "rebuilt into epoch|spare activated" "$tmp/log" | seconds | sort -g | tail -1)
  awk -v a="$first" -v b="$last" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }' >> "$tmp/rebuild"
  grep -oE "recovery_ms=[0-9.]+" "$tmp/log" | cut -d= -f2 | sort -g | tail -1 >> "$tmp/recovery"
done
for what in rebuild recovery; do
  sort -g "$tmp/$what" | awk -v w="$what" -v n="$n" '{v[NR] = $1} END {
    printf "%-8s %d ranks + 1 spare, %d faults: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", w, n,
           NR, v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.99) + 1], v[NR] }'
done
