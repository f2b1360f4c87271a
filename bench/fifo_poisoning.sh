#!/usr/bin/env bash
# The repro of chaos seed 7022, a shared-memory FIFO poisoned by a process killed in the
# middle of a write (docs/faults.md, "A death on a host moves its processes to fresh UCX
# workers"): 2 ranks + 1 spare, rank 0 killed at a random instant 80-160 ms in, while
# 64,704 B recursive-doubling all-reduces run. A poisoned survivor's resync makes no
# progress ("no progress for 3000 ms"). Runs each build in turn, N times, and counts per
# build: passed (both survivors PASS), poisoned, rank 0 killed before the bootstrap
# (allowed), other.
# usage: bench/fifo_poisoning.sh RUNS BUILD_DIR [BUILD_DIR...]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -u
runs=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A passed poisoned init other
for ((i = 1; i <= runs; i++)); do
  for build in "$@"; do
    at=$(python3 -c "import random; print(round(random.uniform(0.08, 0.16), 3))")
    FTCCL_SOCKET_IFNAME=lo FTCCL_ALGO=allreduce:rd FTCCL_OP_TIMEOUT_MS=3000 \
      FTCCL_BOOTSTRAP_TIMEOUT_MS=5000 "$build/tools/ftccl_run" -n 3 --timeout 60 --kill "0@$at" \
      -- "$build/tools/all_reduce_perf" -b 64704 -e 64704 -n 3000 -z 1 --spares 1 \
      > "$tmp/log" 2>&1
    if grep -q "no progress for" "$tmp/log"; then
      poisoned[$build]=$((${poisoned[$build]:-0} + 1))
    elif [ "$(grep -c 'PERF_VERDICT rank=[0-9]* PASS' "$tmp/log")" -ge 1 ] &&
         ! grep -q "PERF_VERDICT rank=[0-9]* FAIL" "$tmp/log"; then
      passed[$build]=$((${passed[$build]:-0} + 1))
    elif grep -q "bootstrap root" "$tmp/log"; then
      init[$build]=$((${init[$build]:-0} + 1))
    else
      other[$build]=$((${other[$build]:-0} + 1))
      cp "$tmp/log" "fifo_poisoning.other.$i.log"
    fi
  done
done
for build in "$@"; do
  echo "$build: ${passed[$build]:-0} passed, ${poisoned[$build]:-0} poisoned," \
       "${init[$build]:-0} rank 0 killed before the bootstrap, ${other[$build]:-0} other"
done
