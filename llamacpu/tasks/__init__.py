"""Expert compilers: task text -> prompt, target memory image, target execution trace, answer.

Besides the compiled tasks, ``programs`` draws random valid programs from the ISA itself: what
the CPU (control unit and OEU) learns from, without a plan phase.
"""

from __future__ import annotations

from typing import Union

from llamacpu.tasks.add import AdditionTask, ProblemError
from llamacpu.tasks.base import IGNORE, Program, ProgramBatch, collate
from llamacpu.tasks.programs import ProgramsTask

Task = Union[AdditionTask, ProgramsTask]
TASKS = {"add": AdditionTask, "programs": ProgramsTask}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ProblemError(f"unknown task {name!r} (known: {', '.join(TASKS)})") from None


__all__ = ["AdditionTask", "IGNORE", "Program", "ProgramBatch", "ProblemError", "ProgramsTask", "TASKS", "Task",
           "collate", "get_task"]
