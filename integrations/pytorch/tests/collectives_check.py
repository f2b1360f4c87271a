#!/usr/bin/python3
"""Every collective of the backend under test, against results computed here: all
reduce ops and dtypes, odd sizes, empty tensors. Prints CHECK PASS/FAIL per rank.

    launch.py -n 3 -- collectives_check.py ftccl|gloo
"""
import os
import sys

import torch
import torch.distributed as dist

backend = sys.argv[1]
if backend == "ftccl":
    import ftccl_torch  # noqa: F401  (registers the backend)

dist.init_process_group(backend)
rank, size = dist.get_rank(), dist.get_world_size()
R = dist.ReduceOp
failures = []


def expect(name, got, want):
    if not torch.equal(got, want):
        failures.append("%s: got %s, want %s" % (name, got.flatten()[:6].tolist(),
                                                  want.flatten()[:6].tolist()))


def contribution(r, n, dtype):
    # Small integers: sums and products are exact in every dtype.
    t = (torch.arange(n) % 3 + 1 + r % 2).to(torch.float64)
    return t.to(dtype)


def reference(op, n, dtype):
    parts = [contribution(r, n, dtype).to(torch.float64) for r in range(size)]
    if op == R.SUM:
        out = sum(parts)
    elif op == R.PRODUCT:
        out = parts[0]
        for p in parts[1:]:
            out = out * p
    elif op == R.MIN:
        out = torch.stack(parts).min(0).values
    elif op == R.MAX:
        out = torch.stack(parts).max(0).values
    elif op == R.AVG:
        out = sum(parts) / size
    return out.to(dtype)


dtypes = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32,
          torch.int64, torch.int8, torch.uint8]
if backend == "gloo":
    dtypes.remove(torch.bfloat16)  # gloo: "Invalid scalar type"
for dtype in dtypes:
    for n in (1, 7, 1000, 100003) if backend == "gloo" else (0, 1, 7, 1000, 100003):  # gloo: SIGFPE on 0
        ops = [R.SUM, R.PRODUCT, R.MIN, R.MAX]
        if dtype.is_floating_point and backend == "ftccl":
            ops.append(R.AVG)  # gloo has no AVG
        for op in ops:
            t = contribution(rank, n, dtype)
            dist.all_reduce(t, op=op)
            expect("all_reduce %s %s n=%d" % (op, dtype, n), t, reference(op, n, dtype))
        for root in range(size):
            t = contribution(rank, n, dtype)
            dist.reduce(t, dst=root, op=R.SUM)
            if rank == root:
                expect("reduce to %d %s n=%d" % (root, dtype, n), t, reference(R.SUM, n, dtype))
            b = contribution(rank, n, dtype) * 0 + (rank + 1)
            dist.broadcast(b, src=root)
            expect("broadcast %d %s" % (root, dtype), b, torch.full((n,), root + 1).to(dtype))
        outs = [torch.empty(n, dtype=dtype) for _ in range(size)]
        dist.all_gather(outs, contribution(rank, n, dtype))
        for r in range(size):
            expect("all_gather %s n=%d from %d" % (dtype, n, r), outs[r], contribution(r, n, dtype))
        if backend == "ftccl":  # gloo has no all_gather_into_tensor
            flat = torch.empty(size * n, dtype=dtype)
            dist.all_gather_into_tensor(flat, contribution(rank, n, dtype))
            expect("all_gather_into_tensor %s n=%d" % (dtype, n), flat,
                   torch.cat([contribution(r, n, dtype) for r in range(size)]))
for dtype in (torch.int32, torch.int64, torch.uint8):
    for op, fold in ((R.BAND, lambda a, b: a & b), (R.BOR, lambda a, b: a | b),
                     (R.BXOR, lambda a, b: a ^ b)):
        t = torch.arange(37, dtype=dtype) * (rank + 3) % 97
        dist.all_reduce(t, op=op)
        want = torch.arange(37, dtype=dtype) * 3 % 97
        for r in range(1, size):
            want = fold(want, torch.arange(37, dtype=dtype) * (r + 3) % 97)
        expect("all_reduce %s %s" % (op, dtype), t, want)
if backend == "ftccl":  # gloo has no reduce_scatter on CPU
    for n in (0, 5, 4097):
        inputs = [contribution(rank, n, torch.float32) + 10 * r for r in range(size)]
        out = torch.empty(n)
        dist.reduce_scatter(out, inputs)
        expect("reduce_scatter n=%d" % n, out,
               sum(contribution(r, n, torch.float32) for r in range(size)) + 10 * size * rank)
        out = torch.empty(n)
        dist.reduce_scatter_tensor(out, torch.cat(inputs))
        expect("_reduce_scatter_base n=%d" % n, out,
               sum(contribution(r, n, torch.float32) for r in range(size)) + 10 * size * rank)
if backend == "ftccl":
    # bool: SUM and BOR are logical or, PRODUCT and BAND logical and (as NCCL).
    flags = torch.tensor([rank == 0, True, False, rank % 2 == 1])
    for op, want in ((R.SUM, [True, True, False, size > 1]), (R.MAX, [True, True, False, size > 1]),
                     (R.PRODUCT, [size == 1, True, False, False]),
                     (R.MIN, [size == 1, True, False, False])):
        t = flags.clone()
        dist.all_reduce(t, op=op)
        expect("all_reduce bool %s" % op, t, torch.tensor(want))
    # Integer AVG: the wrapped sum divided by the ranks, truncated toward zero.
    t = torch.tensor([rank + 1, -(rank + 1), 7], dtype=torch.int32)
    dist.all_reduce(t, op=R.AVG)
    total = size * (size + 1) // 2
    expect("all_reduce int32 AVG", t, torch.tensor([int(total / size), -int(total / size), 7],
                                                   dtype=torch.int32))
    # Several tensors in one call, and a bitwise reduce to each root.
    ts = [torch.full((5,), float(rank)), torch.full((3,), rank + 1.0)]
    dist.all_reduce_coalesced(ts)
    expect("all_reduce_coalesced 0", ts[0], torch.full((5,), float(sum(range(size)))))
    expect("all_reduce_coalesced 1", ts[1], torch.full((3,), float(total)))
    for root in range(size):
        t = torch.tensor([1 << rank, 3], dtype=torch.int64)
        dist.reduce(t, dst=root, op=R.BOR)
        if rank == root:
            expect("reduce BOR to %d" % root, t, torch.tensor([(1 << size) - 1, 3]))
    # Bad input is refused at the call, with a message, and the group stays usable.
    for bad, what in ((lambda: dist.all_reduce(torch.ones(4), op=R.BAND), "BAND of float"),
                      (lambda: dist.all_reduce(torch.ones(4, 2).t()), "not contiguous"),
                      (lambda: dist.all_reduce(torch.ones(2, dtype=torch.int16)), "int16")):
        try:
            bad()
            failures.append("%s was accepted" % what)
        except (RuntimeError, ValueError) as e:
            if "ftccl" not in str(e):
                failures.append("%s: the error does not say ftccl: %s" % (what, e))
    t = torch.ones(3)
    dist.all_reduce(t)
    expect("all_reduce after refused calls", t, torch.full((3,), float(size)))
# Point to point around the ring, then async work and its future.
t = torch.full((11,), float(rank))
if rank % 2 == 0:
    dist.send(t, (rank + 1) % size)
    dist.recv(t, (rank - 1) % size)
else:
    got = torch.empty(11)
    dist.recv(got, (rank - 1) % size)
    dist.send(t, (rank + 1) % size)
    t = got
if size % 2 == 0 or rank != 0:
    expect("send/recv", t, torch.full((11,), float((rank - 1) % size)))
work = dist.all_reduce(torch.ones(5), async_op=True)
fut = work.get_future()
expect("future", fut.wait()[0], torch.full((5,), float(size)))
dist.barrier()
print("CHECK rank=%d %s %s" % (rank, "PASS" if not failures else "FAIL", "; ".join(failures[:5])),
      flush=True)
dist.destroy_process_group()
sys.exit(1 if failures else 0)
