"""Executing data as code: what a recorded run did on the cycles whose PC was on a non-INST slot.

The ISA's semantics stop with a fault there ("executed a DATA slot"); the neural CPU has no such
stop: it fetches the slot anyway. A ``DATA`` slot written by the assembler has zero pointer keys,
and a zero key attends uniformly over the addresses (argmax: slot 0, the ``REG`` slot), so the
prediction to check is that the operator, both arguments and the destination all come from the
``REG`` slot, whose content is the status flag. :func:`data_steps` reads off what each such cycle
did, from the trace alone (the debugger's breakpoint "PC on a slot that is not an instruction"
stops at the same cycles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llamacpu.isa import INST, ISA, OPCODES, REG, SLOT_TYPES


@dataclass(frozen=True)
class DataStep:
    """One cycle whose PC was on a slot that was not an instruction (``step`` counts from 1)."""

    step: int
    pc: int
    slot_type: str  # the type of the slot run as code
    content: int  # its content (a DATA slot's value)
    op_addr: int  # where its op / src1 / src2 / dst pointers read (argmax of the recorded attention)
    src1: int
    src2: int
    dst: int
    opcode: str  # what the OEU was given as operator
    a: int
    b: int
    result: int
    wrote: bool  # the write gate opened
    reg_overwritten: bool  # after the cycle slot 0 no longer decodes as the REG slot


def data_steps(trace: dict[str, Any], isa: ISA) -> list[DataStep]:
    """Every cycle of ``trace`` whose PC (argmax) was on a non-INST slot of the memory it read."""
    ex = trace["exec"]
    mem = ex["memory"].float()  # (T+1, W, D)
    pc = ex["pc"].float().argmax(-1)  # (T,)
    ptr = ex["ptr_attn"].float().argmax(-1)  # (T, P)
    oeu_in = ex["oeu_in"].float()  # (T, 3, C)
    out = ex["oeu_out"].float().argmax(-1)  # (T,)
    types = mem[..., isa.type_slice].argmax(-1)  # (T+1, W)
    content = mem[..., isa.content_slice].argmax(-1)
    steps = []
    for t in range(pc.numel()):
        a = int(pc[t])
        if int(types[t, a]) == INST:
            continue
        op = int(oeu_in[t, 0, : len(OPCODES)].argmax())
        steps.append(DataStep(
            step=t + 1, pc=a, slot_type=SLOT_TYPES[int(types[t, a])], content=int(content[t, a]),
            op_addr=int(ptr[t, 0]), src1=int(ptr[t, 1]), src2=int(ptr[t, 2]), dst=int(ptr[t, 3]),
            opcode=OPCODES[op], a=int(oeu_in[t, 1].argmax()), b=int(oeu_in[t, 2].argmax()), result=int(out[t]),
            wrote=float(ex["write_gate"][t]) > 0.5, reg_overwritten=int(types[t + 1, 0]) != REG))
    return steps
