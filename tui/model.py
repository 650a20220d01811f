"""TraceView: what the debugger shows of a trace at one position, and the facts breakpoints test.

Positions run over one timeline: plan steps ``0..S-1`` (plan step s writes slot ``plan.addr[s]``),
then execute steps ``S..S+T-1``. At a plan position memory holds the slots planned so far; at an
execute position it is memory *after* that step, so the slot just written shows its new value.

Step numbers, as every command and the docs give them: execute steps are numbered ``1..T``, step
``k`` being the k-th cycle, and "memory at step k" is memory after it (``exec.memory[k]``); step 0
is the memory execution starts from (``llamacpu disasm --step 0``), before any cycle. Inside this
module ``t = k - 1`` indexes the per-step arrays (``phase`` returns it).
Slots are decoded through :meth:`llamacpu.isa.ISA.decode`, only when a row is shown.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llamacpu.isa import EMPTY, INST, ISA, OPCODES, OPDEF, POINTER_NAMES, SLOT_TYPES, DecodedSlot
from llamacpu.trace import trace_isa
from tui.slot_text import body_text, opcode_name, type_text
from tui.trace_file import DenseMemory, LazyMemory, open_trace

DISTRIBUTIONS: tuple[str, ...] = ("pc", *POINTER_NAMES)  # rows of the attention heatmap
ROW_CACHE = 4096  # decoded rows kept: a few screens of a few steps


@dataclass(frozen=True)
class SlotRow:
    """One memory row as the memory pane shows it."""

    addr: int
    type: str  # type name, with its probability when in doubt
    body: str  # value, opcode, instruction or PC
    confidence: float
    role: str
    decoded: DecodedSlot


@dataclass(frozen=True)
class Marks:
    """Which slots this position touches."""

    pc: int | None  # the instruction run at this step
    reads: tuple[int, ...]  # slots read through op, src1, src2
    written: int | None  # slot written this step (plan: the slot planned)
    changed: frozenset[int]  # slots whose content changed since the previous position


@dataclass(frozen=True)
class ControlView:
    """Control flow at one execute step, beside the reference interpreter's run of the program.

    Runs are compared by path: up to the first step where the neural PC leaves the reference's,
    step k of one is step k of the other; after it the two runs are different programs' worth
    of steps, and only the departure is reported.
    """

    jump: str | None  # the opcode when this step runs a jump (JMP, JZ, JNZ), else None
    condition: int | None  # the value the jump read (src1), None for JMP
    taken: bool | None  # the OEU's verdict: result 1 = taken
    target: int | None  # where dst points
    next_pc: int | None  # the PC the control unit chose for the next step (None: last step)
    ref_pc: int | None  # the reference's PC at this step (None: past its run or off its path)
    ref_taken: bool | None  # did the reference take its jump at this step
    departed: int | None  # the step number where the run left the reference's path (None: never so far)


@dataclass(frozen=True)
class OEUView:
    """The operator execution unit at one execute step."""

    op: str
    op_prob: float
    a: int
    a_prob: float
    b: int
    b_prob: float
    out: int
    out_prob: float
    expected: int | None  # None: not known
    gate: float
    halt: float

    @property
    def right(self) -> bool | None:
        return None if self.expected is None else self.out == self.expected


def slot_confidence(isa: ISA, slots: torch.Tensor) -> torch.Tensor:
    """:attr:`DecodedSlot.confidence` for many slots at once: [..., D] -> [...].

    Mirrors ``ISA.decode`` (tested against it) so that a breakpoint can test every step of a run.
    """
    slots = slots.float()
    tprob, tid = slots[..., isa.type_slice].max(-1)
    cprob = slots[..., isa.content_slice].max(-1).values
    keys = slots[..., isa.pointers_slice].unflatten(-1, (isa.layout.n_pointers, isa.layout.key_dim))
    has_key = keys.norm(dim=-1) > 0.5  # (..., P)
    pmax = isa.attend(keys).max(-1).values.masked_fill(~has_key, 1.0)  # (..., P)
    conf = tprob.clone()
    with_content = (tid == OPDEF) | (tid == 4)  # OPDEF, DATA
    conf = torch.where(with_content, torch.minimum(conf, cprob), conf)
    conf = torch.where(tid == INST, torch.minimum(conf, pmax.min(-1).values), conf)
    conf = torch.where(tid == 1, torch.minimum(conf, pmax[..., 0]), conf)  # REG: its pc pointer
    return conf


def _probabilities(x: torch.Tensor) -> torch.Tensor:
    """Rows that are already probabilities stay; logits go through softmax: [..., C]."""
    x = x.float()
    if bool((x >= 0).all()) and bool(((x.sum(-1) - 1).abs() < 0.05).all()):
        return x
    return torch.softmax(x, -1)


def entropy_bits(p: torch.Tensor) -> torch.Tensor:
    """Entropy in bits of distributions [..., N] -> [...]."""
    p = p.float().clamp(min=0)
    h = -(p * torch.log2(p.clamp(min=1e-12))).sum(-1)
    return h.clamp(min=0.0) + 0.0  # rounding can leave -1e-8 or -0.0: shown as "-0.00" otherwise


class TraceView:
    """Read-only view of one trace; every per-step read is lazy."""

    def __init__(self, trace: dict[str, Any], memory: LazyMemory | DenseMemory, path: Path | None = None) -> None:
        self.trace = trace
        self.path = path
        self.meta: dict[str, Any] = trace["meta"]
        self.isa = trace_isa(trace)
        self.memory = memory
        plan, ex = trace["plan"], trace["exec"]
        self.plan_addr = plan["addr"].long().numpy()
        self.plan_slots: torch.Tensor = plan["slot"]
        self.n_plan = int(self.plan_addr.shape[0])
        self.n_exec = int(ex["pc"].shape[0])
        self.window = int(self.meta["window"])
        self.roles = {int(k): str(v) for k, v in (self.meta.get("roles") or {}).items()}
        self.exec = ex
        self.pc_addr = ex["pc"].argmax(-1).numpy()  # (T,)
        self.ptr_addr = ex["ptr_attn"].argmax(-1).numpy()  # (T, P)
        self.gate = ex["write_gate"].float().numpy()
        self.halt = ex["halt"].float().numpy()
        self.oeu_out = _probabilities(ex["oeu_out"]) if self.n_exec else ex["oeu_out"].float()
        self.oeu_pred = self.oeu_out.argmax(-1).numpy() if self.n_exec else np.zeros(0, dtype=np.int64)
        self.oeu_expected = ex["oeu_expected"].long().numpy()
        self._rows: OrderedDict[tuple[int, int], SlotRow] = OrderedDict()
        self._decoded: OrderedDict[tuple[int, int], DecodedSlot] = OrderedDict()
        self._changes: OrderedDict[int, frozenset[int]] = OrderedDict()
        self._mem_cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._marks: OrderedDict[int, Marks] = OrderedDict()

    @classmethod
    def open(cls, path: str | Path) -> "TraceView":
        trace, memory = open_trace(path)
        return cls(trace, memory, Path(path))

    # ---- positions ----
    @property
    def length(self) -> int:
        return self.n_plan + self.n_exec

    def phase(self, pos: int) -> tuple[str, int]:
        """("plan", s) or ("exec", t)."""
        return ("plan", pos) if pos < self.n_plan else ("exec", pos - self.n_plan)

    def label(self, pos: int) -> str:
        phase, i = self.phase(pos)
        if phase == "plan":
            return f"plan {i}/{self.n_plan - 1}"
        return f"step {i + 1}/{self.n_exec}"

    def step_number(self, pos: int) -> int:
        """The number users see: plan step s, or execute step k = t + 1."""
        phase, i = self.phase(pos)
        return i if phase == "plan" else i + 1

    def position_of_step(self, t: int) -> int:
        """The position of the execute step at array index t (step number t + 1)."""
        return self.n_plan + t

    @property
    def title(self) -> str:
        m = self.meta
        verdict = "right" if m.get("correct") else "WRONG"
        step = m.get("training_step")
        where = f" @ train step {step}" if step is not None else ""
        name = self.path.name if self.path else "trace"
        if not m.get("prompt") and not m.get("answer_slots"):  # a program run from its image: no answer to show
            said = "matches the reference run" if m.get("correct") else "DIFFERS from the reference run"
            return f"{name}: {m.get('mode')} program, {m.get('window')} slots, {said}{where}"
        return f"{name}: {m.get('prompt')} = {m.get('produced')} ({verdict}, expected {m.get('expected')}){where}"

    # ---- memory ----
    def memory_at(self, pos: int) -> torch.Tensor:
        """Memory after this position: [W, D]."""
        cached = self._mem_cache.get(pos)
        if cached is not None:
            return cached
        phase, i = self.phase(pos)
        if phase == "exec":
            mem = self.memory[i + 1]
        else:
            mem = torch.zeros(self.window, self.isa.layout.slot_dim, dtype=self.plan_slots.dtype)
            mem[:, EMPTY] = 1.0
            upto = self.plan_addr[: i + 1]
            mem[torch.from_numpy(upto)] = self.plan_slots[: i + 1]
        self._mem_cache[pos] = mem
        if len(self._mem_cache) > 8:
            self._mem_cache.popitem(last=False)
        return mem

    def memory_before(self, pos: int) -> torch.Tensor:
        phase, i = self.phase(pos)
        if phase == "exec":
            return self.memory[i]
        if pos == 0:
            mem = torch.zeros(self.window, self.isa.layout.slot_dim)
            mem[:, EMPTY] = 1.0
            return mem
        return self.memory_at(pos - 1)

    def row(self, pos: int, addr: int) -> SlotRow:
        key = (pos, addr)
        hit = self._rows.get(key)
        if hit is not None:
            return hit
        row = self._word(self.decoded(pos, addr), addr, lambda a: self.decoded(pos, a))
        self._rows[key] = row
        if len(self._rows) > ROW_CACHE:
            self._rows.popitem(last=False)
        return row

    def decoded(self, pos: int, addr: int) -> DecodedSlot:
        """Slot addr after this position, decoded. A slot that this step (or the next) did not
        change is taken from the neighbouring position when that one was decoded already: a step
        decodes the few slots it changed, not the whole screen."""
        key = (pos, addr)
        hit = self._decoded.get(key)
        if hit is None:
            for near, diff in ((pos - 1, self._diff(pos)), (pos + 1, self._diff(pos + 1))):
                hit = self._decoded.get((near, addr))
                if hit is not None and diff is not None and addr not in diff:
                    break
                hit = None
            if hit is None:
                hit = self.isa.decode(self.memory_at(pos)[addr])
            self._decoded[key] = hit
            if len(self._decoded) > ROW_CACHE:
                self._decoded.popitem(last=False)
        return hit

    def _diff(self, pos: int) -> frozenset[int] | None:
        """Slots that may differ between memory after pos - 1 and after pos (None: not known).

        Between the last plan step and execute step 0 nothing is known: memory 0 is recorded
        apart from the planned slots."""
        if not 0 < pos < self.length or pos == self.n_plan:
            return None
        return self._changed(pos)

    def _changed(self, pos: int) -> frozenset[int]:
        """Slots this position wrote: the slot planned, or the rows the step changed."""
        hit = self._changes.get(pos)
        if hit is None:
            phase, i = self.phase(pos)
            hit = frozenset((int(self.plan_addr[i]),) if phase == "plan" else self.memory.changed(i).tolist())
            self._changes[pos] = hit
            if len(self._changes) > 64:
                self._changes.popitem(last=False)
        return hit

    def rows_changed(self, a: int, b: int) -> frozenset[int] | None:
        """Slots whose row (type, reading, confidence) may differ between positions a and b, or
        None when any may: a and b are not neighbours, or an OPDEF slot changed (every
        instruction names its operator through one)."""
        if abs(a - b) != 1:
            return None
        hi = max(a, b)
        diff = self._diff(hi)
        if diff is None or any(self.decoded(p, x).type_id == OPDEF for p in (hi - 1, hi) for x in diff):
            return None
        return diff

    def _word(self, slot: DecodedSlot, addr: int, decoded) -> SlotRow:
        """A decoded slot as a row; decoded(a) reads the OPDEF slot an instruction points at."""
        def operator(a: int) -> str | None:
            if not 0 <= a < self.window:
                return None
            target = decoded(a)
            return opcode_name(target.content) if target.type_id == OPDEF else None

        return SlotRow(addr, type_text(slot), body_text(slot, operator), slot.confidence,
                       self.roles.get(addr, ""), slot)

    def _make_row(self, mem: torch.Tensor, addr: int) -> SlotRow:
        return self._word(self.isa.decode(mem[addr]), addr, lambda a: self.isa.decode(mem[a]))

    def decode_at(self, mem: torch.Tensor, addr: int) -> SlotRow:
        """A row of any memory image (the watch pane's old value, the plan target)."""
        return self._make_row(mem, addr)

    def disassembly(self, pos: int) -> list[str]:
        """The memory window at this position as pseudo-assembly, EMPTY slots without a role left out."""
        lines = []
        for addr in range(self.window):
            r = self.row(pos, addr)
            if r.decoded.type_id != EMPTY or r.role:
                line = f"{addr:04d}  {r.type:<6} {r.body}".rstrip()
                lines.append(f"{line:<40} ; {r.role}" if r.role else line)
        return lines

    def search(self, pos: int, query: str, after: int = -1) -> tuple[int, int] | None:
        """The first slot past ``after`` (wrapping round) that matches query at this position, and
        how many match: ``(addr, count)``, or None when none does.

        A number (``31``, ``0031``) is that address; a type name (``INST``, case ignored) a slot
        of that type; any other text matches whole words of the row's type, reading and role
        comment (``ADD``, ``carry[1]``, ``DATA 11`` but not ``DATA 1``), case ignored.
        """
        query = " ".join(query.split())
        if not query:
            return None
        if query.isdigit():
            addr = int(query)
            return (addr, 1) if addr < self.window else None
        if query.upper() in SLOT_TYPES:
            type_id = SLOT_TYPES.index(query.upper())
            hits = [a for a in range(self.window) if self.decoded(pos, a).type_id == type_id]
        else:
            words = re.compile(rf"(?<!\w){re.escape(query)}(?!\w)", re.IGNORECASE)
            hits = [a for a in range(self.window) if words.search(self._search_text(pos, a))]
        if not hits:
            return None
        later = [a for a in hits if a > after]
        return (later or hits)[0], len(hits)

    def _search_text(self, pos: int, addr: int) -> str:
        r = self.row(pos, addr)
        return f"{r.decoded.type_name} {r.body} {r.role}"

    def marks(self, pos: int) -> Marks:
        cached = self._marks.get(pos)
        if cached is None:
            cached = self._marks[pos] = self._make_marks(pos)
            if len(self._marks) > 64:
                self._marks.popitem(last=False)
        return cached

    def _make_marks(self, pos: int) -> Marks:
        phase, i = self.phase(pos)
        if phase == "plan":
            addr = int(self.plan_addr[i])
            return Marks(None, (), addr, frozenset((addr,)))
        pc = int(self.pc_addr[i])
        inst = None
        if pc < self.window:  # the instruction as the step fetched it: memory before the step
            inst = self.decoded(pos - 1, pc) if i > 0 else self.isa.decode(self.memory[0][pc])
        used = [p is not None for p in inst.pointers] if inst and inst.type_id == INST else [False] * 4
        reads = tuple(int(self.ptr_addr[i, p]) for p in range(3) if used[p])
        written = int(self.ptr_addr[i, 3]) if self.gate[i] > 0.5 else None
        return Marks(pc, reads, written, self._changed(pos))

    # ---- one execute step ----
    def distributions(self, pos: int) -> np.ndarray | None:
        """PC, op, src1, src2, dst attention over addresses at this step: [5, W] (None in plan)."""
        phase, t = self.phase(pos)
        if phase == "plan":
            return None
        pc = self.exec["pc"][t].float().unsqueeze(0)
        ptr = self.exec["ptr_attn"][t].float()
        return torch.cat([pc, ptr]).numpy()

    def steps_view(self, dist: int, steps: range, addrs: range) -> np.ndarray:
        """One distribution across steps: [len(addrs), len(steps)] (addresses x steps)."""
        if dist == 0:
            block = self.exec["pc"][steps.start:steps.stop, addrs.start:addrs.stop]
        else:
            block = self.exec["ptr_attn"][steps.start:steps.stop, dist - 1, addrs.start:addrs.stop]
        return block.float().numpy().T

    def oeu(self, pos: int) -> OEUView | None:
        phase, t = self.phase(pos)
        if phase == "plan":
            return None
        ins = self.exec["oeu_in"][t].float()
        n_ops = len(OPCODES)
        op_p, op = ins[0, :n_ops].max(-1)
        a_p, a = ins[1].max(-1)
        b_p, b = ins[2].max(-1)
        out = self.oeu_out[t]
        expected = int(self.oeu_expected[t])
        return OEUView(opcode_name(int(op)), float(op_p), int(a), float(a_p), int(b), float(b_p),
                       int(self.oeu_pred[t]), float(out.max()), expected if expected >= 0 else None,
                       float(self.gate[t]), float(self.halt[t]))

    @cached_property
    def reference(self) -> dict[str, Any]:
        """The reference interpreter's run of this trace's program: the trace's own ``reference``
        record, or (traces recorded before it existed) the interpreter run now on the program
        image, the compiler's target where the trace has one, else the image it started from."""
        ref = self.trace.get("reference")
        if ref is not None:
            return ref
        from llamacpu import interpreter
        from llamacpu.trace import reference_record

        target = self.trace["plan"].get("target")
        image = target if target is not None else self.memory_before(self.n_plan)
        symbols = _symbols(self.isa, image)
        return reference_record(interpreter.run(symbols, self.isa.layout.n_values, max(4 * self.n_exec, 64)))

    @cached_property
    def departure(self) -> int | None:
        """Array index t of the first execute step whose PC is not the reference's, or None."""
        ref = list(self.reference["pc"])
        for t in range(self.n_exec):
            if t >= len(ref) or int(self.pc_addr[t]) != ref[t]:
                return t
        return None

    def control(self, pos: int) -> ControlView | None:
        phase, t = self.phase(pos)
        if phase == "plan":
            return None
        oeu = self.oeu(pos)
        jump = oeu.op if oeu is not None and oeu.op in ("JMP", "JZ", "JNZ") else None
        target = int(self.ptr_addr[t, 3]) if jump else None
        ref = self.reference
        gone = self.departure is not None and t > self.departure
        on_ref = t < len(ref["pc"]) and not gone
        return ControlView(
            jump=jump, condition=None if jump in (None, "JMP") else oeu.a,
            taken=None if jump is None else oeu.out == 1, target=target,
            next_pc=int(self.pc_addr[t + 1]) if t + 1 < self.n_exec else None,
            ref_pc=int(ref["pc"][t]) if on_ref else None,
            ref_taken=bool(ref["taken"][t]) if on_ref and ref["op"][t] in ("JMP", "JZ", "JNZ") else None,
            departed=None if self.departure is None or t < self.departure else self.departure + 1,
        )

    def departs_from_reference(self) -> np.ndarray:
        """The execute step where the PC leaves the reference run's path: bool [S + T]."""
        execute = np.zeros(self.n_exec, dtype=bool)
        if self.departure is not None:
            execute[self.departure] = True
        return self._timeline(execute=execute)

    def step_entropy(self, pos: int) -> np.ndarray | None:
        """Entropy in bits of PC, op, src1, src2, dst at this step: [5]."""
        d = self.distributions(pos)
        return None if d is None else entropy_bits(torch.from_numpy(d)).numpy()

    def pc_target(self, pos: int) -> int | None:
        phase, t = self.phase(pos)
        if phase == "plan":
            return None
        target = int(self.exec["pc_target"][t])
        return target if target >= 0 else None

    def prompt_attention(self, s: int) -> np.ndarray | None:
        attn = self.trace["plan"].get("prompt_attn")
        return None if attn is None else attn[s].float().numpy()

    @property
    def prompt_pieces(self) -> list[str]:
        return [str(p) for p in self.trace.get("prompt_pieces", [])]

    @cached_property
    def plan_differs(self) -> np.ndarray | None:
        """Per plan step, does the planned slot read differently from the compiler's target:
        bool [S] (None: the trace has no target)."""
        target = self.trace["plan"].get("target")
        if target is None:
            return None
        differs = np.zeros(self.n_plan, dtype=bool)
        for s in range(self.n_plan):
            got, want = self.isa.decode(self.plan_slots[s]), self.isa.decode(target[s])
            same = got.type_id == want.type_id
            if want.type_id in (OPDEF, 4):  # OPDEF, DATA: the content matters
                same &= got.content == want.content
            for g, w in zip(got.pointers, want.pointers):
                if w is not None:
                    same &= g is not None and g[0] == w[0]
            differs[s] = not same
        return differs

    @property
    def plan_exact(self) -> int | None:
        """How many planned slots read differently from the plan's target (None: no target)."""
        differs = self.plan_differs
        return None if differs is None else int(differs.sum())

    def plan_unlike_target(self) -> np.ndarray:
        """Plan steps that write a slot unlike the compiler's image: bool [S + T]."""
        return self._timeline(plan=self.plan_differs if self.plan_differs is not None else None)

    @cached_property
    def unlike_target(self) -> frozenset[int]:
        """Addresses whose planned slot reads unlike the compiler's image."""
        if self.plan_differs is None:
            return frozenset()
        return frozenset(int(a) for a in self.plan_addr[self.plan_differs])

    def unlike_at(self, pos: int) -> frozenset[int]:
        """Slots marked as unlike the compiler's at this position: those planned so far."""
        phase, i = self.phase(pos)
        if phase == "exec" or not self.unlike_target:
            return self.unlike_target
        return frozenset(int(self.plan_addr[s]) for s in np.flatnonzero(self.plan_differs) if s <= i)

    def next_unlike(self, pos: int) -> tuple[int, int, int] | None:
        """The next plan step after ``pos`` (wrapping round) writing a slot unlike the compiler's:
        ``(position, its index among them from 1, how many)``, or None when none does."""
        if self.plan_differs is None or not self.plan_differs.any():
            return None
        steps = np.flatnonzero(self.plan_differs)
        later = steps[steps > pos]
        s = int(later[0] if later.size else steps[0])
        return s, int(np.searchsorted(steps, s)) + 1, int(steps.size)

    def pc_missed(self) -> np.ndarray:
        """Execute steps whose PC is not the compiler's (where it is known): bool [S + T]."""
        target = self.exec["pc_target"].long().numpy()
        return self._timeline(execute=(target >= 0) & (self.pc_addr != target))

    def opening(self) -> tuple[int, str]:
        """Where the debugger opens, and why: for a wrong answer, the first position that went
        wrong (a planned slot unlike the compiler's, a PC off the program, an OEU result unlike
        the ISA's); otherwise the first execute step, the compiled image on screen."""
        if not self.n_exec:
            return 0, "the trace has no execute steps"
        if not self.meta.get("correct", True):
            wrong = self.oeu_wrong() | self.pc_missed()
            if self.plan_differs is not None:
                wrong[: self.n_plan] |= self.plan_differs
            if wrong.any():
                pos = int(np.argmax(wrong))
                if pos < self.n_plan:
                    why = "slot unlike the compiler's"
                else:
                    why = " and ".join(text for mask, text in ((self.pc_missed(), "PC off the program"),
                                                               (self.oeu_wrong(), "OEU wrong")) if mask[pos])
                return pos, f"the first that went wrong: {why}"
        return self.n_plan, "the first execute step"

    # ---- facts over the whole timeline, for breakpoints: bool [S + T] ----
    def _timeline(self, plan: np.ndarray | None = None, execute: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(self.length, dtype=bool)
        if plan is not None:
            out[: self.n_plan] = plan
        if execute is not None:
            out[self.n_plan:] = execute
        return out

    def pc_reaches(self, addr: int) -> np.ndarray:
        return self._timeline(execute=self.pc_addr == addr)

    def writes(self, addr: int) -> np.ndarray:
        execute = np.zeros(self.n_exec, dtype=bool)
        execute[self.memory.writes_to(addr)] = True
        return self._timeline(plan=self.plan_addr == addr, execute=execute)

    def oeu_wrong(self) -> np.ndarray:
        known = self.oeu_expected >= 0
        return self._timeline(execute=known & (self.oeu_pred != self.oeu_expected))

    def halting(self) -> np.ndarray:
        return self._timeline(execute=self.halt > 0.5)

    def pc_not_instruction(self) -> np.ndarray:
        return self._timeline(execute=self._sweep["pc_type"] != INST)

    def low_confidence(self, below: float) -> np.ndarray:
        return self._timeline(plan=self._plan_confidence < below, execute=self._sweep["confidence"] < below)

    def high_entropy(self, above: float) -> np.ndarray:
        return self._timeline(execute=self._entropy > above)

    @cached_property
    def _plan_confidence(self) -> np.ndarray:
        return slot_confidence(self.isa, self.plan_slots).numpy()

    @cached_property
    def _entropy(self) -> np.ndarray:
        """Per execute step, the largest entropy (bits) among PC and the pointers the fetched
        instruction sets (an unset pointer attends uniformly by construction: not a doubt)."""
        out = np.zeros(self.n_exec, dtype=np.float32)
        used = self._sweep["used"]  # (T, P)
        for lo in range(0, self.n_exec, 1024):
            hi = min(lo + 1024, self.n_exec)
            h_pc = entropy_bits(self.exec["pc"][lo:hi])
            h_ptr = entropy_bits(self.exec["ptr_attn"][lo:hi]).masked_fill(~torch.from_numpy(used[lo:hi]), 0.0)
            out[lo:hi] = torch.maximum(h_pc, h_ptr.max(-1).values).numpy()
        return out

    @cached_property
    def _sweep(self) -> dict[str, np.ndarray]:
        """One pass over the run gathering the slots each step touches (memory before the step):
        the instruction at the PC, its op/src1/src2 targets, and dst after the write."""
        T, isa = self.n_exec, self.isa
        touched = np.concatenate([self.pc_addr[:, None], self.ptr_addr], axis=1).clip(0, self.window - 1)  # (T, 5)
        rows = torch.zeros(T, 6, isa.layout.slot_dim)
        for k, mem in enumerate(self.memory.walk()):
            if k < T:
                rows[k, :5] = mem[torch.from_numpy(touched[k])].float()
            if k > 0:
                rows[k - 1, 5] = mem[touched[k - 1, 4]].float()
        inst = rows[:, 0]
        keys = inst[:, isa.pointers_slice].unflatten(-1, (isa.layout.n_pointers, isa.layout.key_dim))
        used = (keys.norm(dim=-1) > 0.5).numpy()  # (T, P)
        pc_type = inst[:, isa.type_slice].argmax(-1).numpy()
        conf = np.concatenate([slot_confidence(isa, rows[lo:lo + 512]).numpy()
                               for lo in range(0, T, 512)]) if T else np.ones((0, 6))  # (T, 6)
        mask = np.ones_like(conf, dtype=bool)
        mask[:, 1:4] = used[:, :3]
        mask[:, 4] = False  # dst before the write is not read
        mask[:, 5] = self.gate > 0.5
        confidence = np.where(mask, conf, 1.0).min(-1)
        return {"used": used, "pc_type": pc_type, "confidence": confidence}


def _symbols(isa: ISA, image: torch.Tensor) -> Any:
    """A (soft) image [W, D] read hard, as the interpreter's symbols."""
    from llamacpu import interpreter
    from llamacpu.isa import DATA, REG

    types, pointers, contents = [], [], []
    for slot in image.float():
        d = isa.decode(slot)
        types.append(d.type_id)
        pointers.append([None if p is None else p[0] for p in d.pointers])
        contents.append(d.content if d.type_id in (DATA, OPDEF, REG) else None)
    return interpreter.Image(types, pointers, contents)
