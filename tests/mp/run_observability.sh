#!/usr/bin/env bash
# The observability of a real job (4 ranks under mpirun, all_reduce_perf):
# 1. A straggler: rank 2 sleeps 20 ms before each op (--slow 2:20). Rank 2, and no other
#    rank, must be named in the straggler warnings, in the stats files and by
#    ftccl_top --once --json; the first warning must come within 2 s of the first sleep.
# 2. Counters against the perf tool: with the ring (every rank sends 2(n-1)/n of the
#    buffer), the library's own count over each timed loop (the -J report's "library")
#    must be the loop's ops, bytes and bus bytes exactly, its time inside the ops at most
#    the loop's time, and every rank's last stats line must count every call it made.
# usage: run_observability.sh BUILD_DIR FTCCL_TOP
set -euo pipefail
build=$1 top=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpi=(timeout --signal=KILL 600 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 4
     -x FTCCL_SOCKET_IFNAME=lo -x FTCCL_STATS_FILE -x FTCCL_STATS_INTERVAL_MS)
export FTCCL_STATS_INTERVAL_MS=250

echo "== 1. rank 2 slowed by 20 ms per op"
export FTCCL_STATS_FILE=$tmp/slow/stats.%h.%p.jsonl
mkdir -p "$tmp/slow"
"${mpi[@]}" "$build/tools/all_reduce_perf" -b 64K -e 64K -n 150 -w 2 -c 0 --slow 2:20 \
  > "$tmp/slow.txt" 2>&1 || { cat "$tmp/slow.txt"; echo "run_observability: the slow run failed"; exit 1; }
grep -E "straggler|# slow" "$tmp/slow.txt" || true
python3 - "$tmp/slow.txt" << 'PY'
import datetime, re, sys
text = open(sys.argv[1]).read()
start = re.search(r"# slow: sleeping 20 ms before each operation from unix ms (\d+)", text)
warns = re.findall(r"^(\S+ \S+) \S+ ftccl warning \[Health\] rank \d+: straggler: rank (\d+) ", text, re.M)
assert start, "no slow-start stamp"
assert warns, "no straggler warning"
named = {int(r) for _, r in warns}
assert named == {2}, f"straggler warnings name ranks {sorted(named)}, not only rank 2"
first = min(datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f").timestamp() for t, _ in warns)
after = first * 1000 - int(start.group(1))
print(f"run_observability: rank 2 flagged {after:.0f} ms after it turned slow, by {len(warns)} warning(s)")
assert after <= 2000, f"flagged after {after:.0f} ms (> 2 s)"
PY
python3 - "$tmp/slow" << 'PY'
import glob, json, sys
flagged = set()
for path in glob.glob(sys.argv[1] + "/*.jsonl"):
    for line in open(path):
        for s in json.loads(line)["stragglers"]:
            flagged.add(s["rank"])
assert flagged == {2}, f"the stats files flag ranks {sorted(flagged)}, not only rank 2"
PY
"$top" --once --json "$tmp/slow" > "$tmp/top.json"
python3 - "$tmp/top.json" << 'PY'
import json, sys
comms = json.load(open(sys.argv[1]))["comms"]
named = {(s["rank"], s["reason"]) for c in comms for s in c["stragglers"] if s["reason"] == "library"}
assert {r for r, _ in named} == {2}, f"ftccl_top names {sorted(named)}"
PY

echo "== 2. the library's counters against the perf tool (ring, 1 MiB)"
export FTCCL_STATS_FILE=$tmp/count/stats.%p.jsonl FTCCL_ALGO=allreduce:ring
mkdir -p "$tmp/count"
"${mpi[@]}" -x FTCCL_ALGO "$build/tools/all_reduce_perf" -b 1M -e 1M -n 20 -w 3 -c 1 \
  -J "$tmp/count.json" > "$tmp/count.txt" 2>&1 || { cat "$tmp/count.txt"; echo "run_observability: the counting run failed"; exit 1; }
python3 - "$tmp/count.json" "$tmp/count" << 'PY'
import glob, json, sys
report = json.load(open(sys.argv[1]))
n, iters, size = report["nranks"], 20, 1 << 20
for row in report["results"]:
    for place in ("oop", "ip"):
        p, lib = row[place], row[place]["library"]
        loop_us = p["time_us"] * iters
        print(f"run_observability: {place}: perf {loop_us:.0f} us, {p['busbw']:.3f} GB/s; library {lib}")
        assert lib["ops"] == iters and lib["bytes"] == iters * size, lib
        assert lib["sent_bytes"] == iters * 2 * (n - 1) * size // n, lib
        assert 0 < lib["time_us"] <= loop_us * 1.01 + 100, (lib["time_us"], loop_us)
calls = 2 * 3 + 2 * (1 + iters + 1)  # warm-up at -b and -e; per placement: line-up, loop, check
for path in glob.glob(sys.argv[2] + "/*.jsonl"):
    last = [json.loads(l) for l in open(path)][-1]
    assert last["final"], path
    ar = last["colls"]["allreduce"]
    assert ar["ops"] == calls and ar["bytes"] == calls * size, (path, ar, calls)
print(f"run_observability: every rank's last line counts its {calls} all-reduces")
PY
echo "run_observability: ok"
