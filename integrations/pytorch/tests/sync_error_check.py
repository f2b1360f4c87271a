#!/usr/bin/python3
"""A plain (synchronous) collective raises when a peer dies: rank 2 kills itself after
a barrier; the others call all_reduce and broadcast until one raises, naming rank 2.

    launch.py -n 3 --allow-exit 2 -- sync_error_check.py
"""
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

import ftccl_torch  # noqa: F401

dist.init_process_group("ftccl")
rank = dist.get_rank()
dist.barrier()
if rank == 2:
    os.kill(os.getpid(), signal.SIGKILL)
deadline = time.time() + 60
error = None
while time.time() < deadline and error is None:
    try:
        t = torch.ones(1 << 16)
        dist.all_reduce(t)
        dist.broadcast(t, src=0)
    except RuntimeError as e:
        error = str(e)
ok = error is not None and "rank 2" in error and "failed" in error
sys.stdout.write("SYNC rank=%d %s: %s\n" % (rank, "PASS" if ok else "FAIL", error))
sys.stdout.flush()
os._exit(0 if ok else 1)  # the group is revoked: nothing to leave in order
