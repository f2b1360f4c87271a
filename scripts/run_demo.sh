#!/usr/bin/env bash
# The main job: installs the dependencies, builds, then runs a 4-rank all-reduce on this
# host (over the ranks' shared memory; 8 B to 64 MiB, every result checked,
# nccl-tests-style bandwidth) with one hot spare.
# When rank 2 reaches a random operation (50-550 of about 600), ftccl_run SIGKILLs it
# from outside while that operation and the ones after it are in flight; the survivors
# detect the death, rebuild onto the spare and finish, and all_reduce_perf prints the
# detection, rebuild and recovery times. Exits 0 when the fault struck, was recovered
# from, and every surviving process passed.
# usage: [NRANKS=4] [FAULT_AT_OP=N] scripts/run_demo.sh
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh
nranks=${NRANKS:-4}
victim=$((nranks / 2))
# A random operation, so that the fault lands in a different size and phase each run.
at=${FAULT_AT_OP:-$((50 + RANDOM % 500))}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
echo "run_demo: $nranks ranks + 1 spare; ftccl_run kills rank $victim at its operation $at"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
./build/tools/ftccl_run -n $((nranks + 1)) --timeout 600 -- \
  ./build/tools/all_reduce_perf -b 8 -e 64M -f 4 -n 20 -w 5 -c 1 \
  --spares 1 --fault "kill:$victim:$at" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c 'PERF_VERDICT rank=[0-9]* PASS' "$log" || true)
if [ "$status" -ne 0 ] || ! grep -q '# Fault:' "$log" || [ "$passed" -ne "$nranks" ]; then
  echo "run_demo: FAILED (exit status $status, $passed of $nranks survivors passed)" >&2
  exit 1
fi
echo "run_demo: the fault was detected and recovered from; all $nranks survivors passed"
