#!/usr/bin/env bash
# Fails when any C or C++ file of the repository differs from .clang-format, and names
# each such file. The formatter's output changes between major versions, so the check
# pins clang-format 14 (Debian 12's; scripts/install_deps.sh installs it).
# Usage: scripts/check_format.sh [--fix]
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
formatter=$(command -v clang-format-14 || true)
# Missing, the check is skipped (exit 77, CTest's SKIP_RETURN_CODE) on a developer's
# machine, but fails under CI, where scripts/install_deps.sh must have installed it.
if [ -z "$formatter" ]; then
  echo "check_format: clang-format-14 not found (run scripts/install_deps.sh)" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
# Tracked files when this is a git checkout, otherwise every source file under the tree.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.c' '*.cc' '*.cpp' '*.h' '*.hpp')
else
  mapfile -t files < <(find . \( -path './build*' -o -name CMakeFiles -o -path './.*' \) -prune -o -type f \
    \( -name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \) -print)
fi
if [ "${1:-}" = --fix ]; then
  "$formatter" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$formatter" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -ne 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ from .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "check_format: run scripts/check_format.sh --fix" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files match .clang-format"
