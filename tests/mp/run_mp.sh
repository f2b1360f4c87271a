#!/usr/bin/env bash
# Runs a multi-process test under mpirun and demands one "VERDICT rank=R PASS" line
# from every rank (mpirun's own exit status alone is not trusted).
# usage: run_mp.sh NRANKS PROGRAM [ARGS...]
set -u
n=$1; shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout --signal=KILL 1200 mpirun --allow-run-as-root --oversubscribe --bind-to none \
  -np "$n" -x FTCCL_SOCKET_IFNAME=lo ${FTCCL_DEBUG:+-x FTCCL_DEBUG} "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passes=$(grep -c "^VERDICT rank=[0-9]* PASS" "$log")
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)" "$log"; then passes=-1; fi
if [ "$status" -ne 0 ] || [ "$passes" -ne "$n" ]; then
  echo "run_mp: mpirun exit $status, $passes of $n ranks passed"
  exit 1
fi
echo "run_mp: all $n ranks passed"
