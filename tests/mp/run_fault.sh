#!/usr/bin/env bash
# Runs fault_mp under ftccl_run and demands a PASS verdict from every survivor.
# The launcher's exit status is not trusted (a self-injected kill is not "on purpose"
# to it); each survivor checks its own bound and says so. The victims' stamp file
# lives in a temporary directory that is always removed.
# usage: run_fault.sh FTCCL_RUN FAULT_MP NRANKS "VICTIMS" "LAUNCHER FLAGS" FAULT_MP ARGS...
set -u
launcher=$1 prog=$2 n=$3 victims=$4 flags=$5
shift 5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FTCCL_SOCKET_IFNAME=lo
# shellcheck disable=SC2086
"$launcher" -n "$n" --timeout 240 $flags -- "$prog" --victim "$victims" --stamp "$tmp/stamp" "$@" \
  > "$tmp/log" 2>&1
status=$?
grep -E "VERDICT|VICTIM|EXPELLED|ftccl_run:" "$tmp/log"
nvictims=$(echo "$victims" | tr ',' '\n' | grep -c .)
want=$(( n - nvictims ))
passes=$(grep -c "VERDICT rank=[0-9]* PASS" "$tmp/log")
grep -q "EXPELLED rank=[0-9]* FAIL" "$tmp/log" && passes=-1  # a cut-off rank went on
case " $* " in  # a process resumed into an old epoch must say it was expelled
  *" --expect-expelled "*) grep -q "EXPELLED rank=[0-9]* PASS" "$tmp/log" || passes=-1 ;;
esac
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)" "$tmp/log"; then
  echo "sanitizer report:"; grep -A30 -E "ERROR: (AddressSanitizer|LeakSanitizer)" "$tmp/log" | head -80
  passes=-1
fi
if [ "$passes" -ne "$want" ] || [ "$status" -eq 124 ]; then
  echo "run_fault: $passes of $want survivors passed (launcher exit $status); full log:"
  cat "$tmp/log"
  exit 1
fi
echo "run_fault: all $want survivors passed"
