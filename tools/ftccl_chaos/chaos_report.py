"""The campaign summary: outcome counts per fault kind, mid-transfer kills, and detection
and recovery percentiles, from the records in DIR/results.jsonl."""

import json
import math
import os

from chaos_classify import DEFECTS, OUTCOMES
from chaos_plan import KINDS

# Short column heads, in OUTCOMES order.
HEADS = {"recovered": "recov", "not_injected": "noinj", "failed_clean": "fclean",
         "failed_clean_not_allowed": "FCLEAN!", "collateral_death": "COLLAT!",
         "wrong_result": "WRONG!", "hang": "HANG!", "harness_error": "HARNESS!"}


def load_records(out):
    """Every record of DIR/results.jsonl; the last one wins for a seed run twice. A line
    cut short by an interrupted write is skipped (its seed then runs again)."""
    path = os.path.join(out, "results.jsonl")
    by_seed = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                by_seed[record["seed"]] = record
    return [by_seed[s] for s in sorted(by_seed)]


def percentile(values, q):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100.0 * len(ordered)) - 1)]


def fmt_ms(value):
    return "-" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.1f}")


def summary_rows(records):
    kinds = [k for k in KINDS if any(r["kind"] == k for r in records)]
    rows = []
    for kind in kinds + ["all"]:
        mine = [r for r in records if kind in ("all", r["kind"])]
        det = [r["detection_ms"] for r in mine if r["detection_ms"] is not None]
        rec = [r["recovery_ms"] for r in mine
               if r["recovery_ms"] is not None and r["outcome"] == "recovered"]
        rows.append({"kind": kind, "runs": len(mine),
                     "in_init": sum(bool(r.get("during_init")) for r in mine),
                     "outcomes": {o: sum(r["outcome"] == o for r in mine) for o in OUTCOMES},
                     "kills": sum(r["kills"] for r in mine),
                     "mid_transfer_kills": sum(r["mid_transfer_kills"] for r in mine),
                     "detection_p50": percentile(det, 50), "detection_p99": percentile(det, 99),
                     "recovery_p50": percentile(rec, 50), "recovery_p99": percentile(rec, 99)})
    return rows


def format_summary(records):
    if not records:
        return "no runs recorded"
    rows = summary_rows(records)
    used = [o for o in OUTCOMES if rows[-1]["outcomes"][o] or o in ("recovered", "failed_clean")]
    heads = ["kind", "runs", "init"] + [HEADS[o] for o in used] + [
        "mid/kills", "det p50", "det p99", "rec p50", "rec p99"]
    table = [heads]
    for row in rows:
        counts = [str(row["outcomes"][o]) for o in used]
        table.append([row["kind"], str(row["runs"]), str(row["in_init"])] + counts + [
            f"{row['mid_transfer_kills']}/{row['kills']}", fmt_ms(row["detection_p50"]),
            fmt_ms(row["detection_p99"]), fmt_ms(row["recovery_p50"]), fmt_ms(row["recovery_p99"])])
    widths = [max(len(r[i]) for r in table) for i in range(len(heads))]
    lines = ["", "chaos summary: runs per fault kind and outcome (! = defect); init = runs",
             "whose first fault came before every rank had finished init; mid/kills = kills",
             "that caught a survivor with transfers outstanding to the victim; detection and",
             "recovery in ms after the first fault (recovery: recovered runs only), p50/p99:"]
    for i, row in enumerate(table):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0 or i == len(table) - 2:
            lines.append("  ".join("-" * w for w in widths))
    noisy = [r for r in records if r.get("ucx_complaints")]
    lines.append(f"UCX WARN/ERROR lines from survivors: {len(noisy)} run(s)"
                 + (": seeds " + ",".join(str(r["seed"]) for r in noisy[:20]) if noisy else ""))
    flaky = [r for r in records if r.get("intermittent")]
    for r in flaky:
        first = r["first_attempt"]
        lines.append(f"intermittent: seed {r['seed']} {r['kind']} ended in {first['outcome']} "
                     f"once, then {r['outcome']}: {first['reason'][:200]}"
                     + (f" (log {first['log']})" if first.get("log") else ""))
    lines += defect_lines(records)
    return "\n".join(lines)


def defect_lines(records):
    bad = [r for r in records if r["outcome"] in DEFECTS]
    if not bad:
        return ["no defects"]
    out = [f"{len(bad)} defect(s):"]
    for r in bad:
        reason = r["reason"] if len(r["reason"]) <= 300 else r["reason"][:297] + "..."
        out.append(f"  seed {r['seed']} {r['kind']} -> {r['outcome']}: {reason}")
        out.append(f"      replay: {r['replay']}" + (f"   log: {r['log']}" if r.get("log") else ""))
    return out
