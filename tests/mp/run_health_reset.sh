#!/usr/bin/env bash
# A live rank whose health connections are reset from outside is not taken for a crash.
# 3 ranks, no spare (a false detection would fail the job): at 1.5 s, `ss -K` aborts
# every established TCP connection of rank 1's health listener, both ways, as a flaky
# link or a misbehaving library in the process could. The closes must lead to a
# reconnect, not to an expulsion: every rank exits 0 with checked results, no failure
# detected, and the log says a reset connection was reopened. (Before the reconnect
# check, rank 1's neighbours declared it crashed within milliseconds.)
# usage: run_health_reset.sh FTCCL_RUN ALL_REDUCE_PERF
set -u
launcher=$1 perf=$2
# shellcheck source=ss_job.sh
. "$(dirname "$0")/ss_job.sh" run_health_reset
export FTCCL_SOCKET_IFNAME=lo FTCCL_DEBUG=info
"$launcher" -n 3 --timeout 240 -- "$perf" -b 1M -e 1M -n 8000 -w 2 -c 1 \
  > "$tmp/log" 2>&1 &
launcher_pid=$!

# Rank 1's health port, from its "listening on 127.0.0.1:PORT" line.
port=
for _ in $(seq 1 300); do
  port=$(grep -E "^\[1\].*health service of pid [0-9]+ listening on 127\.0\.0\.1:" "$tmp/log" |
         sed -E 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/' | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "run_health_reset: rank 1 never said where its health service listens; log:"
  cat "$tmp/log"
  exit 1
fi
sleep 1.5
reset=$(ss -K -t -n state established "( sport = :$port or dport = :$port )" | tail -n +2 | wc -l)
wait "$launcher_pid"
status=$?
launcher_pid=
passes=$(grep -cE "^ftccl_run: rank [0-9]+ \(pid [0-9]+\) exited 0" "$tmp/log")
checked=$(grep -c "Out of bounds values : 0 OK" "$tmp/log")
detected=$(grep -c "failed: detected" "$tmp/log")
reopened=$(grep -c "accepted a new one" "$tmp/log")
echo "run_health_reset: reset $reset connection(s) of port $port; $passes ranks exited 0, $detected" \
     "failure(s) detected, $reopened reopened; launcher exit $status"
if [ "$reset" -lt 1 ] || [ "$passes" -ne 3 ] || [ "$checked" -ne 1 ] || [ "$detected" -ne 0 ] ||
   [ "$reopened" -lt 1 ] || [ "$status" -ne 0 ]; then
  echo "run_health_reset: FAILED; full log:"
  cat "$tmp/log"
  exit 1
fi
