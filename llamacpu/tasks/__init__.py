"""Expert compilers: task text -> prompt, target memory image, target execution trace, answer.

Besides the compiled tasks, ``programs`` draws random valid programs from the ISA itself: what
the CPU (control unit and OEU) learns from, without a plan phase. docs/tasks.md describes each
task's prompts, memory layout, program and answer.
"""

from __future__ import annotations

from typing import Union

from llamacpu.tasks.add import AdditionTask, ProblemError
from llamacpu.tasks.base import IGNORE, Program, ProgramBatch, collate
from llamacpu.tasks.compiled import CompiledTask
from llamacpu.tasks.lists import CopyTask, ReverseTask
from llamacpu.tasks.mul import MultiplicationTask
from llamacpu.tasks.programs import ProgramsTask
from llamacpu.tasks.search import SearchTask
from llamacpu.tasks.sort import SortTask, UnrolledSortTask
from llamacpu.tasks.sub import SubtractionTask

Task = Union[AdditionTask, CompiledTask, ProgramsTask]
TASKS = {"add": AdditionTask, "sub": SubtractionTask, "mul": MultiplicationTask, "copy": CopyTask,
         "reverse": ReverseTask, "search": SearchTask, "sort": SortTask, "sort-unrolled": UnrolledSortTask,
         "programs": ProgramsTask}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ProblemError(f"unknown task {name!r} (known: {', '.join(TASKS)})") from None


__all__ = ["AdditionTask", "CompiledTask", "CopyTask", "IGNORE", "MultiplicationTask", "Program", "ProgramBatch",
           "ProblemError", "ProgramsTask", "ReverseTask", "SearchTask", "SortTask", "SubtractionTask", "TASKS",
           "Task", "UnrolledSortTask", "collate", "get_task"]
