#!/usr/bin/env bash
# Every tool answers --help: each program the build made under tools/, bench/ and
# examples/, and each executable script under bench/, scripts/ and tools/, must print a
# usage text on stdout and exit 0 without doing anything else (a bounded wait catches a
# tool that ignores --help and starts its real work).
# usage: tests/tools/help_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
build=$1 source=$2
mapfile -t programs < <(
  find "$build/tools" "$build/bench" "$build/examples" -type f -perm -u+x \
    -not -path '*/CMakeFiles/*' -not -name '*.so' 2>/dev/null | sort
  find "$source/bench" "$source/scripts" "$source/tools" -type f -perm -u+x \
    \( -name '*.sh' -o -name '*.py' \) | sort)
failed=0
for p in "${programs[@]}"; do
  out=$(timeout 30 "$p" --help 2>/dev/null </dev/null)
  rc=$?
  if [ $rc -ne 0 ] || ! grep -qi 'usage' <<<"$out"; then
    echo "FAIL ${p#"$build/"}: --help exited $rc, $(wc -l <<<"$out") lines, usage text: $(grep -ci usage <<<"$out")"
    failed=$((failed + 1))
  fi
done
echo "help_test: ${#programs[@]} tools, $failed without a working --help"
[ ${#programs[@]} -ge 20 ] || { echo "help_test: too few tools found"; exit 1; }
[ $failed -eq 0 ]
