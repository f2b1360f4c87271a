#!/usr/bin/env bash
# Tests of ftccl_top on synthetic stats files (schema v1), one file per rank:
#   strag/  comm ab12 epoch 1, 3 ranks; 0 and 1 name rank 2 as a straggler; 1 names its link
#           to 0 slow; an older epoch's line that must be ignored; rank 1's file ends in a
#           whole line without its newline (still being written: must not be read yet)
#   hang/   comm cd56, 4 ranks; 0, 1 and 3 in op 57 for 8 s, 2 idle after op 56
# Checks --once --json, the table, the hang diagnosis, --plot, exit statuses and the live
# view (which must pick up the finished line and a file created while it runs). About 5 s.
# usage: ftccl_top_test.sh PATH_TO_ftccl_top.py
set -euo pipefail
tool=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ftccl_top_test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

top() { python3 "$tool" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

python3 - "$tmp" <<'EOF'
import json, os, sys, time
root = sys.argv[1]
now = time.time()

def line(comm, epoch, rank, nranks, t, interval=None, progress=None, peers=(), stragglers=(),
         slow_links=()):
    out = {"v": 1, "time": t, "host": "n1", "pid": 100 + rank, "comm": comm, "epoch": epoch,
           "rank": rank, "nranks": nranks, "final": False,
           "total": {"ops": 40, "bytes": 41943040, "time_us": 700000.0, "busbw_gbps": 0.1},
           "colls": {}, "progress": progress or {"started": 40, "done": 40, "in_op": False,
                                                 "op": "allreduce", "step": 8, "state_ms": 2.0},
           "peers": list(peers), "stragglers": list(stragglers), "slow_links": list(slow_links)}
    if interval:
        out["interval"] = interval
    return json.dumps(out)

def peer(rank, recv_gbps, late_ms, p99=0.1, recv_traffic_gbps=0.02):
    out = {"rank": rank, "host": "n1", "pid": 100 + rank, "sent_bytes": 1000,
           "recv_bytes": 1000, "send_busy_us": 10.0, "recv_busy_us": 20.0,
           "send_traffic_gbps": 0.03, "recv_traffic_gbps": recv_traffic_gbps,
           "late_ms": late_ms, "link_degraded": False,
           "rtt_ms": {"samples": 20, "min": 0.04, "avg": 0.06, "p99": p99, "last": 0.05}}
    if recv_gbps is not None:  # absent when no transfer was timed
        out.update(send_gbps=0.9, recv_gbps=recv_gbps)
    return out

def straggler(rank, late_ms):
    return {"rank": rank, "host": "n1", "pid": 100 + rank, "late_ms": late_ms, "ops": 30}

def write(path, lines, last_newline=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + ("\n" if last_newline else ""))

# strag: 5 intervals of 1 s; from the third on, ranks 0 and 1 flag rank 2.
for rank in range(3):
    lines = [line("ab12", 0, 3, 4, now - 20)] if rank == 0 else []  # epoch 0: rebuilt since
    for i in range(5):
        late = rank == 2
        interval = {"ms": 1000.0, "ops": 30, "bytes": 31457280,
                    "time_us": 70000.0 if late else 680000.0,
                    "busbw_gbps": 0.6 if late else 0.06 + 0.01 * i,
                    "wait_us_per_op": 2300.0 if late else 22600.0 + 50 * rank}
        # Rank 2's links timed no transfer: its worst link is judged by traffic.
        peers = [peer(p, None if late else 0.04, -20.4 if late else (20.5 if p == 2 else 0.2),
                      recv_traffic_gbps=0.25 + 0.1 * p if late else 0.02)
                 for p in range(3) if p != rank]
        flagged = [straggler(2, 20.5 - 0.1 * rank)] if not late and i >= 2 else []
        slow = ([{"rank": 0, "host": "n1", "pid": 100, "rtt_ms": 5.1, "baseline_ms": 0.05}]
                if rank == 1 else [])
        lines.append(line("ab12", 1, rank, 3, now - 5 + i, interval, None, peers, flagged, slow))
    partial = []
    if rank == 1:  # written up to the newline: names rank 0 instead
        partial = [line("ab12", 1, 1, 3, now + 0.5, interval, None, [], [straggler(0, 30.0)])]
    write(f"{root}/strag/stats.n1.{100 + rank}.jsonl", lines + partial, rank != 1)

# hang: 0, 1 and 3 in op 57 for 8 s; 2 finished op 56 and never started 57.
for rank in range(4):
    stuck = rank != 2
    progress = {"started": 58 if stuck else 57, "done": 57, "in_op": stuck, "op": "allreduce",
                "step": 4 if stuck else 8, "state_ms": 8000.0}
    idle = {"ms": 1000.0, "ops": 0, "bytes": 0, "time_us": 0.0, "busbw_gbps": 0.0}
    write(f"{root}/hang/stats.n1.{100 + rank}.jsonl",
          [line("cd56", 0, rank, 4, now - 1, idle, progress, [peer((rank + 1) % 4, 0.0, 0.0)])])

# Created while the live view runs.
write(f"{root}/later/stats.other.jsonl", [line("ef78", 0, 0, 1, now)])
EOF

# --once --json: rank 2 is the only straggler (the library's verdict, by 0 and 1).
top --once --json "$tmp/strag" > "$tmp/strag.json"
python3 - "$tmp/strag.json" <<'EOF'
import json, sys
comms = json.load(open(sys.argv[1]))["comms"]
assert [c["comm"] for c in comms] == ["ab12"], comms
c = comms[0]
assert c["epoch"] == 1 and c["nranks"] == 3, (c["epoch"], c["nranks"])
assert [r["rank"] for r in c["ranks"]] == [0, 1, 2], c["ranks"]
library = [s for s in c["stragglers"] if s["reason"] == "library"]
assert [(s["rank"], s["flagged_by"]) for s in library] == [(2, [0, 1])], c["stragglers"]
# ... and the tool's own check agrees: it waits 20 ms/op less than the others.
assert [(s["rank"], s["reason"]) for s in c["stragglers"]] == [
    (2, "library"), (2, "wait_below_median")], c["stragglers"]
flagged = [r["rank"] for r in c["ranks"] if "STRAGGLER" in r["flags"]]
assert flagged == [2], flagged
assert [(l["rank"], l["peer"]) for l in c["slow_links"]] == [(1, 0)], c["slow_links"]
assert c["links"][0]["flags"] == ["SLOW LINK"], c["links"][0]
assert c["hang"] is None, c["hang"]
worst = {r["rank"]: r["worst_link"] for r in c["ranks"]}
assert (worst[0]["peer"], worst[0]["recv_gbps"], worst[0]["rate_kind"]) == (1, 0.04, "in use"), worst
assert (worst[2]["peer"], worst[2]["recv_gbps"], worst[2]["rate_kind"]) == (0, 0.25, "traffic"), worst
EOF

# The table: STRAGGLER on rank 2's row and nowhere else.
top --once "$tmp/strag" > "$tmp/strag.txt"
rows=$(awk '/STRAGGLER/ {print $1}' "$tmp/strag.txt")
[ "$rows" = 2 ] || { cat "$tmp/strag.txt"; fail "STRAGGLER on rows '$rows', expected rank 2 only"; }
grep -q "^2->0 *0.03/0.25 *-/- " "$tmp/strag.txt" ||
  { cat "$tmp/strag.txt"; fail "link 2->0: no traffic 0.03/0.25 and in-use -/-"; }

# Hang: rank 2 has not reached op 57; 0, 1 and 3 are inside it.
top --once --json "$tmp/hang" > "$tmp/hang.json"
python3 - "$tmp/hang.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))["comms"][0]
hang = c["hang"]
assert hang is not None and hang["op"] == 57, hang
assert [s["rank"] for s in hang["not_reached"]] == [2], hang
assert [s["rank"] for s in hang["inside"]] == [0, 1, 3], hang
assert c["stragglers"] == [], c["stragglers"]
EOF
top --once "$tmp/hang" > "$tmp/hang.txt"
grep -q "rank 2 (n1): not reached op 57 (at op 56, idle 8.0 s)" "$tmp/hang.txt" ||
  { cat "$tmp/hang.txt"; fail "no 'not reached' diagnosis for rank 2"; }
grep -q "inside op 57: rank 0 step 4 (8.0 s), rank 1 step 4 (8.0 s), rank 3" "$tmp/hang.txt" ||
  { cat "$tmp/hang.txt"; fail "no 'inside' diagnosis for ranks 0, 1, 3"; }

# --plot
if command -v gnuplot > /dev/null; then
  top --plot "$tmp/timeline.png" "$tmp/strag"
  [ -s "$tmp/timeline.png" ] || fail "--plot wrote no PNG"
  [ "$(head -c 4 "$tmp/timeline.png" | tail -c 3)" = PNG ] || fail "--plot output is not a PNG"
else
  echo "gnuplot not found: --plot check skipped"
fi

# Exit statuses: 1 when nothing is found (naming the path), 2 on bad usage.
status=0; top --once "$tmp/nonexistent" 2> "$tmp/err" || status=$?
[ "$status" = 1 ] || fail "missing path: exit $status, expected 1"
grep -q "$tmp/nonexistent" "$tmp/err" || fail "missing path not named: $(cat "$tmp/err")"
expect_usage_error() {
  local status=0
  top "$@" > /dev/null 2>&1 || status=$?
  [ "$status" = 2 ] || fail "ftccl_top $*: exit $status, expected 2"
}
expect_usage_error --bogus "$tmp/strag"
expect_usage_error --interval x "$tmp/strag"
expect_usage_error --interval 0 "$tmp/strag"
expect_usage_error --json "$tmp/strag"
expect_usage_error --once

# Live view, stopped by SIGINT: it must exit 0, redraw, finish reading rank 1's last line
# (which names rank 0) and pick up a file created after it started.
# Driven by what it draws, not by the clock (a loaded machine may take seconds to start it).
cp -r "$tmp/strag" "$tmp/live"
python3 "$tool" --interval 0.3 "$tmp/live" > "$tmp/live.txt" &
viewer=$!
drawn() {  # waits up to 60 s for TEXT in the live view's output
  for _ in $(seq 1 600); do
    grep -q "$1" "$tmp/live.txt" && return 0
    sleep 0.1
  done
  kill -INT "$viewer"
  fail "live view: never drew '$1'"
}
drawn "comm ab12"
printf '\n' >> "$tmp/live/stats.n1.101.jsonl"
cp "$tmp/later/stats.other.jsonl" "$tmp/live/"
drawn "comm ef78"
kill -INT "$viewer"
status=0
wait "$viewer" || status=$?
[ "$status" = 0 ] || fail "live view: exit $status after SIGINT, expected 0"
python3 - "$tmp/live.txt" <<'EOF'
import re, sys
frames = [f for f in open(sys.argv[1]).read().split("\033[H\033[2J\033[3J") if f]
assert sum("comm ab12" in f for f in frames) >= 2, "fewer than 2 frames: %r" % frames
def straggler_rows(frame):
    return [l.split()[0] for l in frame.splitlines() if "STRAGGLER" in l]
assert straggler_rows(frames[0]) == ["2"], frames[0]
later = [f for f in frames if "comm ef78" in f and straggler_rows(f) == ["0", "2"]]
assert later, "no frame with the new file and rank 1's finished line: %r" % frames[-1]
EOF
echo "ftccl_top: all checks passed"
