#!/usr/bin/env python3
"""ftccl_chaos: a campaign of random fault-injection runs against the perf tools.

Each run is drawn from one seed: a job (perf tool, 2-8 ranks, 0-2 hot spares or a
shrink, algorithm, message size, iterations) and a fault of one kind injected from
outside the victim at a random instant, init included: kill (SIGKILL), stop (SIGSTOP,
never resumed), stopcont (SIGSTOP, SIGCONT 0.2-3 s later), linkcut (the victim's link
taken down between network namespaces; root), double (two ranks within 50 ms),
during_rebuild (a second fault 5-60 ms after a kill), coordinator (rank 0, maybe with
another), spare (a hot spare), init_rank0 (rank 0 before everyone connected).

Outcomes (the exact rules are in docs/chaos.md):
  recovered                 every survivor passed with right data (a FAIL verdict whose
                            only reason is "a failure with no --fault planned" counts as
                            a pass when the data was right and no ftccl call failed)
  not_injected              the job ended before its fault(s); every process passed
  failed_clean              survivors stopped with a clear error where that is allowed:
                            an epoch lost its majority (ranks + spares, as the agreement
                            counts), rank 0 was lost during init, or there was no
                            recovery (no spares, no --recover)
  failed_clean_not_allowed  DEFECT: a clean failure in any other case, or a silent one
  collateral_death          DEFECT: a process that was no fault target died of a signal
  wrong_result              DEFECT: wrong elements, or a FAIL verdict about wrong values
  hang                      DEFECT: a survivor (or a cut-off victim) did not end within
                            the failure timeout + --hang-grace after the last fault
                            (+ the job's estimated length)
  harness_error             DEFECT: ftccl_run or this tool failed (not the library)

examples:
  ftccl_chaos.py --runs 50 --out chaos-results     # seeds 1..50; rerun to resume
  ftccl_chaos.py --summary chaos-results           # the table again
  ftccl_chaos.py --replay 17                       # one run, output live
  ftccl_chaos.py --dry-run --seeds 3,4             # what those seeds would run
  ftccl_chaos.py --kinds kill,linkcut --max-ranks 5 --max-bytes 4M --runs 20

The seed alone replays a run, given the same --kinds/--max-ranks/--max-bytes/
--loop-seconds (each record carries its replay command). Results go to
DIR/results.jsonl, one JSON record per run, appended as runs finish; rerunning with the
same DIR skips the seeds already done and summarizes all of them. Logs of the runs not
recovered are kept in DIR/logs. Link cuts need root and iproute2; without them those
runs are skipped (and run later with the same DIR).

exit status: 0 no defect, 1 at least one defect, 2 bad usage or setup.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos_classify  # noqa: E402
import chaos_plan  # noqa: E402
import chaos_run  # noqa: E402
from chaos_report import format_summary, load_records  # noqa: E402

RESULTS = "results.jsonl"
CAMPAIGN = "campaign.json"


class UsageError(Exception):
    pass


def default_build():
    """build/ of the repository this script lives in (tools/ftccl_chaos/..)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "build"))


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="ftccl_chaos.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_argument_group("which runs")
    which.add_argument("--runs", type=int, default=10, metavar="N",
                       help="number of runs (default 10)")
    which.add_argument("--seed", type=int, default=1, metavar="S",
                       help="first seed: runs S..S+N-1 (default 1)")
    which.add_argument("--seeds", metavar="A,B,C",
                       help="a fixed list of seeds, e.g. 3,17,42 (instead of --runs)")
    which.add_argument("--replay", type=int, metavar="SEED",
                       help="run one seed, showing its output live (log kept only with --out)")
    which.add_argument("--dry-run", action="store_true",
                       help="print each seed's plan and command; run nothing")
    draw = p.add_argument_group("what a seed may draw (part of the replay key)")
    draw.add_argument("--kinds", default=",".join(chaos_plan.KINDS), metavar="K,K",
                      help="fault kinds to draw from (default all: %(default)s)")
    draw.add_argument("--max-ranks", type=int, default=chaos_plan.MAX_RANKS + chaos_plan.MAX_SPARES,
                      metavar="N",
                      help="most processes per job, ranks + spares (3..10, default 10)")
    draw.add_argument("--max-bytes", default="64M", metavar="SIZE",
                      help="largest message (default 64M)")
    draw.add_argument("--loop-seconds", type=float, default=2.0, metavar="SEC",
                      help="target length of a job's timed loops (default 2)")
    out = p.add_argument_group("results")
    out.add_argument("--out", metavar="DIR",
                     help="results directory (results.jsonl, logs/); default "
                     "./chaos-results, none for --replay and --dry-run")
    out.add_argument("--summary", metavar="DIR", help="print DIR's summary and exit")
    out.add_argument("--fresh", action="store_true",
                     help="start DIR over: forget its earlier results and logs (for CI)")
    out.add_argument("--keep-logs", action="store_true",
                     help="keep every run's log (default: only the runs not recovered)")
    out.add_argument("--json", metavar="FILE", help="also write all records as one JSON array")
    run = p.add_argument_group("running")
    run.add_argument("--build", default=default_build(), metavar="DIR",
                     help="build directory (default %(default)s)")
    run.add_argument("--hang-grace", type=float, default=30.0, metavar="SEC",
                     help="seconds beyond the failure timeout a survivor may take to give its "
                     "verdict after the last fault (default 30)")
    run.add_argument("--bootstrap-timeout", type=float, default=10.0, metavar="SEC",
                     help="FTCCL_BOOTSTRAP_TIMEOUT_MS for the jobs, in seconds (default 10, "
                     "inside the hang bound; 0 keeps the library's 120 s)")
    run.add_argument("--time-limit", type=float, default=0, metavar="SEC",
                     help="start no new run after this many seconds (0: no limit); the "
                     "seeds left out are listed and run on the next call with the same --out")
    run.add_argument("--confirm-defects", action="store_true",
                     help="run a seed that ended in a defect once more: a defect counts (exit "
                     "status 1) only if it repeats; one that does not is listed as "
                     "intermittent, with both logs (CI: known intermittent defects, e.g. "
                     "docs/faults.md 'Open', must not make it flaky; campaigns do not use it)")
    run.add_argument("-v", "--verbose", action="store_true", help="show every job's output live")
    args = p.parse_args(argv)
    try:
        finish_args(args)
    except (UsageError, ValueError) as e:
        p.error(str(e))
    return args


def finish_args(args):
    kinds = tuple(k for k in args.kinds.split(",") if k)
    bad = [k for k in kinds if k not in chaos_plan.KINDS]
    if bad or not kinds:
        raise UsageError(f"unknown fault kind(s) {bad}; known: {','.join(chaos_plan.KINDS)}")
    if not 3 <= args.max_ranks <= chaos_plan.MAX_RANKS + chaos_plan.MAX_SPARES:
        raise UsageError("--max-ranks must be 3..10 (2 ranks + 1 spare at least)")
    if args.runs < 1 or args.loop_seconds <= 0 or args.hang_grace < 0:
        raise UsageError("--runs, --loop-seconds must be > 0 and --hang-grace >= 0")
    max_bytes = chaos_plan.parse_size(args.max_bytes)
    if max_bytes < chaos_plan.MIN_BYTES:
        raise UsageError(f"--max-bytes must be at least {chaos_plan.MIN_BYTES}")
    args.limits = chaos_plan.Limits(kinds=kinds, max_procs=args.max_ranks, max_bytes=max_bytes,
                                    loop_seconds=args.loop_seconds)
    if args.replay is not None:
        args.seed_list = [args.replay]
        args.verbose = True
    elif args.seeds:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    else:
        args.seed_list = list(range(args.seed, args.seed + args.runs))
    if args.out is None and args.replay is None and not args.dry_run:
        args.out = "chaos-results"


def replay_command(limits, seed):
    """The command line that replays `seed` under `limits`."""
    parts = ["ftccl_chaos.py", "--replay", str(seed)]
    if limits.kinds != chaos_plan.KINDS:
        parts += ["--kinds", ",".join(limits.kinds)]
    if limits.max_procs != chaos_plan.MAX_RANKS + chaos_plan.MAX_SPARES:
        parts += ["--max-ranks", str(limits.max_procs)]
    if limits.max_bytes != 64 << 20:
        parts += ["--max-bytes", str(limits.max_bytes)]
    if limits.loop_seconds != 2.0:
        parts += ["--loop-seconds", f"{limits.loop_seconds:g}"]
    return " ".join(parts)


def failure_timeout_s():
    """The library's failureTimeoutMs as the jobs will see it (FTCCL_FAILURE_TIMEOUT_MS)."""
    try:
        return int(os.environ.get("FTCCL_FAILURE_TIMEOUT_MS", "1000")) / 1000.0
    except ValueError:
        return 1.0


# --- the campaign directory ---------------------------------------------------------------

def open_campaign(out, limits, fresh):
    """Creates DIR or checks that it holds a campaign with the same limits (a seed means
    another run under other limits, so mixing them would mislabel results). Returns the
    seeds already done."""
    if fresh:
        for name in (RESULTS, CAMPAIGN):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        shutil.rmtree(os.path.join(out, "logs"), ignore_errors=True)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    path = os.path.join(out, CAMPAIGN)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != limits.key():
            raise UsageError(f"{out} holds a campaign with other settings {old}; use another --out")
    else:
        with open(path, "w") as f:
            json.dump(limits.key(), f)
    return {r["seed"] for r in load_records(out)}


def append_record(out, record):
    with open(os.path.join(out, RESULTS), "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


# --- one run --------------------------------------------------------------------------------

class Campaign:
    """Holds what outlives one run: the work directory and, once a link-cut run needs
    it, the network namespaces. close() removes both, also after Ctrl-C."""

    def __init__(self, args):
        self.args = args
        self.workdir = chaos_run.make_workdir()
        self.fabric = None
        self.netns_problem = chaos_run.netns_available()

    def fabric_for(self, plan):
        if not plan.netns:
            return None
        if self.fabric is None:
            self.fabric = chaos_run.Fabric(self.args.limits.max_procs, self.workdir)
            try:
                self.fabric.create()
            except RuntimeError:
                self.fabric.destroy()
                self.fabric = None
                raise
        self.fabric.restore()
        return self.fabric

    def close(self):
        if self.fabric is not None:
            self.fabric.restore()
            self.fabric.destroy()
            self.fabric = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, plan):
        """Runs one plan; returns its record."""
        args = self.args
        keep_dir = os.path.join(args.out, "logs") if args.out else self.workdir
        log = os.path.join(keep_dir, f"seed-{plan.seed}.log")
        started = time.time()
        try:
            fabric = self.fabric_for(plan)
            output, rc, backstop = chaos_run.run_job(
                plan, args.build, fabric, log, args.hang_grace, failure_timeout_s(),
                args.bootstrap_timeout, echo=args.verbose)
            verdict = chaos_classify.classify(plan, output.lines, rc, backstop)
        except (OSError, RuntimeError) as e:
            rc, verdict = None, chaos_classify.Verdict("harness_error", str(e))
        keep = args.out and (args.keep_logs or verdict.outcome != "recovered")
        if not keep and os.path.exists(log):
            os.remove(log)
        return make_record(plan, verdict, rc, time.time() - started,
                           os.path.abspath(log) if keep else None, args.limits)


def make_record(plan, verdict, rc, duration, log, limits):
    job = plan.to_dict()
    faults = job.pop("faults")
    return {"seed": plan.seed, "kind": plan.kind, "job": job, "faults": faults,
            "outcome": verdict.outcome, "defect": verdict.defect, "reason": verdict.reason,
            "notes": verdict.notes, "detection_ms": verdict.detection_ms,
            "recovery_ms": verdict.recovery_ms, "timing_source": verdict.timing,
            "during_init": verdict.during_init, "kills": verdict.kills,
            "mid_transfer_kills": verdict.mid_transfer_kills,
            "ucx_complaints": verdict.ucx_complaints,
            "ftccl_run_status": rc, "duration_s": round(duration, 2), "log": log,
            "replay": replay_command(limits, plan.seed)}


def shorten(text, limit=300):
    """Console lines stay readable; the record keeps the whole reason."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def print_run_line(record):
    times = ""
    if record["detection_ms"] is not None:
        times += f" det {record['detection_ms']:.1f} ms"
    if record["recovery_ms"] is not None:
        times += f" rec {record['recovery_ms']:.1f} ms"
    line = f"  -> {record['outcome']}{times} ({record['duration_s']:.1f} s)"
    if record["outcome"] != "recovered":
        line += f": {shorten(record['reason'])}"
    print(line, flush=True)
    for note in record["notes"]:
        print(f"     note: {note}", flush=True)


# --- main -----------------------------------------------------------------------------------

def check_build(build):
    for tool in ("ftccl_run",) + tuple(t for t, _ in chaos_plan.TOOLS):
        path = os.path.join(build, "tools", tool)
        if not os.access(path, os.X_OK):
            raise UsageError(f"{path} not found: build the project or pass --build DIR")


def dry_run(args):
    for seed in args.seed_list:
        plan = chaos_plan.make_plan(seed, args.limits)
        argv, env, _ = chaos_run.job_command(plan, args.build, chaos_run.Fabric(
            args.limits.max_procs, "WORKDIR"), args.hang_grace, failure_timeout_s(),
            args.bootstrap_timeout)
        print(chaos_plan.describe(plan))
        shown = ("FTCCL_ALGO", "FTCCL_DEBUG", "FTCCL_SOCKET_IFNAME", "FTCCL_BOOTSTRAP_TIMEOUT_MS")
        env_text = " ".join(f"{k}={env[k]}" for k in shown if k in env)
        print(f"    {env_text} {' '.join(argv)}")
    return 0


def confirm(campaign, plan, first):
    """Runs a defect's seed again; the record is the second attempt's, with the first's
    outcome kept. A defect that does not repeat is intermittent: reported, not counted."""
    if first.get("log") and os.path.exists(first["log"]):
        kept = first["log"].replace(".log", ".first.log")
        os.replace(first["log"], kept)
        first["log"] = kept
    print(f"ftccl_chaos: seed {plan.seed} ended in {first['outcome']}; running it again",
          flush=True)
    again = campaign.run(plan)
    print_run_line(again)
    again["first_attempt"] = {k: first[k] for k in ("outcome", "reason", "log")}
    if not again["defect"]:
        again["intermittent"] = first["outcome"]
    return again


def run_campaign(args):
    check_build(args.build)
    done = open_campaign(args.out, args.limits, args.fresh) if args.out else set()
    campaign = Campaign(args)
    if campaign.netns_problem and any(k in chaos_plan.NETNS_KINDS for k in args.limits.kinds):
        print(f"ftccl_chaos: {campaign.netns_problem}: skipping link-cut runs", flush=True)
    elif not campaign.netns_problem:
        for name in chaos_run.reap_stale_namespaces():
            print(f"ftccl_chaos: removed namespace {name} of a campaign that was killed")
    records, skipped, left = [], 0, []
    t_start = time.time()
    try:
        for seed in args.seed_list:
            if seed in done and args.replay is None:
                continue
            if args.time_limit and time.time() - t_start > args.time_limit:
                left.append(seed)
                continue
            plan = chaos_plan.make_plan(seed, args.limits)
            if plan.netns and campaign.netns_problem:
                if args.replay is not None:
                    raise UsageError(f"seed {seed} is a link cut: {campaign.netns_problem}")
                skipped += 1
                continue
            print(chaos_plan.describe(plan), flush=True)
            record = campaign.run(plan)
            print_run_line(record)
            if record["defect"] and args.confirm_defects:
                record = confirm(campaign, plan, record)
            records.append(record)
            if args.out:
                append_record(args.out, record)
    finally:
        campaign.close()
    if skipped:
        print(f"ftccl_chaos: {skipped} link-cut run(s) skipped ({campaign.netns_problem})")
    if left:
        print(f"ftccl_chaos: --time-limit reached; seeds not run: {','.join(map(str, left))}")
    all_records = load_records(args.out) if args.out else records
    print(format_summary(all_records))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_records, f, indent=1, sort_keys=True)
    return 1 if any(r["defect"] for r in all_records) else 0


def interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.summary:
            records = load_records(args.summary)
            print(format_summary(records))
            return 1 if any(r["defect"] for r in records) else 0
        if args.dry_run:
            return dry_run(args)
        # SIGTERM (CTest's timeout, a CI cancel) unwinds like Ctrl-C, so every namespace,
        # process and temporary file goes.
        signal.signal(signal.SIGTERM, interrupt)
        return run_campaign(args)
    except UsageError as e:
        print(f"ftccl_chaos: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ftccl_chaos: interrupted; cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
