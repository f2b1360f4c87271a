#!/usr/bin/env bash
# Faults from outside during shared-memory all-reduces (issue 26): 4 ranks and spares on
# one host, FTCCL_ALGO=allreduce:shm, and ftccl_run kills or stops ranks at random
# instants (RANDOM seeded from the test's name, printed, so a failure can be replayed
# with SHM_FAULT_SEED), in the middle of one-round (4 KiB) and pipelined (4 MiB, 16
# chunks) all-reduces, during init, and two at once. Each trial must end with every live
# process verdict PASS (the others rebuilt onto spares, mapped a fresh segment with the
# spare in it, redid the interrupted step and finished with correct data) and ftccl_run
# exiting 0; nothing may be left in /dev/shm.
# usage: run_shm_faults.sh FTCCL_RUN ALL_REDUCE_PERF [TRIALS]
set -u
launcher=$1 perf=$2 trials=${3:-6}
seed=${SHM_FAULT_SEED:-$(date +%s)}
RANDOM=$seed
echo "run_shm_faults: seed $seed (SHM_FAULT_SEED=$seed replays it)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FTCCL_SOCKET_IFNAME=lo FTCCL_ALGO=allreduce:shm FTCCL_DEBUG=INFO FTCCL_DEBUG_SUBSYS=INIT
shm_before=$(ls /dev/shm 2>/dev/null | wc -l)

# trial NAME SPARES LIVE SIZE ITERS FAULT...: LIVE processes must print PASS.
trial() {
  local name=$1 spares=$2 live=$3 size=$4 iters=$5
  shift 5
  local n=$((4 + spares))
  FTCCL_BOOTSTRAP_TIMEOUT_MS=3000 "$launcher" -n "$n" --timeout 240 "$@" -- "$perf" \
    -b "$size" -e "$size" -n "$iters" -w 2 -c 1 --spares "$spares" > "$tmp/log" 2>&1
  local status=$?
  local passes fails mapped
  passes=$(grep -c "PERF_VERDICT rank=[0-9]* PASS" "$tmp/log")
  fails=$(grep -c "PERF_VERDICT rank=[0-9]* FAIL" "$tmp/log")
  mapped=$(grep -c "shared memory at \(init\|rebuild\|activation\): 4 ranks" "$tmp/log")
  if [ "$passes" -ne "$live" ] || [ "$fails" -ne 0 ] || [ "$status" -ne 0 ] || [ "$mapped" -lt 1 ]; then
    echo "run_shm_faults: $name ($*): $passes PASS (want $live), $fails FAIL, launcher exit" \
      "$status, $mapped segments mapped; full log:"
    cat "$tmp/log"
    exit 1
  fi
  local rebuilt
  rebuilt=$(grep -c "shared memory at \(rebuild\|activation\): 4 ranks" "$tmp/log")
  echo "run_shm_faults: $name ($*): $passes PASS, exit 0, $rebuilt rebuilt segment(s)"
}

# A random instant in [lo, lo + span) seconds, with millisecond resolution.
at() { printf '%d.%03d' $(($1 + RANDOM % $2)) $((RANDOM % 1000)); }

for ((t = 0; t < trials; ++t)); do
  victim=$((RANDOM % 4))
  trial "kill in one-round ops" 1 4 4K 200000 --kill "$victim@$(at 1 2)"
  victim=$((RANDOM % 4))
  trial "kill in pipelined ops" 1 4 4M 4000 --kill "$victim@$(at 1 2)"
done
other=$(((victim + 1 + RANDOM % 3) % 4))
trial "two kills at once" 2 4 1M 10000 --kill "$victim@1.5" --kill "$other@1.5"
trial "stop, then the spare" 1 4 64K 100000 --stop "$victim@$(at 1 1)"
# Not rank 0 there: before it listens it is the bootstrap root, without which no job starts.
trial "kill during init" 1 4 64K 20000 --kill "$((1 + RANDOM % 3))@0.$((RANDOM % 3))$((RANDOM % 10))"

shm_after=$(ls /dev/shm 2>/dev/null | wc -l)
if [ "$shm_after" -gt "$shm_before" ]; then
  echo "run_shm_faults: /dev/shm grew from $shm_before to $shm_after entries"
  ls -la /dev/shm
  exit 1
fi
echo "run_shm_faults: every trial recovered; /dev/shm unchanged ($shm_after entries)"
