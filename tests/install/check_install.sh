#!/usr/bin/env bash
# Installs ftccl into a temporary prefix, then builds and runs the example program
# both ways a user would: pkg-config and CMake's find_package. Cleans up after itself.
# usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"
lib=$(ls "$tmp"/prefix/lib*/libftccl.so.0 2>/dev/null | head -1)
[ -n "$lib" ] || { echo "no versioned libftccl.so.0 installed"; cat "$tmp/install.log"; exit 1; }
# (no "| grep -q" under pipefail: grep exiting early would fail the pipeline at random)
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libftccl.so.0 ] || { echo "SONAME is '$soname', not libftccl.so.0"; exit 1; }
libdir=$(dirname "$lib")
export PKG_CONFIG_PATH="$libdir/pkgconfig"
export FTCCL_SOCKET_IFNAME=lo
cc "$src/examples/hello_allreduce.c" -o "$tmp/hello_pc" $(pkg-config --cflags --libs ftccl)
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/hello_pc")
[[ "$out" == *"all-reduce ok: 1 2 3 4"* ]] || { echo "pkg-config consumer: $out"; exit 1; }
cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DEXAMPLE="$src/examples/hello_allreduce.c" > "$tmp/consumer.log"
cmake --build "$tmp/consumer" >> "$tmp/consumer.log"
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/consumer/hello_allreduce")
[[ "$out" == *"all-reduce ok: 1 2 3 4"* ]] || { echo "find_package consumer: $out"; exit 1; }
# Every tool is installed, runs from the prefix and answers --help.
for tool in all_reduce_perf sendrecv_perf ftccl_run ftccl_sim ftccl_top; do
  [ -x "$tmp/prefix/bin/$tool" ] || { echo "$tool is not installed"; exit 1; }
done
for tool in "$tmp"/prefix/bin/*; do
  help=$(LD_LIBRARY_PATH="$libdir" "$tool" --help) || { echo "$tool --help failed"; exit 1; }
  grep -qi usage <<<"$help" || { echo "$tool --help printed no usage"; exit 1; }
done
# The library exports the C API and nothing else.
leaked=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDB]/ {print $3}' | grep -v '^ftccl' || true)
[ -z "$leaked" ] || { echo "symbols beyond the C API are exported:"; echo "$leaked" | head; exit 1; }
echo "install check: pkg-config and find_package consumers run; only ftccl* symbols exported;"
echo "  $(ls "$tmp/prefix/bin" | wc -l) tools installed, each answers --help"
