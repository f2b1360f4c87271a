#!/usr/bin/env bash
# The main job: install, build, then a 4-rank all-reduce over UCX with every result
# verified and nccl-tests-style bandwidth printed, with one hot spare. Rank 2 kills
# itself (SIGKILL) in the middle of the run; the others detect it, rebuild onto the
# spare, and finish; the tool prints detection, rebuild and recovery times.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh
nranks=${NRANKS:-4}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
exec ./build/tools/ftccl_run -n $(( nranks + 1 )) --timeout 600 -- \
  ./build/tools/all_reduce_perf -b 8 -e 64M -f 4 -n 20 -w 5 -c 1 \
  --spares 1 --fault "kill:$(( nranks / 2 )):${FAULT_AT_OP:-300}"
