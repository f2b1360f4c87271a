#!/usr/bin/env python3
"""ftccl_top: watch the per-rank stats files of a running ftccl job.

Every rank of every communicator appends one JSON line per FTCCL_STATS_INTERVAL_MS to
FTCCL_STATS_FILE (schema v1: interval busbw, wait per op, progress, per-peer link stats and
the library's own straggler and slow-link verdicts). This tool reads those files, keeps the
newest line of each rank of the newest epoch of each communicator, and shows per rank and
per link what is slow, stuck or gone:

  STRAGGLER  named in another rank's "stragglers" (the library's verdict), or its wait per op
             far below the other ranks' median (it arrives late, so it waits less)
  SLOW LINK  named in a "slow_links", or "link_degraded"
  HANG       has not reached the op that other ranks have been stuck in for --hang-ms
  STALE      its newest line is over 3 of its intervals behind the communicator's newest
  LEFT       its communicator was destroyed ("final": true)

Ops are numbered as the library's messages number them, from 0: a rank inside op N has
started N + 1 collectives ("started" = N + 1); one that finished op N has "done" = N + 1.
Exit status: 0; 1 when no stats line was found; 2 on bad usage.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

DEFAULT_INTERVAL_MS = 1000.0  # the library's default FTCCL_STATS_INTERVAL_MS
STALE_INTERVALS = 3
WAIT_GAP_MIN_MS = 5.0  # the own straggler check: gap to the median > max(5 ms, half of it)
WAIT_GAP_FRACTION = 0.5
CLEAR_SCREEN = "\033[H\033[2J\033[3J"
NUMERIC_FIELDS = ("time", "epoch", "rank", "nranks")


class StatsReader:
    """Reads the new complete lines of the stats files. Paths are expanded again on each
    poll, so files created later are picked up."""

    def __init__(self, paths):
        self.paths = paths
        self.offsets = {}  # file -> offset after its last complete line

    def files(self):
        found = {}  # real path -> name: a file named twice (a dir and a glob) is read once
        for path in self.paths:
            for match in [path] if os.path.exists(path) else sorted(glob.glob(path)):
                inside = sorted(glob.glob(os.path.join(match, "*.jsonl")))
                for name in inside if os.path.isdir(match) else [match]:
                    found.setdefault(os.path.realpath(name), name)
        return list(found.values())

    def poll(self):
        for path in self.files():
            yield from self._new_records(path)

    def _new_records(self, path):
        offset = self.offsets.get(path, 0)
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size < offset:
                    offset = 0  # truncated or replaced: start over
                f.seek(offset)
                data = f.read()
        except OSError:
            return  # vanished or unreadable: try again on the next poll
        # A last line without its newline is still being written: leave it for later.
        end = data.rfind(b"\n") + 1
        self.offsets[path] = offset + end
        for raw in data[:end].splitlines():
            try:
                record = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            if (isinstance(record, dict) and "comm" in record and
                    all(isinstance(record.get(k), (int, float)) for k in NUMERIC_FIELDS)):
                yield record


class CommState:
    """What is known of one communicator: its newest epoch and the latest line per rank."""

    def __init__(self, comm, epoch):
        self.comm, self.epoch = comm, epoch
        self.lines = {}  # rank -> newest line (hot spares, rank -1, run no collectives)
        self.history = {}  # rank -> [(time, busbw_gbps, wait_ms_per_op)], for --plot
        self.straggler_marks = []  # (time, rank named as a straggler), for --plot


class Collector:
    """The newest epoch of each communicator, from lines read in any order."""

    def __init__(self, comm_filter=None, keep_history=False):
        self.comm_filter = comm_filter
        self.keep_history = keep_history
        self.comms = {}
        self.lines_seen = 0

    def add_all(self, records):
        for line in records:
            self.add(line)

    def add(self, line):
        comm = str(line["comm"])
        if self.comm_filter is not None and comm != self.comm_filter:
            return
        self.lines_seen += 1
        state = self.comms.get(comm)
        if state is None or line["epoch"] > state.epoch:
            state = self.comms[comm] = CommState(comm, line["epoch"])  # rebuilt: ranks renumbered
        if line["epoch"] < state.epoch or line["rank"] < 0:
            return
        old = state.lines.get(line["rank"])
        if old is None or line["time"] >= old["time"]:
            state.lines[line["rank"]] = line
        if self.keep_history:
            interval = line.get("interval") or {}
            if "busbw_gbps" in interval:
                state.history.setdefault(line["rank"], []).append(
                    (line["time"], interval["busbw_gbps"], wait_ms_per_op(interval)))
            state.straggler_marks += [(line["time"], s["rank"]) for s in line.get("stragglers", [])]


# ---------------------------------------------------------------------------- analysis

def wait_ms_per_op(interval):
    wait_us = interval.get("wait_us_per_op")  # absent when no collective ended in the interval
    return None if wait_us is None else wait_us / 1000.0


def add_flag(entry, flag, detail):
    if flag not in entry["flags"]:
        entry["flags"].append(flag)
    entry["flag_details"].setdefault(flag, []).append(detail)


def progress_text(p, left):
    counts = "%s/%s " % (p.get("done", "?"), p.get("started", "?"))
    if left or not p.get("in_op"):
        return "left" if left else counts + "idle " + fmt_ms(p.get("state_ms"))
    return counts + "in op %s (%s) step %s for %s" % (
        p.get("started", 0) - 1, p.get("op", "?"), p.get("step", "?"), fmt_ms(p.get("state_ms")))


def worst_link(peers):
    """The peer this rank receives from slowest, and the largest rtt p99 over all peers.

    The rate while in use when the library timed that link's transfers (16 KiB and
    more), else the traffic over the interval's wall time of the links that carried any."""
    rate_kind = "in use"
    measured = [(p, p["recv_gbps"]) for p in peers if p.get("recv_gbps") is not None]
    if not measured:
        rate_kind = "traffic"
        measured = [(p, p["recv_traffic_gbps"]) for p in peers
                    if (p.get("recv_traffic_gbps") or 0) > 0]
    p99s = [p["rtt_ms"]["p99"] for p in peers if "p99" in (p.get("rtt_ms") or {})]
    if not measured and not p99s:
        return None
    slowest, rate = min(measured, key=lambda m: m[1]) if measured else ({}, None)
    return {"peer": slowest.get("rank"), "recv_gbps": rate,
            "rate_kind": rate_kind if measured else None,
            "max_rtt_p99_ms": max(p99s) if p99s else None}


def rank_summary(line, newest_time):
    interval = line.get("interval") or {}
    progress = dict(line.get("progress") or {})
    left = bool(line.get("final"))
    progress["text"] = progress_text(progress, left)
    seconds = (interval.get("ms") or 0) / 1000.0
    behind_s = newest_time - line["time"]
    summary = {
        "rank": line["rank"], "host": line.get("host"), "pid": line.get("pid"),
        "time": line["time"], "behind_s": round(behind_s, 3),
        "busbw_gbps": interval.get("busbw_gbps"),
        "ops_per_s": round(interval["ops"] / seconds, 3) if seconds and "ops" in interval else None,
        "wait_ms_per_op": wait_ms_per_op(interval),
        "total_busbw_gbps": (line.get("total") or {}).get("busbw_gbps"),
        "progress": progress, "worst_link": worst_link(line.get("peers", [])),
        "left": left, "flags": [], "flag_details": {},
    }
    if left:
        add_flag(summary, "LEFT", "final line written")
    elif behind_s > STALE_INTERVALS * (interval.get("ms") or DEFAULT_INTERVAL_MS) / 1000.0:
        add_flag(summary, "STALE", "%s behind" % fmt_ms(behind_s * 1000))
    return summary


def library_stragglers(lines):
    named = {}
    for reporter, line in sorted(lines.items()):
        for s in line.get("stragglers", []):
            entry = named.setdefault(s["rank"], {"rank": s["rank"], "host": s.get("host"),
                                                 "flagged_by": [], "late_ms": None,
                                                 "reason": "library"})
            entry["flagged_by"].append(reporter)
            if s.get("late_ms") is not None:  # the worst report
                entry["late_ms"] = max(s["late_ms"], entry["late_ms"] or s["late_ms"])
    return [named[rank] for rank in sorted(named)]


def wait_below_median(ranks):
    """The tool's own check: a late rank waits less for the others than they wait for it."""
    waits = {r: s["wait_ms_per_op"] for r, s in ranks.items()
             if s["wait_ms_per_op"] is not None and not s["left"]}
    found = []
    for rank, own in sorted(waits.items()):
        others = [w for r, w in waits.items() if r != rank]
        median = statistics.median(others) if others else own
        if median - own > max(WAIT_GAP_MIN_MS, WAIT_GAP_FRACTION * median):
            found.append({"rank": rank, "host": ranks[rank]["host"], "flagged_by": [],
                          "late_ms": round(median - own, 3), "reason": "wait_below_median"})
    return found


def link_summaries(lines):
    """Every rank -> peer link, flagged ones first, and the slow-link verdicts."""
    links, verdicts = [], []
    for rank, line in sorted(lines.items()):
        named_slow = {s["rank"]: s for s in line.get("slow_links", [])}
        peers = {p["rank"]: p for p in line.get("peers", [])}
        for peer in sorted(set(peers) | set(named_slow)):
            p = peers.get(peer, {})
            link = {"rank": rank, "peer": peer, "peer_host": p.get("host"),
                    "send_gbps": p.get("send_gbps"), "recv_gbps": p.get("recv_gbps"),
                    "send_traffic_gbps": p.get("send_traffic_gbps"),
                    "recv_traffic_gbps": p.get("recv_traffic_gbps"),
                    "rtt_ms": p.get("rtt_ms"), "late_ms": p.get("late_ms"),
                    "flags": [], "flag_details": {}}
            if peer in named_slow:
                s = named_slow[peer]
                add_flag(link, "SLOW LINK", "rtt %s ms vs baseline %s ms" % (
                    fmt(s.get("rtt_ms")), fmt(s.get("baseline_ms"))))
                verdicts.append({"rank": rank, "peer": peer, "rtt_ms": s.get("rtt_ms"),
                                 "baseline_ms": s.get("baseline_ms"), "reason": "library"})
            if p.get("link_degraded"):
                add_flag(link, "SLOW LINK", "degraded")
                verdicts.append({"rank": rank, "peer": peer, "reason": "link_degraded"})
            links.append(link)
    links.sort(key=lambda l: (not l["flags"], l["rank"], l["peer"]))
    return links, verdicts


def diagnose_hang(ranks, hang_ms):
    """When ranks have sat in an op for over hang_ms: who has not even reached it."""
    active = [s for s in ranks.values() if not s["left"]]
    stuck = [s for s in active if s["progress"].get("in_op")
             and (s["progress"].get("state_ms") or 0) > hang_ms]
    if not stuck:
        return None
    op = max(s["progress"].get("started", 0) for s in stuck) - 1

    def brief(s):
        p = s["progress"]
        in_op = bool(p.get("in_op"))
        at_op = p.get("started", 0) - 1 if in_op else p.get("done", 0) - 1
        return {"rank": s["rank"], "host": s["host"], "started": p.get("started"),
                "done": p.get("done"), "in_op": in_op, "at_op": at_op, "op": p.get("op"),
                "step": p.get("step"), "state_ms": p.get("state_ms")}
    inside = [brief(s) for s in active
              if s["progress"].get("in_op") and s["progress"].get("started") == op + 1]
    return {"op": op, "kind": inside[0]["op"], "hang_ms": hang_ms, "inside": inside,
            "not_reached": [brief(s) for s in active if s["progress"].get("started", 0) <= op]}


def straggler_text(s):
    if s["reason"] == "library":
        late = ", late %s ms" % fmt(s["late_ms"], 1) if s["late_ms"] is not None else ""
        return "by %s%s" % (",".join(map(str, s["flagged_by"])), late)
    return "wait/op %s ms below median" % fmt(s["late_ms"], 1)


def analyse(state, hang_ms):
    """The view of one communicator, as --json prints it."""
    newest = max(state.lines.values(), key=lambda line: line["time"])
    ranks = {r: rank_summary(line, newest["time"]) for r, line in sorted(state.lines.items())}
    stragglers = library_stragglers(state.lines) + wait_below_median(ranks)
    for s in stragglers:
        if s["rank"] in ranks:
            add_flag(ranks[s["rank"]], "STRAGGLER", straggler_text(s))
    links, slow_links = link_summaries(state.lines)
    for link in links:
        if link["flags"]:
            add_flag(ranks[link["rank"]], "SLOW LINK", "to %s" % link["peer"])
    hang = diagnose_hang(ranks, hang_ms)
    for s in hang["not_reached"] if hang else []:
        add_flag(ranks[s["rank"]], "HANG", "not reached op %s" % hang["op"])
    busbws = [s["busbw_gbps"] for s in ranks.values() if s["busbw_gbps"] is not None]
    return {
        "comm": state.comm, "epoch": state.epoch, "nranks": newest["nranks"],
        "reporting": len(ranks), "missing": [r for r in range(newest["nranks"]) if r not in ranks],
        "newest_time": newest["time"],
        "median_busbw_gbps": statistics.median(busbws) if busbws else None,
        "ranks": list(ranks.values()), "links": links, "stragglers": stragglers,
        "slow_links": slow_links, "hang": hang,
    }


# ---------------------------------------------------------------------------- output

def fmt(value, digits=2):
    return "-" if value is None else "%.*f" % (digits, value)


def fmt_ms(ms):
    if ms is None:
        return "?"
    for limit, divisor, unit in ((1e3, 1, "ms"), (120e3, 1e3, "s"), (7200e3, 60e3, "min"),
                                 (172800e3, 3600e3, "h")):
        if abs(ms) < limit:
            return "%.*f %s" % (0 if unit == "ms" else 1, ms / divisor, unit)
    return "%.1f d" % (ms / 86400e3)


def format_rows(header, rows, right_aligned):
    cells = [[str(c) for c in row] for row in [header] + rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i in right_aligned else c.ljust(w)
                      for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in cells]


def flags_text(entry):
    return "  ".join("%s (%s)" % (f, "; ".join(entry["flag_details"][f])) for f in entry["flags"])


def render_comm(report):
    missing = " (missing %s)" % ",".join(map(str, report["missing"])) if report["missing"] else ""
    median = report["median_busbw_gbps"]
    out = ["comm %s  epoch %s  nranks %s  reporting %d/%s%s  newest %s (%s ago)  median busbw %s"
           % (report["comm"], report["epoch"], report["nranks"], report["reporting"],
              report["nranks"], missing,
              time.strftime("%H:%M:%S", time.localtime(report["newest_time"])),
              fmt_ms((time.time() - report["newest_time"]) * 1000),
              "-" if median is None else "%.2f GB/s" % median)]
    rows = []
    for s in report["ranks"]:
        w = s["worst_link"]
        link = "-" if not w else "r%s %s GB/s%s, p99 %s ms" % (
            "-" if w["peer"] is None else w["peer"], fmt(w["recv_gbps"]),
            " " + w["rate_kind"] if w["rate_kind"] else "", fmt(w["max_rtt_p99_ms"]))
        rows.append([s["rank"], s["host"], s["pid"], fmt(s["busbw_gbps"]), fmt(s["ops_per_s"], 1),
                     fmt(s["wait_ms_per_op"]), s["progress"]["text"], link, flags_text(s)])
    out += format_rows(["rank", "host", "pid", "busbw GB/s", "ops/s", "wait/op ms", "progress",
                        "worst link (recv, max rtt p99)", "FLAGS"], rows, (0, 2, 3, 4, 5))
    out += render_hang(report["hang"])
    rows = []
    for l in report["links"]:
        rtt = l["rtt_ms"] or {}
        rows.append(["%s->%s" % (l["rank"], l["peer"]),
                     "%s/%s" % (fmt(l["send_traffic_gbps"]), fmt(l["recv_traffic_gbps"])),
                     "%s/%s" % (fmt(l["send_gbps"]), fmt(l["recv_gbps"])),
                     "/".join(fmt(rtt.get(k)) for k in ("min", "avg", "p99")), fmt(l["late_ms"], 1),
                     flags_text(l)])
    if rows:
        out += [""] + format_rows(["link", "traffic out/in GB/s", "in use out/in GB/s",
                                   "rtt min/avg/p99 ms", "peer late ms", "FLAGS"], rows, (1, 2, 4))
    return out


def render_hang(hang):
    if hang is None:
        return []
    out = ["HANG suspect: op %s (%s) stuck for over %s" % (
        hang["op"], hang["kind"], fmt_ms(hang["hang_ms"]))]
    for s in hang["not_reached"]:
        where = "in it, step %s" % s["step"] if s["in_op"] else "idle"
        out.append("  rank %s (%s): not reached op %s (at op %s, %s %s)" % (
            s["rank"], s["host"], hang["op"], s["at_op"], where, fmt_ms(s["state_ms"])))
    out.append("  inside op %s: %s" % (hang["op"], ", ".join(
        "rank %s step %s (%s)" % (s["rank"], s["step"], fmt_ms(s["state_ms"]))
        for s in hang["inside"])))
    return out


def render_view(reports):
    return "".join("\n".join(render_comm(report)) + "\n\n" for report in reports)


def draw_plot(collector, png):
    """Busbw per rank over time, and wait per op below it; red points: flagged stragglers."""
    series, marks = [], set()
    for state in sorted(collector.comms.values(), key=lambda s: s.comm):
        for rank, samples in sorted(state.history.items()):
            label = "rank %s" % rank if len(collector.comms) == 1 else "%s r%s" % (state.comm, rank)
            series.append((label, sorted(samples)))
        for t, rank in state.straggler_marks:  # on the straggler's own sample nearest in time
            if state.history.get(rank):
                marks.add(min(state.history[rank], key=lambda s: abs(s[0] - t)))
    if not series:
        return fail("no \"interval\" fields to plot")
    if shutil.which("gnuplot") is None:
        return fail("gnuplot not found: no %s" % png)
    # One script on gnuplot's stdin, data inline: no temp files, nothing for a shell to expand.
    blocks = [samples for _, samples in series] + ([sorted(marks)] if marks else [])
    t0 = min(samples[0][0] for samples in blocks)
    data = "$timeline << EOD\n%sEOD\n" % "\n\n".join(
        "".join("%.3f %s %s\n" % (t - t0, busbw, "?" if wait is None else wait)
                for t, busbw, wait in samples) for samples in blocks)
    script = data + plot_script(png, [label for label, _ in series], bool(marks), t0)
    result = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        return fail("gnuplot failed: %s" % result.stderr.strip())
    return 0


def plot_script(png, labels, with_marks, t0):
    def quote(s):  # gnuplot's single-quoted strings double their quotes
        return "'" + str(s).replace("'", "''") + "'"

    def plot(column):
        terms = ["$timeline index %d using 1:%d with linespoints title %s" % (i, column, quote(l))
                 for i, l in enumerate(labels)]
        if with_marks:
            terms.append("$timeline index %d using 1:%d with points pt 7 ps 1.5 lc rgb 'red' "
                         "title 'flagged straggler'" % (len(labels), column))
        return "plot " + ", ".join(terms) + "\n"
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0))
    return ("set terminal pngcairo size 1200,900\nset output %s\n" % quote(png) +
            "set datafile missing '?'\nset grid\nset key outside right\n"
            "set yrange [0:*]\nset offsets 0, 0, graph 0.1, 0\n"
            "set multiplot layout 2,1\nset xlabel %s\n" % quote("s since " + start) +
            "set ylabel 'busbw GB/s'\nset title 'interval busbw per rank'\n" + plot(2) +
            "set ylabel 'wait ms/op'\nset title 'wait per op (a late rank waits less)'\n" +
            plot(3) + "unset multiplot\n")


# ---------------------------------------------------------------------------- main

def fail(message):
    print("ftccl_top: " + message, file=sys.stderr)
    return 1


def reports_of(collector, hang_ms):
    return [analyse(state, hang_ms) for _, state in sorted(collector.comms.items())
            if state.lines]


def nothing_found(args, reader):
    comm = " of comm %s" % args.comm if args.comm else ""
    return fail("no stats line%s found in %s (%d files read)" % (
        comm, " ".join(args.paths), len(reader.offsets)))


def live(args, reader, collector):
    while True:
        collector.add_all(reader.poll())
        text = "ftccl_top  %s  every %g s  (Ctrl-C to quit)\n\n" % (
            time.strftime("%H:%M:%S"), args.interval)
        if collector.lines_seen:
            text += render_view(reports_of(collector, args.hang_ms))
        else:
            text += "waiting for stats lines in %s\n" % " ".join(args.paths)
        lines = text.split("\n")
        height = shutil.get_terminal_size().lines - 1
        if sys.stdout.isatty() and len(lines) > height:  # keep the top of the view on screen
            lines = lines[:height - 1] + ["... %d more lines" % (len(lines) - height + 1)]
        sys.stdout.write(CLEAR_SCREEN + "\n".join(lines))
        sys.stdout.flush()
        time.sleep(args.interval)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="ftccl_top", description="Show the per-rank stats files of a running ftccl job.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="stats files, directories (their *.jsonl) or globs")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SEC",
                        help="refresh period of the live view (default 1)")
    parser.add_argument("--once", action="store_true", help="print one view and exit")
    parser.add_argument("--json", action="store_true", help="with --once: one JSON object")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the per-rank timeline and exit")
    parser.add_argument("--comm", metavar="ID", type=str.lower, help="only this communicator")
    parser.add_argument("--hang-ms", type=float, default=5000.0, metavar="MS",
                        help="in an op for longer than this is a hang suspect (default 5000)")
    args = parser.parse_args(argv)
    if args.json and not args.once:
        parser.error("--json needs --once")
    if args.interval <= 0 or args.hang_ms < 0:
        parser.error("--interval must be > 0 and --hang-ms >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Even when started with SIGINT ignored (a background job), Ctrl-C / kill -INT ends it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reader = StatsReader(args.paths)
    collector = Collector(args.comm, keep_history=bool(args.plot))
    try:
        if not args.once and not args.plot:
            live(args, reader, collector)
        collector.add_all(reader.poll())
    except KeyboardInterrupt:
        return 0 if collector.lines_seen else nothing_found(args, reader)
    if not collector.lines_seen:
        return nothing_found(args, reader)
    if args.plot:
        return draw_plot(collector, args.plot)
    reports = reports_of(collector, args.hang_ms)
    print(json.dumps({"comms": reports}, indent=1) + "\n" if args.json else render_view(reports),
          end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
