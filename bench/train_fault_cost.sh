#!/usr/bin/env bash
# Wall time a fault costs the training example: RUNS pairs, interleaved, of
# examples/train with N ranks + 1 spare: one run without a fault, one where rank 2
# kills itself at step 60 and the spare takes over. Reports the median wall time of
# each kind (rank 0's "train: ... wall_ms=" line, which includes init), their
# difference, and the median "lost" time the ranks themselves measured (from the
# start of the failed step until training was back at it).
# usage: bench/train_fault_cost.sh NRANKS RUNS [STEPS] [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
n=$1 runs=$2 steps=${3:-400} build=${4:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {  # $1: extra train flags
  # shellcheck disable=SC2086
  "$build/tools/ftccl_run" -n $(( n + 1 )) -q --timeout 120 -- "$build/examples/train/train" \
    --spares 1 --steps "$steps" --quiet $1 > "$tmp/log" 2>&1 || true
  grep -oE "wall_ms=[0-9.]+" "$tmp/log" | cut -d= -f2 | head -1
}
for ((i = 0; i < runs; i++)); do
  run "" >> "$tmp/clean"
  run "--kill-rank 2 --kill-step 60" >> "$tmp/fault"
  grep -oE "lost [0-9.]+ ms" "$tmp/log" | awk '{print $2}' | sort -g | tail -1 >> "$tmp/lost"
done
median() { sort -g "$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
spread() { sort -g "$1" | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'; }
clean=$(median "$tmp/clean") fault=$(median "$tmp/fault")
echo "$n ranks + 1 spare, $steps steps, $runs runs each:"
echo "  no fault   wall ${clean} ms (median; $(spread "$tmp/clean"))"
echo "  one kill   wall ${fault} ms (median; $(spread "$tmp/fault"))"
echo "  difference $(awk -v a="$clean" -v b="$fault" 'BEGIN { printf "%.1f", b - a }') ms;" \
     "lost as measured by the slowest rank: median $(median "$tmp/lost") ms ($(spread "$tmp/lost"))"
