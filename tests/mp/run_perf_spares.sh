#!/usr/bin/env bash
# all_reduce_perf survives a rank's death: 4 ranks and 1 hot spare under ftccl_run, the
# launcher kills rank 2 at its 60th operation (inside a timed loop, asked for by --fault),
# the others rebuild onto the spare and finish the run with every check passing: each of
# the 4 live processes prints PERF_VERDICT ... PASS, the reporter the "# Fault:" summary,
# and ftccl_run exits 0 (the victim was killed on purpose). Then two faults the tool did
# not plan, from outside: a kill at 0.8 s (mid-run, or during init on a slow machine) and
# a stop during init (the spare takes the missing rank's place at init); both exit 0 with
# 4 PASS verdicts.
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
if [ "$passes" -ne 4 ] || [ "$fails" -ne 0 ] || [ "$summary" -ne 1 ] || [ "$status" -ne 0 ]; then
  echo "run_perf_spares: $passes PASS, $fails FAIL verdicts, $summary summary (launcher exit $status); full log:"
  cat "$tmp/log"
  exit 1
fi
echo "run_perf_spares: 4 live processes passed after the rebuild"

# outside FAULT EXPECT: a fault the tool did not plan; EXPECT is a line that must appear.
outside() {
  FTCCL_BOOTSTRAP_TIMEOUT_MS=3000 "$launcher" -n 5 --timeout 240 "--$1" "$2" -- "$perf" \
    -b 1M -e 1M -n 2000 -w 2 -c 1 --spares 1 > "$tmp/log" 2>&1
  status=$?
  passes=$(grep -c "PERF_VERDICT rank=[0-9]* PASS" "$tmp/log")
  fails=$(grep -c "PERF_VERDICT rank=[0-9]* FAIL" "$tmp/log")
  if [ "$passes" -ne 4 ] || [ "$fails" -ne 0 ] || [ "$status" -ne 0 ] ||
     ! grep -qE "$3" "$tmp/log"; then
    echo "run_perf_spares: --$1 $2: $passes PASS, $fails FAIL (launcher exit $status); full log:"
    cat "$tmp/log"
    exit 1
  fi
  grep -E "PERF_VERDICT|# Fault:|took rank|did not join the" "$tmp/log"
  echo "run_perf_spares: --$1 $2 survived, exit 0"
}
outside kill 1@0.8 "# Fault: rank\(s\) 1 lost to a fault this tool did not inject|took rank 1 at init"
outside stop 2@0.005 "took rank 2 at init"
