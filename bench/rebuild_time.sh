#!/usr/bin/env bash
# Shrinking rebuild: RUNS times, kill one random rank of N during small all-reduces;
# every survivor rebuilds (ftcclCommRebuild) and checks 20 all-reduces on the new
# group. Reports per run the slowest survivor's detection latency (fault -> its op
# returned) and rebuild time (ftcclCommRebuild call -> new epoch), p50/p99/max.
# usage: bench/rebuild_time.sh NRANKS RUNS [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
n=$1 runs=$2 build=${3:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 0; i < runs; i++)); do
  victim=$(( RANDOM % n ))
  "$build/tools/ftccl_run" -n "$n" -q --timeout 60 -- "$build/tests/mp/fault_mp" --fault kill \
    --victim "$victim" --when small --at-iter $(( 20 + RANDOM % 30 )) --rebuild \
    --stamp "$tmp/stamp" > "$tmp/log" 2>&1 || true
  pass=$(grep -c "VERDICT rank=[0-9]* PASS" "$tmp/log" || true)
  [ "$pass" -eq $(( n - 1 )) ] || { echo "run $i: $pass of $(( n - 1 )) passed"; continue; }
  grep -oE "rebuild_ms=[0-9.]+" "$tmp/log" | cut -d= -f2 | sort -g | tail -1 >> "$tmp/rebuild"
  grep -oE "latency_ms=[0-9.]+" "$tmp/log" | cut -d= -f2 | sort -g | tail -1 >> "$tmp/detect"
  paste -d+ <(grep -oE "latency_ms=[0-9.]+" "$tmp/log" | cut -d= -f2) \
            <(grep -oE "rebuild_ms=[0-9.]+" "$tmp/log" | cut -d= -f2) | awk -F+ '{print $1 + $2}' | sort -g | tail -1 >> "$tmp/total"
done
for what in detect rebuild total; do
  sort -g "$tmp/$what" | awk -v w="$what" -v n="$n" '{v[NR] = $1} END {
    printf "%s, %d ranks, %d runs: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", w, n, NR,
           v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.99) + 1], v[NR] }'
done
