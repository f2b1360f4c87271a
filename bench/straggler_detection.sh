#!/usr/bin/env bash
# Time from a rank turning slow to the straggler warning: RUNS runs of all_reduce_perf
# on NRANKS ranks where rank SLOW sleeps MS ms before each op (--slow), from its first
# sleep (the perf tool's stamp) to the first "straggler:" WARN line (both wall clock).
# Prints each run and the median, and which ranks the warnings named (only SLOW is right).
# usage: bench/straggler_detection.sh [RUNS] [NRANKS] [SLOW] [MS] [SIZE] [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
runs=${1:-10} n=${2:-4} slow=${3:-2} ms=${4:-20} size=${5:-64K} build=${6:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 0; i < runs; i++)); do
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$n" -x FTCCL_SOCKET_IFNAME=lo \
    "$build/tools/all_reduce_perf" -b "$size" -e "$size" -n 150 -w 2 -c 0 --slow "$slow:$ms" \
    > "$tmp/run.$i" 2>&1
done
python3 - "$tmp" "$runs" "$n" "$slow" "$ms" << 'PY'
import datetime, glob, re, statistics, sys
tmp, runs, n, slow, ms = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
times, wrong = [], set()
for i in range(runs):
    text = open(f"{tmp}/run.{i}").read()
    start = re.search(r"# slow: sleeping \d+ ms before each operation from unix ms (\d+)", text)
    warns = re.findall(r"^(\S+ \S+) \S+ ftccl warning \[Health\] rank (\d+): straggler: rank (\d+) ", text, re.M)
    wrong |= {int(r) for _, _, r in warns if int(r) != slow}
    if not start or not warns:
        print(f"run {i}: no {'stamp' if not start else 'warning'}")
        continue
    first = min(datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f").timestamp() for t, _, _ in warns)
    times.append(first * 1000 - int(start.group(1)))
    print(f"run {i}: {times[-1]:.0f} ms, flagged by ranks {sorted({int(b) for _, b, _ in warns})}")
print(f"# {n} ranks, rank {slow} {ms} ms late per op: median {statistics.median(times):.0f} ms, "
      f"min {min(times):.0f}, max {max(times):.0f} over {len(times)} of {runs} runs; "
      f"other ranks flagged: {sorted(wrong) or 'none'}")
PY
