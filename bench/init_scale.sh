#!/usr/bin/env bash
# Init's cost as it grows with the processes (issue 27, docs/init-scaling.md): for each
# count P, one job of P processes that initialises and runs one 8-byte all-reduce; from
# each process's own log line ("rendezvous in X ms: sent a B blob, received a T table")
# it reports the blob, the table every process receives, what the root sends in all
# (P tables, with their frames and proofs) and the slowest rendezvous and init. Then the
# same formulas (bootstrap/wire.h: 20-byte frame header, a 4-byte length per entry, a
# 16-byte proof) at 1,000, 10,000 and 100,000 processes with the largest blob measured.
# usage: bench/init_scale.sh "P1 P2 ..." [BUILD_DIR]     e.g. bench/init_scale.sh "4 16 64"
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
counts=$1 build=${2:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf "| processes | blob B | table B per process | root sends B | rendezvous ms (max) | init ms (max) |\n"
printf "|---|---|---|---|---|---|\n"
blob=0
for p in $counts; do
  FTCCL_DEBUG=info FTCCL_BOOTSTRAP_TIMEOUT_MS=120000 "$build/tools/ftccl_run" -n "$p" -q \
    --timeout 600 -- "$build/tools/all_reduce_perf" -b 8 -e 8 -n 1 -w 0 -c 1 > "$tmp/log" 2>&1 || {
    echo "$p processes: the job failed"; tail -20 "$tmp/log"; exit 1; }
  n=$(grep -c "rendezvous in" "$tmp/log" || true)
  [ "$n" -eq "$p" ] || { echo "$p processes: $n rendezvous lines"; exit 1; }
  blob=$(grep -oE "sent a [0-9]+ B blob" "$tmp/log" | awk '{print $3}' | sort -g | tail -1)
  table=$(grep -oE "received a [0-9]+ B table" "$tmp/log" | awk '{print $3}' | sort -g | tail -1)
  rdv=$(grep -oE "rendezvous in [0-9.]+ ms" "$tmp/log" | awk '{print $3}' | sort -g | tail -1)
  init=$(grep -oE "ready on .* in [0-9.]+ ms" "$tmp/log" | grep -oE "[0-9.]+ ms" | awk '{print $1}' |
    sort -g | tail -1)
  wire=$(( 20 + 12 + 4 * p + table + 16 ))  # frame header, nonce and count, lengths, proof
  printf "| %d | %d | %d | %d | %s | %s |\n" "$p" "$blob" "$wire" $(( p * wire )) "$rdv" "$init"
done
echo
echo "The same formulas with a $blob B blob:"
printf "| processes | table B per process | root sends B | at 12.5 GB/s (100 GbE) |\n|---|---|---|---|\n"
for p in 1000 10000 100000; do
  awk -v p="$p" -v b="$blob" 'BEGIN {
    t = 20 + 12 + p * (4 + b) + 16; r = p * t;
    printf "| %d | %.3g | %.3g | %.3g s |\n", p, t, r, r / 12.5e9 }'
done
