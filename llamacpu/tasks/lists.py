"""Copy and reverse of a digit string: "copy 31415", "reverse 2718".

Memory map (the string right-aligned: page k holds the digit k places from the right end, see
:class:`~llamacpu.tasks.compiled.DigitListTask`):

    0        REG    pc -> 0
    1..13    OPDEF  the operator library
    20+10k   block k (k = 0..n-1): +0 x_k (input)  +1 y_k (output, 0)
             +2 COPY  y_k = x_k                  (copy)
             +2 COPY  y_k = x_(n-1-k)            (reverse)
    20+10n   tail: +2 HALT

The ISA has no indirect addressing (an instruction's pointers are fixed; data never becomes a
pointer), so a loop cannot walk an array one element per trip: copying one digit per
instruction is what the ISA allows without shifting the whole string every trip (search.py does
that, where a loop is the point). Copy's pointers are all local to the page; reverse's source
pointer reaches the mirrored page, an absolute address that depends on ``n``. The answer is
``y_0 .. y_(n-1)``: the output string, read as a number (leading zeros kept by its length).
Steps: ``n + 1``.
"""

from __future__ import annotations

from llamacpu.isa import ISA
from llamacpu.tasks.base import Program
from llamacpu.tasks.compiled import DigitListTask, right_aligned, spelled
from llamacpu.tasks.image import page

X, Y, I_COPY = 0, 1, 2


class _CopyTask(DigitListTask):
    tail = I_COPY + 1
    reverse = False

    def compile(self, problem: tuple[int, ...], isa: ISA) -> Program:
        n = len(problem)
        m = self.builder(isa, n)
        x = right_aligned(problem)
        for k in range(n):
            p = page(k)
            m.data(p + X, x[k], f"x[{k}]")
            m.data(p + Y, 0, f"y[{k}]")
            m.inst(p + I_COPY, "COPY", page(n - 1 - k if self.reverse else k) + X, None, p + Y)
        m.inst(page(n) + I_COPY, "HALT")
        out = list(reversed(problem)) if self.reverse else list(problem)
        return m.program(self.prompt(problem), problem, n, spelled(out), [page(k) + Y for k in range(n)],
                         right_aligned(tuple(out)), max_steps=n + 1)


class CopyTask(_CopyTask):
    name = "copy"
    probes = ("copy 3", "copy 47", "copy 512")


class ReverseTask(_CopyTask):
    name = "reverse"
    reverse = True
    probes = ("reverse 3", "reverse 47", "reverse 512")
