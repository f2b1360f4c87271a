#!/usr/bin/env bash
# CPU used by the health threads ("ftccl-health") of an N-rank job, read from
# /proc/PID/task/TID/stat (utime + stime) over a window, while the ranks run
# back-to-back blocking all-reduces of SIZE (-z 1: an unbounded run of asynchronous
# ones would queue faster than they run and grow each rank). Prints the average per process in % of a core.
# usage: bench/health_cpu.sh [NRANKS] [SECONDS] [SIZE] [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
n=${1:-8} window=${2:-10} size=${3:-1M} build=${4:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
"$build/tools/ftccl_run" -n "$n" -q --timeout $(( window + 60 )) -- \
  "$build/tools/all_reduce_perf" -b "$size" -e "$size" -n 100000000 -c 0 -z 1 > /dev/null 2>&1 &
launcher=$!
trap 'kill -TERM $launcher 2>/dev/null; wait $launcher 2>/dev/null || true' EXIT
sleep 3  # init done, heartbeats flowing
ticks() {  # "total count": utime+stime of every ftccl-health thread of this job
  local total=0 count=0
  for task in /proc/[0-9]*/task/*; do
    [ "$(cat "$task/comm" 2>/dev/null)" = ftccl-health ] || continue
    grep -qz "FTCCL_COMM_ID" "${task%/task/*}/environ" 2>/dev/null || continue
    set -- $(sed 's/^.*) //' "$task/stat" 2>/dev/null)
    total=$(( total + ${12} + ${13} )); count=$(( count + 1 ))
  done
  echo "$total $count"
}
read -r t0 threads < <(ticks); start=$(date +%s.%N)
sleep "$window"
read -r t1 _ < <(ticks); end=$(date +%s.%N)
hz=$(getconf CLK_TCK)
awk -v d=$(( t1 - t0 )) -v hz="$hz" -v s="$start" -v e="$end" -v n="$threads" 'BEGIN {
  secs = e - s; cpu = d / hz;
  printf "health threads: %d, %.2f s CPU in %.1f s: %.3f%% of a core per process\n", n, cpu, secs, 100 * cpu / secs / n }'
