"""Free-running evaluation: nothing from the targets reaches the machine.

The model writes every slot, picks every PC, the OEU computes every result, and the answer is
decoded from the result slots. Two diagnostics sit beside accuracy (they found the OEU's
memorization fault at a glance in the prototype): ``plan_exact``, the argmax plan equals the
target image, and ``from_target``, free running started from the target image instead of the plan.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import torch

from llamacpu.controller import Prompt
from llamacpu.machine import Execution, Machine, Plan
from llamacpu.tasks import AdditionTask, Program, ProgramBatch, collate
from llamacpu.tasks.base import IGNORE


@dataclass
class FreeRun:
    """One batch of free-running episodes."""

    batch: ProgramBatch
    prompt: Prompt  # [B, L]
    plan: Plan
    execution: Execution
    produced: list[int]  # the answer read from the result slots (-1: not a number)
    correct: list[bool]
    plan_exact: list[bool]


def step_limit(program_steps: int) -> int:
    """Free running stops here if HALT never comes (reported as "did not halt")."""
    return 2 * program_steps + 8


def free_run(machine: Machine, programs: list[Program], record: bool = False, from_target: bool = False) -> FreeRun:
    """Run programs of one size free running (hard reads, argmax choices)."""
    device = machine.keys.device
    batch = collate(programs, machine.isa).to(device)
    prompt = machine.controller.tokenizer.batch(batch.prompts).to(device)
    was_training = machine.training
    machine.eval()
    try:
        with torch.no_grad():
            plan = machine.plan(prompt, batch.window, record=record)
            start = batch.memory if from_target else machine.harden(plan.memory)
            execution = machine.execute(prompt, start, step_limit(batch.steps), hard=True, record=record,
                                        prompt_kv=plan.prompt_kv)
    finally:
        machine.train(was_training)
    digits = machine.read_answer(execution.memory, batch.answer_slots).argmax(-1)  # (B, R)
    produced = [AdditionTask.answer_from_digits(row.tolist()) for row in digits]
    correct = [bool(h) and p == prog.answer for h, p, prog in zip(execution.halted.tolist(), produced, programs)]
    return FreeRun(batch, prompt, plan, execution, produced, correct, plan_exact(plan, batch))


def plan_exact(plan: Plan, batch: ProgramBatch) -> list[bool]:
    """Per problem: does the argmax plan equal the target image where the target says anything?"""
    ok = plan.type_logits.argmax(-1) == batch.types  # (B, W)
    content = plan.content_logits.argmax(-1)
    ok &= (content == batch.contents) | (batch.contents == IGNORE)
    ptr = plan.pointers.argmax(-1)  # (B, W, P)
    ok &= ((ptr == batch.pointers) | (batch.pointers == IGNORE)).all(-1)
    return ok.all(-1).tolist()


@dataclass
class SizeResult:
    digits: int
    trials: int
    correct: int
    accuracy: float
    halted: int
    plan_exact: float
    from_target: float | None  # None when diagnostics were not asked for
    failures: list[tuple[int, int]]


def evaluate(machine: Machine, task: AdditionTask, digits: int, trials: int, seed: int,
             batch_size: int = 100, problems: list[tuple[int, int]] | None = None,
             diagnostics: bool = True, keep_failures: bool = False,
             max_failures: int | None = None) -> SizeResult:
    """Accuracy on ``trials`` problems of one size drawn with ``seed`` (or the given problems).
    With ``max_failures``, stops after the first batch that takes the failures past it: the
    result then covers the problems run so far (``trials`` says how many)."""
    if problems is None:
        rng = random.Random(seed)
        problems = [task.sample(rng, digits) for _ in range(trials)]
    n = correct = halted = exact = from_target = 0  # n: problems run so far
    failures: list[tuple[int, int]] = []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i: i + batch_size]
        programs = [task.compile(a, b, machine.isa) for a, b in chunk]
        run = free_run(machine, programs)
        n += len(chunk)
        correct += sum(run.correct)
        halted += int(run.execution.halted.sum())
        exact += sum(run.plan_exact)
        if keep_failures:
            failures += [p for p, ok in zip(chunk, run.correct) if not ok]
        if diagnostics:
            from_target += sum(free_run(machine, programs, from_target=True).correct)
        if max_failures is not None and n - correct > max_failures:
            break
    return SizeResult(digits, n, correct, correct / n, halted, exact / n,
                      from_target / n if diagnostics else None, failures)


def results_json(task: str, results: list[SizeResult]) -> dict:
    """The JSON that ``llamacpu eval --json`` prints."""
    rows = []
    for r in results:
        row = {k: v for k, v in asdict(r).items() if k != "failures"}
        rows.append(row)
    return {"task": task, "results": rows}
