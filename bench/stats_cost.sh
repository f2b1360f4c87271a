#!/usr/bin/env bash
# The cost of counting: all_reduce_perf busbw with the stats off (FTCCL_STATS=0: no
# counter, no clock read on the hot path) and on (counting, plus a stats file line per
# communicator every 100 ms), interleaved run by run (the order alternates) so that a
# slow spell of the machine hits both alike. Prints, per size, the median and mean busbw
# of each mode over the runs, the run-to-run noise (stdev / mean) and on/off.
# usage: bench/stats_cost.sh [--ranks 4] [--runs 10] [--iters 200] [--min 8] [--max 8M]
#          [--factor 32] [--algo ring] [--build build]
# --algo sets FTCCL_ALGO (default ring): with the cost model choosing, runs differ by the
# algorithm their calibration picked, which swamps what is measured here.
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
ranks=4 runs=10 iters=200 min=8 max=8M factor=32 algo=ring build=build
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2 ;; --runs) runs=$2 ;; --iters) iters=$2 ;; --min) min=$2 ;;
    --max) max=$2 ;; --factor) factor=$2 ;; --algo) algo=$2 ;; --build) build=$2 ;;
    *) echo "stats_cost: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {  # run MODE INDEX: one all_reduce_perf run, its rows kept as MODE.INDEX
  local mode=$1 i=$2
  local -a env=(-x FTCCL_STATS=0)
  [ "$mode" = on ] && env=(-x FTCCL_STATS=1 -x FTCCL_STATS_FILE="$tmp/s.%p.jsonl" -x FTCCL_STATS_INTERVAL_MS=100)
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" -x FTCCL_SOCKET_IFNAME=lo -x FTCCL_ALGO="$algo" \
    "${env[@]}" "$build/tools/all_reduce_perf" -b "$min" -e "$max" -f "$factor" -n "$iters" \
    -w 20 -c 0 2> /dev/null | grep -E '^ +[0-9]' > "$tmp/$mode.$i"
}
for ((i = 0; i < runs; i++)); do
  if ((i % 2)); then run on $i; run off $i; else run off $i; run on $i; fi
done
lines=$(ls "$tmp"/s.*.jsonl 2> /dev/null | xargs cat 2> /dev/null | wc -l)
python3 - "$tmp" "$runs" "$ranks" "$lines" "$algo" << 'PY'
import statistics as st, sys
tmp, runs, ranks, lines = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
data = {}  # (size, mode) -> [time per op (us) of each run, oop and ip averaged]
for mode in ("off", "on"):
    for i in range(runs):
        for row in open(f"{tmp}/{mode}.{i}"):
            f = row.split()
            data.setdefault((int(f[0]), mode), []).append((float(f[5]) + float(f[9])) / 2)
n = int(ranks)
busbw = lambda size, us: size * 2 * (n - 1) / n / us / 1e3  # GB/s, nccl-tests' all-reduce factor
noise = lambda v: st.stdev(v) / st.mean(v) * 100 if len(v) > 1 else 0
print(f"# {ranks} ranks, {runs} interleaved runs per mode, FTCCL_ALGO={sys.argv[5]}; 'on' wrote {lines} stats lines")
print("| size (B) | off: median time us (busbw GB/s) | on: median time us (busbw GB/s) | noise off / on | busbw on/off (median) | busbw on/off (mean) |")
print("|---|---|---|---|---|---|")
for size in sorted({s for s, _ in data}):
    off, on = data[(size, "off")], data[(size, "on")]
    print(f"| {size} | {st.median(off):.1f} ({busbw(size, st.median(off)):.4f}) "
          f"| {st.median(on):.1f} ({busbw(size, st.median(on)):.4f}) "
          f"| {noise(off):.1f}% / {noise(on):.1f}% "
          f"| {st.median(off) / st.median(on):.3f} | {st.mean(off) / st.mean(on):.3f} |")
PY
