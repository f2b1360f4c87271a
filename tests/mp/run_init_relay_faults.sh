#!/usr/bin/env bash
# Faults from outside while the bootstrap table is relayed (issue 27, bootstrap/relay.h):
# 6 ranks and a spare relay it in a chain (FTCCL_BOOTSTRAP_FANOUT=1: the root sends it to
# rank 0 only, rank r to rank r + 1), so every rank but the last has a child waiting on
# it. ftccl_run kills or stops a middle rank at a random instant of init (the seed is
# printed; RELAY_FAULT_SEED replays it), or two at once. Each trial must end with every
# rank's verdict PASS (the spare took the victim's place) and ftccl_run exiting 0; the
# children of a victim that had joined fetch the table from the root instead (counted).
# usage: run_init_relay_faults.sh FTCCL_RUN ALL_REDUCE_PERF [TRIALS]
set -u
launcher=$1 perf=$2 trials=${3:-4}
seed=${RELAY_FAULT_SEED:-$(date +%s)}
RANDOM=$seed
echo "run_init_relay_faults: seed $seed (RELAY_FAULT_SEED=$seed replays it)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FTCCL_SOCKET_IFNAME=lo FTCCL_DEBUG=WARN FTCCL_BOOTSTRAP_FANOUT=1
ranks=6
fallbacks=0

# trial NAME SPARES FAULT...: every rank must pass.
trial() {
  local name=$1 spares=$2
  shift 2
  FTCCL_BOOTSTRAP_TIMEOUT_MS=4000 "$launcher" -n $((ranks + spares)) --timeout 240 "$@" -- \
    "$perf" -b 64K -e 64K -n 20000 -w 2 -c 1 --spares "$spares" > "$tmp/log" 2>&1
  local status=$? passes fell
  passes=$(grep -c "PERF_VERDICT rank=[0-9]* PASS" "$tmp/log")
  fell=$(grep -c "did not relay the table" "$tmp/log")
  fallbacks=$((fallbacks + fell))
  if [ "$passes" -ne "$ranks" ] || [ "$status" -ne 0 ]; then
    echo "run_init_relay_faults: $name ($*): $passes PASS (want $ranks), launcher exit" \
      "$status; full log:"
    cat "$tmp/log"
    exit 1
  fi
  echo "run_init_relay_faults: $name ($*): $passes PASS, exit 0, $fell child(ren) fetched" \
    "from the root"
}

# A middle rank of the chain (1-4: rank 0 is the bootstrap root's process, rank 5 has no
# child) at 0.00-0.49 s, when the processes are starting, meeting and relaying. Drawn in
# this shell (a $(...) subshell would not advance its RANDOM: the seed would not replay).
draw() {
  victim=$((1 + RANDOM % 4))
  instant="0.$((RANDOM % 5))$((RANDOM % 10))"
}
for ((t = 0; t < trials; ++t)); do
  draw
  trial "kill during init" 1 --kill "$victim@$instant"
  draw
  trial "stop during init" 1 --stop "$victim@$instant"
done
draw
trial "two kills at once" 2 --kill "$victim@$instant" --kill "$((victim % 4 + 1))@0.2"
echo "run_init_relay_faults: every trial passed; $fallbacks fetch(es) from the root after a" \
  "parent failed"
