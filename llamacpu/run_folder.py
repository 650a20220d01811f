"""A run folder as files, read without torch: is it a run, its config and its metrics as JSON.

The CLI checks a ``--run DIR`` here before it imports torch or loads a model, so a typo answers
at once; :mod:`llamacpu.checkpoint` builds the machine from the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from llamacpu.errors import LlamaCPUError

CONFIG = "config.json"
METRICS = "metrics.jsonl"


class RunError(LlamaCPUError):
    """A run folder or checkpoint that cannot be used; the message names the file."""


def is_run(run_dir: Path) -> bool:
    return (run_dir / CONFIG).is_file()


def check_run(run_dir: Path) -> Path:
    """The run's config file; a missing folder or one without a config is refused."""
    path = run_dir / CONFIG
    if not run_dir.exists():
        raise RunError(f"no run at {run_dir}: the folder does not exist")
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG})")
    return path


def read_config_json(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as plain data (checkpoint.read_config turns it into dataclasses)."""
    path = check_run(run_dir)
    try:
        raw = json.loads(path.read_text())
    except ValueError as err:
        raise RunError(f"{path} is not a valid run config: {err}") from None
    if not isinstance(raw, dict):
        raise RunError(f"{path} is not a valid run config: not a JSON object")
    return raw


def read_metrics(run_dir: Path) -> Iterator[dict[str, Any]]:
    """The records of metrics.jsonl (none when the run has not logged yet); unreadable lines are
    skipped, as a line cut short by a killed writer would be."""
    path = run_dir / METRICS
    if not path.is_file():
        return
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


SHIPPED = Path(__file__).parent / "runs"  # trained runs inside the package (weights only)


def shipped_run(name: str = "general-cpu") -> Path:
    """A trained run folder that ships inside the package: ``general-cpu`` is the tiny CPU trained
    on random programs (``llamacpu train --task programs``), what ``llamacpu asm`` runs on."""
    path = SHIPPED / name
    if not (path / CONFIG).is_file():
        known = sorted(p.name for p in SHIPPED.iterdir() if (p / CONFIG).is_file()) if SHIPPED.is_dir() else []
        raise RunError(f"no shipped run {name!r} in {SHIPPED} (shipped: {', '.join(known) or 'none'}); "
                       "reinstall llamacpu")
    return path
