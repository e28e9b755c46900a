"""Several processes, one run: torchrun's environment, the process group and the few collectives
the stages use.

``torchrun --nproc-per-node N niwt run CONFIG`` (or ``python -m torch.distributed.run``) starts N
copies of the command with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment.
:func:`process_group` turns that into PyTorch's default process group (NCCL between GPUs, Gloo on
CPUs) for the duration of the command; without those variables, or with ``WORLD_SIZE=1``, it does
nothing and every function here acts as in one process (rank 0 of 1, collectives return their input).

How the stages use it:

* seen-class training wraps the model in ``DistributedDataParallel`` and gives each process a
  part of every global batch (:func:`niwt.training.train_classifier`);
* importance extraction, scores and features are computed on one contiguous shard of the images
  per process (:func:`shard`) and put back together, in the original order, on every process
  (:func:`gather`);
* the small serial stages (the importance map, the transfer, the baselines) run on every process
  from the same inputs, and what later collectives depend on (the map's targets, the unseen rows)
  is taken from rank 0 (:func:`broadcast`), so every process goes on with the same numbers;
* rank 0 alone writes the run directory (:mod:`niwt.rundir`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from niwt.data.source import take
from niwt.errors import ConfigError

__all__ = ["env_rank", "env_world_size", "is_distributed", "rank", "world_size", "local_rank", "is_main", "process_group",
           "shard_bounds", "shard", "gather", "broadcast", "broadcast_object", "barrier"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer (torchrun sets it), got {raw!r}; "
                          f"unset it to run in one process") from None
    if value < 0:
        raise ConfigError(f"environment variable {name} must be >= 0, got {value}; unset it to run in one process")
    return value


def env_rank() -> int:
    """``RANK`` as torchrun sets it (0 when unset): known before the process group exists."""
    return _env_int("RANK", 0)


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset)."""
    return max(_env_int("WORLD_SIZE", 1), 1)


def is_distributed() -> bool:
    """Whether a process group of more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the active group (0 without one)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the active group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """``LOCAL_RANK`` (this process's index on its machine, which GPU it takes; 0 when unset)."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Whether this process writes files and reports (rank 0, or the only process)."""
    return rank() == 0


@contextlib.contextmanager
def process_group(device: torch.device | str) -> Iterator[None]:
    """The default process group for the block when launched by torchrun with ``WORLD_SIZE > 1``.

    NCCL when ``device`` is a CUDA device (this process's GPU becomes the current one), Gloo
    otherwise; the group is destroyed when the block ends, also on an error. A no-op in one process
    or when a group already exists (then its owner destroys it).

    Raises:
        ConfigError: when ``WORLD_SIZE > 1`` but torch was built without distributed support, or
            ``RANK`` / ``MASTER_ADDR`` are missing (the command was not started by torchrun).
    """
    device = torch.device(device)
    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 asks for several processes, but this torch build has no "
                          "torch.distributed; unset WORLD_SIZE or install a torch build with it")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} unset: start the "
                          "command with `torchrun --nproc-per-node N niwt ...`, or unset WORLD_SIZE")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    log.info("process group: rank %d of %d (%s, %s)", dist.get_rank(), dist.get_world_size(), backend, device)
    try:
        yield
        # every process reaches the end before the group is torn down: a Gloo process whose peer
        # tore its group down first can abort at exit ("terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def shard_bounds(n: int, *, of_rank: int | None = None, ranks: int | None = None) -> tuple[int, int]:
    """``[start, stop)`` of this process's contiguous shard of ``n`` items.

    The first ``n % ranks`` processes take ``n // ranks + 1`` items, the others ``n // ranks``: the
    shards partition ``range(n)`` in order, so putting them back rank after rank restores it.
    """
    r = rank() if of_rank is None else of_rank
    w = world_size() if ranks is None else ranks
    base, extra = divmod(int(n), w)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def shard(items: Sequence[T] | Any) -> Any:
    """This process's contiguous shard of ``items`` (an array, tensor, range or list; all of it in one process)."""
    start, stop = shard_bounds(len(items))
    return items[start:stop]


def _comm_device(tensor: torch.Tensor) -> torch.device:
    """Where a collective's tensors must be: NCCL works on CUDA tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu") if tensor.device.type != "cuda" else tensor.device


def gather(local: torch.Tensor) -> torch.Tensor:
    """Every process's shard ``[n_r, ...]`` put together in rank order ``[sum n_r, ...]``, on every process.

    The shards may differ in length (:func:`shard` of a count that does not divide evenly); they
    are padded for the exchange and trimmed after it. The result is on ``local``'s device. In one
    process, ``local`` itself.
    """
    if not is_distributed():
        return local
    comm = _comm_device(local)
    payload = local.detach().contiguous().to(comm)
    n = torch.tensor([payload.shape[0]], device=comm, dtype=torch.int64)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    counts = [int(s) for s in sizes]
    longest = max(counts)
    if payload.shape[0] < longest:
        pad = payload.new_zeros(longest - payload.shape[0], *payload.shape[1:])
        payload = torch.cat([payload, pad], 0)
    parts = [torch.empty_like(payload) for _ in range(world_size())]
    dist.all_gather(parts, payload)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)], 0).to(local.device)


def on_shards(fn: Callable[[Any], torch.Tensor], images: Any) -> torch.Tensor:
    """``fn`` of this process's contiguous shard of ``images`` (a tensor or an image source), the
    shards put back together in order on every process (:func:`gather`); ``fn(images)`` in one
    process."""
    n = images.shape[0]
    lo, hi = shard_bounds(n)
    return gather(fn(images if (lo, hi) == (0, n) else take(images, np.arange(lo, hi))))


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s ``tensor`` on every process (same shape and dtype everywhere); in one process, ``tensor``."""
    if not is_distributed():
        return tensor
    comm = _comm_device(tensor)
    payload = tensor.detach().contiguous().to(comm).clone()
    dist.broadcast(payload, src)
    return payload.to(tensor.device)


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s picklable ``obj`` on every process; in one process, ``obj``.

    Tensors inside it should be on the CPU: a pickled CUDA tensor comes back on the sender's GPU.
    """
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def barrier() -> None:
    """Wait until every process gets here (nothing in one process)."""
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()
