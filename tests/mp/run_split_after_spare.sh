#!/usr/bin/env bash
# CommSplit after a spare took a rank: 4 ranks and 1 hot spare run split_job (the ranks
# split the world into two children every few steps); rank 1 is killed from outside
# mid-run, the spare takes its place, and the splits that follow include the activated
# spare, whose split history is not the others' (the child ids cross the data path
# sealed under a key every member must derive alike). Each of the 4 live processes
# prints PERF_VERDICT ... PASS and ftccl_run exits 0.
# usage: run_split_after_spare.sh FTCCL_RUN SPLIT_JOB
set -u
launcher=$1 job=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FTCCL_SOCKET_IFNAME=lo
"$launcher" -n 5 --timeout 240 --kill 1@1.5 -- "$job" --spares 1 --steps 400 --split-every 4 \
  --count 4096 > "$tmp/log" 2>&1
status=$?
passes=$(grep -c "PERF_VERDICT rank=[0-9]* PASS" "$tmp/log")
fails=$(grep -c "PERF_VERDICT rank=[0-9]* FAIL" "$tmp/log")
activated=$(grep -c "spare activated as rank" "$tmp/log")
if [ "$passes" -ne 4 ] || [ "$fails" -ne 0 ] || [ "$status" -ne 0 ] || [ "$activated" -lt 1 ]; then
  echo "run_split_after_spare: $passes PASS, $fails FAIL, spare activated $activated (launcher" \
       "exit $status); full log:"
  cat "$tmp/log"
  exit 1
fi
grep -E "PERF_VERDICT|spare activated" "$tmp/log"
echo "run_split_after_spare: 4 live processes passed, splitting with the activated spare"
