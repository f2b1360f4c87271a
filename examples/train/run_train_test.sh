#!/usr/bin/env bash
# Trains twice under ftccl_run, once without a fault and once with a rank that kills
# itself mid-training, and demands a TRAIN_VERDICT PASS from every surviving process
# of both runs and bitwise equal final parameters (true with a spare and a fixed
# algorithm: the number of ranks, and so the reduction order, never changes).
# The launcher's exit status is not trusted for the faulty run: the rank that killed
# itself was not killed "on purpose" as far as the launcher knows. The verdicts decide.
# usage: run_train_test.sh FTCCL_RUN TRAIN NRANKS SPARES KILL_RANK KILL_STEP
set -u
if [ $# -ne 6 ]; then
  echo "usage: $0 FTCCL_RUN TRAIN NRANKS SPARES KILL_RANK KILL_STEP" >&2
  exit 2
fi
launcher=$1 train=$2 nranks=$3 spares=$4 kill_rank=$5 kill_step=$6
procs=$(( nranks + spares ))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FTCCL_SOCKET_IFNAME=lo
# The tuner's choice rests on times measured at init, so two runs may sum the gradients
# with different algorithms, in a different order; pinning it makes the runs comparable.
export FTCCL_ALGO=allreduce:ring

# run NAME EXPECTED_PASSES [TRAIN ARGS...]: 0 when the run passed.
run() {
  local name=$1 want=$2
  shift 2
  "$launcher" -n "$procs" --timeout 240 -- "$train" --spares "$spares" \
    --out "$tmp/$name.bin" "$@" > "$tmp/$name.log" 2>&1
  local status=$?
  grep -E "TRAIN_VERDICT|^\[[0-9]+\] (train:|fault:|rebuild:|resync:|standby:)|ftccl_run:" \
    "$tmp/$name.log"
  local passes fails
  passes=$(grep -c "TRAIN_VERDICT rank=[0-9]* PASS" "$tmp/$name.log")
  fails=$(grep -c "TRAIN_VERDICT rank=[0-9]* FAIL" "$tmp/$name.log")
  if [ "$passes" -ne "$want" ] || [ "$fails" -ne 0 ] || [ "$status" -eq 124 ] ||
     [ ! -s "$tmp/$name.bin" ]; then
    echo "run_train_test: $name: $passes of $want processes passed (launcher exit $status);" \
         "full log:"
    cat "$tmp/$name.log"
    return 1
  fi
  echo "run_train_test: $name: all $want processes passed (launcher exit $status)"
}

run clean "$procs" || exit 1
run kill $(( procs - 1 )) --kill-rank "$kill_rank" --kill-step "$kill_step" || exit 1
if ! grep -qE "train: .* faults=[1-9]" "$tmp/kill.log"; then
  echo "run_train_test: the run with a kill recovered from no fault"
  exit 1
fi
if ! cmp "$tmp/clean.bin" "$tmp/kill.bin"; then
  echo "run_train_test: the final parameters differ between the two runs"
  exit 1
fi
echo "run_train_test: PASS: bitwise equal parameters after a kill of rank $kill_rank" \
     "at step $kill_step ($nranks ranks, $spares spares)"
