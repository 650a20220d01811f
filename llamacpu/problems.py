"""Problems in words: the grammar of each task's prompts, with nothing heavier than ``re``.

``llamacpu run`` checks the text before it loads a model (or torch), so a typo is answered at
once; the task compilers parse through the same functions.
"""

from __future__ import annotations

import re

from llamacpu.errors import LlamaCPUError

TASK_NAMES = ("add", "programs")
_ADDITION = re.compile(r"^\s*(?:calculate\s+|what\s+is\s+)?(\d+)\s*\+\s*(\d+)\s*(?:=\s*)?\??\s*$", re.IGNORECASE)


class ProblemError(LlamaCPUError):
    """Text that is not a problem this task can compile."""


def parse_addition(text: str) -> tuple[int, int]:
    match = _ADDITION.match(text)
    if not match:
        raise ProblemError(f"not an addition problem: {text!r} (expected e.g. \"123 + 456\")")
    return int(match.group(1)), int(match.group(2))


def parse_problem(task: str, text: str) -> tuple[int, ...]:
    """The operands of ``text`` as a problem of ``task``; ProblemError names what is wrong."""
    if task == "add":
        return parse_addition(text)
    if task == "programs":
        raise ProblemError("the programs task takes no problems in words: write a program and run it "
                           "with `llamacpu asm PROGRAM.s`")
    raise ProblemError(f"unknown task {task!r} (known: {', '.join(TASK_NAMES)})")
