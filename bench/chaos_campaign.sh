#!/usr/bin/env bash
# A long random chaos campaign (tools/ftccl_chaos, docs/chaos.md): N runs, each a random
# job with a random fault from outside, one at a time; prints the summary table (outcomes
# per fault kind, mid-transfer kills, detection/recovery p50/p99) and exits 1 on any
# defect outcome.
#
# usage: bench/chaos_campaign.sh [--runs 200] [--out chaos-results] [--seed S]
#          [any other ftccl_chaos.py option: --kinds, --max-ranks, --max-bytes, --build ...]
#
# Resumable: rerun with the same --out and it goes on where it stopped (Ctrl-C is safe:
# every process, namespace and temporary file of the run in flight is removed). Without
# --seed, the first call draws a random first seed and keeps it in OUT/first_seed, so
# that campaigns in different directories explore different seeds and a rerun resumes
# the same ones. Link cuts need root and iproute2; without them those runs are skipped.
# A run takes ~2-10 s on 2 cores (a hang up to ~40 s): 200 runs take 15-30 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=200 out=chaos-results seed=""
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
mkdir -p "$out"
if [ -z "$seed" ]; then
  [ -f "$out/first_seed" ] || echo $(( (RANDOM << 15 | RANDOM) % 1000000 + 1000 )) > "$out/first_seed"
  seed=$(cat "$out/first_seed")
fi
echo "chaos campaign: $runs runs from seed $seed into $out"
exec python3 "$root/tools/ftccl_chaos/ftccl_chaos.py" --runs "$runs" --seed "$seed" --out "$out" \
  ${args[@]+"${args[@]}"}
