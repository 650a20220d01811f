"""The neural computer: plan (compile the prompt into memory), then execute cycle by cycle.

One execute cycle, batched over B problems and a memory window of W slots:

1. the control unit reads the prompt (KV-cached), every slot and a query (the instruction last
   run, its opcode, the REG slot's status flag) -> PC distribution, a mix of addressing modes:
   the next INST slot after the one last run, that instruction's jump target, ...;
2. soft fetch ``I = pc @ M``; its pointers attend over the addresses (op, src1, src2, dst);
3. reads: the operator slot through ``op`` (indirect), the arguments through ``src1``/``src2``;
4. OEU(opcode, a, b) -> result and write gate;
5. soft write of a DATA slot holding the result at ``dst`` (erase, add, scaled by the gate);
6. halt probability = probability that the fetched operator is HALT;
7. the REG slot now points at the instruction just run and holds its result (the status flag).

The semantics these steps approximate are :mod:`llamacpu.interpreter`'s. ``hard=True`` is free
running as evaluation does it: every choice is its argmax, memory is read hard, episodes that
halted stop writing. In training, ``lengths`` gives each episode its own number of steps (its
target run's): an episode past its length writes nothing and keeps its REG. Nothing here runs
under ``no_grad``: the caller decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from llamacpu import memory as swm
from llamacpu.controller import ControlInputs, Controller, Prompt
from llamacpu.isa import DATA, HALT_OP, INST, ISA, OPCODES
from llamacpu.oeu import OperatorExecutionUnit
from llamacpu.tasks.base import IGNORE


@dataclass
class Plan:
    memory: torch.Tensor  # [B, W, D] the compiled memory image (soft)
    type_logits: torch.Tensor  # [B, W, K]
    pointers: torch.Tensor  # [B, W, P, W]
    content_logits: torch.Tensor  # [B, W, C]
    prompt_attn: torch.Tensor | None = None  # [B, W, L] when recorded
    prompt_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # the prompt's keys and values, per layer


@dataclass
class Teacher:
    """Targets that scheduled sampling may substitute for the machine's own choices."""

    pc: torch.Tensor  # [B, T] long, IGNORE past an episode's end
    result: torch.Tensor  # [B, T] long
    p_pc: float = 0.0  # probability (per problem, per step) of running the target PC instead
    p_result: float = 0.0  # probability of writing the target result instead of the OEU's
    generator: torch.Generator | None = None
    # (first row, whole batch) when these B rows are one data-parallel rank's share of a larger
    # batch: every choice is drawn for the whole batch and this share kept, so the generator
    # moves alike for any number of ranks (llamacpu/distributed.py).
    rows_of: tuple[int, int] | None = None


@dataclass
class Execution:
    memory: torch.Tensor  # [B, W, D] after the last step
    pc: torch.Tensor  # [B, T, W] PC distribution chosen by the controller at each step
    oeu_logits: torch.Tensor  # [B, T, C]
    halt: torch.Tensor  # [B, T] halt probability
    halted: torch.Tensor  # [B] bool: halted within the step limit (free running)
    steps: torch.Tensor  # [B] long: steps run until halting (or the limit)
    # Recorded only with record=True:
    ptr_attn: torch.Tensor | None = None  # [B, T, P, W]
    oeu_in: torch.Tensor | None = None  # [B, T, 3, C] opcode (padded to C), a, b
    gate: torch.Tensor | None = None  # [B, T]
    memories: torch.Tensor | None = None  # [B, T+1, W, D]
    pc_mix: torch.Tensor | None = None  # [B, T, M] weight of each of the control unit's addressing modes
    extra: dict = field(default_factory=dict)


class Machine(nn.Module):
    def __init__(self, isa: ISA, controller: Controller, oeu: OperatorExecutionUnit) -> None:
        super().__init__()
        self.isa = isa
        self.controller = controller
        self.oeu = oeu
        self.register_buffer("keys", isa.keys.clone(), persistent=False)  # [N, A]

    # ---- plan ----
    def plan(self, prompt: Prompt, window: int, record: bool = False, windows: torch.Tensor | None = None) -> Plan:
        """The plan phase over a window of W slots; ``windows`` [B]: each problem's own (see
        :meth:`Controller.plan`)."""
        heads = self.controller.plan(prompt, window, attentions=record, windows=windows)
        memory = self.compose(
            torch.softmax(heads.type_logits, -1), heads.pointers, torch.softmax(heads.content_logits, -1)
        )
        return Plan(memory, heads.type_logits, heads.pointers, heads.content_logits, heads.prompt_attn,
                    heads.prompt_kv)

    def compose(self, types: torch.Tensor, pointers: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Slots from distributions: pointers over a window of W addresses [..., P, W]."""
        keys = pointers @ self.keys[: pointers.shape[-1]]  # (..., P, A)
        return torch.cat([types, keys.flatten(-2), content], dim=-1)

    def attend(self, pointer_keys: torch.Tensor, window: int) -> torch.Tensor:
        """Attention of keys [..., A] over the first W addresses -> [..., W]."""
        logits = self.isa.layout.read_sharpness * pointer_keys @ self.keys[:window].T
        return torch.softmax(logits, dim=-1)

    def harden(self, memory: torch.Tensor) -> torch.Tensor:
        """Every slot replaced by its most likely reading: [B, W, D] -> [B, W, D]."""
        isa, w = self.isa, memory.shape[-2]
        keys = memory[..., isa.pointers_slice].unflatten(-1, (isa.layout.n_pointers, isa.layout.key_dim))
        has_key = keys.norm(dim=-1, keepdim=True) > 0.5  # unset pointers stay unset
        ptr = _hard(self.attend(keys, w)) * has_key
        return self.compose(_hard(memory[..., isa.type_slice]), ptr, _hard(memory[..., isa.content_slice]))

    # ---- execute ----
    def execute(
        self,
        prompt: Prompt,
        memory: torch.Tensor,
        steps: int,
        teacher: Teacher | None = None,
        hard: bool = False,
        record: bool = False,
        prompt_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        lengths: torch.Tensor | None = None,
        recompute: bool = False,
    ) -> Execution:
        """Run up to ``steps`` cycles (training: the longest target run; free running: the limit).

        prompt: [B, L]; memory: [B, W, D]; prompt_kv: the plan pass's keys and values of the
        prompt (:attr:`Plan.prompt_kv`), encoded here when not given; lengths: [B] steps of each
        episode (training), else episodes run until they halt (``hard``) or for ``steps``.
        recompute: with gradients on, each cycle's control unit (a backbone pass over all W
        slots, most of a cycle's activations) keeps only its inputs and runs again in backward:
        the same gradients in less memory, for about one more forward pass of the backbone.
        """
        isa = self.isa
        b, w, _ = memory.shape
        n_ops = len(OPCODES)
        device = memory.device
        if prompt_kv is None:
            prompt_kv = self.controller.encode_prompt(prompt)
        status = self.controller.config.status_register
        data_type = F.one_hot(torch.tensor(DATA, device=device), isa.layout.n_types).float()
        zero_ptrs = torch.zeros(isa.layout.n_pointers * isa.layout.key_dim, device=device)
        new_slot_head = torch.cat([data_type, zero_ptrs]).expand(b, -1)  # (B, K + P*A)
        alive = torch.ones(b, device=device)
        halted = torch.zeros(b, dtype=torch.bool, device=device)
        n_run = torch.full((b,), steps, dtype=torch.long, device=device) if lengths is None else lengths.to(device)
        last_op = torch.zeros(b, n_ops, device=device)  # the opcode last run (the instruction register)
        pcs, oeu_logits, halts, mixes = [], [], [], []
        rec: dict[str, list[torch.Tensor]] = {"ptr": [], "in": [], "gate": [], "mem": [memory]} if record else {}
        ptr0, content = isa.pointer_slice(0), isa.content_slice
        keys_w = self.keys[:w]

        for t in range(steps):
            if lengths is not None:
                alive = (t < n_run).float()
            if recompute and torch.is_grad_enabled():
                pc, mix = checkpoint(self._control, prompt, prompt_kv, memory, last_op, hard, use_reentrant=False)
            else:
                pc, mix = self._control(prompt, prompt_kv, memory, last_op, hard)  # (B, W), (B, M)
            pcs.append(pc)
            mixes.append(mix)
            pc_used = _hard(pc) if hard else pc
            if teacher is not None and teacher.p_pc > 0:
                pc_used = _substitute(pc_used, teacher.pc[:, t], teacher.p_pc, teacher.generator, teacher.rows_of)

            inst = swm.read(memory, pc_used)  # (B, D) soft fetch
            keys = inst[:, isa.pointers_slice].unflatten(-1, (isa.layout.n_pointers, isa.layout.key_dim))
            ptr = self.attend(keys, w)  # (B, P, W): op, src1, src2, dst
            if hard:
                ptr = _hard(ptr)
            operands = swm.read(memory, ptr[:, :3])[..., content]  # (B, 3, C)
            op = operands[:, 0, :n_ops]
            op = op / op.sum(-1, keepdim=True).clamp(min=1e-6)  # (B, OPS): opcodes are codes 0..12
            a, bb = operands[:, 1], operands[:, 2]
            if hard:
                op, a, bb = _hard(op), _hard(a), _hard(bb)
            logits, gate = self.oeu(op, a, bb)  # (B, C), (B,)
            oeu_logits.append(logits)
            result = _hard(logits) if hard else torch.softmax(logits, -1)
            if hard:
                gate = (gate > 0.5).float()
            if teacher is not None and teacher.p_result > 0:
                result = _substitute(result, teacher.result[:, t], teacher.p_result, teacher.generator,
                                     teacher.rows_of)
            halt = op[:, HALT_OP]
            halts.append(halt)

            slot = torch.cat([new_slot_head, result], dim=-1)  # (B, D) a DATA slot holding the result
            memory = swm.write(memory, ptr[:, 3], gate * alive, slot)
            live = alive.unsqueeze(-1)
            reg = memory[:, 0].clone()
            reg[:, ptr0] = live * (pc_used @ keys_w) + (1 - live) * reg[:, ptr0]
            if status:
                reg[:, content] = live * result + (1 - live) * reg[:, content]
            memory = torch.cat([reg.unsqueeze(1), memory[:, 1:]], dim=1)
            last_op = live * op + (1 - live) * last_op

            if record:
                rec["ptr"].append(ptr)
                rec["in"].append(torch.stack([F.pad(op, (0, isa.layout.n_values - n_ops)), a, bb], dim=1))
                rec["gate"].append(gate * alive)
                rec["mem"].append(memory)
            if hard and lengths is None:
                now = (halt > 0.5) & ~halted
                n_run = torch.where(now, torch.full_like(n_run, t + 1), n_run)
                halted = halted | now
                alive = (~halted).float()
                if bool(halted.all()):
                    break

        out = Execution(
            memory=memory,
            pc=torch.stack(pcs, 1),
            oeu_logits=torch.stack(oeu_logits, 1),
            halt=torch.stack(halts, 1),
            halted=halted,
            steps=n_run,
            pc_mix=torch.stack(mixes, 1),
        )
        if record:
            out.ptr_attn = torch.stack(rec["ptr"], 1)
            out.oeu_in = torch.stack(rec["in"], 1)
            out.gate = torch.stack(rec["gate"], 1)
            out.memories = torch.stack(rec["mem"], 1)
        return out

    def _control(self, prompt: Prompt, prompt_kv: list[tuple[torch.Tensor, torch.Tensor]], memory: torch.Tensor,
                 last_op: torch.Tensor, hard: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One cycle's control unit: PC distribution [B, W] and addressing-mode mix [B, M]."""
        control = self.control_inputs(memory, last_op, hard)
        return self.controller.next_pc(prompt_kv, prompt.mask, memory, control, prompt.shift)

    def control_inputs(self, memory: torch.Tensor, last_op: torch.Tensor, hard: bool = False) -> ControlInputs:
        """What the control unit reads this cycle, from memory [B, W, D] and the last opcode [B, OPS]."""
        isa, w = self.isa, memory.shape[1]
        reg_ptr = self.attend(memory[:, 0, isa.pointer_slice(0)], w)  # (B, W) where the REG slot points
        if hard:
            reg_ptr = _hard(reg_ptr)
        current = swm.read(memory, reg_ptr)  # (B, D) the instruction last run
        jump = self.attend(current[:, isa.pointer_slice(3)], w)  # (B, W) where its dst points
        next_inst = swm.next_marked(reg_ptr, memory[..., INST])  # (B, W) the next INST slot after it
        if hard:
            jump = _hard(jump)
        return ControlInputs(current=current, reg_ptr=reg_ptr, op=last_op, flag=memory[:, 0, isa.content_slice],
                             next_inst=next_inst, jump=jump)

    def read_answer(self, memory: torch.Tensor, answer_slots: torch.Tensor) -> torch.Tensor:
        """Content distributions of the result slots: memory [B, W, D], slots [B, R] -> [B, R, C]."""
        idx = answer_slots.unsqueeze(-1).expand(-1, -1, memory.shape[-1])
        return memory.gather(1, idx)[..., self.isa.content_slice]


def _hard(probs: torch.Tensor) -> torch.Tensor:
    return F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)


def _substitute(chosen: torch.Tensor, target: torch.Tensor, p: float, generator: torch.Generator | None,
                rows_of: tuple[int, int] | None = None) -> torch.Tensor:
    """Per problem, with probability p, the one-hot target replaces the machine's choice [B, X]
    (never where the target is IGNORE: an episode past its end). ``rows_of``: see :class:`Teacher`."""
    b = chosen.shape[0]
    first, whole = rows_of if rows_of is not None else (0, b)
    use = torch.rand(whole, generator=generator)[first: first + b].to(chosen.device) < p
    use = use & (target != IGNORE)
    forced = F.one_hot(target.clamp(min=0), chosen.shape[-1]).to(chosen.dtype)
    return torch.where(use.unsqueeze(-1), forced, chosen)
