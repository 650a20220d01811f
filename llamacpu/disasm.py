"""Memory -> pseudo-assembly: one line per slot, the text form that ``asm`` reads back.

::

    0000  REG    pc -> 0031                 ; program counter
    0001  OPDEF  ADD
    0007  DATA   3                          ; a[0]
    0031  INST   ADD [0007], [0018] -> [0021]
    0044  INST   JZ  [0020], -> 0031
    0046  INST   HALT

Each slot is decoded through :meth:`llamacpu.isa.ISA.decode` with the address keys cut to the
memory window, as the machine reads it. An ``INST`` names its operator through its ``op``
pointer (indirect): the mnemonic is the opcode of the ``OPDEF`` slot it points at, and the line
says ``ADD@0015`` when that slot is not the first ``OPDEF`` defining ``ADD`` (``?@0015`` when it
is no ``OPDEF`` at all). A part whose best reading has a probability below the threshold carries
it as text: ``DATA   3?0.61``, ``ADD [0007]?0.55, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from llamacpu.isa import DATA, EMPTY, INST, ISA, OPCODES, OPDEF, POINTER_NAMES, REG, DecodedSlot

JUMPS = frozenset({"JMP", "JZ", "JNZ"})
COMMENT_COLUMN = 31  # where "; role" starts, as in DESIGN.md
DEFAULT_THRESHOLD = 0.9


@dataclass(frozen=True)
class SlotReading:
    """One decoded slot with its operator resolved (INST) and its role (a task's comment)."""

    address: int
    slot: DecodedSlot
    mnemonic: str | None  # INST: opcode of the OPDEF its op pointer reaches ("?" if none); OPDEF: its opcode
    op_explicit: bool  # INST: the op pointer is not the first OPDEF of its mnemonic (printed as NAME@AAAA)
    role: str | None


def window_isa(isa: ISA, window: int) -> ISA:
    """The ISA restricted to the first ``window`` addresses (what a pointer can reach there)."""
    return ISA(replace(isa.layout, n_slots=window), isa.keys[:window])


def opcode_name(code: int) -> str:
    return OPCODES[code] if 0 <= code < len(OPCODES) else str(code)


def read_slots(memory: torch.Tensor, isa: ISA, roles: dict[int, str] | None = None) -> list[SlotReading]:
    """Decode every slot of a memory image: memory [W, D] -> W readings."""
    w = memory.shape[0]
    wisa = window_isa(isa, w)
    decoded = [wisa.decode(memory[a]) for a in range(w)]
    canonical: dict[int, int] = {}
    for a, d in enumerate(decoded):
        if d.type_id == OPDEF:
            canonical.setdefault(d.content, a)
    roles = roles or {}
    out = []
    for a, d in enumerate(decoded):
        mnemonic, explicit = None, False
        if d.type_id == OPDEF:
            mnemonic = opcode_name(d.content)
        elif d.type_id == INST:
            op = d.pointers[0]
            target = decoded[op[0]] if op is not None else None
            if target is not None and target.type_id == OPDEF and target.content < len(OPCODES):
                mnemonic = OPCODES[target.content]
                explicit = canonical.get(target.content) != op[0]
            else:
                mnemonic, explicit = "?", op is not None
        out.append(SlotReading(a, d, mnemonic, explicit, roles.get(a)))
    return out


def _mark(prob: float, threshold: float) -> str:
    return f"?{prob:.2f}" if prob < threshold else ""


def _addr(a: int, width: int) -> str:
    return f"{a:0{width}d}"


def slot_text(r: SlotReading, threshold: float = DEFAULT_THRESHOLD, width: int = 4) -> str:
    """The instruction part of a line: ``INST   ADD [0007], [0018] -> [0021]``."""
    d = r.slot
    head = (d.type_name + _mark(d.type_prob, threshold)).ljust(6) + " "
    if d.type_id == EMPTY:
        return head.rstrip()
    if d.type_id == DATA:
        return head + f"{d.content}{_mark(d.content_prob, threshold)}"
    if d.type_id == OPDEF:
        return head + f"{r.mnemonic}{_mark(d.content_prob, threshold)}"
    if d.type_id == REG:
        pc = d.pointers[0]
        return (head + f"pc -> {_addr(pc[0], width)}{_mark(pc[1], threshold)}") if pc else head.rstrip()
    return head + inst_text(r, threshold, width)


def inst_text(r: SlotReading, threshold: float, width: int) -> str:
    """``ADD [0007], [0018] -> [0021]``; jumps show their target bare: ``JZ  [0020], -> 0031``."""
    op, src1, src2, dst = r.slot.pointers
    mnemonic = r.mnemonic or "?"
    if op is None:
        mnemonic = "?"
    elif r.op_explicit:
        mnemonic += f"@{_addr(op[0], width)}"
    if op is not None:
        mnemonic += _mark(op[1], threshold)

    def ref(p: tuple[int, float] | None, bare: bool = False) -> str:
        if p is None:
            return ""
        a = _addr(p[0], width)
        return (a if bare else f"[{a}]") + _mark(p[1], threshold)

    args = f"{ref(src1)}, {ref(src2)}".rstrip() if (src1 or src2) else ""
    if dst is not None:
        args = f"{args} -> {ref(dst, bare=r.mnemonic in JUMPS)}".lstrip()
    return f"{mnemonic:<3} {args}".rstrip()


def format_line(r: SlotReading, threshold: float = DEFAULT_THRESHOLD, width: int = 4) -> str:
    line = f"{_addr(r.address, width)}  {slot_text(r, threshold, width)}"
    if r.role:
        line = f"{line.ljust(COMMENT_COLUMN - 1)} ; {r.role}"
    return line


def slot_json(r: SlotReading) -> dict[str, Any]:
    """A headless twin of one disassembly line: every part with its probability."""
    d = r.slot
    obj: dict[str, Any] = {"address": r.address, "type": d.type_name, "type_prob": round(d.type_prob, 4),
                           "opcode": None, "pointers": None, "value": None, "value_prob": None,
                           "confidence": round(d.confidence, 4), "role": r.role}
    if d.type_id in (INST, REG):
        names = POINTER_NAMES if d.type_id == INST else ("pc",)
        obj["pointers"] = {n: (None if p is None else {"address": p[0], "prob": round(p[1], 4)})
                           for n, p in zip(names, d.pointers)}
    if d.type_id == INST:
        obj["opcode"] = r.mnemonic
    if d.type_id in (DATA, OPDEF):
        obj["value"], obj["value_prob"] = d.content, round(d.content_prob, 4)
        if d.type_id == OPDEF:
            obj["opcode"] = r.mnemonic
    obj["text"] = slot_text(r, threshold=0.0)
    return obj


def disassemble(memory: torch.Tensor, isa: ISA, roles: dict[int, str] | None = None,
                threshold: float = DEFAULT_THRESHOLD, slots: tuple[int, int] | None = None,
                show_empty: bool = True) -> list[str]:
    """Memory [W, D] -> one line per slot (``slots``: the addresses A..B-1 only)."""
    width = max(4, len(str(isa.layout.n_slots - 1)))
    readings = read_slots(memory, isa, roles)
    lo, hi = slots if slots is not None else (0, len(readings))
    return [format_line(r, threshold, width) for r in readings[lo:hi]
            if show_empty or r.slot.type_id != EMPTY or r.role]
