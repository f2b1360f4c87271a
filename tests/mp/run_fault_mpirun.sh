#!/usr/bin/env bash
# The fault tests under mpirun, with the flags that keep Open MPI 4.1 from killing the
# job when one rank dies. mpirun's exit status means nothing then (it is 0 after a
# death): each survivor's own verdict line decides. Bootstrap through FTCCL_COMM_ID, so
# that nothing after init depends on MPI.
# usage: run_fault_mpirun.sh FAULT_MP NRANKS VICTIMS FAULT_MP ARGS...
set -u
prog=$1 n=$2 victims=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=free_port.sh
. "$(dirname "$0")/free_port.sh"
export FTCCL_COMM_ID=127.0.0.1:$port FTCCL_SOCKET_IFNAME=lo FTCCL_FAULT_INJECTION=1
export FTCCL_COMM_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
timeout --signal=KILL 240 mpirun --allow-run-as-root --oversubscribe --bind-to none \
  --mca orte_enable_recovery 1 --mca orte_abort_on_non_zero_status 0 -np "$n" \
  -x FTCCL_COMM_ID -x FTCCL_COMM_SECRET -x FTCCL_SOCKET_IFNAME -x FTCCL_FAULT_INJECTION \
  "$prog" --victim "$victims" --stamp "$tmp/stamp" "$@" > "$tmp/log" 2>&1
grep -E "VERDICT|VICTIM" "$tmp/log"
nvictims=$(echo "$victims" | tr ',' '\n' | grep -c .)
want=$(( n - nvictims ))
passes=$(grep -c "VERDICT rank=[0-9]* PASS" "$tmp/log")
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)" "$tmp/log"; then
  echo "sanitizer report:"; grep -A30 -E "ERROR: (AddressSanitizer|LeakSanitizer)" "$tmp/log" | head -80
  passes=-1
fi
if [ "$passes" -ne "$want" ]; then
  echo "run_fault_mpirun: $passes of $want survivors passed; full log:"; cat "$tmp/log"; exit 1
fi
echo "run_fault_mpirun: all $want survivors passed"
