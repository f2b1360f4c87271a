#!/usr/bin/env bash
# The agreement under random fault schedules in the scale simulator (issue 27): SEEDS
# random schedules (1-3 crashes, hangs or host losses, half of them with a second
# failure tied to the rebuild) at each rank count, 16 spares, 10 ms probes and 30 ms
# failure timeouts. Every run's invariants are checked (one membership, nobody failed
# kept, no survivor expelled, no minority epoch); prints the broken rows, if any, and
# per rank count the number held and the p50/p99/max of agreement + rebuild (from the
# first detection to the last survivor's new epoch). Exits 1 if an
# invariant broke.
# usage: bench/sim_random_sweep.sh "1000:1000 10000:50" [FIRST_SEED] [BUILD_DIR]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
plan=${1:-"1000:1000 10000:50"} first=${2:-20000} build=${3:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for item in $plan; do
  ranks=${item%%:*} seeds=${item##*:}
  # One process per 100 seeds: a simulator holds one cluster at a time, so memory stays
  # that of one run.
  for ((s = first; s < first + seeds; s += 100)); do
    n=$(( first + seeds - s < 100 ? first + seeds - s : 100 ))
    "$build/tools/ftccl_sim/ftccl_sim" --ranks "$ranks" --spares 16 --scenarios random \
      --seeds "$n" --first-seed "$s" --healthy-ms 20 --csv "$tmp/part.csv" > "$tmp/out" || status=1
    grep -A3 "BROKEN" "$tmp/out" || true
    tail -n +2 "$tmp/part.csv" >> "$tmp/rows.csv"
  done
done
# CSV columns as ftccl_sim writes them (by name): agreement_rebuild_ms, violations.
python3 - "$tmp/rows.csv" "$(head -1 "$tmp/part.csv")" <<'PY'
import csv, sys
header = sys.argv[2].split(",")
rows = [dict(zip(header, r)) for r in csv.reader(open(sys.argv[1]))]
by = {}
for r in rows:
    by.setdefault(r["ranks"], []).append(r)
for ranks, rs in sorted(by.items(), key=lambda kv: int(kv[0])):
    held = sum(1 for r in rs if r["violations"] == "0")
    t = sorted(float(r["agreement_rebuild_ms"]) for r in rs
               if float(r["agreement_rebuild_ms"]) >= 0)
    q = lambda p: t[min(len(t) - 1, int(p * (len(t) - 1)))] if t else float("nan")
    print(f"{ranks} ranks: {len(rs)} schedules, {held} held; first detection to last rebuild p50 {q(0.5):.1f}"
          f" ms, p99 {q(0.99):.1f} ms, max {t[-1] if t else float('nan'):.1f} ms")
PY
exit $status
