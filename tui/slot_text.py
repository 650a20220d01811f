"""A decoded slot as one line of pseudo-assembly, with doubt written out (``DATA 3?0.61``).

Decoding is :meth:`llamacpu.isa.ISA.decode`; this module only words its result, in the form
DESIGN.md gives for ``disasm``::

    0000  REG    pc -> 0031
    0001  OPDEF  ADD
    0031  INST   ADD [0007], [0018] -> [0021]
    0044  INST   JZ  [0020], -> 0031
"""

from __future__ import annotations

from typing import Callable

from llamacpu.isa import DATA, EMPTY, INST, OPCODES, OPDEF, REG, DecodedSlot

DOUBT = 0.9  # a reading less likely than this shows its probability: ``3?0.61``
JUMPS = frozenset(("JMP", "JZ", "JNZ"))


def doubt(text: str, prob: float, threshold: float = DOUBT) -> str:
    return f"{text}?{prob:.2f}" if prob < threshold else text


def addr_text(ptr: tuple[int, float] | None, threshold: float = DOUBT) -> str:
    if ptr is None:
        return "-"
    return doubt(f"{ptr[0]:04d}", ptr[1], threshold)


def type_text(slot: DecodedSlot, threshold: float = DOUBT) -> str:
    return doubt(slot.type_name, slot.type_prob, threshold)


def opcode_name(code: int) -> str:
    return OPCODES[code] if 0 <= code < len(OPCODES) else f"op{code}"


def body_text(slot: DecodedSlot, operator: Callable[[int], str | None], threshold: float = DOUBT) -> str:
    """The part after the type: a value, an opcode, an instruction or the PC.

    operator(addr) names the opcode held by the OPDEF slot at addr (None if it holds none):
    an instruction's ``op`` pointer is indirect.
    """
    if slot.type_id == EMPTY:
        return ""
    if slot.type_id == DATA:
        return doubt(str(slot.content), slot.content_prob, threshold)
    if slot.type_id == OPDEF:
        return doubt(opcode_name(slot.content), slot.content_prob, threshold)
    if slot.type_id == REG:
        return f"pc -> {addr_text(slot.pointers[0], threshold)}"
    assert slot.type_id == INST
    op, src1, src2, dst = slot.pointers
    if op is None:
        return "?? (no op pointer)"
    name = operator(op[0]) or f"?[{op[0]:04d}]"
    name = doubt(name, op[1], threshold)
    if name in ("HALT", "NOP"):
        return name
    args = [f"[{addr_text(p, threshold)}]" for p in (src1, src2) if p is not None]
    head = f"{name:<4}" if len(name) < 4 else f"{name} "
    if name in JUMPS:
        cond = ", ".join(args[:1]) + "," if name != "JMP" and args else ""
        return f"{head}{cond} -> {addr_text(dst, threshold)}"
    target = f" -> [{addr_text(dst, threshold)}]" if dst is not None else ""
    return f"{head}{', '.join(args)}{target}"


def slot_line(addr: int, slot: DecodedSlot, operator: Callable[[int], str | None], role: str = "",
              threshold: float = DOUBT) -> str:
    """One disassembly line: ``0031  INST   ADD [0007], [0018] -> [0021]   ; role``."""
    line = f"{addr:04d}  {type_text(slot, threshold):<6} {body_text(slot, operator, threshold)}"
    return f"{line:<40} ; {role}" if role else line.rstrip()
