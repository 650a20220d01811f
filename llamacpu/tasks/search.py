"""Linear search: "find 4 in 31415" -> the index of the first 4 from the left (2), or ``n``
(the string's length, one past the last index) when the digit does not occur.

A loop, because a loop is the point: the code does not grow with the number of trips. The ISA
has no indirect addressing, so the loop cannot move a pointer along the string; instead it always
compares the slot ``x_0`` and shifts the string down one page per trip (a queue). The string is
right-aligned (page k holds the digit k places from the right end), so the trips meet the digits
from right to left, with the counter ``i`` counting the left index down; a match writes ``i`` to
``ans``, and the last match written, the leftmost, is the answer.

Memory map:

    0        REG    pc -> 0
    1..13    OPDEF  the operator library
    14 v (the digit sought)  15 one  16 i (n - 1)  17 ans (n: not found)  18 f (flag)
    20       page 0: +0 x_0
    21 top:  EQ   f = (x_0 == v)
    22       JZ   f -> 0025                 ; no match: skip the write
    23       COPY ans = i
    20+10k   +5 COPY  x_k = x_(k+1)     in every page k = 0..n-1 (the shift; the tail's x_n, 0, moves in)
    20+10n   tail: +0 x_n (0)
             +1 JZ   i -> tail+4            ; the leftmost digit was the last trip
             +2 SUB  i = i - 1
             +3 JMP  -> 0021 (top)
             +4 HALT

Trips: exactly ``n``; steps ``n * (n + 5) - 1 + (matches)``. The answer is one digit, so the
string holds at most 9 digits.
"""

from __future__ import annotations

import random

from llamacpu.isa import ISA
from llamacpu.problems import ProblemError
from llamacpu.tasks.base import Program
from llamacpu.tasks.compiled import DigitListTask, right_aligned
from llamacpu.tasks.image import page

V, ONE, I, ANS, FLAG = 14, 15, 16, 17, 18
X, I_EQ, I_JZ, I_WRITE, I_SHIFT = 0, 1, 2, 3, 5
T_JZ, T_SUB, T_JMP, T_HALT = 1, 2, 3, 4
TOP = page(0) + I_EQ


class SearchTask(DigitListTask):
    name = "search"
    tail = T_HALT + 1
    size_cap = 9  # the answer (an index, or n) is one digit
    present = 0.5  # of sampled problems, the digit sought is drawn from the string (else any digit)
    probes = ("find 3 in 3", "find 7 in 47", "find 2 in 512")

    def sample(self, rng: random.Random, size: int) -> tuple[int, ...]:
        items = super().sample(rng, size)
        value = rng.choice(items) if rng.random() < self.present else rng.randrange(10)
        return (value, *items)

    def prompt(self, problem: tuple[int, ...]) -> str:
        value, *items = problem
        return f"find {value} in {''.join(str(d) for d in items)}"

    def compile(self, problem: tuple[int, ...], isa: ISA) -> Program:
        value, *items = problem
        if not 0 <= value <= 9:
            raise ProblemError(f"find {value}: the value to find is one digit (0-9)")
        n = len(items)
        m = self.builder(isa, n)
        m.data(V, value, "v (sought)")
        m.data(ONE, 1, "one")
        m.data(I, n - 1, "i (left index)")
        m.data(ANS, n, "ans (n: not found)")
        m.data(FLAG, 0, "f")
        x = right_aligned(tuple(items))
        m.inst(TOP, "EQ", page(0) + X, V, FLAG)
        m.inst(page(0) + I_JZ, "JZ", FLAG, None, page(0) + I_SHIFT)
        m.inst(page(0) + I_WRITE, "COPY", I, None, ANS)
        for k in range(n):
            m.data(page(k) + X, x[k], f"x[{k}]")
            m.inst(page(k) + I_SHIFT, "COPY", page(k + 1) + X, None, page(k) + X)
        tail = page(n)
        m.data(tail + X, 0, f"x[{n}] (shifted in)")
        m.inst(tail + T_JZ, "JZ", I, None, tail + T_HALT)
        m.inst(tail + T_SUB, "SUB", I, ONE, I)
        m.inst(tail + T_JMP, "JMP", None, None, TOP)
        m.inst(tail + T_HALT, "HALT")
        answer = items.index(value) if value in items else n
        return m.program(self.prompt(problem), tuple(problem), n, answer, [ANS], [answer],
                         max_steps=n * (n + 6))

    def answer_text(self, value: int, size: int) -> str:
        return f"{value} (not found)" if value == size else str(value)
