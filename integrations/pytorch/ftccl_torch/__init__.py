"""torch.distributed backend "ftccl": collectives that survive the loss of a rank.

    import ftccl_torch  # registers the backend
    torch.distributed.init_process_group("ftccl", rank=r, world_size=n)

After a failure every collective raises RuntimeError naming the failed rank, how it
was detected and after how long. ``rebuild()`` waits for the communicator to be rebuilt
onto a spare; a spare process calls ``wait_as_spare()`` and then
``init_process_group_as_spare()``.
"""
import torch
import torch.distributed as dist
import torch.distributed.distributed_c10d as _c10d

from . import _ftccl_torch as _c

__all__ = ["rebuild", "wait_as_spare", "init_process_group_as_spare"]


def _create(store, rank, size, timeout):
    return _c.create_process_group(store, rank, size, timeout)


dist.Backend.register_backend("ftccl", _create)


def rebuild(group=None):
    """Waits for the rebuild after a failure (the lost ranks taken over by spares).

    Returns a dict: epoch, nranks, replaced, spares_left, failed_ranks.
    """
    return _c.rebuild(group if group is not None else _c10d._get_default_group())


def wait_as_spare(world_size, index):
    """Waits as hot spare ``index`` of a job of ``world_size`` ranks (FTCCL_COMM_ID and
    FTCCL_SPARES set as for the ranks). Returns the rank this process now holds, or -1
    when the job ended without needing it."""
    return _c.wait_as_spare(world_size, index)


def init_process_group_as_spare(rank, world_size, timeout=None):
    """The default process group of an activated spare. The ranks' store-based barrier
    is long past, so this one runs on a private store that counts them as arrived."""
    store = dist.HashStore()
    for count in (_c10d._group_count, _c10d._group_count + 1):
        store.add("{}:{}".format(_c10d.STORE_BASED_BARRIER_PREFIX, count), world_size - 1)
    kwargs = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group("ftccl", store=store, rank=rank, world_size=world_size, **kwargs)
