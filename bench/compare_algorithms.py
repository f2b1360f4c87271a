#!/usr/bin/env python3
"""All-reduce busbw per algorithm (ring, tree, hier, auto) and Open MPI, in one run.

Each repetition runs, one after another (interleaved), all_reduce_perf with the
all-reduce algorithm forced by FTCCL_ALGO to each of ring, tree and hier, then with
the cost model choosing (auto), then Open MPI's MPI_Allreduce (pml ucx, DESIGN.md
baseline flags). With --nodes K every rank gets FTCCL_NODE_ID=vnode<rank*K/np>, so
the hierarchical algorithm (and the tuner) see K virtual nodes on this one machine.
Prints per size the median busbw of each (min-max over the repetitions), the time in
us, auto's ratio to the best forced algorithm and tree's ratio to ring.

usage: bench/compare_algorithms.py --build build --np 4 [--nodes 2] --reps 5
"""
import argparse
import os
import statistics
import subprocess
import sys

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
OMPI_UCX = ["--mca", "pml", "ucx", "--mca", "pml_ucx_tls", "any", "--mca", "pml_ucx_devices", "any"]


def run(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    return out.stdout


def parse(text, ftccl):
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if ftccl and len(f) >= 13 and f[0].isdigit():
            rows[int(f[0])] = (float(f[5]), float(f[7]))  # out-of-place time, busbw
        elif not ftccl and len(f) >= 5 and f[0].isdigit():
            rows[int(f[0])] = (float(f[2]), float(f[4]))
        if "FAILED" in line or "WRONG" in line:
            sys.exit("wrong values reported:\n" + text)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--np", type=int, default=4)
    ap.add_argument("--nodes", type=int, default=0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min", type=int, default=8)
    ap.add_argument("--max", type=int, default=64 << 20)
    ap.add_argument("--factor", type=int, default=4)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--algos", default="ring,tree,hier,auto")
    args = ap.parse_args()
    sizes = ["-b", str(args.min), "-e", str(args.max), "-f", str(args.factor),
             "-n", str(args.iters), "-w", str(args.warmup)]
    env = dict(os.environ, FTCCL_SOCKET_IFNAME=os.environ.get("FTCCL_SOCKET_IFNAME", "lo"))
    perf = f"{args.build}/tools/all_reduce_perf"
    if args.nodes:
        # Each rank names its virtual node before the library reads FTCCL_NODE_ID.
        prog = ["bash", "-c", f'FTCCL_NODE_ID=vnode$((OMPI_COMM_WORLD_RANK*{args.nodes}/{args.np})) '
                f'exec {perf} -z 1 "$@"', "perf"]
    else:
        prog = [perf, "-z", "1"]
    algos = args.algos.split(",")
    series = {a: [] for a in algos + ["ompi"]}
    for rep in range(args.reps):
        for algo in algos:
            e = dict(env)
            e.pop("FTCCL_ALGO", None)
            exports = ["-x", "FTCCL_SOCKET_IFNAME"]
            if algo != "auto":
                e["FTCCL_ALGO"] = f"allreduce:{algo}"
                exports += ["-x", "FTCCL_ALGO"]
            series[algo].append(parse(run(MPIRUN + ["-np", str(args.np)] + exports + prog + sizes, e), True))
        ompi = MPIRUN + OMPI_UCX + ["-np", str(args.np), f"{args.build}/bench/mpi_allreduce_perf"] + sizes
        series["ompi"].append(parse(run(ompi, env), False))
        print(f"# repetition {rep + 1}/{args.reps} done", file=sys.stderr)

    def stat(name, size, idx):
        vals = [r[size][idx] for r in series[name] if size in r]
        return statistics.median(vals), min(vals), max(vals)

    names = algos + ["ompi"]
    forced = [a for a in algos if a != "auto"]
    print(f"# {args.np} ranks, {args.nodes or 1} node(s), medians of {args.reps} interleaved runs; "
          f"busbw GB/s (min-max), then time us")
    print("| size | " + " | ".join(names) + " | auto/best | tree/ring | " +
          " | ".join(n + " us" for n in names) + " |")
    print("|" + "---|" * (2 * len(names) + 3))
    for size in sorted(series[algos[0]][0]):
        bw = {n: stat(n, size, 1) for n in names}
        us = {n: stat(n, size, 0)[0] for n in names}
        cells = [f"{bw[n][0]:.3f} ({bw[n][1]:.3f}-{bw[n][2]:.3f})" for n in names]
        # Small sizes: busbw rounds to 0, so compare times (lower is better) instead.
        best = min(us[n] for n in forced) if forced else 0
        auto = f"{best / us['auto']:.2f}" if "auto" in us and us["auto"] > 0 else "n/a"
        tr = f"{us['ring'] / us['tree']:.2f}" if "tree" in us and "ring" in us and us["tree"] > 0 else "n/a"
        print(f"| {size} | " + " | ".join(cells) + f" | {auto} | {tr} | " +
              " | ".join(f"{us[n]:.1f}" for n in names) + " |")
    print("# auto/best = best forced time / auto time (1.00: auto as fast as the best; "
          ">= 0.90 meets the target); tree/ring = ring time / tree time (> 1: tree faster)")


if __name__ == "__main__":
    main()
