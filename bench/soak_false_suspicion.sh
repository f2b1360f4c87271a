#!/usr/bin/env bash
# Soak: back-to-back 64 MiB all-reduces at N ranks (default 8) on this machine with
# 10 ms probing, for about SECONDS (default 120). Counts false suspicions (any rank
# declared failed while all are alive) and reports the longest heartbeat silence
# seen between live peers: the margin that failureTimeoutMs must exceed.
# usage: bench/soak_false_suspicion.sh [NRANKS] [SECONDS] [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
n=${1:-8} seconds=${2:-120} build=${3:-build}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Calibrate the iteration count from one short run.
iters=$(( seconds * 12 ))
start=$(date +%s)
FTCCL_DEBUG=info FTCCL_DEBUG_SUBSYS=HEALTH,COLL FTCCL_PROBE_INTERVAL_MS=10 \
mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$n" \
  -x FTCCL_SOCKET_IFNAME=lo -x FTCCL_DEBUG -x FTCCL_DEBUG_SUBSYS -x FTCCL_PROBE_INTERVAL_MS \
  -x FTCCL_FAILURE_TIMEOUT_MS \
  "$build/tools/all_reduce_perf" -b 64M -e 64M -n "$iters" -w 2 -c 0 > "$log" 2>&1 || true
elapsed=$(( $(date +%s) - start ))
suspicions=$(grep -c "failed:" "$log" || true)
longest=$(grep -o "longest silence [0-9.]* ms" "$log" | awk '{print $3}' | sort -g | tail -1)
rtt=$(grep -o "round trip max [0-9.]* ms" "$log" | awk '{print $4}' | sort -g | tail -1)
grep -E "^ +[0-9]" "$log" || true
echo "soak: $n ranks, ${elapsed} s, $iters x 64 MiB all-reduce: false suspicions $suspicions," \
     "longest heartbeat silence ${longest:-?} ms, longest round trip ${rtt:-?} ms"
[ "$suspicions" -eq 0 ]
