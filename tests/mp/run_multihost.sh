#!/usr/bin/env bash
# bench/multihost.sh end to end at a small scale (2 hosts x 2 ranks, 1 MiB): a run
# reports ring, hier and Open MPI against the iperf3 link rate; a run ended by SIGTERM during
# its first all-reduce leaves no namespace, link or process behind. Skipped (77) where
# network namespaces cannot be created (not root).
set -uo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../../bench/multihost.sh
if [ "$(id -u)" -ne 0 ] || ! ip netns add "ftcclprobe$$" 2> /dev/null; then
  echo "run_multihost: cannot create network namespaces here: skipped"
  exit 77
fi
ip netns del "ftcclprobe$$"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
leftovers() { { ip netns list; ip link show; } 2> /dev/null | grep -c "fmh$1" || true; }

bash "$script" --build "$build" --hosts 2 --per-host 2 --rate 1gbit --min 1M --max 1M \
  --algos ring,hier,ompi --reps 1 --iters 2 > "$out" 2>&1 &
pid=$!
wait $pid
rc=$?
cat "$out"
[ $rc -eq 0 ] || { echo "run_multihost: the run failed ($rc)"; exit 1; }
grep -qE "^\| 1048576( \| [0-9.]+ \([0-9]+%[^|]*){3} \|$" "$out" ||
  { echo "run_multihost: no ring, hier and Open MPI busbw row"; exit 1; }
grep -q "iperf3 measured" "$out" || { echo "run_multihost: no link rate"; exit 1; }
[ "$(leftovers $pid)" -eq 0 ] || { echo "run_multihost: namespaces or links left after a run"; exit 1; }

# Interrupted: SIGTERM once the ranks run (the header comes after iperf3's 3 s).
bash "$script" --build "$build" --hosts 2 --per-host 2 --rate 1gbit --min 64M --max 64M \
  --algos ring --reps 1 --iters 50 > "$out" 2>&1 &
pid=$!
for ((i = 0; i < 600; i++)); do
  grep -q "iperf3 measured" "$out" && break
  sleep 0.1
done
sleep 2
kill -TERM $pid
wait $pid
rc=$?
[ $rc -ne 0 ] || { cat "$out"; echo "run_multihost: an interrupted run exited 0"; exit 1; }
sleep 0.5
# Only this test starts ranks with these arguments.
if [ "$(leftovers $pid)" -ne 0 ] || pgrep -f "all_reduce_perf -b 67108864 -e 67108864" > /dev/null ||
   pgrep -f "iperf3 -s -1 -B 10.99.0.2" > /dev/null; then
  cat "$out"
  echo "run_multihost: namespaces, links or processes left after SIGTERM"
  exit 1
fi
echo "run_multihost: ok (interrupted run exited $rc and left nothing)"
