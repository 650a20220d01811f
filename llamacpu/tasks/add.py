"""Addition: the expert compiler from "123 + 456" to a memory image and an execution trace.

Memory map (page size 10, so every digit block is one page and the per-digit code is the same
page after page, relative to its own page):

    0        REG    pc -> 0 (nothing run yet)
    1..13    OPDEF  the operator library, opcode k at address 1 + k
    14       DATA   10 (the base)
    20+10i   block i (digit i, least significant first):
             +0 c_in  +1 a_i  +2 b_i  +3 t1  +4 t2  +5 r_i
             +6 ADD  t1 = c_in + a_i       +7 ADD  t2 = t1 + b_i
             +8 MOD  r_i = t2 mod 10       +9 DIV  c_in(next block) = t2 div 10
    20+10n   tail: +0 c_in (final carry)  +5 r_n  +6 COPY r_n = c_in  +7 HALT

The window (the slots the controller reads) ends at the tail's HALT: 20 + 10n + 8 slots. The two
page slots after HALT would be EMPTY in every program, and each slot in the window is a token of
every forward pass, plan and every execute cycle.

Per digit ``ADD ADD MOD DIV``, then ``COPY`` and ``HALT``, as DESIGN.md lays out. Every pointer
of the digit code is a fixed offset within the block except ``op`` and the base, which are
absolute: the controller's pointer heads can express both (see controller.py).
"""

from __future__ import annotations

import random

import torch

from llamacpu.isa import DATA, EMPTY, INST, OP, OPDEF, REG, ISA
from llamacpu.phrasings import SYMBOLS, render
from llamacpu.problems import ProblemError, parse_addition
from llamacpu.tasks.base import IGNORE, Program, held_out, labelled
from llamacpu.tasks.compiled import random_number
from llamacpu.tasks.image import HEADER, PAGE, digits_of, number_of, opdef_addr

BLOCK = PAGE  # one digit's block is one address page
BASE_ADDR = 14
C_IN, A, B, T1, T2, R, I_ADD1, I_ADD2, I_MOD, I_DIV = range(BLOCK)
TAIL = I_ADD2 + 1  # the tail page is used up to its HALT (COPY at I_ADD1, HALT at I_ADD2)


class AdditionTask:
    name = "add"
    planned = True  # compiled from a prompt by the plan phase
    size_name = "digits"
    same_length = 0.5  # of sampled problems, operands of equal length; else the shorter one's length is random
    phrasings: tuple[str, ...] = SYMBOLS  # templates a prompt is drawn from (llamacpu.phrasings)
    eval_sizes = (1, 2, 3, 4)  # `llamacpu eval`'s default sizes
    probes = ("3 + 5", "47 + 38", "512 + 489")  # problems `llamacpu train` records every few hundred steps

    def stage_size(self, stage: int) -> int:
        """The size a curriculum stage is checked at: stage k is k-digit addition."""
        return stage

    def stage_sizes(self, stage: int) -> range:
        """The sizes a stage trains on (each batch one of them)."""
        return range(stage, stage + 1)

    def is_held_out(self, problem: tuple[int, ...]) -> bool:
        """Held out by the operands alone: a held-out pair is never trained in any phrasing."""
        a, b = problem[:2]
        return held_out(f"add:{a}:{b}")

    def build(self, problem: tuple[int, ...], isa: ISA) -> Program:
        """``(a, b)``, or ``(a, b, k)``: the same problem in the k-th of :attr:`phrasings`."""
        a, b = problem[:2]
        prompt = render(self.phrasings[problem[2]], a, b) if len(problem) > 2 else None
        return self.compile(a, b, isa, prompt=prompt)

    def slots_needed(self, digits: int) -> int:
        return HEADER + BLOCK * digits + TAIL

    def max_digits(self, isa: ISA) -> int:
        return self.max_digits_for(isa.layout.n_slots)

    @staticmethod
    def max_digits_for(n_slots: int) -> int:
        return (n_slots - HEADER - TAIL) // BLOCK

    def parse(self, text: str) -> tuple[int, int]:
        return parse_addition(text)

    @staticmethod
    def prompt(a: int, b: int) -> str:
        return f"{a} + {b}"

    def sample(self, rng: random.Random, digits: int) -> tuple[int, ...]:
        """Two operands, the longer of exactly ``digits`` digits (1 digit: 0..9). With probability
        :attr:`same_length` both have ``digits`` digits; otherwise one of them (either side) has a
        random length from 1 to ``digits``, so ``5 + 123`` is trained and evaluated too. With more
        than one phrasing, a third element picks one (uniformly)."""
        first = random_number(rng, digits)
        other = digits if rng.random() < self.same_length else rng.randint(1, digits)
        second = random_number(rng, other)
        pair = (first, second) if rng.random() < 0.5 else (second, first)
        if len(self.phrasings) > 1:
            return (*pair, rng.randrange(len(self.phrasings)))
        return pair

    def compile(self, a: int, b: int, isa: ISA, prompt: str | None = None) -> Program:
        """The program of ``a + b``; its prompt is ``prompt`` (the problem as a user typed it, or
        a phrasing) or ``a + b`` in symbols."""
        n = max(len(str(a)), len(str(b)))
        window = self.slots_needed(n)
        if window > isa.layout.n_slots:
            raise ProblemError(
                f"{n}-digit addition needs {window} slots; this machine has {isa.layout.n_slots} "
                f"(at most {self.max_digits(isa)} digits)"
            )
        if isa.layout.n_values <= 10:
            raise ProblemError("addition needs value codes for 0..19")
        # Built as lists and made tensors once: a write into a tensor is an operator call, and 64
        # four-digit problems made that way took 17 000 of them, 19 ms of a 270 ms GPU step.
        P = isa.layout.n_pointers
        types = [EMPTY] * window
        pointers = [[IGNORE] * P for _ in range(window)]
        contents = [IGNORE] * window
        roles: dict[int, str] = {}

        types[0] = REG
        pointers[0][0] = 0
        roles[0] = "program counter"
        for op in range(len(OP)):
            types[1 + op] = OPDEF
            contents[1 + op] = op
        types[BASE_ADDR] = DATA
        contents[BASE_ADDR] = 10
        roles[BASE_ADDR] = "base"

        da, db = digits_of(a, n), digits_of(b, n)

        def inst(addr: int, op: str, src1: int, src2: int, dst: int) -> None:
            types[addr] = INST
            pointers[addr] = [opdef_addr(op), src1, src2, dst]

        for i in range(n):
            base = HEADER + BLOCK * i
            for off, value, role in ((C_IN, 0, f"carry[{i}]"), (A, da[i], f"a[{i}]"), (B, db[i], f"b[{i}]"),
                                     (T1, 0, f"t1[{i}]"), (T2, 0, f"t2[{i}]"), (R, 0, f"r[{i}]")):
                types[base + off] = DATA
                contents[base + off] = value
                roles[base + off] = role
            inst(base + I_ADD1, "ADD", base + C_IN, base + A, base + T1)
            inst(base + I_ADD2, "ADD", base + T1, base + B, base + T2)
            inst(base + I_MOD, "MOD", base + T2, BASE_ADDR, base + R)
            inst(base + I_DIV, "DIV", base + T2, BASE_ADDR, base + BLOCK + C_IN)

        tail = HEADER + BLOCK * n
        types[tail + C_IN] = DATA
        contents[tail + C_IN] = 0
        roles[tail + C_IN] = f"carry[{n}]"
        types[tail + R] = DATA
        contents[tail + R] = 0
        roles[tail + R] = f"r[{n}]"
        inst(tail + I_ADD1, "COPY", tail + C_IN, tail + C_IN, tail + R)
        types[tail + I_ADD2] = INST
        pointers[tail + I_ADD2][0] = opdef_addr("HALT")
        types_t = torch.tensor(types, dtype=torch.long)  # (W,)
        pointers_t = torch.tensor(pointers, dtype=torch.long)  # (W, P)
        contents_t = torch.tensor(contents, dtype=torch.long)  # (W,)
        pc, results, writes, _ = labelled(isa, types_t, pointers_t, contents_t, max_steps=4 * n + 2)

        answer = a + b
        answer_digits = digits_of(answer, n + 1)
        return Program(
            prompt=prompt if prompt is not None else self.prompt(a, b),
            operands=(a, b),
            digits=n,
            answer=answer,
            window=window,
            types=types_t,
            pointers=pointers_t,
            contents=contents_t,
            pc=pc,
            oeu_result=results,
            writes=writes,
            answer_slots=torch.tensor([HEADER + BLOCK * i + R for i in range(n + 1)]),
            answer_digits=torch.tensor(answer_digits),
            roles=roles,
        )

    def answer_text(self, value: int, size: int) -> str:
        """The answer as `llamacpu run` shows it (``size``: the problem's digits)."""
        return str(value)

    @staticmethod
    def answer_from_digits(digits: list[int]) -> int:
        """The number the result slots spell, least significant digit first; a code above 9 in a
        result slot is not a digit, and the answer is then -1 (wrong)."""
        if any(d > 9 for d in digits):
            return -1
        return number_of(digits)
