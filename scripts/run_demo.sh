#!/usr/bin/env bash
# The main job: install, build, then a 4-rank all-reduce over UCX under mpirun with
# every result verified and nccl-tests-style bandwidth printed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh
nranks=${NRANKS:-4}
export FTCCL_SOCKET_IFNAME=${FTCCL_SOCKET_IFNAME:-lo}
exec mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$nranks" \
  -x FTCCL_SOCKET_IFNAME ${FTCCL_DEBUG:+-x FTCCL_DEBUG} \
  ./build/tools/all_reduce_perf -b 8 -e 64M -f 4 -n 20 -w 5 -c 1
