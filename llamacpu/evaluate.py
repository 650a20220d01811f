"""Free-running evaluation: nothing from the targets reaches the machine.

The model writes every slot, picks every PC, the OEU computes every result, and the answer is
decoded from the result slots. Two diagnostics sit beside accuracy (they found the OEU's
memorization fault at a glance in the prototype): ``plan_exact``, the argmax plan equals the
target image, and ``from_target``, free running started from the target image instead of the plan.

Problems come only from the held-out side of the task's hash (:func:`draw_held_out`), so an
evaluation at any size and seed never meets a training problem. A random program (``--task
programs``) has no plan phase: it runs from its image, and it is right when it halts at the
interpreter's step with every slot the interpreter wrote holding the interpreter's value.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import torch
from torch.nn import functional as F

from llamacpu.controller import Prompt
from llamacpu.isa import SLOT_TYPES
from llamacpu.machine import Execution, Machine, Plan
from typing import Any

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
    wrong: dict[str, torch.Tensor] | None  # wrong_fields of the plan (None: a program given as an image)


def step_limit(program_steps: int) -> int:
    """Free running stops here if HALT never comes (reported as "did not halt")."""
    return 2 * program_steps + 8


def free_run(machine: Machine, programs: list[Program], record: bool = False, from_target: bool = False,
             max_steps: int | None = None) -> FreeRun:
    """Run programs free running (hard reads, argmax choices); sizes may differ."""
    device = machine.keys.device
    batch = collate(programs, machine.isa).to(device)
    limit = max_steps if max_steps is not None else step_limit(batch.steps)
    was_training = machine.training
    machine.eval()
    try:
        with torch.no_grad():
            if batch.planned:
                prompt = machine.controller.tokenizer.batch(batch.prompts).to(device)
                plan = machine.plan(prompt, batch.window, record=record, windows=batch.windows)
                start = batch.memory if from_target else machine.harden(plan.memory)
                prompt_kv = plan.prompt_kv
            else:
                prompt = Prompt.padding(len(programs), machine.controller.tokenizer.pad_id, device)
                lay = machine.isa.layout
                plan = image_plan(batch, lay.n_types, lay.n_values)
                start, prompt_kv = batch.memory, None
            execution = machine.execute(prompt, start, limit, hard=True, record=record, prompt_kv=prompt_kv)
    finally:
        machine.train(was_training)
    produced, correct = score(machine, programs, execution, batch.answer_slots)
    wrong = wrong_fields(plan, batch) if batch.planned else None
    return FreeRun(batch, prompt, plan, execution, produced, correct, plan_exact(plan, batch, wrong), wrong)


def score(machine: Machine, programs: list[Program], execution: Execution,
          answer_slots: torch.Tensor) -> tuple[list[int], list[bool]]:
    """The answer each episode left in its result slots and whether it is right.

    answer_slots: [B, R]. A compiled problem is right when it halted with the right number; a
    random program when it halted at the interpreter's step with every written slot right (its
    "produced" is then the count of right slots).
    """
    digits = machine.read_answer(execution.memory, answer_slots.to(execution.memory.device)).argmax(-1).cpu()  # (B, R)
    produced, correct = [], []
    for i, prog in enumerate(programs):
        got = digits[i, : prog.answer_slots.numel()]
        halted = bool(execution.halted[i])
        if prog.prompt:
            produced.append(AdditionTask.answer_from_digits(got.tolist()))
            correct.append(halted and produced[-1] == prog.answer)
        else:  # a random program: halted at the interpreter's step, every written slot right
            produced.append(int((got == prog.answer_digits).sum()))
            correct.append(halted and int(execution.steps[i]) == prog.steps and torch.equal(got, prog.answer_digits))
    return produced, correct


def image_plan(batch: ProgramBatch, n_types: int, n_values: int) -> Plan:
    """The "plan" of programs given as memory images: the images themselves, as sure logits."""
    sure = 1e4
    type_logits = sure * F.one_hot(batch.types, n_types).float()  # (B, W, K)
    pointers = F.one_hot(batch.pointers.clamp(min=0), batch.window).float()  # (B, W, P, W)
    pointers = pointers * (batch.pointers != IGNORE).unsqueeze(-1)
    content_logits = sure * F.one_hot(batch.contents.clamp(min=0), n_values).float()  # (B, W, C)
    return Plan(batch.memory, type_logits, pointers, content_logits)


PLAN_FIELDS = ("type", "content", "pointer")


def wrong_fields(plan: Plan, batch: ProgramBatch) -> dict[str, torch.Tensor]:
    """Each field of :data:`PLAN_FIELDS` -> (B, W) bool: where the argmax plan differs from the
    target image (where the target says anything). A planned batch only."""
    return {
        "type": plan.type_logits.argmax(-1) != batch.types,
        "content": (plan.content_logits.argmax(-1) != batch.contents) & (batch.contents != IGNORE),
        "pointer": ((plan.pointers.argmax(-1) != batch.pointers) & (batch.pointers != IGNORE)).any(-1),
    }


def _anywhere(wrong: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, W) bool: slots wrong in any field."""
    return wrong["type"] | wrong["content"] | wrong["pointer"]


def plan_exact(plan: Plan, batch: ProgramBatch, wrong: dict[str, torch.Tensor] | None = None) -> list[bool]:
    """Per problem: does the argmax plan equal the target image where the target says anything?
    ``wrong`` as for :func:`plan_errors`."""
    if not batch.planned:
        return [True] * len(batch.programs)
    return (~_anywhere(wrong_fields(plan, batch) if wrong is None else wrong).any(-1)).tolist()


def plan_errors(plan: Plan, batch: ProgramBatch, wrong: dict[str, torch.Tensor] | None = None) -> list[set[str]]:
    """Per problem: what its argmax plan gets wrong, as ``"FIELD TYPE"`` for each field of
    :data:`PLAN_FIELDS` wrong in some slot whose target type is TYPE (``"content DATA"``: a
    data slot holds the wrong value). Empty for an exact plan, as for a program given as an image.
    ``wrong``: :func:`wrong_fields` of the same plan and batch, where the caller has it."""
    kinds: list[set[str]] = [set() for _ in batch.programs]
    if not batch.planned:
        return kinds
    wrong = wrong_fields(plan, batch) if wrong is None else wrong
    for name in PLAN_FIELDS:
        for b, w in wrong[name].nonzero().tolist():
            kinds[b].add(f"{name} {SLOT_TYPES[int(batch.types[b, w])]}")
    return kinds


def plan_error_slots(plan: Plan, batch: ProgramBatch,
                     wrong: dict[str, torch.Tensor] | None = None) -> list[set[int]]:
    """Per problem: the window slots (addresses) where its argmax plan is wrong in any field.
    Problems of one size share a layout, so a slot wrong in most of them points at one part of the
    program (session 32: SmolLM2's 2-digit plans wrote instructions into the tail page's empty
    slots 41-44, the 3-digit layout). ``wrong`` as for :func:`plan_errors`."""
    slots: list[set[int]] = [set() for _ in batch.programs]
    if not batch.planned:
        return slots
    for b, w in _anywhere(wrong_fields(plan, batch) if wrong is None else wrong).nonzero().tolist():
        slots[b].add(w)
    return slots


class EvalStopped(Exception):
    """Raised by a signal handler to stop an evaluation now: :func:`evaluate` keeps the batches it
    finished (its result says ``stopped``); the argument is the signal's name."""


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
    by_taken_jumps: dict[str, list[int]] = field(default_factory=dict)  # jumps taken -> [trials, correct]
    by_phrasing: dict[str, list[int]] = field(default_factory=dict)  # template -> [trials, correct, plan exact]
    plan_errors: dict[str, int] = field(default_factory=dict)  # "FIELD TYPE" -> problems whose plan has it (plan_errors)
    stopped: str = ""  # the signal that stopped it ("": every problem ran; else ``trials`` ran)
    plan_error_slots: dict[int, int] = field(default_factory=dict)  # window slot -> problems whose plan is wrong there


def draw_held_out(task: Any, size: int, trials: int, seed: Any) -> list[tuple[int, ...]]:
    """Up to ``trials`` distinct held-out problems of one size (all of them where fewer exist,
    as for 1-digit addition: about 20 of its 100 pairs)."""
    rng = random.Random(seed)
    found: dict[tuple[int, ...], None] = {}
    for _ in range(200 * trials):
        p = task.sample(rng, size)
        if task.is_held_out(p):
            found[p] = None
            if len(found) >= trials:
                break
    return list(found)


EVAL_BATCH = 100  # problems per free-running batch, at most
# batch x window^2, at most: the plan pass attends over the prompt and every slot of the window, so
# its attention scores grow with the square of the problem (100 problems of 100 digits fit).
EVAL_BATCH_AREA = EVAL_BATCH * 1100 ** 2


def eval_batch_size(window: int) -> int:
    """Problems per batch for programs of ``window`` slots: 100 up to about 100-digit additions,
    then fewer, so that a batch's plan attention stays the same size (one 1000-digit addition)."""
    return max(1, min(EVAL_BATCH, EVAL_BATCH_AREA // max(window, 1) ** 2))


def evaluate(machine: Machine, task: Any, digits: int, trials: int, seed: int,
             batch_size: int | None = None, problems: list[tuple[int, ...]] | None = None,
             diagnostics: bool = True, keep_failures: bool = False,
             max_failures: int | None = None) -> SizeResult:
    """Accuracy on up to ``trials`` held-out problems of one size drawn with ``seed`` (or the given
    problems). With ``max_failures``, stops after the first batch that takes the failures past
    it: the result then covers the problems run so far (``trials`` says how many), as it does
    when :class:`EvalStopped` is raised in it (``stopped`` names the signal). ``batch_size``:
    problems run together (default :func:`eval_batch_size` of the size's window)."""
    if batch_size is None:
        batch_size = eval_batch_size(task.slots_needed(digits))
    if problems is None:
        problems = draw_held_out(task, digits, trials, seed)
    totals = (0, 0, 0, 0, 0)  # problems run so far, correct, halted, plan exact, right from the target
    failures: list[tuple[int, int]] = []
    by_jumps: dict[str, list[int]] = {}
    by_phrasing: dict[str, list[int]] = {}
    errors: dict[str, int] = {}
    error_slots: dict[int, int] = {}
    stopped = ""
    try:
        for i in range(0, len(problems), batch_size):
            chunk = problems[i: i + batch_size]
            programs = [task.build(p, machine.isa) for p in chunk]
            run = free_run(machine, programs)
            right_from_target = 0
            if diagnostics and run.batch.planned:
                right_from_target = sum(free_run(machine, programs, from_target=True).correct)
            # A stop (EvalStopped) can come at any moment: the batch's counts are built aside and
            # committed by one assignment (no call or jump between its stores, where CPython
            # would run a signal handler), so a result never holds part of a batch.
            new_failures = failures + [p for p, ok in zip(chunk, run.correct) if not ok] if keep_failures else failures
            new_phrasing = {t: list(row) for t, row in by_phrasing.items()}
            for problem, ok, same in zip(chunk, run.correct, run.plan_exact):
                if len(problem) > 2 and hasattr(task, "phrasings"):  # (a, b, k): the k-th phrasing
                    row = new_phrasing.setdefault(task.phrasings[problem[2]], [0, 0, 0])
                    row[0], row[1], row[2] = row[0] + 1, row[1] + int(ok), row[2] + int(same)
            new_errors, new_slots = dict(errors), dict(error_slots)
            for kinds, slots in zip(plan_errors(run.plan, run.batch, run.wrong),
                                    plan_error_slots(run.plan, run.batch, run.wrong)):
                for kind in kinds:
                    new_errors[kind] = new_errors.get(kind, 0) + 1
                for slot in slots:
                    new_slots[slot] = new_slots.get(slot, 0) + 1
            new_jumps = {b: list(row) for b, row in by_jumps.items()}
            for prog, ok in zip(programs, run.correct):
                if prog.taken_jumps is not None:
                    row = new_jumps.setdefault(jump_bucket(prog.taken_jumps), [0, 0])
                    row[0] += 1
                    row[1] += int(ok)
            new_totals = (totals[0] + len(chunk), totals[1] + sum(run.correct),
                          totals[2] + int(run.execution.halted.sum()), totals[3] + sum(run.plan_exact),
                          totals[4] + right_from_target)
            totals, failures, by_phrasing, by_jumps, errors, error_slots = (
                new_totals, new_failures, new_phrasing, new_jumps, new_errors, new_slots)
            if max_failures is not None and totals[0] - totals[1] > max_failures:
                break
    except EvalStopped as stop:
        stopped = str(stop) or "stopped"
    n, correct, halted, exact, from_target = totals
    planned = getattr(task, "planned", True)
    return SizeResult(digits, n, correct, correct / n if n else 0.0, halted, exact / n if n else 0.0,
                      from_target / n if diagnostics and planned and n else None, failures,
                      dict(sorted(by_jumps.items(), key=lambda kv: bucket_order(kv[0]))),
                      {t: by_phrasing[t] for t in getattr(task, "phrasings", ()) if t in by_phrasing},
                      dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))), stopped,
                      dict(sorted(error_slots.items())))


JUMP_BUCKETS = ((0, 0), (1, 2), (3, 5), (6, 10), (11, 20), (21, 10**9))


def bucket_order(bucket: str) -> int:
    """Where a :func:`jump_bucket` name sorts: by its lower bound."""
    return int(bucket.split("-")[0].rstrip("+"))


def jump_bucket(n: int) -> str:
    """A program's number of taken jumps as a reporting bucket: "0", "1-2", ..., "21+"."""
    for lo, hi in JUMP_BUCKETS:
        if lo <= n <= hi:
            return str(lo) if lo == hi else (f"{lo}+" if hi >= 10**9 else f"{lo}-{hi}")
    raise ValueError(n)


def results_json(task: str, results: list[SizeResult]) -> dict:
    """The JSON that ``llamacpu eval --json`` prints."""
    rows = []
    for r in results:
        row = {k: v for k, v in asdict(r).items()
               if k != "failures" and not (k in ("by_taken_jumps", "by_phrasing", "plan_errors", "stopped",
                                                 "plan_error_slots") and not v)}
        rows.append(row)
    return {"task": task, "results": rows}
