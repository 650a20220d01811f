"""Sorting: "sort 31415" -> "11345" (ascending from the left), bubble sort with real jumps.

Each pass compares every neighbouring pair with ``LT`` and jumps (``JZ``) over the swap when the
pair is in order, so which instructions run is decided by the comparison results in memory; the
passes repeat (``JNZ`` back to the top) while the last pass swapped anything. The ISA has no
indirect addressing, so one pass's compare-and-swap is written once per pair (the code of page k
is the same on every page, relative to it); the loop over passes is a real backward jump with a
data-dependent trip count (1 pass for a sorted string, up to ``n``).

The string is right-aligned (page k holds the digit k places from the right end), so ascending
from the left is descending in memory: a pair is out of order when ``x_k < x_(k+1)``. Page n-1's
pair meets the tail's ``x_n = 0``, which no digit is less than: its compare never swaps, and
every page has the same code.

Memory map:

    0        REG    pc -> 0
    1..13    OPDEF  the operator library
    14 zero  15 one  16 s (swapped in this pass)
    19 top:  COPY s = zero
    20+10k   block k (k = 0..n-1): +0 x_k  +1 f_k  +2 t_k
             +3 LT   f_k = x_k < x_(k+1)
             +4 JZ   f_k -> block k+1's +3     ; in order: no swap
             +5 COPY t_k = x_k
             +6 COPY x_k = x_(k+1)
             +7 COPY x_(k+1) = t_k
             +8 COPY s = one
    20+10n   tail: +0 x_n (0)
             +3 JNZ  s -> 0019 (top)
             +4 HALT

The answer is ``x_0 .. x_(n-1)`` after the run: the sorted string, read as a number. Steps:
``2n + 3`` for a sorted string, at most ``4n^2 + 1`` (reversed: ``n`` passes, every pair swapped).
"""

from __future__ import annotations

from llamacpu.isa import ISA
from llamacpu.tasks.base import Program
from llamacpu.tasks.compiled import DigitListTask, right_aligned, spelled
from llamacpu.tasks.image import page

ZERO, ONE, SWAPPED, TOP = 14, 15, 16, 19
X, FLAG, TEMP, I_LT, I_JZ, I_SAVE, I_MOVE, I_RESTORE, I_MARK = range(9)
T_JNZ, T_HALT = 3, 4


class SortTask(DigitListTask):
    name = "sort"
    tail = T_HALT + 1
    eval_sizes = (1, 2, 3, 4, 5)
    probes = ("sort 3", "sort 47", "sort 512")

    def compile(self, problem: tuple[int, ...], isa: ISA) -> Program:
        n = len(problem)
        m = self.builder(isa, n)
        m.data(ZERO, 0, "zero")
        m.data(ONE, 1, "one")
        m.data(SWAPPED, 0, "s (swapped)")
        m.inst(TOP, "COPY", ZERO, None, SWAPPED)
        x = right_aligned(problem)
        for k in range(n):
            p, q = page(k), page(k + 1)
            m.data(p + X, x[k], f"x[{k}]")
            m.data(p + FLAG, 0, f"f[{k}]")
            m.data(p + TEMP, 0, f"t[{k}]")
            m.inst(p + I_LT, "LT", p + X, q + X, p + FLAG)
            m.inst(p + I_JZ, "JZ", p + FLAG, None, q + I_LT)
            m.inst(p + I_SAVE, "COPY", p + X, None, p + TEMP)
            m.inst(p + I_MOVE, "COPY", q + X, None, p + X)
            m.inst(p + I_RESTORE, "COPY", p + TEMP, None, q + X)
            m.inst(p + I_MARK, "COPY", ONE, None, SWAPPED)
        tail = page(n)
        m.data(tail + X, 0, f"x[{n}] (0: below every digit)")
        m.inst(tail + T_JNZ, "JNZ", SWAPPED, None, TOP)
        m.inst(tail + T_HALT, "HALT")
        out = sorted(problem)
        return m.program(self.prompt(problem), problem, n, spelled(out), [page(k) + X for k in range(n)],
                         right_aligned(tuple(out)), max_steps=4 * n * n + 1)


class UnrolledSortTask(SortTask):
    """The same bubble sort unrolled: the ablation that issue 14's design note measures against
    :class:`SortTask` (``--task sort-unrolled``; not one of the issue's tasks, whose sort must loop
    with real jumps).

    Every pass is written out: ``n - 1`` passes of the ``n - 1`` compare-and-swap pairs, straight
    line but for the ``JZ`` over each swap (a forward jump; nothing jumps back), no swapped flag,
    no test of whether a pass swapped. Pass 0 lies on the data pages as the loop's single pass
    does; pass ``j >= 1`` on pages of its own, whose pointers reach the data pages by absolute
    address, so its code depends on ``n``:

        20+10k                   block k of pass 0, k = 0..n-2 (page k also holds x_k, f_k, t_k)
        20+10n                   x_n (unused: no pair reaches it)
        20+10(n+1+(j-1)(n-1)+k)  block k of pass j, j = 1..n-2: +3 LT, +4 JZ, +5..+7 the swap
        last page                +3 HALT

    Memory grows as ``n^2`` (the loop's as ``n``) and so does the program the plan must write;
    every problem runs all ``(n-1)^2`` compares whatever the data (the loop stops after the first
    pass that swaps nothing). Steps: ``2(n-1)^2 + 1`` to ``5(n-1)^2 + 1``.
    """

    name = "sort-unrolled"
    tail = T_JNZ + 1  # the last page holds HALT at +3

    @staticmethod
    def code_page(n: int, j: int, k: int) -> int:
        """The page of pass ``j``'s block ``k`` for ``n`` items."""
        return k if j == 0 else n + 1 + (j - 1) * (n - 1) + k

    @classmethod
    def halt_page(cls, n: int) -> int:
        """The last page, after every pass (1 item: no pass, the page after the data)."""
        return cls.code_page(n, n - 1, 0) if n > 1 else 1

    def slots_needed(self, size: int) -> int:
        return page(self.halt_page(size)) + self.tail

    def max_digits_for(self, n_slots: int) -> int:
        n = 1
        while self.slots_needed(n + 1) <= n_slots:
            n += 1
        return n

    def prompt(self, problem: tuple[int, ...]) -> str:
        return f"sort {''.join(str(d) for d in problem)}"  # the loop's words (problems.SAME_WORDS), its held-out split

    def compile(self, problem: tuple[int, ...], isa: ISA) -> Program:
        n = len(problem)
        m = self.builder(isa, n)
        x = right_aligned(problem)
        for k in range(n + 1):
            m.data(page(k) + X, x[k] if k < n else 0, f"x[{k}]" if k < n else f"x[{n}] (unused)")
            if k < n - 1:
                m.data(page(k) + FLAG, 0, f"f[{k}]")
                m.data(page(k) + TEMP, 0, f"t[{k}]")
        halt = page(self.halt_page(n)) + I_LT
        blocks = [page(self.code_page(n, j, k)) for j in range(n - 1) for k in range(n - 1)]
        for b, at in enumerate(blocks):
            k = b % (n - 1)
            p, q = page(k), page(k + 1)
            after = blocks[b + 1] + I_LT if b + 1 < len(blocks) else halt
            m.inst(at + I_LT, "LT", p + X, q + X, p + FLAG)
            m.inst(at + I_JZ, "JZ", p + FLAG, None, after)
            m.inst(at + I_SAVE, "COPY", p + X, None, p + TEMP)
            m.inst(at + I_MOVE, "COPY", q + X, None, p + X)
            m.inst(at + I_RESTORE, "COPY", p + TEMP, None, q + X)
        m.inst(halt, "HALT")
        out = sorted(problem)
        return m.program(self.prompt(problem), problem, n, spelled(out), [page(k) + X for k in range(n)],
                         right_aligned(tuple(out)), max_steps=5 * (n - 1) ** 2 + 1)
