#!/usr/bin/python3
"""DDP training over ftccl that survives the loss of a rank.

A small MLP learns a fixed random linear map from synthetic data. Each rank's batch at
each step depends only on (seed, step, rank), so a spare that takes over rank r feeds
the same data r would have, and a run with a fault ends with the same weights, bit for
bit, as one without.

Start it with integrations/pytorch/tests/launch.py (or torchrun plus FTCCL_COMM_ID):

    launch.py -n 4 --spares 1 --allow-exit 2 -- examples/pytorch_ddp.py --kill 2:5

--kill RANK:STEP   that rank kills itself (SIGKILL) at the start of that step; the
                   survivors get an exception naming it, rebuild onto the spare, which
                   receives the model and optimizer state by broadcast, and go on.
--stop RANK:STEP   the same with SIGSTOP: a hang, found after FTCCL_FAILURE_TIMEOUT_MS.
--backend gloo     the same script on gloo (no fault tolerance), for comparison.
"""
import argparse
import hashlib
import os
import signal
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="ftccl", choices=["ftccl", "gloo"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kill", default="", help="RANK:STEP")
    p.add_argument("--stop", default="", help="RANK:STEP: SIGSTOP instead (a hang)")
    p.add_argument("--out", default="", help="rank 0 writes the final weights here")
    return p.parse_args()


def make_model(args):
    torch.manual_seed(args.seed)
    return torch.nn.Sequential(torch.nn.Linear(32, args.width), torch.nn.Tanh(),
                               torch.nn.Linear(args.width, 8))


def batch(args, step, rank):
    g = torch.Generator().manual_seed(args.seed * 1000003 + step * 1009 + rank)
    x = torch.randn(args.batch, 32, generator=g)
    target_map = torch.randn(32, 8, generator=torch.Generator().manual_seed(args.seed))
    return x, x @ target_map


def state_tensors(model, optimizer):
    """Everything a rank must hold to go on: weights, momentum buffers (in order)."""
    tensors = [p.data for p in model.parameters()]
    for p in model.parameters():
        buf = optimizer.state[p].get("momentum_buffer")
        if buf is None:
            buf = torch.zeros_like(p.data)
            optimizer.state[p]["momentum_buffer"] = buf
        tensors.append(buf)
    return tensors


def resync(model, optimizer, step, valid, pg):
    """Everyone takes the state of the lowest rank that holds one (a fresh spare does
    not). Ranks may be one step apart (an all-reduce can succeed on some and fail on
    others); both states lie on the fault-free trajectory, so either will do."""
    rank = dist.get_rank(pg)
    root = torch.tensor([rank if valid else 2 ** 31 - 1], dtype=torch.int64)
    dist.all_reduce(root, op=dist.ReduceOp.MIN, group=pg)
    root = int(root.item())
    if root == 2 ** 31 - 1:
        raise RuntimeError("no surviving rank holds the training state")
    counter = torch.tensor([step], dtype=torch.int64)
    dist.broadcast(counter, src=root, group=pg)
    for t in state_tensors(model, optimizer):
        dist.broadcast(t, src=root, group=pg)
    return int(counter.item()), root


def wrap(model, pg):
    """DDP, with the same gradient buckets at every wrap: by default DDP regroups them
    after its first step, so a re-wrap after a rebuild would sum in another grouping
    and round differently (find_unused_parameters keeps the first grouping)."""
    return DDP(model, process_group=pg, find_unused_parameters=True)


def weights_digest(model):
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.data.numpy().tobytes())
    return h.hexdigest()[:16]


def main():
    args = parse()
    fault = args.kill or args.stop
    kill_rank, kill_step = (int(v) for v in fault.split(":")) if fault else (-1, -1)
    if args.backend == "ftccl":
        import ftccl_torch
    world = int(os.environ["WORLD_SIZE"])
    spare = os.environ.get("SPARE_INDEX")
    valid = True
    t_start = time.time()
    if spare is not None:
        rank = ftccl_torch.wait_as_spare(world, int(spare))
        if rank < 0:
            print("spare %s: the run ended without needing it" % spare, flush=True)
            return 0
        print("spare %s: activated as rank %d after %.2f s" % (spare, rank, time.time() - t_start),
              flush=True)
        ftccl_torch.init_process_group_as_spare(rank, world)
        valid = False  # its state comes from the survivors
    else:
        dist.init_process_group(args.backend)
    pg = dist.group.WORLD
    rank = dist.get_rank()
    model = make_model(args)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = 0
    if not valid:
        step, root = resync(model, optimizer, step, valid, pg)
        valid = True
    ddp = wrap(model, pg)
    losses, step_times, lost = [], [], 0.0
    while step < args.steps:
        if spare is None and rank == kill_rank and step == kill_step:  # not its spare
            print("rank %d: %s itself at step %d" % (rank, "killing" if args.kill else "stopping",
                                                    step), flush=True)
            os.kill(os.getpid(), signal.SIGKILL if args.kill else signal.SIGSTOP)
        t0 = time.time()
        try:
            x, y = batch(args, step, rank)
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(ddp(x), y)
            loss.backward()
            optimizer.step()
        except RuntimeError as e:
            if args.backend != "ftccl":
                raise
            print("rank %d: step %d failed: %s" % (rank, step, e), flush=True)
            info = ftccl_torch.rebuild(pg)
            step, root = resync(model, optimizer, step, valid, pg)
            ddp = wrap(model, pg)  # a fresh reducer on the rebuilt group
            lost += time.time() - t0
            print("rank %d: rebuilt (epoch %d, failed ranks %s, replaced %d), state from rank "
                  "%d, going on at step %d after %.3f s" %
                  (rank, info["epoch"], info["failed_ranks"], info["replaced"], root, step,
                   time.time() - t0), flush=True)
            continue
        step_times.append(time.time() - t0)
        losses.append(loss.item())
        step += 1
    digests = [None] * world
    dist.all_gather_object(digests, weights_digest(model), group=pg)
    same = all(d == digests[0] for d in digests)
    mean_ms = 1000 * sum(step_times[1:]) / max(1, len(step_times) - 1)
    # One write per line: the ranks share the launcher's output.
    sys.stdout.write("RESULT rank=%d backend=%s steps=%d first_loss=%.6f final_loss=%.6f "
                     "step_ms=%.2f lost_s=%.3f weights=%s same_on_all_ranks=%s\n" %
                     (rank, args.backend, step, losses[0] if losses else float("nan"),
                      losses[-1] if losses else float("nan"), mean_ms, lost, digests[rank],
                      same))
    sys.stdout.flush()
    if rank == 0 and args.out:
        torch.save({"weights": [p.data for p in model.parameters()], "losses": losses}, args.out)
    del ddp  # its reducer holds the group: let go of it before the group is destroyed
    if args.backend == "gloo":
        # torch 1.13's gloo group can deadlock at teardown (its worker frees a tensor
        # and waits for the GIL the main thread holds): leave without tearing down.
        sys.stdout.flush()
        os._exit(0 if same else 1)
    dist.destroy_process_group()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
