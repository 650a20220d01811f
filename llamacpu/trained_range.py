"""What a run was trained on, and whether a problem lies inside it.

A machine that passed the 4-digit stage of the addition curriculum answers ``1234 + 5678``; it
answers ``123 + 5`` (operands of different lengths, never trained) or ``12345 + 1`` (past its
last stage) with confident nonsense. ``run`` and ``eval`` say so on stderr, from this module.

The range is data: a run's ``config.json`` may describe it under ``train.trained_range``::

    {"max_digits": 4, "lengths": "equal"}     # operands of one length, 1..4 digits
    {"max_digits": 8, "lengths": "any"}       # any two operands of at most 8 digits each

and a run without one has it inferred from its curriculum: the addition curriculum trains
operands of any lengths (stage k: the longer operand has k digits, half the problems the other
one fewer; ``train.mixed_lengths``), or of equal length in runs made before that option existed
(``mixed_lengths`` absent) or with it off, and its range ends at the last stage that
``metrics.jsonl`` records as passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from llamacpu import run_folder

LENGTHS = ("equal", "any")


@dataclass(frozen=True)
class TrainedRange:
    max_digits: int  # operands of at most this many digits; 0: no stage passed yet
    lengths: str  # "equal": the operands of one problem always had one length; "any": mixed lengths too
    source: str  # where this came from, for the message: "config" or "curriculum"

    def describe(self) -> str:
        if self.max_digits == 0:
            return "this run has passed no curriculum stage yet"
        size = "1 digit" if self.max_digits == 1 else f"1-{self.max_digits} digits"
        shape = "operands of equal length" if self.lengths == "equal" else "operands of any lengths"
        return f"this run was trained on {shape}, {size}"

    def outside(self, operands: Iterable[int]) -> str | None:
        """Why a problem with these operands is outside the range, or None when it is inside."""
        digits = [len(str(abs(int(x)))) for x in operands]
        if not digits:
            return None
        if self.max_digits == 0:
            return self.describe()
        if max(digits) > self.max_digits:
            return f"{max(digits)}-digit operands are past the trained range: {self.describe()}"
        if self.lengths == "equal" and len(set(digits)) > 1:
            lengths = " and ".join(str(d) for d in digits)
            return f"operands of {lengths} digits are outside the trained range: {self.describe()}"
        return None

    def contains(self, operands: Iterable[int]) -> bool:
        return self.outside(operands) is None


class RangeError(run_folder.RunError):
    """A ``trained_range`` in a run config that this code cannot read."""


INFERRED = {"add": "equal"}  # task -> the operand lengths its curriculum trains together


def trained_range(train: dict[str, Any], metrics: Iterable[dict[str, Any]]) -> TrainedRange | None:
    """The range from a run's ``train`` config and its metrics records (see the module doc);
    None for a task whose curriculum this module cannot infer a range from."""
    described = train.get("trained_range")
    if described is not None:
        return _from_description(described)
    lengths = INFERRED.get(train.get("task", "add"))
    if lengths is None:
        return None
    if train.get("mixed_lengths", False):
        lengths = "any"
    passed = [r.get("stage") for r in metrics if r.get("event") == "stage_end" and r.get("passed")]
    stages = [s for s in passed if isinstance(s, int) and s > 0]
    return TrainedRange(max(stages, default=0), lengths, "curriculum")


def _from_description(described: Any) -> TrainedRange:
    if not isinstance(described, dict):
        raise RangeError(f"train.trained_range must be an object like {{\"max_digits\": 4, \"lengths\": \"equal\"}}, "
                         f"not {described!r}")
    digits, lengths = described.get("max_digits"), described.get("lengths", "equal")
    if not isinstance(digits, int) or digits < 0 or lengths not in LENGTHS:
        raise RangeError(f"train.trained_range {described!r}: max_digits must be a count of digits and lengths "
                         f"one of {', '.join(LENGTHS)}")
    return TrainedRange(digits, lengths, "config")


def run_trained_range(run_dir: Path) -> TrainedRange | None:
    """The range of the run at ``run_dir``, read from its config.json and metrics.jsonl."""
    train = run_folder.read_config_json(run_dir).get("train") or {}
    return trained_range(train, run_folder.read_metrics(run_dir))
