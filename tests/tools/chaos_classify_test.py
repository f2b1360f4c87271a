#!/usr/bin/env python3
"""Unit tests of ftccl_chaos's classifier and planner on synthetic outputs: each outcome
must be reachable and reached for the right reason, so that the classification cannot
silently pass everything. No processes are run.

usage: chaos_classify_test.py TOOL_DIR [--ci-seeds 1,2,3 --ci-max-ranks 5 --ci-max-bytes 4M]
With --ci-seeds it also checks that the CTest campaign's seed list covers every fault kind.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

ARGS = None
T0 = 1_800_000_000.0  # a fixed "now" for synthetic arrival times


def load_modules(tool_dir):
    sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
    sys.path.insert(0, tool_dir)
    global chaos_classify, chaos_plan, chaos_report
    import chaos_classify  # noqa: F401
    import chaos_plan  # noqa: F401
    import chaos_report  # noqa: F401


def plan(nranks=4, spares=1, recover=True, faults=(), kind="kill", tool="all_reduce_perf"):
    return chaos_plan.Plan(seed=1, kind=kind, tool=tool, nranks=nranks, spares=spares,
                           recover=recover, algo=None, nbytes=1024, iters=10, warmup=1,
                           blocking=False, netns=False,
                           faults=[chaos_plan.Fault(*f) for f in faults],
                           est_init_s=0.2, est_total_s=2.0)


def stamp(t):
    """A library log stamp (local time, as spdlog writes it) for wall-clock time t."""
    import datetime
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")


class Out:
    """Builds ftccl_run-style output lines with arrival times."""

    def __init__(self):
        self.lines = []
        self.t = T0

    def at(self, dt):
        self.t = T0 + dt
        return self

    def add(self, text):
        self.lines.append((self.t, text))
        return self

    def rank(self, p, text):
        return self.add(f"[{p}] {text}")

    def preamble(self):
        return self.rank(0, "#  Rank  0 Group  0 Pid   1000 on  vm device  - [cpu] ftccl 0.1.0")

    def injected(self, action, p, pid, rel):
        return self.add(f"ftccl_run: injected {action} on rank {p} (pid {pid}) at {rel:.3f} s")

    def verdict(self, p, ok, reason="", spare=False):
        who = "activated spare" if spare else "rank"
        tail = f": {reason}" if reason else ""
        word = "PASS" if ok else "FAIL"
        return self.rank(p, f"PERF_VERDICT rank={p} {word} {who}, rank {p} of 4, rebuilds 1, "
                            f"detection_ms -1.00, recovery_ms -1.00{tail}")

    def end(self, p, text):
        return self.add(f"ftccl_run: rank {p} (pid {1000 + p}) {text}")


NFP = "a failure with no --fault planned"


def kill_recovered(no_fault_planned=True):
    """4 ranks + 1 spare, rank 2 killed at 1 s; everyone else goes on."""
    o = Out().at(0.3).preamble().at(1.0).injected("kill", 2, 1002, 1.0)
    o.at(1.01).rank(1, f"{stamp(T0 + 1.008)} vm:1001 ftccl error [Health] rank 1: rank 2 "
                       "(host vm, pid 1002) failed: detected here through its health connection "
                       "closed (crash), 8.0 ms after its last sign of life")
    o.rank(1, f"{stamp(T0 + 1.009)} vm:1001 ftccl warning [Net] mid-transfer: rank 1 had 2 "
              "transfer(s) of 4096 bytes outstanding with rank 2 (pid 1002) at revoke")
    for p in (0, 1, 3):
        o.rank(p, f"{stamp(T0 + 1.02)} vm:100{p} ftccl warning [Recovery] rank {p}/4: rebuilt "
                  "into epoch 1 (1 failed, 1 replaced by spares, 0 spares left) in 1.0 ms")
    o.rank(4, f"{stamp(T0 + 1.021)} vm:1004 ftccl warning [Recovery] spare activated as rank 2/4")
    o.at(2.0)
    for p in (0, 1, 3):
        o.verdict(p, not no_fault_planned, NFP if no_fault_planned else "")
    o.verdict(4, not no_fault_planned, NFP if no_fault_planned else "", spare=True)
    code = 1 if no_fault_planned else 0
    for p in range(5):
        o.end(p, "killed on purpose (SIGKILL at 1.00 s)" if p == 2 else f"exited {code}")
    return o


class ClassifyTest(unittest.TestCase):
    def classify(self, p, o, rc=1):
        return chaos_classify.classify(p, o.lines, rc)

    def test_recovered_with_pass(self):
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), kill_recovered(False), rc=0)
        self.assertEqual(v.outcome, "recovered", v.reason)
        self.assertFalse(v.defect)

    def test_no_fault_planned_fail_counts_as_recovered(self):
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), kill_recovered(True))
        self.assertEqual(v.outcome, "recovered", v.reason)

    def test_no_fault_planned_with_wrong_values_is_wrong_result(self):
        o = kill_recovered(True)
        o.rank(3, "[rank 3] all_reduce_perf: float sum root -1 count 256 in-place: 5 wrong "
                  "elements, first at [3]: got 0x1 expected 0x2")
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), o)
        self.assertEqual(v.outcome, "wrong_result")
        self.assertTrue(v.defect)

    def test_no_fault_planned_with_ftccl_error_is_a_failure(self):
        o = kill_recovered(True)
        o.rank(3, "[rank 3] all_reduce_perf: ftcclCommDestroy failed: internal error (3): boom")
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), o)
        self.assertEqual(v.outcome, "failed_clean_not_allowed", v.reason)

    def test_wrong_column_in_table(self):
        o = kill_recovered(False)
        o.rank(0, "     1048576        262144     float     sum      -1   1181.4    0.89    1.33"
                  "      0    781.9    1.34    2.01      7")
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), o, rc=0)
        self.assertEqual(v.outcome, "wrong_result")

    def test_generic_fail_without_error_is_wrong_result(self):
        o = kill_recovered(False)
        o.verdict(3, False, "wrong values or an ftccl error (see above)")
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), o)
        self.assertEqual(v.outcome, "wrong_result")

    def test_abort_in_survivor_is_collateral_death(self):
        o = Out().at(0.3).preamble().at(1.0).injected("kill", 2, 1002, 1.0)
        o.rank(1, "[1796491025.411468] [vm:1001:0] cma_ep.c:81 UCX ERROR process_vm_readv(pid=1002"
                  " length=524288) returned -1: No such process")
        o.verdict(0, True).verdict(3, True).verdict(4, True, spare=True)
        for p, text in ((0, "exited 0"), (1, "died of signal 6 (SIGABRT, core dumped)"),
                        (2, "killed on purpose (SIGKILL at 1.00 s)"), (3, "exited 0"),
                        (4, "exited 0")):
            o.end(p, text)
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), o, rc=134)
        self.assertEqual(v.outcome, "collateral_death")
        self.assertIn("process 1", v.reason)

    def test_killed_victim_is_not_collateral(self):
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), kill_recovered(False), rc=0)
        self.assertNotEqual(v.outcome, "collateral_death")

    def test_timeout_is_hang(self):
        o = Out().at(0.3).preamble().at(1.0).injected("stop", 2, 1002, 1.0)
        o.at(34).add("ftccl_run: timeout after 34.000 s; ranks still running: 0 1 3 4; "
                     "killing them")
        for p in range(5):
            o.end(p, "stopped on purpose (SIGSTOP at 1.00 s); killed at the timeout" if p == 2
                  else "killed at the timeout")
        v = self.classify(plan(faults=[("stop", 2, 1.0)], kind="stop"), o, rc=124)
        self.assertEqual(v.outcome, "hang")
        self.assertIn("[0, 1, 3, 4]", v.reason)

    def test_backstop_is_hang(self):
        o = Out().at(0.3).preamble().at(1.0).injected("kill", 2, 1002, 1.0)
        o.at(50).add("chaos: backstop: ftccl_run still running 49 s after the start; ending it")
        v = chaos_classify.classify(plan(faults=[("kill", 2, 1.0)]), o.lines, -15, backstop=True)
        self.assertEqual(v.outcome, "hang")

    def test_cut_victim_that_never_leaves_is_hang(self):
        o = Out().at(0.3).preamble().at(1.0).add("chaos: linkcut on process 2 (link x) at 1.000 s")
        o.verdict(0, True).verdict(1, True).verdict(3, True).verdict(4, True, spare=True)
        o.at(34).add("ftccl_run: timeout after 34.000 s; ranks still running: 2; killing them")
        for p in range(5):
            o.end(p, "killed at the timeout" if p == 2 else "exited 0")
        v = self.classify(plan(faults=[("linkcut", 2, 1.0)], kind="linkcut"), o, rc=124)
        self.assertEqual(v.outcome, "hang")

    def test_expelled_cut_victim_is_fine(self):
        o = Out().at(0.3).preamble().at(1.0).add("chaos: linkcut on process 2 (link x) at 1.000 s")
        o.verdict(0, True).verdict(1, True).verdict(3, True).verdict(4, True, spare=True)
        o.verdict(2, False, "ftcclCommRebuild: cannot rebuild: expelled: only 1 of the 5 processes")
        for p in range(5):
            o.end(p, "exited 1" if p == 2 else "exited 0")
        v = self.classify(plan(faults=[("linkcut", 2, 1.0)], kind="linkcut"), o, rc=1)
        self.assertEqual(v.outcome, "recovered", v.reason)

    def test_resumed_victim_passing_with_wrong_data_is_wrong_result(self):
        o = Out().at(0.3).preamble().at(1.0).injected("stop", 2, 1002, 1.0)
        o.at(1.5).injected("cont", 2, 1002, 1.5)
        o.rank(2, "[rank 2] all_reduce_perf: float sum root -1 count 256 out-of-place: 1 wrong "
                  "elements, first at [0]: got 0x1 expected 0x2")
        o.verdict(2, True)
        for p in (0, 1, 3):
            o.verdict(p, True)
        for p in range(5):
            o.end(p, "exited 0")
        v = self.classify(plan(faults=[("stop", 2, 1.0), ("cont", 2, 1.5)], kind="stopcont"), o, 0)
        self.assertEqual(v.outcome, "wrong_result")

    def failed_run(self, p, victims, init_done=True, verdicts=True):
        o = Out()
        if init_done:
            o.at(0.3).preamble()
        o.at(1.0)
        for v in victims:
            o.injected("kill", v, 1000 + v, 1.0)
        for q in range(p.procs):
            if q in victims:
                continue
            o.rank(q, f"[rank {q}] all_reduce_perf: ftcclAllReduce failed: remote error (6): "
                      "rank 1 failed")
            if verdicts and p.recover:
                o.verdict(q, False, "ftcclCommRebuild: cannot rebuild")
        for q in range(p.procs):
            o.end(q, "killed on purpose (SIGKILL at 1.00 s)" if q in victims else "exited 1")
        return o

    def test_failure_without_recovery_is_allowed(self):
        p = plan(nranks=4, spares=0, recover=False, faults=[("kill", 1, 1.0)])
        v = self.classify(p, self.failed_run(p, [1]))
        self.assertEqual(v.outcome, "failed_clean", v.reason)

    def test_a_tool_refusing_a_shrunk_init_without_recovery_is_a_clear_error(self):
        # Seed 8220: two ranks stopped in init, the rendezvous dropped them, and the perf
        # tool (no spares, no --recover) refused the smaller communicator.
        p = plan(nranks=4, spares=0, recover=False, faults=[("stop", 1, 0.1)], kind="stop")
        o = Out().at(0.1).injected("stop", 1, 1001, 0.1).at(10.1)
        for q in (0, 2, 3):
            o.rank(q, f"[rank {q}] all_reduce_perf: communicator has 3 ranks, expected 4")
        for q in range(4):
            o.end(q, "stopped on purpose (SIGSTOP at 0.10 s); killed at the end, once the other "
                     "ranks were done" if q == 1 else "exited 1")
        v = self.classify(p, o)
        self.assertEqual(v.outcome, "failed_clean", v.reason)

    def test_failed_call_with_its_purpose_is_a_clear_error(self):
        o = Out().at(0.3).preamble().at(1.0).injected("kill", 2, 1002, 1.0)
        for p in (0, 1, 3):
            o.rank(p, f"[rank {p}] all_reduce_perf: ftcclAllReduce (barrier) failed: remote error "
                      "(a peer failed; the communicator is revoked) (6): rank 2 failed")
        for p in (0, 1, 3):
            o.end(p, "exited 1")
        o.end(2, "killed on purpose (SIGKILL at 1.00 s)")
        p = plan(spares=0, recover=False, faults=[("kill", 2, 1.0)])
        v = self.classify(p, o)
        self.assertTrue(chaos_classify.clear_error(chaos_classify.parse(o.lines, 4).procs[1]))
        self.assertNotIn("without a clear error", v.reason)

    def test_a_send_and_receive_that_failed_is_a_clear_error(self):
        o = Out().at(0.3).preamble().at(1.0).injected("kill", 0, 1000, 1.0)
        o.rank(1, "[rank 1] sendrecv_perf: ftcclSend/ftcclRecv failed: remote error (a peer "
                  "failed; the communicator is revoked) (6): group of 2 ops (rank 1)")
        self.assertTrue(chaos_classify.clear_error(chaos_classify.parse(o.lines, 2).procs[1]))

    def test_failure_with_a_spare_is_not_allowed(self):
        p = plan(nranks=4, spares=1, faults=[("kill", 1, 1.0)])
        v = self.classify(p, self.failed_run(p, [1]))
        self.assertEqual(v.outcome, "failed_clean_not_allowed", v.reason)
        self.assertTrue(v.defect)

    def test_failure_after_losing_the_majority_is_allowed(self):
        # 3 ranks + 1 spare = 4 voters; 2 lost at once: 2 of 4 alive is no strict majority.
        p = plan(nranks=3, spares=1, faults=[("kill", 0, 1.0), ("kill", 1, 1.0)], kind="double")
        v = self.classify(p, self.failed_run(p, [0, 1]))
        self.assertEqual(v.outcome, "failed_clean", v.reason)

    def test_majority_resets_after_a_rebuild(self):
        # 3 ranks + 1 spare; one kill, a completed rebuild, then another kill: epoch 1 has
        # 3 voters and keeps 2, a majority, so failing is a defect.
        p = plan(nranks=3, spares=1, faults=[("kill", 0, 1.0), ("kill", 1, 2.0)], kind="double")
        o = Out().at(0.3).preamble().at(1.0).injected("kill", 0, 1000, 1.0)
        o.rank(2, f"{stamp(T0 + 1.1)} vm:1002 ftccl warning [Recovery] rank 2/3: rebuilt into "
                  "epoch 1 (1 failed, 1 replaced by spares, 0 spares left) in 1.0 ms")
        o.at(2.0).injected("kill", 1, 1001, 2.0)
        for q in (2, 3):
            o.verdict(q, False, "ftcclCommRebuild: cannot rebuild")
        for q in range(4):
            o.end(q, "killed on purpose (SIGKILL at 1.00 s)" if q < 2 else "exited 1")
        v = self.classify(p, o)
        self.assertEqual(v.outcome, "failed_clean_not_allowed", v.reason)

    def test_a_rank_that_left_in_order_before_a_fault_counts_as_gone(self):
        # 3 ranks + 1 spare (seed 126): rank 1 finished and left, then rank 2 was killed
        # during rank 0's last op; 0 and the spare are 2 of 4, no strict majority. The
        # same failure with rank 1 leaving after the fault is a defect.
        for leaves_at, outcome in ((0.9, "failed_clean"), (1.5, "failed_clean_not_allowed")):
            p = plan(nranks=3, spares=1, faults=[("kill", 2, 1.0), ("kill", 1, 1.05)],
                     kind="during_rebuild")
            o = Out().at(0.3).preamble().at(leaves_at).verdict(1, True)
            o.at(1.0).injected("kill", 2, 1002, 1.0)
            o.add("ftccl_run: kill on rank 1 not injected: the rank had already ended")
            o.at(2.0)
            for q in (0, 3):
                o.verdict(q, False, "ftcclCommRebuild: cannot rebuild")
            for q in range(4):
                o.end(q, "killed on purpose (SIGKILL at 1.00 s)" if q == 2 else
                      "exited 0" if q == 1 else "exited 1")
            v = self.classify(p, o)
            self.assertEqual(v.outcome, outcome, f"left at {leaves_at}: {v.reason}")

    def test_ranks_that_left_after_the_fault_but_before_its_detection_count_as_gone(self):
        # 4 ranks + 2 spares (seed 10027): rank 0 stopped at 1.0 during the last reduce,
        # whose chain ranks 1 and 2 had passed; they left at 1.3 and 1.6 (their verdicts
        # came only at 3.3 and 4.2, after a 2 s flush toward the stopped rank), silence was
        # noticed at 2.1: 3 of 6 remained. Leaving after the detection is a defect.
        for leave, outcome in ((1.3, "failed_clean"), (2.5, "failed_clean_not_allowed")):
            p = plan(nranks=4, spares=2, faults=[("stop", 0, 1.0)], kind="stop")
            o = Out().at(0.3).preamble().at(1.0).injected("stop", 0, 1000, 1.0)
            for q, dt in ((1, leave), (2, leave + 0.3)):
                o.at(dt).rank(q, f"{stamp(T0 + dt)} vm:100{q} ftccl info [Health] rank {q}: "
                                 "leaving in order (ftcclCommDestroy), epoch 0")
                # The others stop watching it: that is not their own leave.
                o.rank(3, f"{stamp(T0 + dt)} vm:1003 ftccl info [Health] stopped watching "
                          "127.0.0.1:1: longest silence 1.0 ms, round trip max 0.10 ms")
            for q in (3, 4, 5):
                o.at(2.1).rank(q, f"{stamp(T0 + 2.1)} vm:100{q} ftccl error [Health] rank {q}: "
                                  "rank 0 (host vm, pid 1000) failed: detected here through "
                                  "silence on the health channel (hang or lost link)")
            o.at(3.3).verdict(1, True).at(4.2).verdict(2, True).at(8.1)
            for q in (3, 4, 5):
                o.verdict(q, False, "ftcclCommRebuild: cannot rebuild: expelled", spare=q > 3)
            for q in range(6):
                o.end(q, "killed at the end (stopped)" if q == 0 else
                      "exited 0" if q in (1, 2) else "exited 1")
            v = self.classify(p, o)
            self.assertEqual(v.outcome, outcome, f"left at {leave}: {v.reason}")

    def test_rank0_lost_in_init_is_allowed(self):
        p = plan(nranks=4, spares=1, faults=[("kill", 0, 0.01)], kind="init_rank0")
        v = self.classify(p, self.failed_run(p, [0], init_done=False, verdicts=False))
        self.assertEqual(v.outcome, "failed_clean", v.reason)
        self.assertTrue(v.during_init)

    def ready(self, o, nranks, at):
        for r in range(nranks):
            o.rank(r, f"{stamp(T0 + at)} vm:100{r} ftccl info [Init] rank {r}/{nranks} ready on vm "
                      f"pid 100{r} in 200.0 ms (chunk 524288 B, 4 channels, 1 spares)")
        return o

    def test_ready_lines_decide_when_init_is_over(self):
        # Every rank ready at 0.5 s (the library's stamps), rank 0 killed at 1.0 s: not in
        # init, whatever the preamble says, so the survivors' failure is a defect.
        p = plan(nranks=4, spares=1, faults=[("kill", 0, 1.0)], kind="coordinator")
        o = self.ready(Out(), 4, 0.5)
        o.lines += self.failed_run(p, [0], init_done=False).lines
        v = self.classify(p, o)
        self.assertFalse(v.during_init)
        self.assertEqual(v.outcome, "failed_clean_not_allowed", v.reason)
        # Rank 3 ready only after the kill: init was not over yet, the failure is allowed.
        o = self.ready(Out(), 3, 0.5)
        o.lines += self.failed_run(p, [0], init_done=True).lines
        o.at(1.5).rank(3, f"{stamp(T0 + 1.5)} vm:1003 ftccl info [Init] rank 3/4 ready on vm "
                          "pid 1003")
        v = self.classify(p, o)
        self.assertTrue(v.during_init)
        self.assertEqual(v.outcome, "failed_clean", v.reason)

    def test_every_process_faulted(self):
        p = plan(nranks=2, spares=0, faults=[("stop", 0, 1.0), ("stop", 1, 1.01)], kind="double")
        o = Out().at(0.3).preamble().at(1.0).injected("stop", 0, 1000, 1.0)
        o.injected("stop", 1, 1001, 1.01)
        for q in range(2):
            o.end(q, "stopped on purpose (SIGSTOP at 1.00 s); killed at the end, once the other "
                     "ranks were done")
        v = self.classify(p, o, rc=0)
        self.assertEqual(v.outcome, "failed_clean", v.reason)

    def test_other_rank_lost_in_init_is_not_allowed(self):
        p = plan(nranks=4, spares=1, faults=[("kill", 2, 0.01)])
        v = self.classify(p, self.failed_run(p, [2], init_done=False, verdicts=False))
        self.assertEqual(v.outcome, "failed_clean_not_allowed", v.reason)

    def test_silent_failure_is_not_allowed(self):
        p = plan(nranks=4, spares=0, recover=False, faults=[("kill", 1, 1.0)])
        o = Out().at(0.3).preamble().at(1.0).injected("kill", 1, 1001, 1.0)
        for q in range(4):
            o.end(q, "killed on purpose (SIGKILL at 1.00 s)" if q == 1 else "exited 1")
        v = self.classify(p, o)
        self.assertEqual(v.outcome, "failed_clean_not_allowed", v.reason)

    def test_not_injected(self):
        o = Out().at(0.3).preamble().verdict(0, True).verdict(1, True).verdict(2, True)
        o.verdict(3, True)
        o.add("ftccl_run: kill on rank 2 at 3.000 s not injected: the job had ended")
        for q in range(5):
            o.end(q, "exited 0")
        v = self.classify(plan(faults=[("kill", 2, 3.0)]), o, rc=0)
        self.assertEqual(v.outcome, "not_injected")

    def test_unexecutable_program_is_harness_error(self):
        o = Out()
        for q in range(5):
            o.end(q, "exited 127")
        v = self.classify(plan(faults=[("kill", 2, 3.0)]), o, rc=127)
        self.assertEqual(v.outcome, "harness_error")

    def test_times_and_mid_transfer_from_logs(self):
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), kill_recovered(True))
        self.assertEqual(v.timing, "log")
        self.assertAlmostEqual(v.detection_ms, 8.0, delta=0.5)
        self.assertAlmostEqual(v.recovery_ms, 21.0, delta=0.5)
        self.assertEqual((v.mid_transfer_kills, v.kills), (1, 1))

    def test_mid_transfer_needs_a_rendezvous_outstanding(self):
        line = ("{} vm:1001 ftccl info [Net] mid-transfer: rank 1 had 2 transfer(s) of 4096 "
                "bytes outstanding with rank 2 (pid 1002) at revoke; largest 2048 B, {} at or "
                "above UCX's rendezvous threshold (8192 B)")
        for rendezvous, expected in ((0, 0), (1, 1)):
            o = kill_recovered(False)
            o.lines = [(t, x) for t, x in o.lines if "mid-transfer" not in x]
            o.at(1.01).rank(1, line.format(stamp(T0 + 1.009), rendezvous))
            v = self.classify(plan(faults=[("kill", 2, 1.0)]), o, rc=0)
            self.assertEqual(v.mid_transfer_kills, expected)

    def test_ucx_complaints_of_survivors_are_counted(self):
        o = kill_recovered(False)
        o.rank(3, "[1796491179.525351] [vm:13947:0]     mpool.c:53   UCX  WARN  object 0x1 was "
                  "not returned to mpool ucp_requests")
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), o, rc=0)
        self.assertEqual(v.ucx_complaints, 1)
        self.assertEqual(self.classify(plan(faults=[("kill", 2, 1.0)]), kill_recovered(False),
                                       rc=0).ucx_complaints, 0)

    def test_times_from_perf_verdicts_win(self):
        o = kill_recovered(False)
        o.lines = [(t, x.replace("detection_ms -1.00, recovery_ms -1.00",
                                 "detection_ms 7.50, recovery_ms 15.25")) for t, x in o.lines]
        v = self.classify(plan(faults=[("kill", 2, 1.0)]), o, rc=0)
        self.assertEqual((v.timing, v.detection_ms, v.recovery_ms), ("perf", 7.5, 15.25))

    def test_every_outcome_is_reachable(self):
        """The tests above reach every outcome; this keeps the list honest."""
        reached = {"recovered", "not_injected", "failed_clean", "failed_clean_not_allowed",
                   "collateral_death", "wrong_result", "hang", "harness_error"}
        self.assertEqual(reached, set(chaos_classify.OUTCOMES))


class PlanTest(unittest.TestCase):
    def test_a_seed_replays_exactly(self):
        limits = chaos_plan.Limits()
        for seed in range(50):
            self.assertEqual(chaos_plan.make_plan(seed, limits).to_dict(),
                             chaos_plan.make_plan(seed, limits).to_dict())

    def test_plans_respect_the_limits(self):
        limits = chaos_plan.Limits(max_procs=5, max_bytes=4 << 20)
        for seed in range(300):
            p = chaos_plan.make_plan(seed, limits)
            self.assertLessEqual(p.procs, 5)
            self.assertGreaterEqual(p.nranks, 2)
            self.assertLessEqual(p.nbytes, 4 << 20)
            for f in p.faults:
                self.assertLess(f.proc, p.procs)
            if p.kind == "spare":
                self.assertTrue(any(f.proc >= p.nranks for f in p.faults))
            if p.kind in ("coordinator", "init_rank0"):
                self.assertEqual(p.faults[0].proc, 0)

    def test_ci_seeds_cover_every_kind(self):
        if not ARGS.ci_seeds:
            self.skipTest("no --ci-seeds")
        limits = chaos_plan.Limits(max_procs=ARGS.ci_max_ranks,
                                   max_bytes=chaos_plan.parse_size(ARGS.ci_max_bytes))
        seeds = [int(s) for s in ARGS.ci_seeds.split(",")]
        kinds = {chaos_plan.make_plan(s, limits).kind for s in seeds}
        self.assertEqual(kinds, set(chaos_plan.KINDS))


class SummaryTest(unittest.TestCase):
    def test_summary_and_resume_files(self):
        with tempfile.TemporaryDirectory() as d:
            recs = [{"seed": 1, "kind": "kill", "outcome": "recovered", "defect": False,
                     "reason": "", "detection_ms": 8.0, "recovery_ms": 20.0, "kills": 1,
                     "mid_transfer_kills": 1, "replay": "x", "log": None},
                    {"seed": 2, "kind": "stop", "outcome": "hang", "defect": True,
                     "reason": "still running [1]", "detection_ms": None, "recovery_ms": None,
                     "kills": 0, "mid_transfer_kills": 0, "replay": "y", "log": "/l"}]
            with open(os.path.join(d, "results.jsonl"), "w") as f:
                for r in recs:
                    f.write(json.dumps(r) + "\n")
                f.write('{"seed": 3, "kind"')  # a line cut short by an interrupted write
            loaded = chaos_report.load_records(d)
            self.assertEqual([r["seed"] for r in loaded], [1, 2])
            text = chaos_report.format_summary(loaded)
            self.assertIn("HANG!", text)
            self.assertIn("seed 2 stop -> hang", text)
            tool = os.path.join(ARGS.tool_dir, "ftccl_chaos.py")
            res = subprocess.run([sys.executable, tool, "--summary", d], stdout=subprocess.PIPE,
                                 text=True)
            self.assertEqual(res.returncode, 1)
            self.assertIn("1/1", res.stdout)

    def test_bad_usage_exits_2(self):
        tool = os.path.join(ARGS.tool_dir, "ftccl_chaos.py")
        res = subprocess.run([sys.executable, tool, "--kinds", "nope", "--dry-run"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(res.returncode, 2)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("tool_dir")
    p.add_argument("--ci-seeds", default="")
    p.add_argument("--ci-max-ranks", type=int, default=5)
    p.add_argument("--ci-max-bytes", default="4M")
    ARGS, rest = p.parse_known_args()
    load_modules(os.path.abspath(ARGS.tool_dir))
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
