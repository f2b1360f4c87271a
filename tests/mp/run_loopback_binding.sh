#!/usr/bin/env bash
# A job that bootstraps on loopback listens on loopback only, with FTCCL_SOCKET_IFNAME
# unset: health (TCP and UDP) and UCX (all three workers of each rank). Before, health
# bound the first non-loopback interface and UCX every interface, so anyone who could
# reach the host could reach the job. 2 ranks; every socket the ranks listen on, read
# with ss while they run, must be on 127.0.0.1.
# usage: run_loopback_binding.sh FTCCL_RUN ALL_REDUCE_PERF
set -u
launcher=$1 perf=$2
# shellcheck source=ss_job.sh
. "$(dirname "$0")/ss_job.sh" run_loopback_binding
unset FTCCL_SOCKET_IFNAME UCX_NET_DEVICES
export FTCCL_DEBUG=info
"$launcher" -n 2 --addr 127.0.0.1 --timeout 240 -- "$perf" -b 8 -e 8 -n 100000000 -w 2 -c 1 \
  > "$tmp/log" 2>&1 &
launcher_pid=$!

# Both ranks ready: the perf tool's table header is printed after init.
ranks=()
for _ in $(seq 1 600); do
  if grep -q "rank 1/2 ready" "$tmp/log" && grep -q "rank 0/2 ready" "$tmp/log"; then
    mapfile -t ranks < <(sed -nE 's/.*ready on [^ ]+ pid ([0-9]+) .*/\1/p' "$tmp/log")
    break
  fi
  sleep 0.1
done
if [ "${#ranks[@]}" -ne 2 ]; then
  echo "run_loopback_binding: the ranks never got ready; log:"
  cat "$tmp/log"
  exit 1
fi
ss -lntupH > "$tmp/ss"
listening=0 exposed=0
for pid in "${ranks[@]}"; do
  while read -r address; do
    listening=$((listening + 1))
    case "$address" in
      127.0.0.1:* | \[::1\]:*) ;;
      *) exposed=$((exposed + 1)); echo "rank pid $pid listens on $address" ;;
    esac
  done < <(grep "pid=$pid," "$tmp/ss" | awk '{print $5}')
done
kill "$launcher_pid" 2> /dev/null
wait "$launcher_pid" 2> /dev/null
launcher_pid=
echo "run_loopback_binding: $listening listening socket(s), $exposed not on loopback"
grep -E "health service of pid [0-9]+ listening" "$tmp/log"
[ "$listening" -ge 4 ] || { echo "FAIL: expected health TCP+UDP and UCX listeners"; exit 1; }
[ "$exposed" -eq 0 ] || { echo "FAIL: the job listens beyond loopback"; exit 1; }
echo PASS
