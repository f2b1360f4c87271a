#!/usr/bin/env bash
# Init's cost as it grows with the processes (issue 27, docs/init-scaling.md): for each
# count P, one job of P processes that initialises and runs one 8-byte all-reduce; from
# each process's own log line ("rendezvous in X ms: sent a B blob, received a T table
# (a F B frame from the root | rank R), relays it to K") it reports the blob, the table
# frame every process receives, how many frames the root sent (the rest came through the
# relay, bootstrap/relay.h), the most any one process sent, and the slowest rendezvous
# and init. FTCCL_BOOTSTRAP_FANOUT is passed through (0: the root sends to everyone).
# usage: bench/init_scale.sh "P1 P2 ..." [BUILD_DIR]     e.g. bench/init_scale.sh "4 16 64"
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
counts=$1 build=${2:-build}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf "| processes | blob B | table frame B | frames the root sent | most frames a rank sent | rendezvous ms (max) | init ms (max) |\n"
printf "|---|---|---|---|---|---|---|\n"
blob=0
for p in $counts; do
  FTCCL_DEBUG=info FTCCL_BOOTSTRAP_TIMEOUT_MS=120000 "$build/tools/ftccl_run" -n "$p" -q \
    --timeout 600 -- "$build/tools/all_reduce_perf" -b 8 -e 8 -n 1 -w 0 -c 1 > "$tmp/log" 2>&1 || {
    echo "$p processes: the job failed"; tail -20 "$tmp/log"; exit 1; }
  n=$(grep -c "rendezvous in" "$tmp/log" || true)
  [ "$n" -eq "$p" ] || { echo "$p processes: $n rendezvous lines"; exit 1; }
  blob=$(grep -oE "sent a [0-9]+ B blob" "$tmp/log" | awk '{print $3}' | sort -g | tail -1)
  frame=$(grep -oE "a [0-9]+ B frame from" "$tmp/log" | awk '{print $2}' | sort -g | tail -1)
  fromRoot=$(grep -c "B frame from the root" "$tmp/log" || true)
  relayed=$(grep -oE "relays it to [0-9]+" "$tmp/log" | awk '{print $4}' | sort -g | tail -1)
  rdv=$(grep -oE "rendezvous in [0-9.]+ ms" "$tmp/log" | awk '{print $3}' | sort -g | tail -1)
  init=$(grep -oE "ready on .* in [0-9.]+ ms" "$tmp/log" | grep -oE "[0-9.]+ ms" | awk '{print $1}' |
    sort -g | tail -1)
  printf "| %d | %d | %d | %d | %d | %s | %s |\n" "$p" "$blob" "$frame" "$fromRoot" "$relayed" \
    "$rdv" "$init"
done
echo
echo "At 1,000-100,000 processes: build/bench/init_cost (the same relay tree, priced)."
