"""Cross-ISA execution: machine A's compiled code run on machine B, raw and translated.

A machine's language is its ISA: the slot layout, the value codes and the address keys drawn from
``SlotLayout.key_seed``. A pointer in a slot is a key; machine B reads it by attention over *its*
keys, so an image written in A's keys points nowhere in particular on B (x86 code on an ARM chip).
The text form is the same for every machine (:mod:`llamacpu.disasm` prints it, :mod:`llamacpu.asm`
reads it), so decoding A's image with A's ISA and re-encoding it with B's is a translation.

Value codes are one-hot positions over ``0..C-1`` in every ISA of this version (no seed moves
them): only the address keys differ between two machines of one layout.

Four conditions per problem, all free running (hard reads, argmax choices), on the same held-out
problems and the same step limit:

- ``a_on_a``: A compiles and runs its own code (plain ``llamacpu eval``);
- ``a_on_b``: A's compiled image, A's keys, run by B's execute phase;
- ``translated``: that image through A's disassembler and B's assembler, run by B;
- ``b_on_b``: B compiles and runs the same problems (a machine that cannot run its own code
  cannot be blamed for failing to run A's); left out when B was trained on random programs
  (no plan phase to speak of), which then also reads no prompt.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch

from llamacpu.asm import AsmError, parse
from llamacpu.controller import Prompt
from llamacpu.disasm import disassemble
from llamacpu.errors import LlamaCPUError
from llamacpu.evaluate import free_run, score, step_limit
from llamacpu.isa import ISA
from llamacpu.machine import Machine
from llamacpu.tasks import Program

CONDITIONS = ("a_on_a", "a_on_b", "translated", "b_on_b")


class CrossISAError(LlamaCPUError):
    """Two machines whose images cannot even be fed to each other."""


@dataclass
class Condition:
    """One way of running the problems: how many were right and how many halted."""

    correct: int = 0
    halted: int = 0

    def add(self, correct: list[bool], halted: torch.Tensor) -> None:
        self.correct += sum(correct)
        self.halted += int(halted.sum())


@dataclass
class CrossResult:
    digits: int
    trials: int
    same_language: bool  # A and B share layout and address keys: the raw run is a control
    conditions: dict[str, Condition]
    untranslatable: int = 0  # images B's assembler refused (counted wrong in ``translated``)

    def accuracy(self, name: str) -> float | None:
        """Share of the problems right in one condition (None: a condition not run)."""
        if name not in self.conditions:
            return None
        return self.conditions[name].correct / self.trials if self.trials else 0.0

    def to_json(self) -> dict[str, Any]:
        out = {"digits": self.digits, "trials": self.trials, "same_language": self.same_language,
               "untranslatable": self.untranslatable}
        for name in CONDITIONS:
            c = self.conditions.get(name)
            out[name] = None if c is None else {**asdict(c), "accuracy": round(self.accuracy(name) or 0.0, 4)}
        return out


def check_compatible(a: ISA, b: ISA, window: int) -> None:
    """A's images must have B's slot size and value range, and fit B's memory."""
    la, lb = a.layout, b.layout
    if (la.key_dim, la.n_values) != (lb.key_dim, lb.n_values):
        raise CrossISAError(f"machine A's slots (keys of {la.key_dim}, {la.n_values} value codes) differ in size from "
                            f"machine B's ({lb.key_dim}, {lb.n_values}): B cannot read A's images at all")
    if window > lb.n_slots:
        raise CrossISAError(f"the problems need {window} slots; machine B has {lb.n_slots}")


def rekeyed(machine: Machine, seed: int) -> Machine:
    """The same machine speaking another language: a copy whose address keys are ``K @ R`` for a
    random orthogonal ``R`` [A, A] drawn from ``seed``, and whose slot encoder's first layer is
    turned by ``R`` on every pointer block, so that it computes exactly what the original does on
    images written in the new keys (pointer reads ``k @ K.T`` are invariant under ``R``).

    A control no training can give: one chip, two machine languages. Needs a slot encoder whose
    first layer is a ``Linear`` over the slot vector (every controller of this version)."""
    lay = machine.isa.layout
    gen = torch.Generator().manual_seed(seed)
    rot, _ = torch.linalg.qr(torch.randn(lay.key_dim, lay.key_dim, generator=gen, dtype=torch.float64))
    rot = rot.float()
    twin = copy.deepcopy(machine)
    twin.isa = ISA(lay, keys=machine.isa.keys @ rot)
    twin.keys = twin.isa.keys.to(machine.keys.device)
    first = twin.controller.slot_encoder[0]
    with torch.no_grad():
        for p in range(lay.n_pointers):
            cols = machine.isa.pointer_slice(p)
            first.weight[:, cols] = first.weight[:, cols] @ rot.to(first.weight)  # W_p x^T = (W_p R)(x R)^T
    return twin


def translate(image: torch.Tensor, source: ISA, target: ISA, name: str = "<image>") -> torch.Tensor:
    """A's memory image in B's language: image [W, D] -> [W, D], through the text form.

    Every slot is decoded to its most likely reading by ``source`` and assembled by ``target``;
    what the text form does not hold (pointer keys left in DATA or EMPTY slots) is dropped.
    Raises :class:`~llamacpu.asm.AsmError` for a reading the assembler refuses.
    """
    text = "\n".join(disassemble(image, source, threshold=0.0))  # every slot, EMPTY ones too: W lines
    return parse(text, target, name).image


def run_image(machine: Machine, prompts: list[str] | None, image: torch.Tensor, steps: int) -> Any:
    """Free-run an image [B, W, D] on ``machine``'s execute phase (no plan). ``prompts``: the
    problems' text, read by the machine's own tokenizer; None: a masked pad token (a machine
    trained on programs, which never saw a prompt)."""
    device = machine.keys.device
    if prompts is None:
        prompt = Prompt.padding(image.shape[0], machine.controller.tokenizer.pad_id, device)
    else:
        prompt = machine.controller.tokenizer.batch(prompts).to(device)
    was_training = machine.training
    machine.eval()
    try:
        with torch.no_grad():
            return machine.execute(prompt, image.to(device), steps, hard=True)
    finally:
        machine.train(was_training)


def cross_batch(a: Machine, b: Machine, programs_a: list[Program], programs_b: list[Program],
                result: CrossResult, b_reads_prompt: bool = True) -> None:
    """Run one batch of problems in the four conditions and add the counts to ``result``.

    programs_a / programs_b: the same problems compiled for A's and for B's ISA (B's are B's own
    plan targets, used for ``b_on_b`` and for scoring)."""
    c = result.conditions
    own = free_run(a, programs_a)
    c["a_on_a"].add(own.correct, own.execution.halted)
    image = a.harden(own.plan.memory)  # (B, W, D): what A's own execute phase started from
    limit = step_limit(own.batch.steps)
    prompts = own.batch.prompts if b_reads_prompt else None
    answer_slots = own.batch.answer_slots

    raw = run_image(b, prompts, image, limit)
    c["a_on_b"].add(score(b, programs_a, raw, answer_slots)[1], raw.halted)

    translated, ok = [], []
    for i in range(image.shape[0]):
        try:
            translated.append(translate(image[i].cpu(), a.isa, b.isa, f"problem {i}"))
            ok.append(True)
        except AsmError:
            translated.append(torch.zeros_like(image[i].cpu()))  # all EMPTY: never halts, counted wrong
            ok.append(False)
    result.untranslatable += ok.count(False)
    ex = run_image(b, prompts, torch.stack(translated), limit)
    right = [r and k for r, k in zip(score(b, programs_a, ex, answer_slots)[1], ok)]
    c["translated"].add(right, ex.halted & torch.tensor(ok, device=ex.halted.device))

    if b_reads_prompt:  # a machine trained on programs alone never learned to compile problems
        theirs = free_run(b, programs_b)
        c["b_on_b"].add(theirs.correct, theirs.execution.halted)


def cross(a: Machine, b: Machine, task: Any, problems: list[tuple[int, ...]], digits: int,
          batch_size: int = 50, b_reads_prompt: bool = True) -> CrossResult:
    """The four conditions on ``problems`` (compiled by ``task``) of one size."""
    names = CONDITIONS if b_reads_prompt else CONDITIONS[:3]
    result = CrossResult(digits, len(problems), a.isa.same_language(b.isa), {n: Condition() for n in names})
    for i in range(0, len(problems), batch_size):
        chunk = problems[i: i + batch_size]
        pa = [task.build(p, a.isa) for p in chunk]
        check_compatible(a.isa, b.isa, max(p.window for p in pa))
        pb = [task.build(p, b.isa) for p in chunk]
        cross_batch(a, b, pa, pb, result, b_reads_prompt)
    return result
