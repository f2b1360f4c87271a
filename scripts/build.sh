#!/usr/bin/env bash
# Configures and builds ftccl into ${BUILD_DIR:-build} (Release with debug info).
# usage: [BUILD_DIR=build] scripts/build.sh [cmake -D options...]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$build" -j "$(nproc)"
