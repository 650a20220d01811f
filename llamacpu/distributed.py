"""Data-parallel training over several processes, started by ``torchrun``.

The data do not depend on the number of processes: every rank draws the *whole* batch from the
same checkpointed generators and trains on its own contiguous share of its rows (rank r of N:
rows ``r*B/N .. (r+1)*B/N``), and DDP averages the gradients. So N processes learn what one
process learns with the same total batch (up to the order of float sums), the generators'
states after a step are the same for any N, and a run checkpointed on N processes resumes on
any other number. Rank 0 is the one writer (checkpoints, metrics, traces, the display) and the
one evaluator: its competence checks are broadcast, so every rank takes the same curriculum
decisions.

A process started without torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) is
a world of one: no process group, nothing changes. This module imports torch only inside the
functions that need it, so the command line can ask "am I rank 0?" before torch loads.
"""

from __future__ import annotations

import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from llamacpu.errors import LlamaCPUError

if TYPE_CHECKING:
    import torch
    from torch import nn

T = TypeVar("T")

# Rank 0 evaluates while the others wait in a broadcast; a full check of a large model may take
# minutes, longer than the collectives' default timeout (10 min for NCCL).
TIMEOUT = timedelta(hours=2)
# NCCL's and PyTorch's switches that turn NVLink multicast (NVLS) off, set unless already set.
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}


@dataclass(frozen=True)
class Shard:
    """Rows ``start:stop`` of a batch of ``total`` problems: one rank's share."""

    start: int
    stop: int
    total: int

    @classmethod
    def whole(cls, total: int) -> "Shard":
        return cls(0, total, total)

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def is_whole(self) -> bool:
        return self.start == 0 and self.stop == self.total

    @property
    def fraction(self) -> float:
        """This share's part of the batch: a mean over the batch is the ranks' sums over
        ``fraction`` times the batch's count, averaged."""
        return (self.stop - self.start) / self.total


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel ranks; a default World is one process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # this process's place on its node: its GPU
    local_size: int = 1  # processes on this node
    device: str = "cpu"  # where the collectives' tensors live (set by :func:`process_group`)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes, evaluates and talks to the user."""
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        """Every rank trains an equal share of each batch, or their mean gradient is not the batch's."""
        if batch_size % self.size:
            raise LlamaCPUError(f"--batch-size {batch_size} does not split over {self.size} processes: it must be "
                                f"a multiple of {self.size}")

    def shard(self, batch_size: int) -> Shard:
        self.check_batch(batch_size)
        per = batch_size // self.size
        return Shard(self.rank * per, (self.rank + 1) * per, batch_size)

    def rank_device(self, device: str) -> str:
        """The device this rank trains on: its own GPU (``cuda:LOCAL_RANK``) when ``device`` is CUDA.
        Checked against the node's process count, not this rank's index, so that every rank
        fails alike (rank 0 alone reports bad input)."""
        if not self.distributed or not device.startswith("cuda"):
            return device
        import torch

        if torch.cuda.device_count() < self.local_size:
            raise LlamaCPUError(f"{self.local_size} processes per node need {self.local_size} CUDA devices; this "
                                f"machine has {torch.cuda.device_count()}")
        return f"cuda:{self.local_rank}"

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0, its result (any picklable value) on every rank."""
        if not self.distributed:
            return compute()
        import torch.distributed as dist

        box = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks; every rank passes the same keys in the same order
        (a value missing on one rank can be NaN there: it is NaN in the mean)."""
        if not self.distributed:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.size).tolist()))

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, module: "nn.Module", find_unused: bool = False) -> "nn.Module":
        """``module`` under DDP (itself in a world of one). Its forward must be called through
        the wrapper: DDP sets up the backward pass's gradient averaging in ``__call__``.
        ``find_unused``: some steps may leave some parameters without a gradient (DDP then
        searches each step's graph for them; a parameter unused on every rank keeps grad None,
        as in one process)."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        options: dict[str, Any] = {
            "device_ids": None,  # inputs are already on the rank's device: DDP need not move the batch
            "find_unused_parameters": find_unused,
        }
        # The machine's buffers (address keys, the operator table, rotary frequencies) are
        # constants built alike on every rank: no broadcast before every forward.
        if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
            options["forward_sync_buffers"] = False  # torch >= 2.13: broadcast_buffers is deprecated
        else:
            options["broadcast_buffers"] = False
        return DDP(module, **options)


def world_from_env(environ: dict[str, str] | None = None) -> World:
    """The world torchrun describes in the environment (a world of one without it)."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        local_size = int(env.get("LOCAL_WORLD_SIZE", str(size)))
    except ValueError:
        raise LlamaCPUError("WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers (torchrun "
                            "sets them)") from None
    if size < 1 or not 0 <= rank < size:
        raise LlamaCPUError(f"RANK {rank} is not within WORLD_SIZE {size}")
    return World(rank=rank, size=size, local_rank=local_rank, local_size=local_size)


@contextmanager
def process_group(world: World, device: str) -> Iterator[World]:
    """The process group for the ranks of ``world`` while the block runs: NCCL for CUDA devices,
    gloo for the CPU. Yields the world with the collectives' device set; a world of one yields
    itself and starts nothing."""
    if not world.distributed:
        yield replace(world, device=device)
        return
    import torch
    import torch.distributed as dist

    # NVLink multicast stays off (where the environment does not say otherwise): on the shared
    # multi-GPU hosts these runs are measured on, a program using it can put the host's GPUs out
    # of service for everyone, and data parallelism of a small model gains nothing from it.
    for name, value in MULTICAST_OFF.items():
        os.environ.setdefault(name, value)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if cuda else "gloo", rank=world.rank, world_size=world.size, timeout=TIMEOUT)
    ok = False
    try:
        yield replace(world, device=device)
        ok = True
    finally:
        if ok:  # a rank that failed alone cannot wait for the others
            dist.barrier()  # without it gloo ranks sometimes crash at exit (ENVIRONMENT.md)
        dist.destroy_process_group()


def take_rows(batch: T, rows: slice) -> T:
    """A batch dataclass (:class:`~llamacpu.tasks.ProgramBatch`, :class:`~llamacpu.controller.Prompt`)
    cut to some of its rows: every tensor and list field along its first dimension. Padding
    dimensions (window W, steps T, prompt length L) stay the whole batch's, so each row computes
    exactly what it computes in the whole batch."""
    import torch

    cut = {}
    for f in fields(batch):  # type: ignore[arg-type]
        value = getattr(batch, f.name)
        if isinstance(value, (torch.Tensor, list)):
            cut[f.name] = value[rows]
    return replace(batch, **cut)  # type: ignore[type-var]
