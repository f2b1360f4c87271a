#!/usr/bin/python3
"""The DDP checks of the ftccl backend, each through launch.py:

  ddp_checks.py vs-gloo RANKS      the example on gloo and on ftccl, 3 steps: the same
                                   losses (float tolerance); on each backend, the same
                                   weights on every rank (the example checks it)
  ddp_checks.py kill-and-continue  4 ranks + 1 spare; rank 2 killed at step 5; the final
                                   weights equal a run without the fault, bit for bit
  ddp_checks.py stop-and-continue  the same with rank 2 stopped (SIGSTOP: a hang)
  ddp_checks.py step-time RANKS    step time on gloo and on ftccl, interleaved (a report)
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH = os.path.join(HERE, "launch.py")
EXAMPLE = os.path.join(HERE, "..", "..", "..", "examples", "pytorch_ddp.py")
RESULT = re.compile(r"RESULT rank=(\d+) backend=(\w+) steps=(\d+) first_loss=(\S+) "
                    r"final_loss=(\S+) step_ms=(\S+) lost_s=(\S+) weights=(\w+) "
                    r"same_on_all_ranks=(True|False)")


def run(ranks, args, spares=0, allow_exit=()):
    cmd = ["/usr/bin/python3", LAUNCH, "-n", str(ranks), "--spares", str(spares),
           "--timeout", "240"]
    for r in allow_exit:
        cmd += ["--allow-exit", str(r)]
    cmd += ["--", EXAMPLE] + args
    # Ring all-reduce and no tuning measurement: the same reduction order in every run.
    env = dict(os.environ, FTCCL_ALGO="allreduce:ring", TORCH_CPP_LOG_LEVEL="ERROR")
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=300)
    results = {}
    for m in RESULT.finditer(out.stdout):
        results[int(m.group(1))] = {
            "backend": m.group(2), "steps": int(m.group(3)), "first": float(m.group(4)),
            "final": float(m.group(5)), "step_ms": float(m.group(6)),
            "lost_s": float(m.group(7)), "weights": m.group(8), "same": m.group(9) == "True"}
    if out.returncode != 0 or len(results) != ranks:
        sys.stdout.write(out.stdout[-6000:])
        raise SystemExit("FAIL: %s exited %d with %d results" % (" ".join(args), out.returncode,
                                                                 len(results)))
    return results, out.stdout


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    return condition


def vs_gloo(ranks):
    good = True
    runs = {}
    for backend in ("gloo", "ftccl"):
        runs[backend], _ = run(ranks, ["--backend", backend, "--steps", "3"])
        good &= check(all(r["same"] for r in runs[backend].values()),
                      "%s: the same weights on all %d ranks" % (backend, ranks))
    for rank in range(ranks):
        g, f = runs["gloo"][rank], runs["ftccl"][rank]
        good &= check(abs(g["final"] - f["final"]) <= 1e-5 * max(1.0, abs(g["final"])),
                      "rank %d: final loss %.6f on gloo, %.6f on ftccl" % (rank, g["final"],
                                                                          f["final"]))
    return good


def fault_and_continue(how):
    with tempfile.TemporaryDirectory() as tmp:
        clean = os.path.join(tmp, "clean.pt")
        fault = os.path.join(tmp, "fault.pt")
        run(4, ["--out", clean], spares=1)
        results, log = run(4, ["--" + how, "2:5", "--out", fault], spares=1, allow_exit=[2])
        import torch
        a, b = torch.load(clean), torch.load(fault)
        good = check(len(a["weights"]) == len(b["weights"]) > 0 and
                     all(torch.equal(x, y) for x, y in zip(a["weights"], b["weights"])),
                     "final weights bit for bit equal to the run without a fault")
        good &= check("activated as rank 2" in log, "the spare took over rank 2")
        # The survivors' exception names the failed rank, the detection and its delay.
        good &= check(re.search(r"rank \d: step 5 failed: ftccl \w+ failed on rank \d: .*"
                                r"rank 2 \(host \S+, pid \d+\) failed: .*(health connection "
                                r"closed|silence|agreement).* ms", log) is not None,
                      "the exception names rank 2, how and when it was found failed")
        good &= check(all(r["same"] and r["steps"] == 20 for r in results.values()),
                      "20 steps, the same weights on every rank")
        lost = [results[r]["lost_s"] for r in (0, 1, 3)]
        print("wall time lost to the fault on the survivors: %s s" % lost)
        return good


def step_time(ranks, repeats=3):
    times = {"gloo": [], "ftccl": []}
    for _ in range(repeats):
        for backend in ("gloo", "ftccl"):
            results, _ = run(ranks, ["--backend", backend, "--steps", "60"])
            times[backend].append(sum(r["step_ms"] for r in results.values()) / ranks)
    for backend, t in times.items():
        print("%d ranks, %s: step %.2f ms (median of %s)" % (ranks, backend, sorted(t)[len(t) // 2],
                                                            ["%.2f" % v for v in t]))
    return True


def main():
    what = sys.argv[1]
    if what == "vs-gloo":
        ok = vs_gloo(int(sys.argv[2]))
    elif what in ("kill-and-continue", "stop-and-continue"):
        ok = fault_and_continue(what.split("-")[0])
    elif what == "step-time":
        ok = step_time(int(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
