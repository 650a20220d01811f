"""Subtraction with borrow: the expert compiler from "123 - 45" to a memory image (results >= 0).

Memory map (addition's, with a borrow where addition has a carry):

    0        REG    pc -> 0
    1..13    OPDEF  the operator library
    14       DATA   10 (the base)
    20+10i   block i (digit i, least significant first):
             +0 borrow_in  +1 a_i  +2 b_i  +3 t1  +4 t2  +5 r_i
             +6 SUB  t1 = a_i - b_i            +7 SUB  t2 = t1 - borrow_in
             +8 MOD  r_i = t2 mod 10           +9 DIV  borrow_in(next block) = t2 div 10
    20+10n   tail: +0 borrow_n (0: the result is not negative)  +6 HALT

Why this is right: the value codes wrap modulo 20, so ``t2`` holds ``d = a_i - b_i - borrow``
(-10..9) as ``d mod 20``: ``d`` itself when ``d >= 0`` (then ``t2 div 10`` is 0, no borrow), and
``d + 20`` (10..19) when ``d < 0``, whose ``mod 10`` is the digit ``d + 10`` and whose ``div 10``
is the borrow 1. The trick needs exactly 20 value codes (the default), and the same four
instructions per digit as addition, ``SUB SUB MOD DIV``. ``n`` is the length of ``a``.
"""

from __future__ import annotations

import random

from llamacpu.isa import ISA
from llamacpu.problems import ProblemError
from llamacpu.tasks.base import Program
from llamacpu.tasks.compiled import CompiledTask, random_number
from llamacpu.tasks.image import digits_of, page

BASE_ADDR = 14
BORROW, A, B, T1, T2, R, I_SUB1, I_SUB2, I_MOD, I_DIV = range(10)
HALT_AT = I_SUB1  # the tail's HALT sits where a block's first instruction does


class SubtractionTask(CompiledTask):
    name = "sub"
    tail = HALT_AT + 1
    same_length = 0.5  # of sampled problems, b as long as a; else b's length is random
    probes = ("7 - 5", "83 - 38", "512 - 489")

    def sample(self, rng: random.Random, digits: int) -> tuple[int, int]:
        """``a`` of exactly ``digits`` digits and ``b <= a``: with probability :attr:`same_length`
        of ``digits`` digits too, else of a random length 1..``digits``."""
        a = random_number(rng, digits)
        length = digits if rng.random() < self.same_length else rng.randint(1, digits)
        if length == digits:
            return a, rng.randint(0 if digits == 1 else 10 ** (digits - 1), a)
        return a, random_number(rng, length)

    def prompt(self, problem: tuple[int, ...]) -> str:
        a, b = problem
        return f"{a} - {b}"

    def compile(self, problem: tuple[int, ...], isa: ISA) -> Program:
        a, b = problem
        if b > a:
            raise ProblemError(f"{a} - {b} is negative: subtraction gives results of 0 or more")
        if isa.layout.n_values != 20:
            raise ProblemError("subtraction's borrow trick needs exactly 20 value codes (the result wraps "
                               f"modulo 20), not {isa.layout.n_values}")
        n = len(str(a))
        m = self.builder(isa, n)
        m.data(BASE_ADDR, 10, "base")
        da, db = digits_of(a, n), digits_of(b, n)
        for i in range(n):
            p = page(i)
            for off, value, role in ((BORROW, 0, f"borrow[{i}]"), (A, da[i], f"a[{i}]"), (B, db[i], f"b[{i}]"),
                                     (T1, 0, f"t1[{i}]"), (T2, 0, f"t2[{i}]"), (R, 0, f"r[{i}]")):
                m.data(p + off, value, role)
            m.inst(p + I_SUB1, "SUB", p + A, p + B, p + T1)
            m.inst(p + I_SUB2, "SUB", p + T1, p + BORROW, p + T2)
            m.inst(p + I_MOD, "MOD", p + T2, BASE_ADDR, p + R)
            m.inst(p + I_DIV, "DIV", p + T2, BASE_ADDR, page(i + 1) + BORROW)
        m.data(page(n) + BORROW, 0, f"borrow[{n}]")
        m.inst(page(n) + HALT_AT, "HALT")
        return m.program(self.prompt(problem), (a, b), n, a - b, [page(i) + R for i in range(n)],
                         digits_of(a - b, n), max_steps=4 * n + 1)
