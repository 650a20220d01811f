"""The same probe problem at other training steps: what learning changed.

Traces recorded for one probe (``meta.probe_id``) in one run, ordered by training step, found
through the store index beside the trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llamacpu.trace import INDEX, TraceError, TraceRow, TraceStore


@dataclass(frozen=True)
class TrainingSeries:
    rows: tuple[TraceRow, ...]  # ordered by training step
    index: int  # the trace being debugged

    @property
    def current(self) -> TraceRow:
        return self.rows[self.index]

    def neighbour(self, direction: int) -> "TrainingSeries | None":
        i = self.index + direction
        return TrainingSeries(self.rows, i) if 0 <= i < len(self.rows) else None

    def describe(self) -> str:
        steps = [r.training_step for r in self.rows]
        return f"probe {self.current.probe_id}: training step {self.current.training_step} " \
               f"({self.index + 1} of {len(steps)}: {', '.join(map(str, steps))})"


def series_for(path: Path, meta: dict, rows: list[TraceRow] | None = None) -> TrainingSeries | None:
    """The series the trace at path belongs to, or None (no probe id, no store index beside it)."""
    probe, run = meta.get("probe_id"), meta.get("run")
    if not probe:
        return None
    if rows is None:
        if not (path.parent / INDEX).is_file():
            return None
        try:
            rows = TraceStore(path.parent).rows(probe_id=probe)
        except TraceError:
            return None
    same = sorted((r for r in rows if r.probe_id == probe and r.run == run and r.training_step is not None),
                  key=lambda r: r.training_step)
    resolved = path.resolve()
    for i, r in enumerate(same):
        if r.path.resolve() == resolved:
            return TrainingSeries(tuple(same), i)
    return None
