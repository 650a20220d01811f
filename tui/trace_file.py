"""Open a trace file lazily: tensors memory-mapped, memory rebuilt one step at a time.

``llamacpu.trace.load_trace`` restores the whole ``[T+1, W, D]`` memory on load; for a
10,000-step trace over 256 slots that is 620 MB and most of a second. The debugger reads only the
step on screen, so it maps the file (``torch.load(mmap=True)``) and keeps memory in its stored
changed-rows form, with a snapshot every :data:`SNAPSHOT_EVERY` steps to rebuild any step quickly.
Validation is ``llamacpu.trace.validate``, the one definition of the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from llamacpu.trace import MEMORY_ENCODING, TraceError, read_payload, validate

SNAPSHOT_EVERY = 64  # steps between memory snapshots: rebuild cost vs. snapshot memory


class LazyMemory:
    """Memory after the plan and after each execute step, ``[T+1, W, D]``, read one step at a time.

    base: [W, D] memory after the plan; step, slot: [R] long, the (step, slot) of each changed
    row in step order (step k changes memory k -> k+1); value: [R, D] the new rows.
    """

    def __init__(self, base: torch.Tensor, step: torch.Tensor, slot: torch.Tensor, value: torch.Tensor,
                 steps: int) -> None:
        self.steps = steps
        self.shape = (steps + 1, *base.shape)
        self._base = base
        self._step = step.numpy().astype(np.int64)
        self._slot = slot.numpy().astype(np.int64)
        self._value = value
        self._bounds = np.searchsorted(self._step, np.arange(steps + 2))  # rows of step k: [b[k], b[k+1])
        self._snapshots = self._build_snapshots()

    def _apply(self, memory: torch.Tensor, lo: int, hi: int) -> None:
        """Apply changed rows lo..hi in order; where a slot changes twice, the later row wins."""
        if hi <= lo:
            return
        slots = self._slot[lo:hi]
        _, last = np.unique(slots[::-1], return_index=True)
        keep = (hi - lo - 1) - last  # index of each slot's last row within lo..hi
        memory[torch.from_numpy(slots[keep])] = self._value[lo + torch.from_numpy(keep)].to(memory.dtype)

    def _build_snapshots(self) -> list[torch.Tensor]:
        snaps = [self._base.clone()]
        for k in range(SNAPSHOT_EVERY, self.steps + 1, SNAPSHOT_EVERY):
            mem = snaps[-1].clone()
            self._apply(mem, self._bounds[k - SNAPSHOT_EVERY], self._bounds[k])
            snaps.append(mem)
        return snaps

    def __len__(self) -> int:
        return self.steps + 1

    def __getitem__(self, k: int) -> torch.Tensor:
        """Memory after k execute steps: [W, D]."""
        if not 0 <= k <= self.steps:
            raise IndexError(k)
        j = k // SNAPSHOT_EVERY
        mem = self._snapshots[j].clone()
        self._apply(mem, self._bounds[j * SNAPSHOT_EVERY], self._bounds[k])
        return mem

    def walk(self) -> Iterator[torch.Tensor]:
        """Memory 0, 1, ..., T in turn, one buffer changed in place (copy what you keep)."""
        mem = self._base.clone()
        yield mem
        for k in range(self.steps):
            self._apply(mem, self._bounds[k], self._bounds[k + 1])
            yield mem

    def changed(self, t: int) -> np.ndarray:
        """Slots that execute step t changed (memory t -> t+1): [k] int."""
        return np.unique(self._slot[self._bounds[t]:self._bounds[t + 1]])

    def writes_to(self, addr: int) -> np.ndarray:
        """Execute steps that changed slot addr: [k] int."""
        return np.unique(self._step[self._slot == addr])


class DenseMemory:
    """The same interface over a full (memory-mapped) ``[T+1, W, D]`` tensor."""

    def __init__(self, memory: torch.Tensor) -> None:
        self._memory = memory
        self.steps = memory.shape[0] - 1
        self.shape = tuple(memory.shape)

    def __len__(self) -> int:
        return self.steps + 1

    def __getitem__(self, k: int) -> torch.Tensor:
        return self._memory[k]

    def walk(self) -> Iterator[torch.Tensor]:
        yield from self._memory

    def changed(self, t: int) -> np.ndarray:
        diff = (self._memory[t + 1] != self._memory[t]).any(-1)
        return diff.nonzero().flatten().numpy()

    def writes_to(self, addr: int) -> np.ndarray:
        column = self._memory[:, addr]  # (T+1, D)
        return (column[1:] != column[:-1]).any(-1).nonzero().flatten().numpy()


def open_trace(path: str | Path) -> tuple[dict[str, Any], LazyMemory | DenseMemory]:
    """Read and validate a trace without restoring its memory: (trace, memory).

    Every way a file can be unusable raises :class:`TraceError` with one line naming the path.
    ``trace["exec"]["memory"]`` is left as stored; use the returned memory instead.
    """
    path = Path(path)
    data = read_payload(path, mmap=True)
    if not isinstance(data, dict) or not isinstance(data.get("exec"), dict):
        validate(data, str(path))  # raises with the schema's own message
    stored = data["exec"].get("memory")
    memory = _memory(stored, path)
    shallow = dict(data)
    shallow["exec"] = dict(data["exec"])
    # validate() checks shapes only: a zero-size stand-in of the restored shape is enough.
    shallow["exec"]["memory"] = torch.zeros(()).expand(*memory.shape) if memory is not None else stored
    validate(shallow, str(path))
    return data, memory


def _memory(stored: Any, path: Path) -> LazyMemory | DenseMemory | None:
    if isinstance(stored, torch.Tensor) and stored.dim() == 3:
        return DenseMemory(stored)
    if isinstance(stored, dict):
        if stored.get("encoding") != MEMORY_ENCODING:
            raise TraceError(f"{path}: unknown memory encoding {stored.get('encoding')!r}")
        try:
            return LazyMemory(stored["base"], stored["step"], stored["slot"], stored["value"], int(stored["steps"]))
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
            raise TraceError(f"{path}: corrupt memory record ({err})") from None
    return None
