"""Pseudo-assembly -> memory image, a reference interpreter, and running a program on the machine.

The assembler reads exactly what :mod:`llamacpu.disasm` prints: one slot a line
(``ADDR TYPE BODY``), comments after ``;`` (a comment on a slot line becomes that slot's role),
confidence marks (``3?0.61``) ignored. Directives: ``.window N`` (the memory window) and
``.expect ADDR VALUE`` (a slot's value after the run, as the program's author says it). Slots not named are EMPTY; the memory window runs to the
highest address the program names or points at, or further with a ``.window N`` line.

What a program means is :mod:`llamacpu.interpreter`'s to say (``llamacpu asm --reference`` runs
it there alone); :func:`run_program` runs it on the neural CPU and judges it by that reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llamacpu.controller import Prompt
from llamacpu.errors import LlamaCPUError
from llamacpu import interpreter
from llamacpu.isa import DATA, EMPTY, INST, ISA, OP, OPDEF, REG, SLOT_TYPES
from llamacpu.trace import SCHEMA, exec_record, new_meta, reference_record

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
    expect: dict[int, int] = field(default_factory=dict)  # `.expect ADDR VALUE` lines: the author's own answer

    @property
    def window(self) -> int:
        return int(self.image.shape[0])

    def symbols(self) -> interpreter.Image:
        """The program as the interpreter reads it (unnamed slots EMPTY)."""
        types, pointers, contents = [EMPTY] * self.window, [[None] * 4 for _ in range(self.window)], [None] * self.window
        for a, spec in self.slots.items():
            types[a], pointers[a], contents[a] = spec.type_id, list(spec.pointers), spec.content
        return interpreter.Image(types, pointers, contents)

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
    expect: dict[int, int] = {}
    window = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        p.line = number
        code, _, comment = raw.partition(";")
        code = _MARK.sub("", code).strip()
        if not code:
            continue
        if code.startswith("."):
            directive, _, arg = code.partition(" ")
            if directive == ".expect":
                parts = arg.split()
                if len(parts) != 2:
                    raise p.error(f".expect takes an address and a value ('.expect 0041 18'), got {arg.strip()!r}")
                expect[p.address(parts[0])] = p.value(parts[1])
                continue
            if directive != ".window":
                raise p.error(f"unknown directive {directive!r} (known: .window, .expect)")
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
    window = max([window] + [a + 1 for a in slots] + [a + 1 for a in expect]
                 + [q + 1 for s in slots.values() for q in s.pointers if q is not None])
    if window == 0:
        raise AsmError(f"{filename}: no slots")
    image = torch.stack([_encode(isa, slots.get(a)) for a in range(window)])
    return Assembly(image, slots, roles, expect)


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


def reference_run(asm: Assembly, n_values: int, max_steps: int = interpreter.DEFAULT_MAX_STEPS) -> interpreter.Run:
    """What an assembled program does under the ISA's semantics: the target a neural run is judged by."""
    return interpreter.run(asm.symbols(), n_values, max_steps)


def number_from_digits(digits: list[int]) -> int:
    """The number the result slots spell, least significant first; -1 if a code is not a digit."""
    if any(not 0 <= d <= 9 for d in digits):
        return -1
    return sum(d * 10**i for i, d in enumerate(digits))


def run_program(machine: Any, asm: Assembly, source: str = "", max_steps: int | None = None,
                **meta: Any) -> dict[str, Any]:
    """Run an assembled program on the neural CPU from its image (no plan phase) -> a trace,
    with the interpreter's run beside it (``trace["reference"]``).

    The neural run stops at HALT or after ``max_steps`` cycles (default: twice the reference's
    run and 8 more; 1,000 for a program the reference finds never halting). The controller is
    given a one-token prompt of the pad id with mask 0 (the trace records an empty prompt): an
    empty prompt (L = 0) fails inside the backbone's KV cache.
    """
    from llamacpu.evaluate import step_limit

    isa: ISA = machine.isa
    if asm.window > isa.layout.n_slots:
        raise AsmError(f"{source or 'program'}: needs {asm.window} slots, this machine has {isa.layout.n_slots}")
    ref = reference_run(asm, isa.layout.n_values, max_steps or interpreter.DEFAULT_MAX_STEPS)
    if max_steps is None:
        max_steps = step_limit(max(ref.steps, 1)) if ref.halted else 1000
    device = machine.keys.device
    prompt = Prompt.padding(1, machine.controller.tokenizer.pad_id, device)
    memory = asm.image.unsqueeze(0).to(device)  # (1, W, D)
    was_training = machine.training
    machine.eval()
    try:
        with torch.no_grad():
            ex = machine.execute(prompt, memory, max_steps, hard=True, record=True)
    finally:
        machine.train(was_training)
    final = ex.memory[0, :, isa.content_slice].argmax(-1).cpu()  # (W,)
    halted = bool(ex.halted[0])
    answer = asm.answer_slots()
    produced = number_from_digits([int(final[a]) for a in answer]) if answer else -1
    expected = number_from_digits([ref.final.contents[a] or 0 for a in answer]) if answer else -1
    matches = halted == ref.halted and all(int(final[a]) == v for a, v in ref.written.items())
    f16 = torch.float16
    return {
        "schema": SCHEMA,
        "meta": new_meta(task="asm", prompt="", digits=max(len(answer) - 1, 0), expected=expected,
                         produced=produced, correct=matches, halted=halted, steps=int(ex.steps[0]),
                         controller=machine.controller.config.preset, window=asm.window,
                         roles={str(a): r for a, r in asm.roles.items()}, answer_slots=answer,
                         mode="asm", pc_modes=list(machine.controller.config.pc_modes), **meta),
        "isa": isa.to_dict(),
        "prompt_tokens": torch.zeros(0, dtype=torch.long),
        "prompt_pieces": [],
        "plan": {"addr": torch.arange(asm.window), "slot": asm.image.to(f16), "target": None,
                 "prompt_attn": None, "loss": None},
        "exec": exec_record(ex, 0, isa.layout.n_values, torch.tensor(ref.pc, dtype=torch.long)),
        "reference": reference_record(ref),
    }


def neural_writes(trace: dict[str, Any], isa: ISA) -> dict[int, int]:
    """Every address a recorded run wrote (a step whose write gate opened, at its dst) -> its final value."""
    ex = trace["exec"]
    final = ex["memory"][-1].float()[:, isa.content_slice].argmax(-1)
    gate = ex["write_gate"].float() > 0.5
    dst = ex["ptr_attn"].float()[:, 3].argmax(-1)
    return {int(a): int(final[a]) for a in sorted(set(dst[gate].tolist()))}


def run_summary(trace: dict[str, Any], isa: ISA) -> dict[str, Any]:
    """``halted``, ``steps`` and ``writes`` of a neural run, the reference's, and whether they match:
    what ``llamacpu asm --json`` prints."""
    meta, ref = trace["meta"], trace["reference"]
    writes = neural_writes(trace, isa)
    return {"halted": bool(meta["halted"]), "steps": int(meta["steps"]),
            "writes": {f"{a:04d}": v for a, v in writes.items()},
            "reference": {k: ref[k] for k in ("halted", "steps", "writes", "fault")},
            "matches_reference": bool(meta["correct"])}


def expectations(trace: dict[str, Any], asm: Assembly, isa: ISA) -> dict[str, Any]:
    """The program's ``.expect`` lines against a recorded run's final memory (empty without any)."""
    if not asm.expect:
        return {}
    final = trace["exec"]["memory"][-1].float()[:, isa.content_slice].argmax(-1)
    got = {f"{a:04d}": int(final[a]) for a in sorted(asm.expect)}
    return {"expected": {f"{a:04d}": v for a, v in sorted(asm.expect.items())}, "got": got,
            "meets_expectations": all(got[f"{a:04d}"] == v for a, v in asm.expect.items())}
