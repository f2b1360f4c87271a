#!/usr/bin/env bash
# Runs a perf tool under mpirun and checks its own verdict lines: exit status 0,
# "# Out of bounds values : 0 OK", and a JSON report with no wrong values.
# usage: run_tool.sh NRANKS TOOL [ARGS...]
set -u
n=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timeout --signal=KILL 900 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$n" \
  -x FTCCL_SOCKET_IFNAME=lo "$@" -J "$tmp/results.json" 2>&1 | tee "$tmp/log"
status=${PIPESTATUS[0]}
grep -q "^# Out of bounds values : 0 OK" "$tmp/log" || { echo "run_tool: no '0 OK' line"; exit 1; }
grep -q '"wrong_total": *0' "$tmp/results.json" || { echo "run_tool: JSON reports wrong values"; exit 1; }
rows=$(grep -c '"size"' "$tmp/results.json")
[ "$status" -eq 0 ] && [ "$rows" -gt 0 ] || { echo "run_tool: exit $status, $rows rows"; exit 1; }
echo "run_tool: exit 0, $rows result rows, no wrong values"
