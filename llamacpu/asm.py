"""Pseudo-assembly -> memory image, a reference interpreter, and running a program on the machine.

The assembler reads exactly what :mod:`llamacpu.disasm` prints: one slot a line
(``ADDR TYPE BODY``), comments after ``;`` (a comment on a slot line becomes that slot's role),
confidence marks (``3?0.61``) ignored. Slots not named are EMPTY; the memory window runs to the
highest address the program names or points at, or further with a ``.window N`` line.

The reference interpreter gives what the program means under the ISA's semantics, so a run on the
neural CPU can be judged: the control unit's convention is "run the next INST slot in address
order after the one last run (the REG slot's pc), or a taken jump's target", as the task compilers
lay out their code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llamacpu.controller import Prompt
from llamacpu.errors import LlamaCPUError
from llamacpu.isa import DATA, EMPTY, INST, ISA, OP, OPCODES, OPDEF, REG, SLOT_TYPES, execute_op
from llamacpu.trace import SCHEMA, exec_record, new_meta

_MARK = re.compile(r"\?(?:\d+\.\d*|\.\d+|\d+)")
_ADDR = re.compile(r"^\d+$")
_REF = re.compile(r"^\[(.*)\]$")
_RESULT_ROLE = re.compile(r"^r\[(\d+)\]$")


class AsmError(LlamaCPUError):
    """A line the assembler cannot read: ``prog.s:12: unknown opcode 'ADDX'``."""


@dataclass
class SlotSpec:
    """One assembled slot before encoding."""

    type_id: int
    pointers: list[int | None] = field(default_factory=lambda: [None, None, None, None])
    content: int | None = None
    line: int = 0
    mnemonic: str | None = None  # INST: opcode name; "?": no OPDEF (op pointer given as ?@AAAA, or none)
    op_addr: int | None = None  # INST: explicit op address (NAME@AAAA)


@dataclass
class Assembly:
    """An assembled program: the image [W, D] and what the source said about its slots."""

    image: torch.Tensor  # [W, D]
    slots: dict[int, SlotSpec]
    roles: dict[int, str]

    @property
    def window(self) -> int:
        return int(self.image.shape[0])

    def answer_slots(self) -> list[int]:
        """Slots whose comment is ``r[i]``, by i: the digits of the result, least significant first."""
        found = {int(m.group(1)): a for a, r in self.roles.items() if (m := _RESULT_ROLE.match(r))}
        return [found[i] for i in sorted(found)]


class _Parser:
    def __init__(self, isa: ISA, filename: str) -> None:
        self.isa = isa
        self.filename = filename
        self.n = isa.layout.n_slots
        self.line = 0

    def error(self, message: str) -> AsmError:
        return AsmError(f"{self.filename}:{self.line}: {message}")

    def address(self, token: str) -> int:
        if not _ADDR.match(token):
            raise self.error(f"bad address {token!r}")
        a = int(token)
        if a >= self.n:
            raise self.error(f"address {token} is past memory (0..{self.n - 1})")
        return a

    def ref(self, token: str, bare_ok: bool = False) -> int | None:
        token = token.strip()
        if not token:
            return None
        m = _REF.match(token)
        if m:
            return self.address(m.group(1).strip())
        if bare_ok:
            return self.address(token)
        raise self.error(f"bad address {token!r} (expected [AAAA])")

    def value(self, token: str) -> int:
        if not re.match(r"^-?\d+$", token):
            raise self.error(f"bad value {token!r} (expected a number)")
        v, c = int(token), self.isa.layout.n_values
        if not 0 <= v < c:
            raise self.error(f"value {v} is outside 0..{c - 1}")
        return v

    def slot(self, type_name: str, body: str) -> SlotSpec:
        if type_name not in SLOT_TYPES:
            raise self.error(f"unknown slot type {type_name!r} (known: {' '.join(SLOT_TYPES)})")
        t = SLOT_TYPES.index(type_name)
        spec = SlotSpec(t, line=self.line)
        if t == EMPTY:
            if body:
                raise self.error(f"an EMPTY slot takes nothing, got {body!r}")
        elif t == DATA:
            spec.content = self.value(body)
        elif t == OPDEF:
            spec.content = OP[body] if body in OP else self._opdef_code(body)
        elif t == REG:
            if body:
                m = re.match(r"^pc\s*->\s*(\S+)$", body)
                if not m:
                    raise self.error(f"a REG slot reads 'pc -> AAAA', got {body!r}")
                spec.pointers[0] = self.ref(m.group(1), bare_ok=True)
        else:
            self.inst(body, spec)
        return spec

    def _opdef_code(self, body: str) -> int:
        if re.match(r"^\d+$", body):
            return self.value(body)
        raise self.error(f"unknown opcode {body!r}")

    def inst(self, body: str, spec: SlotSpec) -> None:
        if not body:
            raise self.error("an INST slot needs an opcode")
        head, _, args = body.partition(" ")
        name, _, at = head.partition("@")
        if name != "?" and name not in OP:
            raise self.error(f"unknown opcode {name!r}")
        spec.mnemonic = name
        spec.op_addr = self.address(at) if at else None
        left, arrow, right = args.partition("->")
        if arrow:
            spec.pointers[3] = self.ref(right, bare_ok=True)
            if spec.pointers[3] is None:
                raise self.error("'->' needs a destination")
        fields = [f for f in left.split(",")] if left.strip() else []
        if len(fields) > 2:
            raise self.error(f"an instruction has at most two sources, got {len(fields)}")
        for k, f in enumerate(fields):
            spec.pointers[1 + k] = self.ref(f)


def parse(text: str, isa: ISA, filename: str = "<program>") -> Assembly:
    """Assemble a program's text with a machine's ISA (its address keys and value codes)."""
    p = _Parser(isa, filename)
    slots: dict[int, SlotSpec] = {}
    roles: dict[int, str] = {}
    window = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        p.line = number
        code, _, comment = raw.partition(";")
        code = _MARK.sub("", code).strip()
        if not code:
            continue
        if code.startswith("."):
            directive, _, arg = code.partition(" ")
            if directive != ".window":
                raise p.error(f"unknown directive {directive!r} (known: .window)")
            if not _ADDR.match(arg.strip()) or not 0 < int(arg) <= p.n:
                raise p.error(f".window takes a slot count in 1..{p.n}, got {arg.strip()!r}")
            window = max(window, int(arg))
            continue
        parts = code.split(None, 2)
        if len(parts) < 2:
            raise p.error(f"expected 'ADDR TYPE ...', got {code!r}")
        addr = p.address(parts[0])
        if addr in slots:
            raise p.error(f"address {parts[0]} is defined twice (first on line {slots[addr].line})")
        slots[addr] = p.slot(parts[1], " ".join(parts[2].split()) if len(parts) > 2 else "")
        if comment.strip():
            roles[addr] = comment.strip()
    _resolve_ops(slots, p)
    window = max([window] + [a + 1 for a in slots]
                 + [q + 1 for s in slots.values() for q in s.pointers if q is not None])
    if window == 0:
        raise AsmError(f"{filename}: no slots")
    image = torch.stack([_encode(isa, slots.get(a)) for a in range(window)])
    return Assembly(image, slots, roles)


def _resolve_ops(slots: dict[int, SlotSpec], p: _Parser) -> None:
    """Point each INST's op pointer at the OPDEF slot of its opcode."""
    canonical: dict[int, int] = {}
    for a in sorted(slots):
        if slots[a].type_id == OPDEF:
            canonical.setdefault(slots[a].content, a)
    for a, s in slots.items():
        if s.type_id != INST or (s.mnemonic == "?" and s.op_addr is None):
            continue  # "?" alone: an instruction without an op pointer
        p.line = s.line
        if s.op_addr is not None:
            target = slots.get(s.op_addr)
            if s.mnemonic != "?" and (target is None or target.type_id != OPDEF or target.content != OP[s.mnemonic]):
                raise p.error(f"{s.mnemonic}@{s.op_addr:04d}: slot {s.op_addr:04d} is not an OPDEF of {s.mnemonic}")
            s.pointers[0] = s.op_addr
        elif OP[s.mnemonic] in canonical:
            s.pointers[0] = canonical[OP[s.mnemonic]]
        else:
            raise p.error(f"no OPDEF slot defines {s.mnemonic} (add e.g. '0001  OPDEF  {s.mnemonic}')")


def _encode(isa: ISA, spec: SlotSpec | None) -> torch.Tensor:
    if spec is None:
        return isa.encode(EMPTY)
    return isa.encode(spec.type_id, tuple(spec.pointers), spec.content)


def assemble_file(path: str | Path, isa: ISA) -> Assembly:
    path = Path(path)
    if not path.exists():
        raise AsmError(f"{path}: no such file")
    if path.is_dir():
        raise AsmError(f"{path}: is a directory, expected a program (.s)")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise AsmError(f"{path}: not a text file") from None
    return parse(text, isa, str(path))


@dataclass
class Reference:
    """What a program does under the ISA's semantics."""

    pc: list[int]  # the instruction run at each step
    results: list[int]  # the operator's result at each step
    values: dict[int, int]  # content code of every slot after the run
    written: set[int]  # slots the program wrote
    halted: bool


def reference_run(asm: Assembly, n_values: int, limit: int = 10_000) -> Reference:
    """Interpret an assembled program (hard, symbolic): the target a neural run is judged by."""
    slots = asm.slots
    values = {a: (s.content or 0) for a, s in slots.items()}
    insts = sorted(a for a, s in slots.items() if s.type_id == INST)
    reg = slots.get(0)
    last = reg.pointers[0] if reg is not None and reg.type_id == REG and reg.pointers[0] is not None else -1
    nxt = next((a for a in insts if a > last), None)
    pcs, results, written = [], [], set()
    halted = False
    while nxt is not None and len(pcs) < limit:
        s = slots[nxt]
        op_slot = slots.get(s.pointers[0])
        op = values.get(s.pointers[0], 0) if op_slot is not None else 0
        a = values.get(s.pointers[1], 0) if s.pointers[1] is not None else 0
        b = values.get(s.pointers[2], 0) if s.pointers[2] is not None else 0
        op = op if op < len(OPCODES) else OP["NOP"]
        result, writes = execute_op(op, a, b, n_values)
        pcs.append(nxt)
        results.append(result)
        if OPCODES[op] == "HALT":
            halted = True
            break
        if writes and s.pointers[3] is not None:
            values[s.pointers[3]] = result
            written.add(s.pointers[3])
        if OPCODES[op] in ("JMP", "JZ", "JNZ") and result == 1 and s.pointers[3] is not None:
            nxt = s.pointers[3]
        else:
            nxt = next((x for x in insts if x > nxt), None)
    return Reference(pcs, results, values, written, halted)


def number_from_digits(digits: list[int]) -> int:
    """The number the result slots spell, least significant first; -1 if a code is not a digit."""
    if any(not 0 <= d <= 9 for d in digits):
        return -1
    return sum(d * 10**i for i, d in enumerate(digits))


def run_program(machine: Any, asm: Assembly, source: str = "", **meta: Any) -> dict[str, Any]:
    """Run an assembled program on the neural CPU from its image (no plan phase) -> a trace.

    The controller is given a one-token prompt of the pad id with mask 0 (the trace records an
    empty prompt): an empty prompt (L = 0) fails inside the backbone's KV cache.
    """
    from llamacpu.evaluate import step_limit

    isa: ISA = machine.isa
    if asm.window > isa.layout.n_slots:
        raise AsmError(f"{source or 'program'}: needs {asm.window} slots, this machine has {isa.layout.n_slots}")
    ref = reference_run(asm, isa.layout.n_values)
    device = machine.keys.device
    prompt = Prompt.padding(1, machine.controller.tokenizer.pad_id, device)
    memory = asm.image.unsqueeze(0).to(device)  # (1, W, D)
    was_training = machine.training
    machine.eval()
    try:
        with torch.no_grad():
            ex = machine.execute(prompt, memory, step_limit(max(len(ref.pc), 1)), hard=True, record=True)
    finally:
        machine.train(was_training)
    final = ex.memory[0, :, isa.content_slice].argmax(-1).cpu()  # (W,)
    halted = bool(ex.halted[0])
    answer = asm.answer_slots()
    produced = number_from_digits([int(final[a]) for a in answer]) if answer else -1
    expected = number_from_digits([ref.values.get(a, 0) for a in answer]) if answer else -1
    correct = halted and ref.halted and all(int(final[a]) == ref.values[a] for a in ref.written)
    f16 = torch.float16
    return {
        "schema": SCHEMA,
        "meta": new_meta(task="asm", prompt="", digits=max(len(answer) - 1, 0), expected=expected,
                         produced=produced, correct=correct, halted=halted, steps=int(ex.steps[0]),
                         controller=machine.controller.config.preset, window=asm.window,
                         roles={str(a): r for a, r in asm.roles.items()}, answer_slots=answer,
                         mode="asm", **meta),
        "isa": isa.to_dict(),
        "prompt_tokens": torch.zeros(0, dtype=torch.long),
        "prompt_pieces": [],
        "plan": {"addr": torch.arange(asm.window), "slot": asm.image.to(f16), "target": None,
                 "prompt_attn": None, "loss": None},
        "exec": exec_record(ex, 0, isa.layout.n_values, torch.tensor(ref.pc, dtype=torch.long)),
    }
