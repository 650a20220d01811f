"""Synthetic traces in the ``llamacpu.trace/1`` schema, for the debugger's tests and benchmark.

A trace follows an addition program compiled by the expert compiler: the PC is nearly one-hot on
the target instruction, pointer attention peaks on the instruction's pointers, the OEU computes
the ISA's result and memory changes by the writes. Errors can be injected so that breakpoints on
neural facts have something to stop at: a wrong OEU output at one step, a doubtful planned slot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import llamacpu.trace as trace_store
from llamacpu.isa import DATA, EMPTY, HALT_OP, ISA, REG, SlotLayout, WRITING_OPS, execute_op
from llamacpu.tasks import get_task

CREATED = "2026-11-23T12:00:00+00:00"  # fixed, so snapshots do not change from run to run


def _peaked(n: int, index: int, p: float) -> torch.Tensor:
    """A distribution over n with mass p on index and the rest spread evenly: [n]."""
    out = torch.full((n,), (1.0 - p) / max(n - 1, 1))
    out[index] = p
    return out


def _prompt_attention(prompt: str, roles: dict[int, str], window: int) -> torch.Tensor:
    """Which prompt characters each slot was compiled from: [W, L]."""
    left, right = prompt.split("+")
    a_end = len(left.rstrip())  # one past a's last digit
    b_end = len(prompt)
    plus = prompt.index("+")
    attn = torch.full((window, len(prompt)), 0.02)
    for addr in range(window):
        role = roles.get(addr, "")
        if role.startswith(("a[", "b[")):
            i = int(role[2:-1])
            end = a_end if role[0] == "a" else b_end
            pos = end - 1 - i
            if 0 <= pos < len(prompt) and prompt[pos].isdigit():
                attn[addr, pos] = 1.0
            else:
                attn[addr, plus] = 0.5
        else:
            attn[addr, plus] = 0.6
    return attn / attn.sum(-1, keepdim=True)


def make_trace(
    a: int = 123,
    b: int = 456,
    *,
    layout: SlotLayout | None = None,
    wrong_step: int | None = None,
    doubtful_slot: int | None = None,
    steps: int | None = None,
    window: int | None = None,
    training_step: int | None = None,
    probe_id: str | None = None,
    run: str | None = "synthetic",
    stage: int | None = None,
) -> dict[str, Any]:
    """One episode of ``a + b`` as a trace dict.

    wrong_step: the OEU produces a wrong value at this execute step (and memory keeps it).
    doubtful_slot: the plan writes this slot's content with probability 0.61 only.
    steps: run this many execute steps by cycling the program's instructions (benchmarks);
    the last one is HALT. window: the memory window (default: what the problem needs).
    """
    isa = ISA(layout or SlotLayout())
    C = isa.layout.n_values
    program = get_task("add").compile(a, b, isa)
    W = window or program.window
    image = torch.zeros(W, isa.layout.slot_dim)
    image[:, EMPTY] = 1.0
    image[: program.window] = program.memory_image(isa)
    planned = image.clone()
    if doubtful_slot is not None:
        content = planned[doubtful_slot, isa.content_slice]
        v = int(content.argmax())
        planned[doubtful_slot, isa.content_slice] = 0.0
        planned[doubtful_slot, isa.content_slice.start + v] = 0.61
        planned[doubtful_slot, isa.content_slice.start + (v + 1) % C] = 0.39

    pointers = program.pointers  # [W0, P] target addresses
    pcs = program.pc.tolist()
    if steps is not None:
        loop = pcs[:-1]
        pcs = [loop[i % len(loop)] for i in range(steps - 1)] + [pcs[-1]]
    T = len(pcs)

    memory = [planned.clone()]
    pc = torch.zeros(T, W)
    ptr_attn = torch.zeros(T, 4, W)
    oeu_in = torch.zeros(T, 3, C)
    oeu_out = torch.zeros(T, C)
    expected = torch.zeros(T, dtype=torch.long)
    gate = torch.zeros(T)
    halt = torch.zeros(T)
    uniform = torch.full((W,), 1.0 / W)
    for t, addr in enumerate(pcs):
        mem = memory[-1]
        op = int(pointers[addr, 0]) - 1
        src1, src2, dst = (int(x) for x in pointers[addr, 1:])
        val = lambda s: int(mem[s, isa.content_slice].argmax()) if s >= 0 else 0  # noqa: E731
        x, y = val(src1), val(src2)
        result, writes = execute_op(op, x, y, C)
        produced = (result + 3) % C if t == wrong_step else result
        pc[t] = _peaked(W, addr, 0.96)
        for p, target in enumerate(pointers[addr].tolist()):
            ptr_attn[t, p] = _peaked(W, target, 0.97) if target >= 0 else uniform
        oeu_in[t, 0] = _peaked(C, op, 1.0)
        oeu_in[t, 1] = _peaked(C, x, 1.0)
        oeu_in[t, 2] = _peaked(C, y, 1.0)
        oeu_out[t] = _peaked(C, produced, 0.95)
        expected[t] = result
        gate[t] = float(writes)
        halt[t] = 0.99 if op == HALT_OP else 0.01
        new = mem.clone()
        if writes and op in WRITING_OPS:
            new[dst] = isa.encode(DATA, content=produced)
        new[0] = isa.encode(REG, pointers=(addr,))
        memory.append(new)

    final = memory[-1]
    digits = [int(final[s, isa.content_slice].argmax()) for s in program.answer_slots.tolist()]
    produced_answer = get_task("add").answer_from_digits(digits)
    S = program.window
    prompt = program.prompt
    return {
        "schema": "llamacpu.trace/1",
        "meta": {
            "task": "add", "prompt": prompt, "operands": [a, b], "digits": program.digits,
            "expected": program.answer, "produced": produced_answer,
            "correct": produced_answer == program.answer, "halted": True, "steps": T,
            "stage": stage, "training_step": training_step, "run": run, "checkpoint": None,
            "controller": "synthetic", "seed": 0, "created": CREATED, "probe_id": probe_id,
            "window": W, "roles": {str(k): v for k, v in program.roles.items()},
            "answer_slots": program.answer_slots.tolist(), "mode": "plan+execute",
        },
        "isa": isa.to_dict(),
        "prompt_tokens": torch.tensor([ord(c) for c in prompt], dtype=torch.long),
        "prompt_pieces": list(prompt),
        "plan": {
            "addr": torch.arange(S),
            "slot": planned[:S].half(),
            "target": image[:S].half(),
            "prompt_attn": _prompt_attention(prompt, program.roles, S).half(),
            "loss": torch.rand(S, generator=torch.Generator().manual_seed(0)) * 0.05,
        },
        "exec": {
            "pc": pc.half(),
            "pc_target": torch.tensor(pcs, dtype=torch.long),
            "ptr_attn": ptr_attn.half(),
            "oeu_in": oeu_in.half(),
            "oeu_out": oeu_out.half(),
            "oeu_expected": expected,
            "write_gate": gate.half(),
            "halt": halt.half(),
            "memory": torch.stack(memory).half(),
        },
    }


def save_trace(trace: dict[str, Any], path: Path, dense: bool = False) -> Path:
    """Write as the recorder does (memory as changed rows), or ``dense``: memory as one tensor."""
    if dense:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(trace, path)
        return path
    return trace_store.save_trace(trace, path)


def write_store(folder: Path, probe_steps: tuple[int, ...] = (100, 200, 300)) -> Path:
    """A small store: one probe problem at several training steps, plus a failing problem."""
    store = trace_store.TraceStore(folder, create=True)
    for step in probe_steps:
        wrong = 5 if step == probe_steps[0] else None
        trace = make_trace(47, 85, training_step=step, probe_id="p0", stage=2, wrong_step=wrong)
        store.add(trace, f"probe-p0-step{step:06d}.pt")
    store.add(make_trace(3, 4, training_step=probe_steps[-1], stage=1, wrong_step=1),
              f"fail-step{probe_steps[-1]:06d}.pt")
    return folder

