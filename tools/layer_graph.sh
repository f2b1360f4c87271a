#!/usr/bin/env bash
# Prints the component graph of the library, to compare with the layering the build
# enforces (docs/architecture.md, tests/unit/check_layers.cmake, cmake/FtcclLayers.cmake):
#  (a) link edges between ftccl_* targets, from `cmake --graphviz` (a throwaway
#      configure of the library alone, or the build directory given);
#  (b) include edges between components, from the #include "..." lines of src/ and
#      transports/: "from -> to  count", count = include lines (self-includes left out).
# usage: tools/layer_graph.sh [build-dir]     (run from anywhere in the source tree)
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ $# -ge 1 ]]; then
  cmake --graphviz="$work/g.dot" "$1" >/dev/null
else
  cmake -S "$root" -B "$work/build" -DFTCCL_BUILD_TESTS=OFF -DFTCCL_BUILD_TOOLS=OFF \
    -DFTCCL_BUILD_PYTORCH=OFF --graphviz="$work/g.dot" >/dev/null
fi

echo "# link edges (target -> linked target; dotted: private, dashed: interface)"
# An edge line reads: "node2" -> "node3" [ style = dotted ] // ftccl_a -> ftccl_b
sed -nE 's#.*"node[0-9]+" -> "node[0-9]+" *(\[ style = ([a-z]+) \])? *// *(ftccl[a-z_]*) -> (ftccl[a-z_]*)$#\3 \4 \2#p' \
  "$work/g.dot" | sort -u | awk '{ printf "%-24s -> %-24s %s\n", $1, $2, $3 }'

echo
echo "# include edges (component -> component: #include lines)"
# A file's component: src/<c>/..., transports/ucx, transports/sim, or transports (the
# interface headers); a header's: its first path element, the same way; ftccl.h: include.
cd "$root"
grep -rH --include='*.h' --include='*.cc' -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' \
  src transports |
  sed -E 's|^([^:]*):.*"([^"]+)".*|\1 \2|' |
  awk 'function component(path, isSource,   p) {
         if (isSource && path ~ /^src\//) { split(path, p, "/"); return p[2] }
         if (path == "ftccl.h") return "include"
         if (path ~ /^transports\/(ucx|sim)\//) { split(path, p, "/"); return p[1] "/" p[2] }
         if (path ~ /^transports\//) return "transports"
         if (path ~ /\//) { split(path, p, "/"); return p[1] }
         return "(same directory)"
       }
       { from = component($1, 1); to = component($2, 0); if (from != to) print from, to }' |
  sort | uniq -c | awk '{ printf "%-16s -> %-16s %3d\n", $2, $3, $1 }'
