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
    """``(a, b)`` of ``a + b`` in symbols or in any phrasing of :mod:`llamacpu.phrasings`."""
    from llamacpu import phrasings

    match = _ADDITION.match(text)
    if match:
        return int(match.group(1)), int(match.group(2))
    words = phrasings.parse(text)
    if words is None:
        raise ProblemError(f"not an addition problem: {text!r} (expected e.g. \"123 + 456\" or "
                           "\"add 456 to 123\")")
    return words


def addition_prompt(text: str) -> str | None:
    """The prompt a typed addition runs with: None (the compiler's own ``a + b``) for symbols,
    the words as typed (spacing normalized) for a phrasing in words."""
    return None if _ADDITION.match(text) else " ".join(text.split())


def parse_problem(task: str, text: str) -> tuple[int, ...]:
    """The operands of ``text`` as a problem of ``task``; ProblemError names what is wrong."""
    if task == "add":
        return parse_addition(text)
    if task == "programs":
        raise ProblemError("the programs task takes no problems in words: write a program and run it "
                           "with `llamacpu asm PROGRAM.s`")
    raise ProblemError(f"unknown task {task!r} (known: {', '.join(TASK_NAMES)})")
