"""The ISA's exact semantics: a symbolic interpreter of memory images (ground truth).

Everything that needs to know what a program *means* asks this module: the task compilers' tests,
the random program generator, the targets a trace is judged by, ``llamacpu asm --reference`` and
the debugger's reference run. Nothing else implements an opcode (the operator table itself is
:func:`llamacpu.isa.execute_op`).

The machine, one cycle:

1. **Next PC.** The ``REG`` slot (address 0) points at the instruction last run (``pc``) and holds
   the result of that instruction as its content (the status flag; 0 before the first cycle).
   If the instruction last run was a *taken* jump, the next PC is its ``dst``; otherwise it is the
   next ``INST`` slot in address order after ``pc`` (slots of other types in between are skipped,
   so code may be laid out in pieces with data between them). At the start ``REG`` points at 0,
   so the first instruction run is the first ``INST`` slot of memory. No ``INST`` slot after ``pc``:
   the machine stops without halting ("ran off the end of the code").
2. **Fetch.** The slot at PC must be an ``INST`` slot; a jump that lands on any other slot stops
   the machine with a fault ("executed a DATA slot": data run as code).
3. **Decode.** The opcode is the content of the slot the ``op`` pointer names (an ``OPDEF`` slot);
   a missing pointer or a code that is no opcode is ``NOP``. ``a``/``b`` are the contents of the
   slots ``src1``/``src2`` name (0 where a pointer or a content is missing).
4. **Execute.** ``result = execute_op(op, a, b)`` (arithmetic modulo the value range). Jumps'
   results are their condition: ``JMP`` 1, ``JZ`` ``a == 0``, ``JNZ`` ``a != 0``; 1 means taken.
5. **Write back.** Writing opcodes (``ADD SUB MUL DIV MOD COPY LT EQ``) replace the slot at ``dst``
   by a ``DATA`` slot holding the result (an instruction written over becomes data: the neural
   machine writes whole slots too). Nothing is written without a ``dst``.
6. **REG.** ``pc`` := this instruction, flag := result. ``HALT`` ends the run after its cycle
   (it counts as a step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llamacpu.isa import DATA, INST, OP, OPCODES, REG, SLOT_TYPES, execute_op

JUMPS = frozenset(OP[n] for n in ("JMP", "JZ", "JNZ"))
DEFAULT_MAX_STEPS = 10_000


@dataclass
class Image:
    """A hard memory image in symbols: per address a type, its pointers and its content.

    ``pointers[a]`` holds one entry per pointer (``op, src1, src2, dst``; ``pc`` for REG), None where
    unset; ``contents[a]`` is None where a slot has no content.
    """

    types: list[int]
    pointers: list[list[int | None]]
    contents: list[int | None]

    def __len__(self) -> int:
        return len(self.types)

    def copy(self) -> "Image":
        return Image(list(self.types), [list(p) for p in self.pointers], list(self.contents))

    @classmethod
    def from_targets(cls, types: "object", pointers: "object", contents: "object", ignore: int = -100) -> "Image":
        """From a task's target tensors: types [W], pointers [W, P], contents [W] (``ignore``: unset)."""
        t = [int(x) for x in types.tolist()]
        p = [[None if int(q) == ignore else int(q) for q in row] for row in pointers.tolist()]
        c = [None if int(x) == ignore else int(x) for x in contents.tolist()]
        return cls(t, p, c)


@dataclass
class Run:
    """What a program does: one entry per cycle, then the final state."""

    pc: list[int] = field(default_factory=list)  # the instruction run at each step
    op: list[int] = field(default_factory=list)  # its opcode
    results: list[int] = field(default_factory=list)  # the operator's result (jumps: 1 = taken)
    writes: list[bool] = field(default_factory=list)  # did the step write its result
    dst: list[int | None] = field(default_factory=list)  # where it wrote / jumped
    taken: list[bool] = field(default_factory=list)  # a jump that was taken
    final: Image | None = None  # memory after the run
    written: dict[int, int] = field(default_factory=dict)  # address -> final value, every slot written
    halted: bool = False
    fault: str | None = None  # why the run stopped without HALT (None: it halted)

    @property
    def steps(self) -> int:
        return len(self.pc)

    @property
    def taken_jumps(self) -> int:
        return sum(self.taken)

    def summary(self) -> dict[str, object]:
        """``halted``, ``steps`` and ``writes`` (4-digit address -> final value), as ``asm --json`` prints."""
        return {"halted": self.halted, "steps": self.steps,
                "writes": {f"{a:04d}": v for a, v in sorted(self.written.items())}}


def next_instruction(types: list[int], after: int) -> int | None:
    """The first INST slot past address ``after``, or None."""
    for a in range(after + 1, len(types)):
        if types[a] == INST:
            return a
    return None


def run(image: Image, n_values: int, max_steps: int = DEFAULT_MAX_STEPS) -> Run:
    """Interpret ``image`` until HALT, a fault, or ``max_steps`` cycles."""
    mem = image.copy()
    out = Run()
    n = len(mem)
    if n == 0 or mem.types[0] != REG:
        last, flag = 0, 0  # no REG slot: start before the first slot all the same
    else:
        last = mem.pointers[0][0] if mem.pointers[0] and mem.pointers[0][0] is not None else 0
        flag = mem.contents[0] or 0
    taken = False
    jump_to: int | None = None
    while True:
        pc = jump_to if taken else next_instruction(mem.types, last)
        if pc is None:
            out.fault = "ran off the end of the code (no INST slot after %04d)" % last
            break
        if not 0 <= pc < n:
            out.fault = f"jumped to {pc:04d}, past memory (0..{n - 1:04d})"
            break
        if mem.types[pc] != INST:
            out.fault = f"executed a {SLOT_TYPES[mem.types[pc]]} slot at {pc:04d} (not an instruction)"
            break
        if out.steps >= max_steps:
            out.fault = f"did not halt within {max_steps} steps"
            break
        op_ptr, s1, s2, dst = (mem.pointers[pc] + [None] * 4)[:4]
        op = mem.contents[op_ptr] if op_ptr is not None and mem.contents[op_ptr] is not None else OP["NOP"]
        if op >= len(OPCODES):
            op = OP["NOP"]
        a = (mem.contents[s1] or 0) if s1 is not None else 0
        b = (mem.contents[s2] or 0) if s2 is not None else 0
        result, writes = execute_op(op, a, b, n_values)
        writes = writes and dst is not None
        taken = op in JUMPS and result == 1 and dst is not None
        out.pc.append(pc)
        out.op.append(op)
        out.results.append(result)
        out.writes.append(writes)
        out.dst.append(dst)
        out.taken.append(taken)
        if writes:
            mem.types[dst] = DATA
            mem.pointers[dst] = [None] * len(mem.pointers[dst])
            mem.contents[dst] = result
            out.written[dst] = result
        jump_to = dst
        last, flag = pc, result
        if mem.types[0] == REG:
            mem.pointers[0][0] = pc
            mem.contents[0] = flag
        if op == OP["HALT"]:
            out.halted = True
            break
    out.final = mem
    return out


__all__ = ["DEFAULT_MAX_STEPS", "Image", "JUMPS", "Run", "next_instruction", "run"]
