"""Building a compiled task's memory image: the shared header, data and code slots, and the
:class:`~llamacpu.tasks.base.Program` the reference interpreter labels.

Every compiled task (addition's layout, which the others follow) opens memory the same way:

    0        REG    pc -> 0 (nothing run yet)
    1..13    OPDEF  the operator library, opcode k at address 1 + k
    14..19   the task's constants, variables and header code
    20+10i   page i: the task's block for item (digit) i, least significant first
    20+10n   the tail page

so a page's code reads its own page's slots at fixed offsets (the plan's relative pointers) and
the header by absolute address.
"""

from __future__ import annotations

import torch

from llamacpu.isa import DATA, EMPTY, INST, ISA, OP, OPDEF, REG
from llamacpu.problems import ProblemError
from llamacpu.tasks.base import IGNORE, Program, labelled

HEADER = 20  # first page of the per-item blocks
PAGE = 10  # slots per block: one address page


def opdef_addr(op_name: str) -> int:
    """Where the operator library keeps ``op_name``'s OPDEF slot."""
    return 1 + OP[op_name]


def page(i: int) -> int:
    """The first address of block ``i`` (the tail is block ``n``)."""
    return HEADER + PAGE * i


class ImageBuilder:
    """A target image of ``window`` slots under construction: types [W], pointers [W, P] and
    contents [W] (IGNORE where a slot says nothing), with a comment per address. Kept as lists
    and made tensors once, by :meth:`program`: a write into a tensor is an operator call, and a
    batch's images were thousands of them."""

    def __init__(self, isa: ISA, window: int, what: str, max_size: str) -> None:
        """``what``: the problem, for the too-large message ("5-item sort"); ``max_size``: what
        fits ("at most 23 items")."""
        n_slots = isa.layout.n_slots
        if window > n_slots:
            raise ProblemError(f"{what} needs {window} slots; this machine has {n_slots} ({max_size})")
        self.isa = isa
        p = isa.layout.n_pointers
        self.types = [EMPTY] * window  # [W]
        self.pointers = [[IGNORE] * p for _ in range(window)]  # [W][P]
        self.contents = [IGNORE] * window  # [W]
        self.roles: dict[int, str] = {0: "program counter"}
        self.types[0] = REG
        self.pointers[0][0] = 0
        for op in range(len(OP)):
            self.types[1 + op] = OPDEF
            self.contents[1 + op] = op

    @property
    def window(self) -> int:
        return len(self.types)

    def data(self, addr: int, value: int, role: str) -> None:
        self.types[addr] = DATA
        self.contents[addr] = value
        self.roles[addr] = role

    def inst(self, addr: int, op: str, src1: int | None = None, src2: int | None = None,
             dst: int | None = None) -> None:
        """An INST slot: ``op`` through the library, then ``src1, src2, dst`` (None: unset)."""
        self.types[addr] = INST
        for p, target in enumerate((opdef_addr(op), src1, src2, dst)):
            if target is not None:
                self.pointers[addr][p] = target

    def program(self, prompt: str, operands: tuple[int, ...], size: int, answer: int,
                answer_slots: list[int], answer_digits: list[int], max_steps: int) -> Program:
        """The finished Program, labelled by the interpreter (PC, OEU result and writes per step).

        The compiler states the answer it computed in Python; the interpreter's final memory must
        hold it at ``answer_slots`` (least significant first), or the compiler is wrong."""
        types = torch.tensor(self.types, dtype=torch.long)  # (W,)
        pointers = torch.tensor(self.pointers, dtype=torch.long)  # (W, P)
        contents = torch.tensor(self.contents, dtype=torch.long)  # (W,)
        pc, results, writes, ref = labelled(self.isa, types, pointers, contents, max_steps)
        got = [ref.final.contents[a] for a in answer_slots]
        if got != list(answer_digits):
            raise AssertionError(f"compiler error on {prompt!r}: the program leaves {got} at {answer_slots}, "
                                 f"the answer is {list(answer_digits)}")
        return Program(
            prompt=prompt, operands=tuple(operands), digits=size, answer=answer, window=self.window,
            types=types, pointers=pointers, contents=contents, pc=pc, oeu_result=results,
            writes=writes, answer_slots=torch.tensor(answer_slots, dtype=torch.long),
            answer_digits=torch.tensor(answer_digits, dtype=torch.long), roles=self.roles,
            taken_jumps=None,
        )


def digits_of(x: int, n: int) -> list[int]:
    """The n least significant decimal digits of x, least significant first."""
    return [(x // 10**i) % 10 for i in range(n)]


def number_of(digits: list[int] | tuple[int, ...]) -> int:
    """The number that digits spell, least significant first (the inverse of :func:`digits_of`)."""
    return sum(d * 10**i for i, d in enumerate(digits))
