"""Reading a chaos job's output and deciding its outcome (see docs/chaos.md).

Pure functions over (plan, lines): no processes, no clock, so that
tests/tools/chaos_classify_test.py can feed synthetic outputs. A line is a pair
(arrival time in seconds since the epoch, text) as the runner recorded it; the text is
ftccl_run's merged output: "[P] ..." from process P (its launcher index), "ftccl_run: ..."
from the launcher, and "chaos: ..." from the chaos tool itself.
"""

import dataclasses
import datetime
import re

OUTCOMES = ("recovered", "not_injected", "failed_clean", "failed_clean_not_allowed",
            "collateral_death", "wrong_result", "hang", "harness_error")
DEFECTS = frozenset(("failed_clean_not_allowed", "collateral_death", "wrong_result", "hang",
                     "harness_error"))

# The perf tools' verdict when a failure happened that they did not inject themselves
# with --fault (tools/perf_recovery.cc, Recovery::unexpected). Every chaos fault comes from
# outside, so this says nothing about the run: see verdict_passes().
NO_FAULT_PLANNED = "a failure with no --fault planned"
# printVerdict's text when the status was bad for a reason it does not know.
GENERIC_FAIL = "wrong values or an ftccl error"

RE_RANK_LINE = re.compile(r"^\[(\d+)\] ?(.*)$")
RE_VERDICT = re.compile(r"^PERF_VERDICT rank=(\d+) (PASS|FAIL) (.*)$")
RE_VERDICT_TIMES = re.compile(r"detection_ms (-?[\d.]+), recovery_ms (-?[\d.]+)(?:: (.*))?$")
RE_FAULT_SUMMARY = re.compile(r"# Fault: .*detection (-?[\d.]+) ms, rebuild (-?[\d.]+) ms, "
                              r"recovery \(fault -> loop running again\) (-?[\d.]+) ms")
RE_WRONG = re.compile(r": (\d+) wrong elements")
RE_OUT_OF_BOUNDS = re.compile(r"# Out of bounds values : (\d+)")
# A result row: size count type redop root, then time algbw busbw #wrong twice.
RE_ROW = re.compile(r"^\s*\d+\s+\d+\s+\w+\s+\w+\s+-?\d+"
                    r"(?:\s+\S+){3}\s+(\d+)(?:\s+\S+){3}\s+(\d+)\s*$")
# perf_run.cc ok(): "[rank 1] all_reduce_perf: ftcclAllReduce failed: ..." or with
# what the call was for, "ftcclAllReduce (barrier) failed: ...".
RE_CALL_ERROR = re.compile(r"\] \S+: [\w/]+(?: \([^)]*\))? failed: ")  # ftcclSend/ftcclRecv too
# A perf tool without recovery refuses a communicator that init shrank (ranks that never
# joined were dropped): a clear error, not a silent failure (seed 8220).
RE_SHRUNK_AT_INIT = re.compile(r"\] \S+: communicator has \d+ ranks, expected \d+$")
RE_LIB_LOG = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \S+:(\d+) ftccl (\w+) "
                        r"\[(\w+)\] (.*)$")
RE_MID_TRANSFER = re.compile(r"mid-transfer: rank (\d+) had (\d+) transfer\(s\) of (\d+) bytes "
                             r"outstanding with rank (-?\d+) \(pid (\d+)\)"
                             r"(?:.*?, (\d+) at or above UCX's rendezvous threshold)?")
# UCX's own complaints (mpool leftovers, unmatched messages, flush errors): none may
# reach the user after a survived fault.
RE_UCX_COMPLAINT = re.compile(r"\bUCX +(WARN|ERROR)\b")
RE_CRASH = re.compile(r"Assertion|Caught signal|Segmentation fault|process_vm_readv|"
                      r"terminate called|==== backtrace|Aborted")
RE_INJECTED = re.compile(r"^ftccl_run: injected (kill|stop|cont|drop) on rank (\d+) "
                         r"\(pid (\d+)\) at ([\d.]+) s")
RE_NOT_INJECTED = re.compile(r"^ftccl_run: (kill|stop|cont|drop) on rank (\d+) .*not injected")
RE_TIMEOUT = re.compile(r"^ftccl_run: timeout after ([\d.]+) s; ranks still running:([\d ]*)")
RE_SUMMARY = re.compile(r"^ftccl_run: rank (\d+) \(pid (\d+)\) (.*)$")
RE_LAUNCHER_ERROR = re.compile(r"^ftccl_run: error: (.*)$")
RE_LINKCUT = re.compile(r"^chaos: linkcut on process (\d+) ")
RE_BACKSTOP = re.compile(r"^chaos: backstop")
RE_PREAMBLE = re.compile(r"^#\s+Rank\s+0 Group")  # rank 0 printed it: init is over
RE_READY = re.compile(r"^rank (\d+)/(\d+) ready on ")   # FTCCL_DEBUG=info, [Init]


@dataclasses.dataclass
class Proc:
    """What one process (launcher index) printed and how it ended."""
    index: int
    pid: int = None
    end: str = ""             # ftccl_run's summary text for it
    verdict: str = None       # PASS | FAIL
    verdict_at: float = None  # when its verdict line arrived
    verdict_reason: str = ""
    detection_ms: float = None
    recovery_ms: float = None
    wrong: int = 0
    wrong_lines: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)   # calls that failed
    crash_lines: list = dataclasses.field(default_factory=list)
    activated: bool = False  # a spare that took a rank
    failure_seen: float = None  # first notice of a failure (wall clock)
    left_at: float = None  # when it logged its own orderly leave
    rebuilt: list = dataclasses.field(default_factory=list)  # rebuild/activation instants
    mid_transfer: list = dataclasses.field(default_factory=list)  # victim pids
    ucx_complaints: int = 0  # UCX WARN/ERROR lines


@dataclasses.dataclass
class Parsed:
    procs: dict
    injected: list   # (action, proc, pid, wall-clock instant)
    not_injected: list  # (action, proc)
    timeout_running: list = None  # ranks ftccl_run found running at its --timeout
    backstop: bool = False
    launcher_errors: list = dataclasses.field(default_factory=list)
    init_done_at: float = None   # every rank ready (see finish_init)
    ready: dict = dataclasses.field(default_factory=dict)  # rank -> its "ready" instant
    preamble_at: float = None    # arrival of rank 0's preamble
    fault_summary: tuple = None  # (detection, rebuild, recovery) from "# Fault:"


def lib_time(stamp):
    """spdlog's local-time stamp -> seconds since the epoch (the same clock as time.time())."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def parse(lines, nprocs, nranks=None):
    procs = {p: Proc(p) for p in range(nprocs)}
    out = Parsed(procs=procs, injected=[], not_injected=[])
    anchors, injected_rel = [], []
    for when, text in lines:
        m = RE_RANK_LINE.match(text)
        if m and int(m[1]) in procs:
            _parse_rank_line(procs[int(m[1])], m[2], when, out)
        else:
            _parse_other_line(text, when, out, procs, anchors, injected_rel)
    # ftccl_run says when it injected, in seconds from its start; the earliest arrival
    # minus that offset is the least delayed estimate of the start, on our clock.
    if anchors:
        start = min(anchors)
        out.injected += [(a, p, pid, start + rel) for a, p, pid, rel in injected_rel]
    out.injected.sort(key=lambda f: f[3])
    finish_init(out, nprocs if nranks is None else nranks)
    return out


def finish_init(out, nranks):
    """When init was over for everyone: the last rank's "rank R/N ready" line (the
    library's own timestamp, FTCCL_DEBUG=info); None while some rank never got ready.
    Without those lines (a lower FTCCL_DEBUG), rank 0's preamble, which comes later
    (after the buffers are allocated) but only once init is over."""
    if out.ready:
        ranks = [out.ready.get(r) for r in range(nranks)]
        out.init_done_at = None if None in ranks else max(ranks)
    else:
        out.init_done_at = out.preamble_at


def _parse_rank_line(proc, text, when, out):
    m = RE_LIB_LOG.match(text)
    if m:
        when = lib_time(m[1])
        ready = RE_READY.match(m[5]) if m[4] == "Init" else None
        if ready and proc.index == int(ready[1]):
            out.ready[proc.index] = when
        if m[3] == "error" and " failed: " in m[5] and proc.failure_seen is None:
            proc.failure_seen = when
        # Leaving in order (ftcclCommDestroy): its own line; "stopped watching" is
        # logged for a peer that leaves too, so it cannot tell.
        if m[4] == "Health" and "leaving in order" in m[5] and proc.left_at is None:
            proc.left_at = when
        if "rebuilt into epoch" in m[5] or "spare activated as rank" in m[5]:
            proc.rebuilt.append(when)
            proc.activated = proc.activated or "spare activated" in m[5]
    if "# failure detected" in text and proc.failure_seen is None:
        proc.failure_seen = when
    m = RE_VERDICT.match(text)
    if m:
        proc.verdict = m[2]
        proc.verdict_at = when
        proc.activated = proc.activated or "activated spare" in m[3]
        t = RE_VERDICT_TIMES.search(m[3])
        if t:
            proc.detection_ms, proc.recovery_ms = float(t[1]), float(t[2])
            proc.verdict_reason = t[3] or ""
        else:
            proc.verdict_reason = m[3]
        return
    for m in RE_WRONG.finditer(text):
        proc.wrong += int(m[1])
        proc.wrong_lines.append(text)
    m = RE_ROW.match(text) or RE_OUT_OF_BOUNDS.search(text)
    if m and any(int(g) > 0 for g in m.groups()):
        proc.wrong += sum(int(g) for g in m.groups())
        proc.wrong_lines.append(text)
    if RE_CALL_ERROR.search(text) or RE_SHRUNK_AT_INIT.search(text):
        proc.errors.append(text)
    if RE_CRASH.search(text):
        proc.crash_lines.append(text)
    if RE_UCX_COMPLAINT.search(text):
        proc.ucx_complaints += 1
    m = RE_MID_TRANSFER.search(text)
    # Mid-transfer means a rendezvous outstanding with the victim; a line without the
    # rendezvous count (an older library) counts any outstanding transfer.
    if m and (m[6] is None or int(m[6]) > 0):
        proc.mid_transfer.append(int(m[5]))
    m = RE_FAULT_SUMMARY.search(text)
    if m:
        out.fault_summary = tuple(float(g) for g in m.groups())
    if proc.index == 0 and out.preamble_at is None and RE_PREAMBLE.match(text):
        out.preamble_at = when


def _parse_other_line(text, when, out, procs, anchors, injected_rel):
    m = RE_INJECTED.match(text)
    if m:
        anchors.append(when - float(m[4]))
        injected_rel.append((m[1], int(m[2]), int(m[3]), float(m[4])))
        return
    m = RE_NOT_INJECTED.match(text)
    if m:
        out.not_injected.append((m[1], int(m[2])))
        return
    m = RE_LINKCUT.match(text)
    if m:
        out.injected.append(("linkcut", int(m[1]), None, when))
        return
    m = RE_TIMEOUT.match(text)
    if m:
        out.timeout_running = [int(r) for r in m[2].split()]
        return
    m = RE_SUMMARY.match(text)
    if m and int(m[1]) in procs:
        procs[int(m[1])].pid = int(m[2])
        procs[int(m[1])].end = m[3]
        return
    if RE_BACKSTOP.match(text):
        out.backstop = True
        return
    m = RE_LAUNCHER_ERROR.match(text)
    if m:
        out.launcher_errors.append(m[1])


# --- how each process ended -----------------------------------------------------------

def end_state(proc):
    """('exit', code) | ('signal', name) | ('launcher', why) | ('killed',) | ('running',)
    | ('unknown',) from ftccl_run's summary line."""
    text = proc.end
    if not text:
        return ("unknown",)
    if "was still running" in text:
        return ("running",)
    for phrase, why in (("killed at the end", "victim_end"), ("killed at the timeout", "timeout"),
                        ("killed when ftccl_run got", "interrupt"),
                        ("killed because ftccl_run failed", "launcher_failed")):
        if phrase in text:
            return ("launcher", why)
    m = re.search(r"died of signal (\d+) \((\w+)", text)
    if m:
        return ("signal", m[2])
    m = re.search(r"exited (\d+)", text)
    if m:
        return ("exit", int(m[1]))
    if "killed on purpose" in text:
        return ("killed",)
    return ("unknown",)


def crashed(proc):
    """Died of a signal ftccl_run did not send (an abort, a segfault), or exited with a
    shell's 128+signal code."""
    state = end_state(proc)
    return state[0] == "signal" or (state[0] == "exit" and state[1] >= 128)


def verdict_passes(proc):
    """Whether a process's verdict says its run was right.

    PASS counts. FAIL counts too when its only reason is NO_FAULT_PLANNED and the data
    was right: the perf tools fail any run hit by a failure they did not inject with
    --fault, which every chaos fault is. That message says nothing about the data, so we
    judge the data ourselves: no wrong elements, no ftccl call that failed, and a normal
    exit. Any other FAIL counts as a failure.
    """
    if proc.verdict == "PASS":
        return True
    if proc.verdict != "FAIL" or proc.verdict_reason.strip() != NO_FAULT_PLANNED:
        return False
    state = end_state(proc)
    return proc.wrong == 0 and not proc.errors and state[0] == "exit" and state[1] in (0, 1)


# --- roles -------------------------------------------------------------------------------

def roles(parsed):
    """proc -> 'killed' | 'stopped' (never resumed) | 'resumed' (stop then cont) | 'cut',
    for every process a fault actually reached; survivors are absent."""
    seen = {}
    for action, p, _pid, _t in parsed.injected:
        seen.setdefault(p, set()).add(action)
    out = {}
    for p, actions in seen.items():
        if "kill" in actions:
            out[p] = "killed"
        elif "linkcut" in actions:
            out[p] = "cut"
        elif "stop" in actions:
            out[p] = "resumed" if "cont" in actions else "stopped"
    return out


def survivor_ok(plan, proc):
    """A survivor's run was right: its verdict passes, or it gives none where none is due
    (no recovery, so no verdict line; a spare that was never needed stands down) and it
    exited 0 with right data."""
    if proc.verdict is not None:
        return verdict_passes(proc)
    state = end_state(proc)
    no_verdict_due = not plan.recover or (proc.index >= plan.nranks and not proc.activated)
    return no_verdict_due and state == ("exit", 0) and proc.wrong == 0


def clear_error(proc):
    return proc.verdict == "FAIL" or bool(proc.errors)


def fault_in_init(parsed):
    """The first fault came before init was over for every rank (finish_init)."""
    if not parsed.injected:
        return False
    return parsed.init_done_at is None or parsed.injected[0][3] < parsed.init_done_at


def rank0_lost_in_init(parsed, role_of):
    if 0 not in role_of:
        return False
    first = min(t for a, p, _pid, t in parsed.injected if p == 0)
    return parsed.init_done_at is None or first < parsed.init_done_at


def lost_processes(plan, parsed, role_of):
    """Fault targets that left the job: killed, stopped, cut off, or resumed without
    passing (expelled), each with the instant its first fault reached it."""
    first = {}
    for _a, p, _pid, t in parsed.injected:
        first.setdefault(p, t)
    lost = [(first[p], p) for p, r in role_of.items()
            if r != "resumed" or not survivor_ok(plan, parsed.procs[p])]
    return sorted(lost)


def majority_lost(plan, parsed, role_of):
    """Whether some epoch lost its strict majority, counted as the library's agreement
    counts voters (src/recovery/agreement.h): every rank and hot spare of the epoch. A
    rebuild that completed between two faults starts a new epoch whose voters are the
    processes alive then."""
    rebuilds = sorted(t for pr in parsed.procs.values() if pr.index not in role_of
                      for t in pr.rebuilt)
    lost = lost_processes(plan, parsed, role_of)
    if not lost:
        return ""
    # A survivor that finished its run and left in order before the others agreed is gone
    # too: the agreement cannot tell it from a silent member, and it no longer answers
    # (seed 126: rank 1 done, then rank 2 killed during rank 0's last op, 2 of 4 left).
    # It may leave after the fault, before anyone noticed (seed 10027: rank 0 stopped
    # during the last reduce, whose chain ranks 1 and 2 had passed; they left while the
    # silence ran, so 3 of 6 remained): what counts is leaving (its "leaving in order"
    # line, else its verdict) before the first detection after the last fault, or the
    # fault itself where none was logged.
    last_fault = lost[-1][0]
    seen = [pr.failure_seen for p, pr in parsed.procs.items()
            if p not in role_of and pr.failure_seen is not None and pr.failure_seen >= last_fault]
    cutoff = min(seen) if seen else last_fault

    def departure(pr):
        return min(t for t in (pr.left_at, pr.verdict_at) if t is not None)

    left = [(departure(pr), p) for p, pr in parsed.procs.items()
            if p not in role_of and pr.verdict == "PASS" and pr.verdict_at is not None
            and departure(pr) < cutoff]
    voters = alive = plan.procs
    previous = None
    for when, _p in sorted(lost + left):
        if previous is not None and any(previous < t < when for t in rebuilds):
            voters = alive
        alive -= 1
        previous = when
        if 2 * alive <= voters:
            return f"{voters - alive} of the {voters} processes of an epoch lost"
    return ""


def failure_allowed(plan, parsed, role_of):
    """'' when a clean failure is not allowed, else why it is (docs/chaos.md)."""
    lost = [p for _t, p in lost_processes(plan, parsed, role_of)]
    why = majority_lost(plan, parsed, role_of)
    if why:
        return f"the majority is lost ({why})"
    if rank0_lost_in_init(parsed, role_of):
        return "rank 0 was lost during init"
    if any(p < plan.nranks for p in lost) and not plan.recover:
        return "no spares and no shrink (no recovery)"
    return ""


# --- the outcome ----------------------------------------------------------------------------

@dataclasses.dataclass
class Verdict:
    outcome: str
    reason: str
    detection_ms: float = None
    recovery_ms: float = None
    timing: str = ""           # perf | log | ""
    during_init: bool = False  # the first fault came before rank 0 finished init
    kills: int = 0
    mid_transfer_kills: int = 0
    ucx_complaints: int = 0  # UCX WARN/ERROR lines from processes that were not victims
    notes: list = dataclasses.field(default_factory=list)

    @property
    def defect(self):
        return self.outcome in DEFECTS


def classify(plan, lines, rc, backstop=False):
    parsed = parse(lines, plan.procs, plan.nranks)
    parsed.backstop = parsed.backstop or backstop
    role_of = roles(parsed)
    survivors = [pr for p, pr in sorted(parsed.procs.items()) if p not in role_of]
    verdict = _outcome(plan, parsed, role_of, survivors, rc)
    verdict.during_init = fault_in_init(parsed)
    _add_timing(verdict, parsed, survivors)
    _add_mid_transfer(verdict, parsed, survivors)
    verdict.ucx_complaints = sum(pr.ucx_complaints for pr in survivors)
    for p, r in sorted(role_of.items()):
        if r in ("resumed", "cut") and crashed(parsed.procs[p]):
            verdict.notes.append(f"{r} victim {p} died of {end_state(parsed.procs[p])[-1]}")
    return verdict


def _outcome(plan, parsed, role_of, survivors, rc):
    if rc is None or rc == 125 or parsed.launcher_errors:
        why = "; ".join(parsed.launcher_errors) or f"ftccl_run exit status {rc}"
        return Verdict("harness_error", why)
    # 127: ftccl_run could not execute the program (a build in progress, a wrong --build).
    unexecuted = [pr.index for pr in parsed.procs.values() if end_state(pr) == ("exit", 127)]
    if unexecuted:
        return Verdict("harness_error",
                       f"process(es) {unexecuted} could not be executed (exit 127)")
    wrong = [pr for pr in parsed.procs.values() if pr.wrong > 0 or (
        pr.verdict == "FAIL" and GENERIC_FAIL in pr.verdict_reason and not pr.errors)]
    if wrong:
        pr = wrong[0]
        return Verdict("wrong_result", f"process {pr.index}: " +
                       (pr.wrong_lines[0] if pr.wrong_lines else pr.verdict_reason))
    dead = [pr for pr in survivors if crashed(pr)]
    if dead:
        pr = dead[0]
        why = f"process {pr.index} (not a fault target) {pr.end}"
        if pr.crash_lines:
            why += f": {pr.crash_lines[0]}"
        return Verdict("collateral_death", why)
    hung = _hung(plan, parsed, role_of, survivors)
    if hung:
        return Verdict("hang", hung)
    if parsed.injected and not survivors:
        # Every process was faulted (two stops on a 2-rank job): nothing was left to
        # recover, and ftccl_run ends stopped victims once no one else runs.
        return Verdict("failed_clean", "every process was a fault target "
                       "(allowed: the majority is lost)")
    failing = [pr for pr in survivors if not survivor_ok(plan, pr)]
    if failing:
        return _failure(plan, parsed, role_of, failing)
    if not parsed.injected:
        return Verdict("not_injected", "every fault came after the job had ended")
    return Verdict("recovered", f"{len(survivors)} survivor(s) passed")


def _hung(plan, parsed, role_of, survivors):
    """'' unless someone who should have ended by itself did not."""
    lingering = [pr.index for pr in survivors if end_state(pr)[0] in ("running", "launcher")]
    # A cut-off victim lives on and must leave (expelled) by itself; a stopped or resumed
    # one is ended by ftccl_run once everyone else is done.
    lingering += [p for p, r in role_of.items()
                  if r == "cut" and end_state(parsed.procs[p])[0] in ("running", "launcher")]
    when = " (the fault came during init)" if fault_in_init(parsed) else ""
    if parsed.backstop:
        return (f"ftccl_run did not end by itself; processes still running: "
                f"{sorted(lingering)}{when}")
    if parsed.timeout_running is not None or lingering:
        who = parsed.timeout_running if parsed.timeout_running is not None else lingering
        return (f"no verdict within the bound (ftccl_run --timeout): still running "
                f"{sorted(who)}{when}")
    return ""


def _failure(plan, parsed, role_of, failing):
    pr = failing[0]
    why = (f"process {pr.index}: " + (f"FAIL {pr.verdict_reason}" if pr.verdict == "FAIL" else
           (pr.errors[0] if pr.errors else pr.end or "no verdict")))
    if fault_in_init(parsed):
        why += " (the fault came during init)"
    silent = [f.index for f in failing if not clear_error(f)]
    if silent:
        return Verdict("failed_clean_not_allowed",
                       f"process(es) {silent} failed without a clear error; {why}")
    allowed = failure_allowed(plan, parsed, role_of)
    if allowed:
        return Verdict("failed_clean", f"{why} (allowed: {allowed})")
    return Verdict("failed_clean_not_allowed", why)


def _add_timing(verdict, parsed, survivors):
    """Detection and recovery in ms after the first fault. The perf tools' own numbers
    (PERF_VERDICT, '# Fault:') when they have them (>= 0); else from the logs: the first
    survivor's failure notice and the last survivor's rebuild or activation, against the
    fault instant (ftccl_run's injection report, or our own link cut)."""
    det = [p.detection_ms for p in survivors if p.detection_ms is not None and p.detection_ms >= 0]
    rec = [p.recovery_ms for p in survivors if p.recovery_ms is not None and p.recovery_ms >= 0]
    if parsed.fault_summary:
        if not det and parsed.fault_summary[0] >= 0:
            det = [parsed.fault_summary[0]]
        if not rec and parsed.fault_summary[2] >= 0:
            rec = [parsed.fault_summary[2]]
    if det or rec:
        verdict.timing = "perf"
        verdict.detection_ms = min(det) if det else None
        verdict.recovery_ms = max(rec) if rec else None
        return
    if not parsed.injected:
        return
    t0 = parsed.injected[0][3]
    seen = [p.failure_seen for p in survivors if p.failure_seen is not None]
    rebuilt = [max(p.rebuilt) for p in survivors if p.rebuilt]
    if seen:
        verdict.timing = "log"
        verdict.detection_ms = round(max(0.0, min(seen) - t0) * 1e3, 2)
    if rebuilt and verdict.outcome == "recovered":
        verdict.timing = "log"
        verdict.recovery_ms = round(max(0.0, max(rebuilt) - t0) * 1e3, 2)


def _add_mid_transfer(verdict, parsed, survivors):
    """A kill is mid-transfer when a survivor logged transfers outstanding with the
    victim's pid at revoke (the library's 'mid-transfer:' line)."""
    victims = {pid for a, _p, pid, _t in parsed.injected if a == "kill"}
    named = {pid for pr in survivors for pid in pr.mid_transfer}
    verdict.kills = len(victims)
    verdict.mid_transfer_kills = len(victims & named)
