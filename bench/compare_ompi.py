#!/usr/bin/env python3
"""ftccl all_reduce_perf vs Open MPI MPI_Allreduce, interleaved, medians of N runs.

Runs, for each repetition: ftccl, Open MPI (default malloc), Open MPI (malloc kept,
no per-call page faults), at the same rank count and sizes; prints per size the
median busbw (and time) with min-max spread and the ftccl/Open MPI ratios.

usage: bench/compare_ompi.py --build build --np 2 --reps 5 [--min 8 --max 67108864]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
OMPI_UCX = ["--mca", "pml", "ucx", "--mca", "pml_ucx_tls", "any", "--mca", "pml_ucx_devices", "any"]
RETAIN = ("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:"
          "glibc.malloc.trim_threshold=4294967296:glibc.malloc.top_pad=268435456")


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    return out.stdout


def parse_ftccl(text):
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 13 and f[0].isdigit():
            rows[int(f[0])] = (float(f[5]), float(f[7]))  # out-of-place time, busbw
        if "FAILED" in line:
            sys.exit("ftccl reported wrong values:\n" + text)
    return rows


def parse_mpi(text):
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0].isdigit():
            if "WRONG" in line:
                sys.exit("MPI reported wrong values")
            rows[int(f[0])] = (float(f[2]), float(f[4]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min", type=int, default=8)
    ap.add_argument("--max", type=int, default=64 << 20)
    ap.add_argument("--factor", type=int, default=8)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    sizes = ["-b", str(args.min), "-e", str(args.max), "-f", str(args.factor),
             "-n", str(args.iters), "-w", "5"]
    env = dict(os.environ, FTCCL_SOCKET_IFNAME=os.environ.get("FTCCL_SOCKET_IFNAME", "lo"))
    ftccl = MPIRUN + ["-np", str(args.np), "-x", "FTCCL_SOCKET_IFNAME",
                      f"{args.build}/tools/all_reduce_perf", "-z", "1"] + sizes
    ompi = MPIRUN + OMPI_UCX + ["-np", str(args.np), f"{args.build}/bench/mpi_allreduce_perf"] + sizes
    ompi_kept = MPIRUN + OMPI_UCX + ["-np", str(args.np), "-x", RETAIN,
                                     f"{args.build}/bench/mpi_allreduce_perf"] + sizes
    series = {"ftccl": [], "ompi": [], "ompi_kept": []}
    for rep in range(args.reps):
        series["ftccl"].append(parse_ftccl(run(ftccl, env)))
        series["ompi"].append(parse_mpi(run(ompi, env)))
        series["ompi_kept"].append(parse_mpi(run(ompi_kept, env)))
        print(f"# repetition {rep + 1}/{args.reps} done", file=sys.stderr)

    def stat(name, size, idx):
        vals = [r[size][idx] for r in series[name] if size in r]
        return statistics.median(vals), min(vals), max(vals)

    print(f"# {args.np} ranks, medians of {args.reps} interleaved runs (min-max); busbw GB/s, time us")
    print(f"#{'size':>10} {'ftccl busbw':>20} {'ompi busbw':>20} {'ompi-kept busbw':>20} "
          f"{'x ompi':>7} {'x kept':>7} | {'ftccl us':>9} {'ompi us':>9} {'t ratio':>7}")
    for size in sorted(series["ftccl"][0]):
        f, o, k = stat("ftccl", size, 1), stat("ompi", size, 1), stat("ompi_kept", size, 1)
        ft, ot = stat("ftccl", size, 0), stat("ompi", size, 0)
        cell = lambda s: f"{s[0]:6.2f} ({s[1]:5.2f}-{s[2]:5.2f})"
        ratio = lambda a, b: f"{a[0] / b[0]:7.2f}" if b[0] > 0 else "    n/a"
        print(f" {size:>10} {cell(f):>20} {cell(o):>20} {cell(k):>20} {ratio(f, o)} {ratio(f, k)} | "
              f"{ft[0]:9.2f} {ot[0]:9.2f} {ot[0] / ft[0] if ft[0] else 0:7.2f}")


if __name__ == "__main__":
    main()
