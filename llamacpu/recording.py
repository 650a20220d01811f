"""What ``llamacpu train`` records into its trace store while it learns.

Two kinds of traces, both free running (exactly what ``llamacpu eval`` measures):

- **probes**: the same fixed problems every ``probe_every`` steps (and after the first
  step), so one problem
  can be watched across training; their ``probe_id`` is the problem's text;
- **failures**: at every competence check, up to ``failures_per_check`` held-out problems of each
  size that the machine got wrong.

Probes that need more slots than the memory has are refused when the recorder is built.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from llamacpu.errors import LlamaCPUError
from llamacpu.evaluate import free_run
from llamacpu.machine import Machine
from llamacpu.tasks import get_task
from llamacpu.trace import TraceStore, traces_from_run

log = logging.getLogger(__name__)

DEFAULT_PROBES = ("3 + 5", "47 + 38", "512 + 489")
DEFAULT_PROBE_EVERY = 200
DEFAULT_FAILURES_PER_CHECK = 4


class TrainingRecorder:
    """Hooks for :class:`~llamacpu.train.Trainer`: ``on_step`` records the probes, ``on_check``
    the failures. ``store``: the trace store folder (created if new)."""

    def __init__(self, store: str | Path, run_dir: Path, config: Any, machine: Machine,
                 probe_every: int | None = None, probes: list[str] | None = None,
                 failures_per_check: int = DEFAULT_FAILURES_PER_CHECK) -> None:
        self.store = TraceStore(store, create=True)
        self.run = Path(run_dir).name
        self.probe_every = DEFAULT_PROBE_EVERY if probe_every is None else probe_every
        if self.probe_every < 0:
            raise LlamaCPUError(f"--probe-every must be 0 (never) or more, not {self.probe_every}")
        self.failures_per_check = failures_per_check
        self.task = get_task(config.train.get("task", "add"))
        default = getattr(self.task, "probes", DEFAULT_PROBES)  # each task names problems of its own
        texts = [p.strip() for p in (probes if probes is not None else default) if p.strip()]
        self.probes = []  # (probe id, Program)
        for text in texts:
            problem = self.task.parse(text)  # ProblemError: one line naming the text
            program = self.task.build(problem, machine.isa)  # ProblemError when it needs too many slots
            self.probes.append((program.prompt, program))
        self.recorded = 0

    def on_step(self, trainer: Any) -> None:
        if self.probe_every and (trainer.step % self.probe_every == 0 or trainer.step == 1):
            self.record_probes(trainer)

    def record_probes(self, trainer: Any) -> None:
        """Every probe at the trainer's current step, one free-running batch per problem size."""
        by_size: dict[int, list[tuple[str, Any]]] = {}
        for probe_id, program in self.probes:
            by_size.setdefault(program.digits, []).append((probe_id, program))
        for group in by_size.values():
            free = free_run(trainer.machine, [p for _, p in group], record=True)
            self._add(trainer, free, probe_id=[pid for pid, _ in group])

    def on_check(self, trainer: Any, digits: int, failures: list[tuple[int, ...]]) -> None:
        """The first ``failures_per_check`` failing held-out problems of one size."""
        chosen = failures[: self.failures_per_check]
        if not chosen:
            return
        programs = [self.task.build(problem, trainer.machine.isa) for problem in chosen]
        self._add(trainer, free_run(trainer.machine, programs, record=True), probe_id=None)

    def _add(self, trainer: Any, free: Any, probe_id: Any) -> None:
        traces = traces_from_run(trainer.machine, free, stage=trainer.stage, training_step=trainer.step,
                                 run=self.run, seed=trainer.config.seed, probe_id=probe_id)
        for trace in traces:
            self.store.add(trace)
        self.recorded += len(traces)
