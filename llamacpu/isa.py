"""The instruction set: slot layout, slot types, opcodes, value codes, address keys.

A memory is ``N`` slots of ``D`` numbers. One slot is ``[type | pointers | content]``:

- ``type``: ``K`` probabilities over :data:`SLOT_TYPES`;
- ``pointers``: ``P`` keys of ``A`` numbers (``op, src1, src2, dst``); reading through a key is
  ``softmax(sharpness * key @ keys.T)`` over the ``N`` address keys;
- ``content``: ``C`` probabilities over value codes. A ``DATA`` slot holds a value ``0..C-1``, an
  ``OPDEF`` slot an opcode index.

This module is the one source of truth for that encoding: the machine, the trace tools, the
assembler and the debugger all encode and decode slots through it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

SLOT_TYPES: tuple[str, ...] = ("EMPTY", "REG", "OPDEF", "INST", "DATA")
OPCODES: tuple[str, ...] = (
    "NOP", "ADD", "SUB", "MUL", "DIV", "MOD", "COPY", "LT", "EQ", "JMP", "JZ", "JNZ", "HALT",
)
POINTER_NAMES: tuple[str, ...] = ("op", "src1", "src2", "dst")

EMPTY, REG, OPDEF, INST, DATA = range(len(SLOT_TYPES))
OP = {name: i for i, name in enumerate(OPCODES)}
HALT_OP = OP["HALT"]
# Opcodes whose result is written to ``dst``; jumps, NOP and HALT only steer the program counter.
WRITING_OPS: frozenset[int] = frozenset(OP[n] for n in ("ADD", "SUB", "MUL", "DIV", "MOD", "COPY", "LT", "EQ"))


@dataclass(frozen=True)
class SlotLayout:
    """Sizes of the machine's memory and of one slot."""

    n_slots: int = 256  # N: addresses 0..N-1; slot 0 is the REG slot holding the program counter
    key_dim: int = 24  # A: size of one address key (random unit vectors, nearly orthogonal)
    n_values: int = 20  # C: value codes 0..C-1; arithmetic wraps modulo C
    page_size: int = 10  # addresses are (page, offset); the address embedding is built from both
    read_sharpness: float = 30.0  # inverse temperature of a pointer read over the address keys
    key_seed: int = 0  # the address keys are drawn from this seed: part of the machine language

    @property
    def n_types(self) -> int:
        return len(SLOT_TYPES)

    @property
    def n_pointers(self) -> int:
        return len(POINTER_NAMES)

    @property
    def slot_dim(self) -> int:
        """D = K + P * A + C."""
        return self.n_types + self.n_pointers * self.key_dim + self.n_values

    @property
    def n_pages(self) -> int:
        return -(-self.n_slots // self.page_size)


class ISA:
    """A slot layout plus its address keys: everything needed to encode and decode memory."""

    def __init__(self, layout: SlotLayout, keys: torch.Tensor | None = None) -> None:
        if layout.n_values < len(OPCODES):
            raise ValueError(f"n_values must be at least {len(OPCODES)} to hold every opcode")
        self.layout = layout
        self.keys = make_address_keys(layout) if keys is None else keys.float()  # [N, A]
        if tuple(self.keys.shape) != (layout.n_slots, layout.key_dim):
            raise ValueError(f"address keys have shape {tuple(self.keys.shape)}, layout wants "
                             f"{(layout.n_slots, layout.key_dim)}")

    # ---- slices of a slot vector ----
    @property
    def type_slice(self) -> slice:
        return slice(0, self.layout.n_types)

    def pointer_slice(self, p: int) -> slice:
        start = self.layout.n_types + p * self.layout.key_dim
        return slice(start, start + self.layout.key_dim)

    @property
    def pointers_slice(self) -> slice:
        return slice(self.layout.n_types, self.layout.n_types + self.layout.n_pointers * self.layout.key_dim)

    @property
    def content_slice(self) -> slice:
        return slice(self.layout.slot_dim - self.layout.n_values, self.layout.slot_dim)

    # ---- encoding ----
    def encode(self, type_id: int, pointers: tuple[int | None, ...] = (), content: int | None = None) -> torch.Tensor:
        """One hard slot ``[D]``: a type, pointer addresses (None: zero key) and a content code."""
        slot = torch.zeros(self.layout.slot_dim)
        slot[type_id] = 1.0
        for p, addr in enumerate(pointers):
            if addr is not None:
                self._check_addr(addr)
                slot[self.pointer_slice(p)] = self.keys[addr]
        if content is not None:
            if not 0 <= content < self.layout.n_values:
                raise ValueError(f"value {content} is outside 0..{self.layout.n_values - 1}")
            slot[self.content_slice.start + content] = 1.0
        return slot

    def compose(self, type_probs: torch.Tensor, pointer_probs: torch.Tensor, content_probs: torch.Tensor) -> torch.Tensor:
        """Soft slots from distributions.

        type_probs: [..., K]; pointer_probs: [..., P, N] (over addresses); content_probs: [..., C]
        -> [..., D], each pointer written as its expected key ``probs @ keys``.
        """
        keys = pointer_probs @ self.keys.to(pointer_probs)  # [..., P, A]
        return torch.cat([type_probs, keys.flatten(-2), content_probs], dim=-1)

    def harden(self, memory: torch.Tensor) -> torch.Tensor:
        """Replace every slot by its most likely reading: [..., N, D] -> [..., N, D]."""
        types = _one_hot_argmax(memory[..., self.type_slice])
        ptr = self.read_pointers(memory)  # [..., N, P, N]
        ptr = _one_hot_argmax(ptr)
        content = _one_hot_argmax(memory[..., self.content_slice])
        return self.compose(types, ptr, content)

    # ---- reading ----
    def attend(self, key: torch.Tensor) -> torch.Tensor:
        """Attention of keys over the addresses: [..., A] -> [..., N]."""
        keys = self.keys.to(key)
        return torch.softmax(self.layout.read_sharpness * key @ keys.T, dim=-1)

    def read_pointers(self, slots: torch.Tensor) -> torch.Tensor:
        """Every pointer of every slot as attention over addresses: [..., D] -> [..., P, N]."""
        keys = slots[..., self.pointers_slice].unflatten(-1, (self.layout.n_pointers, self.layout.key_dim))
        return self.attend(keys)

    def decode(self, slot: torch.Tensor) -> "DecodedSlot":
        """The most likely reading of one slot ``[D]``, with the probability of each part."""
        slot = slot.detach().float()
        tprobs = slot[self.type_slice]
        cprobs = slot[self.content_slice]
        ptr = self.read_pointers(slot)  # [P, N]
        t = int(tprobs.argmax())
        c = int(cprobs.argmax())
        has_key = slot[self.pointers_slice].unflatten(-1, (self.layout.n_pointers, -1)).norm(dim=-1) > 0.5
        pointers = tuple(
            (int(ptr[p].argmax()), float(ptr[p].max())) if bool(has_key[p]) else None
            for p in range(self.layout.n_pointers)
        )
        return DecodedSlot(
            type_id=t, type_prob=float(tprobs[t]), content=c, content_prob=float(cprobs[c]), pointers=pointers
        )

    def _check_addr(self, addr: int) -> None:
        if not 0 <= addr < self.layout.n_slots:
            raise ValueError(f"address {addr} is past memory (0..{self.layout.n_slots - 1})")

    # ---- persistence ----
    def to_dict(self) -> dict[str, Any]:
        """Plain data (no pickled objects) for checkpoints and traces."""
        return {
            "layout": asdict(self.layout),
            "slot_types": list(SLOT_TYPES),
            "opcodes": list(OPCODES),
            "pointer_names": list(POINTER_NAMES),
            "keys": self.keys.clone(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ISA":
        if list(data.get("opcodes", [])) != list(OPCODES) or list(data.get("slot_types", [])) != list(SLOT_TYPES):
            raise ValueError("this ISA names other opcodes or slot types than this version of llamacpu")
        return cls(SlotLayout(**data["layout"]), keys=data["keys"])

    def same_language(self, other: "ISA") -> bool:
        """Two machines speak the same machine language when layouts and keys agree."""
        return self.layout == other.layout and torch.equal(self.keys, other.keys)


@dataclass(frozen=True)
class DecodedSlot:
    type_id: int
    type_prob: float
    content: int
    content_prob: float
    pointers: tuple[tuple[int, float] | None, ...]  # (address, probability) per pointer, None if unset

    @property
    def type_name(self) -> str:
        return SLOT_TYPES[self.type_id]

    @property
    def confidence(self) -> float:
        """Probability of the weakest part that matters for this slot's type."""
        parts = [self.type_prob]
        if self.type_id in (DATA, OPDEF):
            parts.append(self.content_prob)
        if self.type_id == INST:
            parts += [p[1] for p in self.pointers if p is not None]
        if self.type_id == REG and self.pointers[0] is not None:
            parts.append(self.pointers[0][1])
        return min(parts)


def make_address_keys(layout: SlotLayout) -> torch.Tensor:
    """Unit address keys [N, A]: orthonormal when A >= N, otherwise random and nearly orthogonal."""
    gen = torch.Generator().manual_seed(layout.key_seed)
    raw = torch.randn(max(layout.n_slots, layout.key_dim), layout.key_dim, generator=gen)
    if layout.key_dim >= layout.n_slots:
        q, _ = torch.linalg.qr(raw)
        return q[: layout.n_slots].contiguous()
    keys = raw[: layout.n_slots]
    return keys / keys.norm(dim=-1, keepdim=True)


def execute_op(op: int, a: int, b: int, n_values: int) -> tuple[int, bool]:
    """The ISA's semantics of one operator: (result, writes). Arithmetic wraps modulo ``n_values``.

    Division and modulo by zero give 0. Jumps report their condition (1: taken) but write nothing.
    """
    name = OPCODES[op]
    if name == "ADD":
        r = a + b
    elif name == "SUB":
        r = a - b
    elif name == "MUL":
        r = a * b
    elif name == "DIV":
        r = a // b if b else 0
    elif name == "MOD":
        r = a % b if b else 0
    elif name == "COPY":
        r = a
    elif name == "LT":
        r = int(a < b)
    elif name == "EQ":
        r = int(a == b)
    elif name == "JMP":
        r = 1
    elif name == "JZ":
        r = int(a == 0)
    elif name == "JNZ":
        r = int(a != 0)
    else:  # NOP, HALT
        r = 0
    return r % n_values, op in WRITING_OPS


def op_table(n_values: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole operator table: results [OPS, C, C] (long) and write flags [OPS] (float)."""
    n_ops = len(OPCODES)
    results = torch.empty(n_ops, n_values, n_values, dtype=torch.long)
    for op in range(n_ops):
        for a in range(n_values):
            for b in range(n_values):
                results[op, a, b] = execute_op(op, a, b, n_values)[0]
    writes = torch.tensor([float(op in WRITING_OPS) for op in range(n_ops)])
    return results, writes


def _one_hot_argmax(probs: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
