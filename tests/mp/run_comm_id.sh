#!/usr/bin/env bash
# Starts N processes of a perf tool without mpirun or MPI: each builds the same unique
# id from FTCCL_COMM_ID/FTCCL_COMM_SECRET, rank 0 listens. Every process must exit 0.
# usage: run_comm_id.sh NRANKS TOOL [ARGS...]
set -u
n=$1; shift
# shellcheck source=free_port.sh
. "$(dirname "$0")/free_port.sh"
export FTCCL_COMM_ID=127.0.0.1:$port FTCCL_NRANKS=$n FTCCL_BOOTSTRAP_TIMEOUT_MS=60000
export FTCCL_COMM_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
unset OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_RANK
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
for ((r = 0; r < n; r++)); do
  FTCCL_RANK=$r timeout --signal=KILL 600 "$@" > "/dev/stderr" &
  pids+=($!)
done
failed=0
for ((r = 0; r < n; r++)); do
  wait "${pids[$r]}" || { echo "rank $r failed"; failed=1; }
done
pids=()
[ $failed -eq 0 ] && echo "run_comm_id: all $n ranks exited 0 (no MPI)"
exit $failed
