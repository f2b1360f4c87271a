#!/usr/bin/env bash
# Runs one fuzz target for a fixed time from the seeds (and a kept corpus, if named):
# fails on a crash, a leak, undefined behaviour, one allocation over 128 MiB, or more
# than 1 GiB resident. The temporary corpus is always removed.
# usage: run_fuzzer.sh FUZZER SEEDS_TOOL TARGET SECONDS [CORPUS_DIR]
set -u
fuzzer=$1 seeds=$2 target=$3 seconds=$4 keep=${5:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$seeds" "$tmp/seeds" || exit 1
corpus=$tmp/corpus
if [ -n "$keep" ]; then corpus=$keep; fi
mkdir -p "$corpus"
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=128 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$tmp/" "$corpus" "$tmp/seeds/$target" > "$tmp/log" 2>&1
status=$?
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)|cov: " "$tmp/log" | tail -4
if [ "$status" -ne 0 ]; then
  echo "fuzz $target: FAILED (exit $status)"
  tail -60 "$tmp/log"
  for a in "$tmp"/crash-* "$tmp"/leak-* "$tmp"/oom-* "$tmp"/timeout-* "$tmp"/slow-unit-*; do
    [ -e "$a" ] && { echo "input: $a"; od -A d -t x1 "$a" | head -20; }
  done
  exit 1
fi
echo "fuzz $target: no finding in $seconds s"
