#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang into ${FUZZ_BUILD_DIR:-build-fuzz}
# and runs each for FTCCL_FUZZ_SECONDS (default 20) through CTest. For a longer run keep
# a corpus: FTCCL_FUZZ_SECONDS=600 FTCCL_FUZZ_CORPUS=dir ./scripts/fuzz.sh
# usage: [FTCCL_FUZZ_SECONDS=20] [FTCCL_FUZZ_CORPUS=dir] scripts/fuzz.sh
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FTCCL_FUZZ_SECONDS:-20}
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFTCCL_BUILD_FUZZERS=ON -DFTCCL_BUILD_TESTS=OFF -DFTCCL_BUILD_TOOLS=OFF \
  -DFTCCL_BUILD_PYTORCH=OFF -DFTCCL_FUZZ_SECONDS="$seconds"
cmake --build "$build" --target fuzzers -j "$(nproc)"
if [ -n "${FTCCL_FUZZ_CORPUS:-}" ]; then
  for target in bootstrap_wire unique_id health_frames agreement join_package peer_info; do
    tests/fuzz/run_fuzzer.sh "$build/tests/fuzz/fuzz_$target" "$build/tests/fuzz/fuzz_seeds" \
      "$target" "$seconds" "$FTCCL_FUZZ_CORPUS/$target"
  done
  exit 0
fi
(cd "$build" && ctest --output-on-failure -L fuzz)
