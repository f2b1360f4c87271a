#!/usr/bin/env python3
"""Two builds of ftccl side by side, interleaved: all_reduce_perf times per size and the
recovery time onto a spare, so a refactor can show that no figure moved beyond the noise.

Each round runs every build once (the order alternates per round, so a slow spell of the
machine hits both alike); the report gives per size the median over rounds and the
spread (min..max) of each build, and B / A.

usage: bench/ab_compare.py --a BUILD_A --b BUILD_B [--ranks 2,4] [--rounds 7]
                           [--recovery-runs 0] [--iters 50] [--max 16M]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile


def perf_run(build, ranks, iters, max_bytes, out):
    cmd = [os.path.join(build, "tools/ftccl_run"), "-n", str(ranks), "-q", "--timeout", "300", "--",
           os.path.join(build, "tools/all_reduce_perf"), "-b", "8", "-e", max_bytes, "-f", "4",
           "-n", str(iters), "-w", "10", "-c", "0", "-J", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, FTCCL_SOCKET_IFNAME=os.environ.get("FTCCL_SOCKET_IFNAME", "lo")))
    with open(out) as f:
        return {(r["size"], mode): r[mode]["time_us"] for r in json.load(f)["results"]
                for mode in ("oop", "ip")}


def recovery_run(build, ranks):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recovery_time.sh")
    out = subprocess.run(["bash", script, str(ranks), "1", build], capture_output=True, text=True)
    found = re.search(r"recovery .* p50 ([0-9.]+) ms", out.stdout)
    return float(found.group(1)) if found else None


def spread(values):
    return "%.1f..%.1f" % (min(values), max(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="the build before")
    parser.add_argument("--b", required=True, help="the build after")
    parser.add_argument("--ranks", default="2,4")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--max", default="16M")
    parser.add_argument("--recovery-runs", type=int, default=0,
                        help="recovery_time.sh runs per build, interleaved (4 ranks + 1 spare)")
    args = parser.parse_args()
    builds = {"A": args.a, "B": args.b}
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in [int(r) for r in args.ranks.split(",")]:
            times = {"A": {}, "B": {}}
            for round_ in range(args.rounds):
                order = ["A", "B"] if round_ % 2 == 0 else ["B", "A"]
                for name in order:
                    result = perf_run(builds[name], ranks, args.iters, args.max,
                                      os.path.join(tmp, "perf.json"))
                    for key, us in result.items():
                        times[name].setdefault(key, []).append(us)
            print("# all_reduce_perf, %d ranks, float sum, %d rounds interleaved, time in us "
                  "(median, min..max)" % (ranks, args.rounds))
            print("%10s %4s %10s %16s %10s %16s %7s" % ("bytes", "mode", "A", "A spread", "B",
                                                        "B spread", "B/A"))
            for key in sorted(times["A"]):
                a, b = times["A"][key], times["B"][key]
                ma, mb = statistics.median(a), statistics.median(b)
                print("%10d %4s %10.1f %16s %10.1f %16s %7.2f" % (key[0], key[1], ma, spread(a), mb,
                                                                 spread(b), mb / ma if ma else 0))
        if args.recovery_runs:
            rec = {"A": [], "B": []}
            for run in range(args.recovery_runs):
                for name in (["A", "B"] if run % 2 == 0 else ["B", "A"]):
                    value = recovery_run(builds[name], 4)
                    if value is not None:
                        rec[name].append(value)
            print("# recovery onto a spare (recovery_time.sh, 4 ranks + 1 spare), ms")
            for name in ("A", "B"):
                if rec[name]:
                    print("%s: %d runs, median %.1f, %s" % (name, len(rec[name]),
                                                          statistics.median(rec[name]), spread(rec[name])))


if __name__ == "__main__":
    main()
