#!/usr/bin/env bash
# Installs, builds and runs every test through CTest:
#   1. the release build: unit, multi-process (mpirun and ftccl_run), launcher, install;
#   2. an AddressSanitizer/LeakSanitizer build: the tests that run without MPI (Open MPI's
#      dlopen'd components leak at exit in ways no suppression can name). Set
#      FTCCL_SKIP_ASAN=1 to skip it;
#   3. the fuzz targets (scripts/fuzz.sh), each for FTCCL_FUZZ_SECONDS (20). Set
#      FTCCL_SKIP_FUZZ=1 to skip them.
# usage: [BUILD_DIR=build] [FTCCL_SKIP_ASAN=1] [FTCCL_SKIP_FUZZ=1] scripts/test.sh [ctest options]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
./scripts/install_deps.sh
./scripts/build.sh -DFTCCL_BUILD_TESTS=ON -DFTCCL_WERROR=ON
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 900 "$@")
if [ "${FTCCL_SKIP_ASAN:-0}" != 1 ]; then
  BUILD_DIR=build-asan ./scripts/build.sh -DFTCCL_BUILD_TESTS=ON -DFTCCL_WERROR=ON \
    -DFTCCL_ENABLE_ASAN=ON
  cd build-asan
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$root/tests/lsan.supp \
  UCX_MEM_MALLOC_HOOKS=n UCX_MEM_EVENTS=n \
    ctest --output-on-failure --timeout 900 -R "^(unit|launcher|mp\.fault\.|mp\.all_reduce_perf\.comm_id)" \
      -E "install" "$@"
fi
if [ "${FTCCL_SKIP_FUZZ:-0}" != 1 ]; then
  cd "$root"
  ./scripts/fuzz.sh
fi
