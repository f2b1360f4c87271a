#!/usr/bin/env bash
# Detection latency: fault injected -> every survivor's operation has returned.
# Runs all_reduce_perf under ftccl_run RUNS times with --fault KIND:VICTIM:ITER (victim
# and iteration vary per run), takes per run the slowest survivor, and prints p50, p99
# and max over the runs.
# usage: bench/detection_latency.sh KIND NRANKS RUNS [SIZE] [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
kind=$1 n=$2 runs=$3 size=${4:-1M} build=${5:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((i = 0; i < runs; i++)); do
  victim=$(( RANDOM % n ))
  iter=$(( 20 + RANDOM % 40 ))
  # -z 1: blocking calls, so "the operation returned" is the moment the call returns.
  out=$("$build/tools/ftccl_run" -n "$n" -q --timeout 60 -- "$build/tools/all_reduce_perf" \
        -b "$size" -e "$size" -n 1000000 -w 5 -c 0 -z 1 --fault "$kind:$victim:$iter" 2>&1 || true)
  worst=$(echo "$out" | grep -c "ms after injection" || true)
  lat=$(echo "$out" | grep -oE "[0-9.]+ ms after injection" | awk '{print $1}' | sort -g | tail -1 || true)
  if [ "$worst" -ne $(( n - 1 )) ] || [ -z "$lat" ]; then
    echo "run $i: only $worst of $(( n - 1 )) survivors reported (victim $victim)"; echo "$out" | tail -5
    continue
  fi
  echo "$lat" >> "$results"
done
count=$(wc -l < "$results")
sort -g "$results" | awk -v kind="$kind" -v n="$n" -v runs="$runs" '
  { v[NR] = $1 }
  END {
    p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]; max = v[NR];
    printf "detection %s, %d ranks: %d of %d runs: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           kind, n, NR, runs, p50, p99, max }'
