#!/usr/bin/env bash
# The main job: installs the dependencies, builds, then runs a 4-rank all-reduce over UCX
# (8 B to 64 MiB, every result checked, nccl-tests-style bandwidth) with one hot spare.
# ftccl_run SIGKILLs rank 2 from outside at a random instant 2-4 s into the run, in the
# middle of a transfer; the survivors detect it, rebuild onto the spare and finish, and
# all_reduce_perf prints the detection, rebuild and recovery times. Exits 0 when every
# surviving process passed.
# usage: [NRANKS=4] [FAULT_AT_SEC=S] scripts/run_demo.sh
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" && exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh
nranks=${NRANKS:-4}
victim=$((nranks / 2))
# A random instant, so that the fault lands at a different point of a transfer each run.
at=${FAULT_AT_SEC:-$(awk -v seed="$RANDOM" 'BEGIN { srand(seed); printf "%.2f", 2 + 2 * rand() }')}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
echo "run_demo: $nranks ranks + 1 spare; rank $victim is killed from outside at ${at} s"
exec ./build/tools/ftccl_run -n $((nranks + 1)) --timeout 600 --kill "$victim@$at" -- \
  ./build/tools/all_reduce_perf -b 8 -e 64M -f 4 -n 20 -w 5 -c 1 --spares 1
