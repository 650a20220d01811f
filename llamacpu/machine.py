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
from typing import Any, Callable, NamedTuple

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

    def choices(self, steps: int, device: torch.device) -> "tuple[torch.Tensor | None, torch.Tensor | None]":
        """Which problems take the target PC and which the target result at each step: [T, B] bool
        each (None where the probability is 0; never where the target is IGNORE). Drawn up front,
        step by step, PC before result, as the cycles once drew them one at a time: a seeded run
        trains as before, and a cycle holds no random draw (:meth:`Machine.compile_cycle`)."""
        b = self.pc.shape[0]
        first, whole = self.rows_of if self.rows_of is not None else (0, b)
        draws: dict[str, list[torch.Tensor]] = {"pc": [], "result": []}
        for _ in range(steps):
            for name, p in (("pc", self.p_pc), ("result", self.p_result)):
                if p > 0:
                    draws[name].append(torch.rand(whole, generator=self.generator)[first: first + b] < p)
        out = []
        for name, target in (("pc", self.pc), ("result", self.result)):
            if not draws[name]:
                out.append(None)
                continue
            use = torch.stack(draws[name]).to(device)  # (T, B)
            out.append(use & (target[:, :steps].T.to(device) != IGNORE))
        return out[0], out[1]


class Cycle(NamedTuple):
    """What one execute cycle leaves and chose (:meth:`Machine._cycle`)."""

    memory: torch.Tensor  # [B, W, D] after the cycle's write
    last_op: torch.Tensor  # [B, OPS] the opcode just run (kept where an episode has ended)
    pc: torch.Tensor  # [B, W] the control unit's PC distribution
    mix: torch.Tensor  # [B, M] its mix of addressing modes
    oeu_logits: torch.Tensor  # [B, C]
    halt: torch.Tensor  # [B] the probability that the fetched operator is HALT
    ptr: torch.Tensor  # [B, P, W] the fetched instruction's pointers
    op: torch.Tensor  # [B, OPS] the opcode read
    a: torch.Tensor  # [B, C] the arguments read
    b: torch.Tensor  # [B, C]
    gate: torch.Tensor  # [B] the write gate, 0 where an episode has ended


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
        self._compiled_cycle: Callable[..., Cycle] | None = None  # compile_cycle's, used with gradients on

    def compile_cycle(self, mode: str | None = None, backend: str | Callable[..., Any] = "inductor") -> None:
        """``torch.compile`` one execute cycle whole (the control unit's backbone pass, fetch, reads,
        OEU, write), with dynamic shapes: the training step runs it once per cycle, forward and
        backward each a few fused kernels instead of hundreds of operator calls, the host's cost
        when a small controller trains on a GPU (docs/experiments.md, "Session 35"). Only cycles
        run with gradients on use it; evaluation stays eager. Parameters are not touched, so
        checkpoints are the same.

        Python floats (the read sharpness, RMSNorm's epsilon, attention's scale) stay constants:
        with dynamic shapes dynamo would otherwise pass each as a 0-d float64 tensor on the CPU,
        and a graph with a CPU input is never captured as a CUDA graph (session 37: the
        ``cudagraphs`` backend skipped every graph for ``primals_4``, the read sharpness)."""
        compiled = torch.compile(self._cycle, mode=mode, backend=backend, dynamic=True, fullgraph=True)

        def cycle(*args: Any) -> Cycle:
            with torch._dynamo.config.patch(specialize_float=True):
                return compiled(*args)

        self._compiled_cycle = cycle

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
        device = memory.device
        if prompt_kv is None:
            prompt_kv = self.controller.encode_prompt(prompt)
        data_type = F.one_hot(torch.tensor(DATA, device=device), isa.layout.n_types).float()
        zero_ptrs = torch.zeros(isa.layout.n_pointers * isa.layout.key_dim, device=device)
        new_slot_head = torch.cat([data_type, zero_ptrs]).expand(b, -1)  # (B, K + P*A)
        alive = torch.ones(b, device=device)
        halted = torch.zeros(b, dtype=torch.bool, device=device)
        n_run = torch.full((b,), steps, dtype=torch.long, device=device) if lengths is None else lengths.to(device)
        live_at = (torch.arange(steps, device=device).unsqueeze(1) < n_run).float() if lengths is not None else None
        compiled = self._compiled_cycle is not None and torch.is_grad_enabled()
        # The opcode last run (the instruction register). Compiled, every cycle's inputs must look
        # alike to dynamo's guards, or each difference compiles the cycle again: the first cycle's
        # register requires grad as later ones do (a leaf whose gradient nothing reads), and the
        # teacher's rows and the live mask below are copies, not views of tensors whose sizes and
        # storage offsets dynamo would tie to the batch's.
        last_op = torch.zeros(b, len(OPCODES), device=device, requires_grad=compiled)
        use_pc, use_result = teacher.choices(steps, device) if teacher is not None else (None, None)
        pc_targets, result_targets = (teacher.pc.to(device), teacher.result.to(device)) if teacher is not None else (None, None)
        pcs, oeu_logits, halts, mixes = [], [], [], []
        rec: dict[str, list[torch.Tensor]] = {"ptr": [], "in": [], "gate": [], "mem": [memory]} if record else {}
        cycle = self._compiled_cycle if compiled else self._cycle
        row = (lambda x, t: x[t].clone()) if compiled else (lambda x, t: x[t])  # cycle t's row of a [T, B] tensor
        recompute = recompute and torch.is_grad_enabled()

        for t in range(steps):
            if live_at is not None:
                alive = row(live_at, t)
            teach_pc = None if use_pc is None else (row(use_pc, t), row(pc_targets.T, t))
            teach_result = None if use_result is None else (row(use_result, t), row(result_targets.T, t))
            c = cycle(prompt, prompt_kv, memory, last_op, alive, new_slot_head, teach_pc, teach_result, hard, recompute)
            memory, last_op = c.memory, c.last_op
            pcs.append(c.pc)
            mixes.append(c.mix)
            oeu_logits.append(c.oeu_logits)
            halts.append(c.halt)
            if record:
                rec["ptr"].append(c.ptr)
                rec["in"].append(torch.stack([F.pad(c.op, (0, isa.layout.n_values - len(OPCODES))), c.a, c.b], dim=1))
                rec["gate"].append(c.gate)
                rec["mem"].append(memory)
            if hard and lengths is None:
                now = (c.halt > 0.5) & ~halted
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

    def _cycle(self, prompt: Prompt, prompt_kv: list[tuple[torch.Tensor, torch.Tensor]], memory: torch.Tensor,
               last_op: torch.Tensor, alive: torch.Tensor, new_slot_head: torch.Tensor,
               teach_pc: tuple[torch.Tensor, torch.Tensor] | None,
               teach_result: tuple[torch.Tensor, torch.Tensor] | None, hard: bool, recompute: bool) -> Cycle:
        """One execute cycle (steps 1-7 above): memory [B, W, D], the opcode last run [B, OPS] and
        which episodes still run [B] -> the next memory and opcode, and what the cycle chose.
        teach_pc, teach_result: (use [B] bool, target [B]), the teacher's substitutions this step.
        Tensors in, tensors out, no random draw and no host sync: :meth:`compile_cycle` compiles it."""
        isa, w = self.isa, memory.shape[1]
        n_ops = len(OPCODES)
        if recompute:
            pc, mix = checkpoint(self._control, prompt, prompt_kv, memory, last_op, hard, use_reentrant=False)
        else:
            pc, mix = self._control(prompt, prompt_kv, memory, last_op, hard)  # (B, W), (B, M)
        pc_used = _hard(pc) if hard else pc
        if teach_pc is not None:
            pc_used = _substitute(pc_used, *teach_pc)

        inst = swm.read(memory, pc_used)  # (B, D) soft fetch
        keys = inst[:, isa.pointers_slice].unflatten(-1, (isa.layout.n_pointers, isa.layout.key_dim))
        ptr = self.attend(keys, w)  # (B, P, W): op, src1, src2, dst
        if hard:
            ptr = _hard(ptr)
        operands = swm.read(memory, ptr[:, :3])[..., isa.content_slice]  # (B, 3, C)
        op = operands[:, 0, :n_ops]
        op = op / op.sum(-1, keepdim=True).clamp(min=1e-6)  # (B, OPS): opcodes are codes 0..12
        a, bb = operands[:, 1], operands[:, 2]
        if hard:
            op, a, bb = _hard(op), _hard(a), _hard(bb)
        logits, gate = self.oeu(op, a, bb)  # (B, C), (B,)
        result = _hard(logits) if hard else torch.softmax(logits, -1)
        if hard:
            gate = (gate > 0.5).float()
        if teach_result is not None:
            result = _substitute(result, *teach_result)

        slot = torch.cat([new_slot_head, result], dim=-1)  # (B, D) a DATA slot holding the result
        memory = swm.write(memory, ptr[:, 3], gate * alive, slot)
        live = alive.unsqueeze(-1)
        ptr0, content = isa.pointer_slice(0), isa.content_slice
        reg = memory[:, 0].clone()
        reg[:, ptr0] = live * (pc_used @ self.keys[:w]) + (1 - live) * reg[:, ptr0]
        if self.controller.config.status_register:
            reg[:, content] = live * result + (1 - live) * reg[:, content]
        memory = torch.cat([reg.unsqueeze(1), memory[:, 1:]], dim=1)
        last_op = live * op + (1 - live) * last_op
        return Cycle(memory, last_op, pc, mix, logits, op[:, HALT_OP], ptr, op, a, bb, gate * alive)

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


def _substitute(chosen: torch.Tensor, use: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The one-hot target [B] replaces the machine's choice [B, X] where ``use`` [B] (the
    teacher's draw, :meth:`Teacher.choices`)."""
    # A comparison with arange, not F.one_hot: one_hot's class count is a Python int, which makes a
    # compiled cycle specialize on the window and compile again at every curriculum stage.
    forced = (target.clamp(min=0).unsqueeze(-1) == torch.arange(chosen.shape[-1], device=chosen.device)).to(chosen.dtype)
    return torch.where(use.unsqueeze(-1), forced, chosen)
