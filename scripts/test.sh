#!/usr/bin/env bash
# Installs, builds and runs every test (unit + multi-process) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh -DFTCCL_BUILD_TESTS=ON -DFTCCL_WERROR=ON
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"
