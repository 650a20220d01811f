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

from llamacpu.isa import ISA
from llamacpu.phrasings import SYMBOLS, render
from llamacpu.problems import ProblemError, parse_addition
from llamacpu.tasks.base import Program, held_out
from llamacpu.tasks.compiled import random_number
from llamacpu.tasks.image import HEADER, PAGE, ImageBuilder, digits_of, number_of

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
        m = ImageBuilder(isa, self.slots_needed(n), f"{n}-digit addition", f"at most {self.max_digits(isa)} digits")
        if isa.layout.n_values <= 10:
            raise ProblemError("addition needs value codes for 0..19")
        m.data(BASE_ADDR, 10, "base")
        da, db = digits_of(a, n), digits_of(b, n)
        for i in range(n):
            base = HEADER + BLOCK * i
            for off, value, role in ((C_IN, 0, f"carry[{i}]"), (A, da[i], f"a[{i}]"), (B, db[i], f"b[{i}]"),
                                     (T1, 0, f"t1[{i}]"), (T2, 0, f"t2[{i}]"), (R, 0, f"r[{i}]")):
                m.data(base + off, value, role)
            m.inst(base + I_ADD1, "ADD", base + C_IN, base + A, base + T1)
            m.inst(base + I_ADD2, "ADD", base + T1, base + B, base + T2)
            m.inst(base + I_MOD, "MOD", base + T2, BASE_ADDR, base + R)
            m.inst(base + I_DIV, "DIV", base + T2, BASE_ADDR, base + BLOCK + C_IN)

        tail = HEADER + BLOCK * n
        m.data(tail + C_IN, 0, f"carry[{n}]")
        m.data(tail + R, 0, f"r[{n}]")
        m.inst(tail + I_ADD1, "COPY", tail + C_IN, tail + C_IN, tail + R)
        m.inst(tail + I_ADD2, "HALT")
        answer = a + b
        return m.program(prompt if prompt is not None else self.prompt(a, b), (a, b), n, answer,
                         [HEADER + BLOCK * i + R for i in range(n + 1)], digits_of(answer, n + 1), max_steps=4 * n + 2)

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
