#!/usr/bin/env bash
# bench/compare.py end to end at a small scale: every variant runs (each checks its
# sums; compare.py fails on a wrong one), the CSV holds a row per variant and size, and
# the plot is written when gnuplot is there. Everything lives in a temporary directory.
# usage: run_compare.sh BUILD_DIR VARIANTS(comma-separated)
set -euo pipefail
build=$1 variants=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/../../bench/compare.py" --build "$build" --np 4 --reps 1 --min 8 --max 256K \
  --factor 16 --iters 3 --warmup 1 --only "$variants" --csv "$tmp/c.csv" --png "$tmp/c.png" \
  > "$tmp/out.txt"
cat "$tmp/out.txt"
sizes=4  # 8, 128, 2048, 32768 (256K is not a power-of-16 step from 8)
for v in ${variants//,/ }; do
  rows=$(grep -c ",$v," "$tmp/c.csv" || true)
  if [ "$rows" -ne "$sizes" ]; then
    echo "run_compare: $v has $rows rows in the CSV, expected $sizes" >&2
    exit 1
  fi
done
if command -v gnuplot > /dev/null && [ ! -s "$tmp/c.png" ]; then
  echo "run_compare: no plot written" >&2
  exit 1
fi
echo "run_compare: ok"
