"""Expert compilers: task text -> prompt, target memory image, target execution trace, answer."""

from __future__ import annotations

from llamacpu.tasks.add import AdditionTask, ProblemError
from llamacpu.tasks.base import IGNORE, Program, ProgramBatch, collate

TASKS = {"add": AdditionTask}


def get_task(name: str) -> AdditionTask:
    try:
        return TASKS[name]()
    except KeyError:
        raise ProblemError(f"unknown task {name!r} (known: {', '.join(TASKS)})") from None


__all__ = ["AdditionTask", "IGNORE", "Program", "ProgramBatch", "ProblemError", "TASKS", "collate", "get_task"]
