#!/usr/bin/env bash
# all_reduce_perf survives a rank's death: 4 ranks and 1 hot spare under ftccl_run, rank 2
# kills itself at its 60th operation (inside a timed loop), the others rebuild onto the
# spare and finish the run with every check passing. The launcher's exit status is not
# trusted (a self-inflicted kill is not "on purpose" to it): each of the 4 live processes
# must print PERF_VERDICT ... PASS, and the reporter the "# Fault:" summary.
# usage: run_perf_spares.sh FTCCL_RUN ALL_REDUCE_PERF
set -u
launcher=$1 perf=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FTCCL_SOCKET_IFNAME=lo
"$launcher" -n 5 --timeout 240 -- "$perf" -b 1K -e 4M -f 4 -n 40 -w 2 -c 1 --spares 1 \
  --fault kill:2:60 > "$tmp/log" 2>&1
status=$?
grep -E "PERF_VERDICT|# Fault:|# Rebuild:|fault detected|ftccl_run:" "$tmp/log"
passes=$(grep -c "PERF_VERDICT rank=[0-9]* PASS" "$tmp/log")
fails=$(grep -c "PERF_VERDICT rank=[0-9]* FAIL" "$tmp/log")
summary=$(grep -c "# Fault: rank 2 killed at op 60;" "$tmp/log")
if [ "$passes" -ne 4 ] || [ "$fails" -ne 0 ] || [ "$summary" -ne 1 ] || [ "$status" -eq 124 ]; then
  echo "run_perf_spares: $passes PASS, $fails FAIL verdicts, $summary summary (launcher exit $status); full log:"
  cat "$tmp/log"
  exit 1
fi
echo "run_perf_spares: 4 live processes passed after the rebuild"
