"""Drawing one chaos run (a job and its faults) from a seed.

Everything here is a pure function of (seed, Limits): the seed alone replays a run, so
nothing may depend on the machine, the clock or the order of earlier runs. Random
numbers come only from random.Random(seed).random(), whose sequence for an integer
seed is stable across Python versions (randrange/choice have changed over time).
"""

import dataclasses
import math
import random
import re

# Fault kinds, in the order the summary lists them.
KINDS = ("kill", "stop", "stopcont", "linkcut", "double", "during_rebuild", "coordinator",
         "spare", "init_rank0")

# Kinds that need root and iproute2 (a real link cut between network namespaces).
NETNS_KINDS = ("linkcut",)

# The workloads and how often each is drawn. The perf tools run through perf_run.cc's
# perfMain, so all take --spares / --recover and print PERF_VERDICT lines; split_job
# (split_job.cc) prints the same lines and keeps several communicators busy: the world
# and the children it splits off every SPLIT_EVERY steps.
TOOLS = (("all_reduce_perf", 0.48), ("broadcast_perf", 0.08), ("reduce_perf", 0.08),
         ("all_gather_perf", 0.08), ("reduce_scatter_perf", 0.08), ("sendrecv_perf", 0.08),
         ("split_job", 0.12))
SPLIT_EVERY = 20
SPLIT_SECONDS = 0.1  # one split: an all-gather and a child's init (rendezvous, tuning)

# FTCCL_ALGO values (src/tuning/algorithm_choice.cc); None leaves the choice to the tuner.
# "hier" is left out: every rank here is on one node, where it has nothing to do.
# "shm" (shared memory) applies on one node only: the netns kinds build the ring instead.
ALGOS = {"all_reduce_perf": (None, "allreduce:ring", "allreduce:tree", "allreduce:rd",
                             "allreduce:shm")}
OTHER_ALGOS = (None, "ring", "shm")  # the others: ring (chain) and shared memory

MIN_RANKS, MAX_RANKS, MAX_SPARES = 2, 8, 2
MIN_BYTES = 8
MAX_ITERS = 500000
INIT_WINDOW_S = 0.3        # faults drawn "during init" fall in [0, this)
INIT_FAULT_CHANCE = 0.15   # share of single faults drawn inside the init window
# Faults after init fall in the first FAULT_WINDOW of the rest of the estimated job:
# measured jobs ran 0.25-2x their estimate, most near 0.7x, and a fault after the end is
# a wasted run.
FAULT_WINDOW = 0.6


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a campaign allows; part of the replay key (the same seed under other limits
    draws another run)."""
    kinds: tuple = KINDS
    max_procs: int = MAX_RANKS + MAX_SPARES  # ranks + spares
    max_bytes: int = 64 << 20
    loop_seconds: float = 2.0                # target length of the timed loops

    def key(self):
        return {"kinds": list(self.kinds), "max_procs": self.max_procs,
                "max_bytes": self.max_bytes, "loop_seconds": self.loop_seconds}


@dataclasses.dataclass
class Fault:
    action: str   # kill | stop | cont (launcher signals) or linkcut (the tool's `ip` call)
    proc: int     # launcher index: ranks are 0..nranks-1, spares follow
    at: float     # seconds after the launcher started the ranks


@dataclasses.dataclass
class Plan:
    seed: int
    kind: str
    tool: str
    nranks: int
    spares: int
    recover: bool          # recovery on (spares, or --recover: shrink)
    algo: object           # FTCCL_ALGO or None
    nbytes: int
    iters: int
    warmup: int
    blocking: bool         # -z 1: the NULL stream instead of an ftccl stream
    netns: bool            # every process in its own namespace, UCX over TCP
    faults: list
    est_init_s: float
    est_total_s: float
    # split_job: processes started with the others that join the spare pool later
    # (ftcclCommJoinAsSpare), after the fault-free draws: one whenever there are spares
    # and room. They come last in launcher order.
    joiners: int = 0

    @property
    def procs(self):
        return self.nranks + self.spares + self.joiners

    def to_dict(self):
        return dataclasses.asdict(self)


class Draw:
    """The few draws a plan needs, all built on random() so replays stay exact."""

    def __init__(self, seed):
        self._rng = random.Random(seed)

    def uniform(self, lo, hi):
        return lo + (hi - lo) * self._rng.random()

    def integer(self, lo, hi):  # inclusive
        return lo + min(int(self._rng.random() * (hi - lo + 1)), hi - lo)

    def chance(self, p):
        return self._rng.random() < p

    def pick(self, items):
        return items[self.integer(0, len(items) - 1)]

    def weighted(self, pairs):
        u = self._rng.random() * sum(w for _, w in pairs)
        for item, w in pairs:
            u -= w
            if u < 0:
                return item
        return pairs[-1][0]

    def log_uniform(self, lo, hi):
        return math.exp(self.uniform(math.log(lo), math.log(hi)))


def parse_size(text):
    """'8', '512K', '4M', '1G' -> bytes (binary units, as the perf tools read them)."""
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 4096, 512K, 4M)")
    return int(m[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[m[2]]


# --- cost model -------------------------------------------------------------------------
# Rough fits of the perf tools on the 2-core development VM (float sum, ranks sharing
# the cores): 2 ranks take 2-4 us per op at 1 KiB and 0.2-0.6 ns per byte; 8 ranks 10-90 us
# and 1-5 ns per byte. It only has to put the fault instants inside the job and keep jobs
# short, so a factor of two either way is fine. Over TCP between namespaces everything
# is slower. Over shared memory (forced, or the tuner's choice on one host) it is faster
# (issue 26, at 48736f2): 0.5 us at 8 B and 2 ranks, 1.5 at 3, 2.5-7 at 4, a quarter of the
# transport's time per byte; with the transport's fit, 12 of 17 such runs of seeds
# 9970-10009 (all but netns ones) ended before their faults.

# Bytes a collective costs relative to an all-reduce of the same size (measured at 4 MiB).
BYTE_COST = {"all_reduce_perf": 1.0, "broadcast_perf": 0.3, "reduce_perf": 0.6,
             "all_gather_perf": 0.35, "reduce_scatter_perf": 0.45, "sendrecv_perf": 0.5,
             "split_job": 2.0}


def op_seconds(tool, nbytes, nranks, tcp, shm=False):
    if shm and not tcp:
        latency = 0.3e-6 + 0.15e-6 * nranks * nranks
        per_byte = 0.55e-9 * (nranks - 1) * BYTE_COST[tool] * 0.3
        return latency + per_byte * nbytes
    latency = (1e-6 + 1e-6 * nranks * nranks) * (10 if tcp else 1)
    per_byte = 0.55e-9 * (nranks - 1) * BYTE_COST[tool] * (3 if tcp else 1)
    split = SPLIT_SECONDS * (3 if tcp else 1) / SPLIT_EVERY if tool == "split_job" else 0
    return latency + per_byte * nbytes + split


def init_seconds(procs, tuned, tcp):
    # Bootstrap, UCX wire-up, and (FTCCL_ALGO unset) the tuner's calibration runs.
    return 0.15 + 0.05 * procs * (2 if tuned else 1) + (0.3 if tcp else 0)


def alloc_seconds(nbytes, procs):
    # Three buffers per process, first touch ~10 us per 4 KiB page, two cores; the
    # expected values are computed too (measured: 48 MiB x 6 processes took 2x the rest).
    return 6 * nbytes * procs * 1.22e-9


# --- the job ------------------------------------------------------------------------------

def draw_shape(d, kind, limits):
    """(nranks, spares, recover): 2-8 ranks, 0-2 spares, within limits.max_procs."""
    min_spares = 1 if kind == "spare" else 0
    spares = d.integer(min_spares, MAX_SPARES)
    spares = min(spares, max(min_spares, limits.max_procs - MIN_RANKS))
    nranks = d.integer(MIN_RANKS, max(MIN_RANKS, min(MAX_RANKS, limits.max_procs - spares)))
    # Without spares, shrink half of the time; otherwise no recovery at all.
    recover = spares > 0 or d.chance(0.5)
    return nranks, spares, recover


def draw_size(d, tool, nranks, limits):
    nbytes = int(d.log_uniform(MIN_BYTES, max(MIN_BYTES, limits.max_bytes) + 1))
    nbytes = min(max(MIN_BYTES, nbytes), limits.max_bytes)
    if nbytes > 64:
        nbytes -= nbytes % 64
    # All-gather and reduce-scatter split the buffer into per-rank blocks of whole
    # 4-element groups; smaller would leave every block empty.
    if tool in ("all_gather_perf", "reduce_scatter_perf"):
        nbytes = max(nbytes, 16 * 4 * nranks)
    return nbytes


def draw_job(d, kind, limits):
    tool = d.weighted(TOOLS)
    nranks, spares, recover = draw_shape(d, kind, limits)
    algo = d.pick(ALGOS.get(tool, OTHER_ALGOS))
    nbytes = draw_size(d, tool, nranks, limits)
    blocking = d.chance(0.5)
    netns = kind in NETNS_KINDS
    # The tuner takes shared memory on one host (split_job and sendrecv have none).
    shm = (algo is None or "shm" in algo) and tool not in ("split_job", "sendrecv_perf")
    t_op = op_seconds(tool, nbytes, nranks, netns, shm)
    loop_target = limits.loop_seconds * d.uniform(0.5, 1.5)
    iters = max(1, min(MAX_ITERS, round(loop_target / (2 * t_op))))
    warmup = min(5, iters)
    procs = nranks + spares
    est_init = init_seconds(procs, algo is None and tool == "all_reduce_perf", netns)
    est_total = (est_init + alloc_seconds(nbytes, procs) +
                 (2 * iters + warmup + 4) * t_op)
    return dict(tool=tool, nranks=nranks, spares=spares, recover=recover, algo=algo,
                nbytes=nbytes, iters=iters, warmup=warmup, blocking=blocking, netns=netns,
                est_init_s=round(est_init, 3), est_total_s=round(est_total, 3))


# --- the faults -----------------------------------------------------------------------------

def draw_instant(d, job):
    """A moment while the job runs: INIT_FAULT_CHANCE of them inside init, the rest after
    the estimated init (a fault in init costs a bootstrap timeout, so a uniform draw over
    the whole job, whose init is a large share, spent most of a campaign waiting)."""
    init = job["est_init_s"]
    if d.chance(INIT_FAULT_CHANCE):
        return d.uniform(0.0, min(INIT_WINDOW_S, init))
    return d.uniform(init, init + FAULT_WINDOW * (job["est_total_s"] - init))


def other_member(d, nranks, exclude):
    choices = [p for p in range(nranks) if p not in exclude]
    return d.pick(choices)


def draw_faults(d, kind, job):
    """The kind's faults as launcher-index/time pairs (see docs/chaos.md)."""
    n, s = job["nranks"], job["spares"]
    t = draw_instant(d, job)
    if kind in ("kill", "stop", "linkcut"):
        return [Fault(kind, d.integer(0, n - 1), t)]
    if kind == "stopcont":
        victim = d.integer(0, n - 1)
        return [Fault("stop", victim, t), Fault("cont", victim, t + d.uniform(0.2, 3.0))]
    if kind == "double":
        a = d.integer(0, n - 1)
        b = other_member(d, n, {a})
        return [Fault(d.pick(("kill", "stop")), a, t),
                Fault(d.pick(("kill", "stop")), b, t + d.uniform(0.0, 0.05))]
    if kind == "during_rebuild":
        # A kill is seen within ~10 ms and the rebuild starts at once: the second fault
        # lands in detection, agreement or the rebuild itself. Its target may be the
        # spare about to be activated.
        a = d.integer(0, n - 1)
        b = d.pick([p for p in range(n + s) if p != a])
        return [Fault("kill", a, t), Fault(d.pick(("kill", "stop")), b, t + d.uniform(0.005, 0.06))]
    if kind == "coordinator":
        faults = [Fault("kill", 0, t)]
        if d.chance(0.5):
            faults.append(Fault("kill", other_member(d, n, {0}), t + d.uniform(0.0, 0.05)))
        return faults
    if kind == "spare":
        faults = [Fault("kill", d.integer(n, n + s - 1), t)]
        if d.chance(0.5):  # then a member: the dead spare must not be chosen
            action = d.pick(("kill", "stop"))
            member = d.integer(0, n - 1)
            faults.append(Fault(action, member, t + d.uniform(0.1, 1.0)))
        return faults
    if kind == "init_rank0":
        return [Fault("kill", 0, d.uniform(0.0, 0.08))]
    raise ValueError(f"unknown fault kind {kind!r}")


def make_plan(seed, limits):
    """The run that `seed` stands for under `limits`."""
    d = Draw(seed)
    kind = d.pick(limits.kinds)
    job = draw_job(d, kind, limits)
    faults = draw_faults(d, kind, job)
    for f in faults:
        f.at = round(f.at, 3)
    # Drawn from nothing: adding joiners changed no other draw of any seed.
    joiners = int(job["tool"] == "split_job" and job["spares"] > 0 and
                  job["nranks"] + job["spares"] < limits.max_procs)
    return Plan(seed=seed, kind=kind, faults=faults, joiners=joiners, **job)


def faults_from_dicts(items):
    return [Fault(**f) for f in items]


def describe(plan):
    """One line: 'seed 7 kill: all_reduce_perf 4+1 spares 1 MiB ... kill 2@1.234'."""
    recovery = (f"{plan.spares} spare(s)" if plan.spares else
                ("shrink" if plan.recover else "no recovery"))
    if plan.joiners:
        recovery += f" + {plan.joiners} joiner(s)"
    faults = ", ".join(f"{f.action} {f.proc}@{f.at:.3f}" for f in plan.faults)
    return (f"seed {plan.seed} {plan.kind}: {plan.tool} {plan.nranks} ranks, {recovery}, "
            f"{human_bytes(plan.nbytes)}, {plan.iters} iters, algo {plan.algo or 'auto'}"
            f"{', blocking' if plan.blocking else ''}{', netns/tcp' if plan.netns else ''}; "
            f"{faults}")


def human_bytes(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n} B ({n / (1 << shift):.1f} {unit})"
    return f"{n} B"
