#!/usr/bin/env bash
# Healthy-path cost of probing: busbw with 10 ms probes versus probing effectively off
# (one probe a minute), interleaved A/B runs, medians and min-max spread per size.
# usage: bench/probe_cost.sh [NRANKS] [RUNS] [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
n=${1:-4} runs=${2:-10} build=${3:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 0; i < runs; i++)); do
  for mode in on off; do
    interval=10; [ $mode = off ] && interval=60000
    FTCCL_PROBE_INTERVAL_MS=$interval FTCCL_FAILURE_TIMEOUT_MS=$(( interval * 3 > 1000 ? interval * 3 : 1000 )) "$build/tools/ftccl_run" -n "$n" -q --timeout 300 -- \
      "$build/tools/all_reduce_perf" -b 1M -e 16M -f 4 -n 20 -w 3 -c 0 2>/dev/null |
      awk '$2 ~ /^[0-9]+$/ && NF >= 13 {print $2, $9}' >> "$tmp/$mode"
  done
done
echo "# $n ranks, $runs interleaved runs per mode: busbw GB/s median (min-max)"
for size in $(awk '{print $1}' "$tmp/on" | sort -un); do
  line="$size"
  for mode in on off; do
    line="$line $(awk -v s="$size" '$1 == s {print $2}' "$tmp/$mode" | sort -g |
      awk '{v[NR] = $1} END {printf "%s:%.2f(%.2f-%.2f)", "'$mode'", v[int((NR + 1) / 2)], v[1], v[NR]}')"
  done
  echo "$line"
done
