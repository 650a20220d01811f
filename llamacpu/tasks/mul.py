"""Multiplication of a multi-digit number by a one-digit number, as a loop of additions.

A digit product reaches 81, past the 20 value codes (arithmetic wraps modulo 20), so ``a * b``
is computed the way the ISA can: ``b`` times ``acc = acc + a``, an ``n``-digit addition with
carries per trip, in a loop whose trip count is the data ``b`` (0 trips for ``b = 0``).

Memory map:

    0        REG    pc -> 0
    1..13    OPDEF  the operator library
    14 base (10)  15 one  16 k (the trip counter, b)
    18       JNZ  k -> 0026          ; b = 0: fall through to HALT
    19       HALT
    20+10i   block i (digit i, least significant first):
             +0 c_i (carry in; c_0 stays 0)  +1 a_i  +2 acc_i  +3 t1  +4 t2
             +6 ADD  t1 = c_i + acc_i        +7 ADD  t2 = t1 + a_i
             +8 MOD  acc_i = t2 mod 10       +9 DIV  c_(i+1) = t2 div 10
    20+10n   tail: +0 c_n  +2 acc_n
             +6 ADD  acc_n = acc_n + c_n     +7 SUB  k = k - 1
             +8 JNZ  k -> 0026 (block 0)     +9 HALT

``acc`` never exceeds ``a * b < 10 ** (n + 1)``, so its top digit ``acc_n`` plus a carry stays a
digit. The answer is ``acc_0 .. acc_n``. Steps: ``2 + b * (4n + 3)``.
"""

from __future__ import annotations

import random

from llamacpu.isa import ISA
from llamacpu.problems import ProblemError
from llamacpu.tasks.base import Program
from llamacpu.tasks.compiled import CompiledTask, random_number
from llamacpu.tasks.image import digits_of, page

BASE_ADDR, ONE, K, ENTRY, EXIT = 14, 15, 16, 18, 19
CARRY, A, ACC, T1, T2 = 0, 1, 2, 3, 4
I_ADD1, I_ADD2, I_MOD, I_DIV = 6, 7, 8, 9
LOOP_TOP = page(0) + I_ADD1


class MultiplicationTask(CompiledTask):
    name = "mul"
    probes = ("3 * 5", "47 * 8", "512 * 9")

    def sample(self, rng: random.Random, digits: int) -> tuple[int, int]:
        """``a`` of exactly ``digits`` digits, ``b`` any digit."""
        return random_number(rng, digits), rng.randrange(10)

    def prompt(self, problem: tuple[int, ...]) -> str:
        a, b = problem
        return f"{a} * {b}"

    def compile(self, problem: tuple[int, ...], isa: ISA) -> Program:
        a, b = problem
        if not 0 <= b <= 9:
            raise ProblemError(f"{a} * {b}: the second factor must have one digit")
        n = len(str(a))
        m = self.builder(isa, n)
        m.data(BASE_ADDR, 10, "base")
        m.data(ONE, 1, "one")
        m.data(K, b, "k (trips left)")
        m.inst(ENTRY, "JNZ", K, None, LOOP_TOP)
        m.inst(EXIT, "HALT")
        da = digits_of(a, n)
        for i in range(n):
            p = page(i)
            for off, value, role in ((CARRY, 0, f"carry[{i}]"), (A, da[i], f"a[{i}]"), (ACC, 0, f"acc[{i}]"),
                                     (T1, 0, f"t1[{i}]"), (T2, 0, f"t2[{i}]")):
                m.data(p + off, value, role)
            m.inst(p + I_ADD1, "ADD", p + CARRY, p + ACC, p + T1)
            m.inst(p + I_ADD2, "ADD", p + T1, p + A, p + T2)
            m.inst(p + I_MOD, "MOD", p + T2, BASE_ADDR, p + ACC)
            m.inst(p + I_DIV, "DIV", p + T2, BASE_ADDR, page(i + 1) + CARRY)
        tail = page(n)
        m.data(tail + CARRY, 0, f"carry[{n}]")
        m.data(tail + ACC, 0, f"acc[{n}]")
        m.inst(tail + I_ADD1, "ADD", tail + ACC, tail + CARRY, tail + ACC)
        m.inst(tail + I_ADD2, "SUB", K, ONE, K)
        m.inst(tail + I_MOD, "JNZ", K, None, LOOP_TOP)
        m.inst(tail + I_DIV, "HALT")
        return m.program(self.prompt(problem), (a, b), n, a * b, [page(i) + ACC for i in range(n + 1)],
                         digits_of(a * b, n + 1), max_steps=2 + b * (4 * n + 3))
