"""DebugSession: the debugger's engine, apart from any widget.

A position on the unified timeline (plan steps, then execute steps), a list of breakpoints, and
the moves: step, step back, continue, reverse-continue, go to. Breakpoints do not test steps one
by one: each asks the trace for a boolean mask over the whole timeline (:class:`Facts`), so a
continue over 10,000 steps is one ``argmax`` over the union of enabled masks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

import numpy as np


class Facts(Protocol):
    """What a session needs from a trace (``tui.model.TraceView`` provides it)."""

    n_plan: int
    n_exec: int

    @property
    def length(self) -> int: ...
    def pc_reaches(self, addr: int) -> np.ndarray: ...
    def writes(self, addr: int) -> np.ndarray: ...
    def oeu_wrong(self) -> np.ndarray: ...
    def low_confidence(self, below: float) -> np.ndarray: ...
    def high_entropy(self, above: float) -> np.ndarray: ...
    def pc_not_instruction(self) -> np.ndarray: ...
    def halting(self) -> np.ndarray: ...
    def plan_unlike_target(self) -> np.ndarray: ...
    def departs_from_reference(self) -> np.ndarray: ...


class Kind(str, Enum):
    ADDRESS = "address"  # the PC reaches an address
    WATCH = "watch"  # a slot is written (planned or changed by a step)
    OEU_WRONG = "oeu-wrong"  # the OEU's output differs from the expected result
    CONFIDENCE = "confidence"  # a slot read or written decodes with confidence below x
    ENTROPY = "entropy"  # PC or pointer attention entropy above x bits
    PC_NOT_INST = "pc-not-inst"  # the PC is on a slot that does not decode as an instruction
    HALT = "halt"  # the halt probability passes 0.5
    PLAN_DIFFERS = "plan-differs"  # a plan step writes a slot unlike the compiler's image
    DEPARTS = "departs"  # the PC leaves the reference interpreter's path

    @property
    def needs_addr(self) -> bool:
        return self in (Kind.ADDRESS, Kind.WATCH)

    @property
    def needs_threshold(self) -> bool:
        return self in (Kind.CONFIDENCE, Kind.ENTROPY)


CONDITIONS: dict[Kind, str] = {
    Kind.OEU_WRONG: "OEU output differs from expected",
    Kind.CONFIDENCE: "decoded confidence below x (slots read or written)",
    Kind.ENTROPY: "pointer attention entropy above x bits",
    Kind.PC_NOT_INST: "PC on a slot that is not an instruction",
    Kind.HALT: "halt",
    Kind.PLAN_DIFFERS: "planned slot unlike the compiler's image",
    Kind.DEPARTS: "PC departs from the reference run's path",
}


@dataclass
class Breakpoint:
    id: int
    kind: Kind
    addr: int | None = None
    threshold: float | None = None
    enabled: bool = True

    def describe(self) -> str:
        k = self.kind
        if k is Kind.ADDRESS:
            return f"PC reaches {self.addr:04d}"
        if k is Kind.WATCH:
            return f"watch {self.addr:04d}"
        if k is Kind.CONFIDENCE:
            return f"confidence < {self.threshold:g}"
        if k is Kind.ENTROPY:
            return f"entropy > {self.threshold:g} bits"
        return CONDITIONS[k]

    @property
    def key(self) -> tuple[Kind, int | None, float | None]:
        return (self.kind, self.addr, self.threshold)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "addr": self.addr, "threshold": self.threshold, "enabled": self.enabled}

    @classmethod
    def from_dict(cls, bp_id: int, raw: dict[str, object]) -> "Breakpoint":
        """One saved breakpoint; ValueError, KeyError or TypeError when it is not one."""
        kind = Kind(raw["kind"])
        addr = raw.get("addr")
        threshold = raw.get("threshold")
        if kind.needs_addr != isinstance(addr, int) or kind.needs_threshold != isinstance(threshold, (int, float)):
            raise ValueError(f"a {kind.value} breakpoint with addr {addr!r} and threshold {threshold!r}")
        return cls(bp_id, kind, addr, None if threshold is None else float(threshold), bool(raw.get("enabled", True)))


@dataclass(frozen=True)
class Stop:
    """Where a move ended and why."""

    position: int
    reason: str  # "moved", "breakpoint", "end", "start"
    hits: tuple[Breakpoint, ...] = ()

    @property
    def message(self) -> str:
        if self.reason == "breakpoint":
            return "; ".join(f"#{b.id} {b.describe()}" for b in self.hits)
        if self.reason == "end":
            return "end of trace, no breakpoint hit"
        if self.reason == "start":
            return "start of trace, no breakpoint hit"
        return ""


class PositionError(ValueError):
    """A 'go to' that names no position of this trace."""


@dataclass
class DebugSession:
    facts: Facts
    position: int = 0
    breakpoints: list[Breakpoint] = field(default_factory=list)
    _next_id: int = 1
    _masks: dict[tuple[Kind, int | None, float | None], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def length(self) -> int:
        return self.facts.length

    @property
    def last_position(self) -> int:
        return max(self.length - 1, 0)

    # ---- breakpoints ----
    def add(self, kind: Kind, addr: int | None = None, threshold: float | None = None) -> Breakpoint:
        if kind.needs_addr and addr is None:
            raise ValueError(f"a {kind.value} breakpoint needs an address")
        if kind.needs_threshold and threshold is None:
            raise ValueError(f"a {kind.value} breakpoint needs a threshold")
        bp = Breakpoint(self._next_id, kind, addr if kind.needs_addr else None,
                        threshold if kind.needs_threshold else None)
        self._next_id += 1
        self.breakpoints.append(bp)
        return bp

    def find(self, kind: Kind, addr: int | None = None) -> Breakpoint | None:
        return next((b for b in self.breakpoints if b.kind is kind and b.addr == addr), None)

    def toggle_at(self, kind: Kind, addr: int) -> Breakpoint | None:
        """Add an address breakpoint or watch at addr, or remove the one there. Returns the new one."""
        existing = self.find(kind, addr)
        if existing is not None:
            self.delete(existing.id)
            return None
        return self.add(kind, addr=addr)

    def get(self, bp_id: int) -> Breakpoint:
        for b in self.breakpoints:
            if b.id == bp_id:
                return b
        raise KeyError(f"no breakpoint #{bp_id}")

    def toggle_enabled(self, bp_id: int) -> Breakpoint:
        bp = self.get(bp_id)
        bp.enabled = not bp.enabled
        return bp

    def delete(self, bp_id: int) -> None:
        self.breakpoints.remove(self.get(bp_id))

    def adopt(self, breakpoints: list[Breakpoint]) -> None:
        """Take another session's breakpoints (the same probe at another training step)."""
        self.breakpoints = [replace(b) for b in breakpoints]
        self._next_id = max((b.id for b in self.breakpoints), default=0) + 1

    def mask(self, bp: Breakpoint) -> np.ndarray:
        """Where this breakpoint holds: bool [length]."""
        cached = self._masks.get(bp.key)
        if cached is None:
            f, k = self.facts, bp.kind
            if k is Kind.ADDRESS:
                cached = f.pc_reaches(bp.addr)
            elif k is Kind.WATCH:
                cached = f.writes(bp.addr)
            elif k is Kind.OEU_WRONG:
                cached = f.oeu_wrong()
            elif k is Kind.CONFIDENCE:
                cached = f.low_confidence(bp.threshold)
            elif k is Kind.ENTROPY:
                cached = f.high_entropy(bp.threshold)
            elif k is Kind.PC_NOT_INST:
                cached = f.pc_not_instruction()
            elif k is Kind.PLAN_DIFFERS:
                cached = f.plan_unlike_target()
            elif k is Kind.DEPARTS:
                cached = f.departs_from_reference()
            else:
                cached = f.halting()
            self._masks[bp.key] = cached
        return cached

    def hits(self, pos: int) -> tuple[Breakpoint, ...]:
        return tuple(b for b in self.breakpoints if b.enabled and self.mask(b)[pos])

    def hit_positions(self) -> np.ndarray:
        """Positions where any enabled breakpoint holds: bool [length]."""
        out = np.zeros(self.length, dtype=bool)
        for b in self.breakpoints:
            if b.enabled:
                out |= self.mask(b)
        return out

    # ---- moves ----
    def goto(self, pos: int) -> Stop:
        self.position = min(max(pos, 0), self.last_position)
        return Stop(self.position, "moved", self.hits(self.position))

    def step(self, n: int = 1) -> Stop:
        if self.position >= self.last_position and n > 0:
            return Stop(self.position, "end")
        return self.goto(self.position + n)

    def back(self, n: int = 1) -> Stop:
        if self.position <= 0 and n > 0:
            return Stop(self.position, "start")
        return self.goto(self.position - n)

    def first(self) -> Stop:
        return self.goto(0)

    def last(self) -> Stop:
        return self.goto(self.last_position)

    def cont(self) -> Stop:
        """Run forwards to the next position where an enabled breakpoint holds."""
        ahead = np.flatnonzero(self.hit_positions()[self.position + 1:])
        if ahead.size == 0:
            self.position = self.last_position
            return Stop(self.position, "end")
        self.position += 1 + int(ahead[0])
        return Stop(self.position, "breakpoint", self.hits(self.position))

    def reverse(self) -> Stop:
        """Run backwards to the previous position where an enabled breakpoint holds."""
        behind = np.flatnonzero(self.hit_positions()[: self.position])
        if behind.size == 0:
            self.position = 0
            return Stop(0, "start")
        self.position = int(behind[-1])
        return Stop(self.position, "breakpoint", self.hits(self.position))

    def parse_position(self, text: str) -> int:
        """'12' execute step 12 (steps are 1..T), 'p3' plan step 3, '+5' / '-5' relative, '$' the
        last step."""
        text = text.strip().lower()
        n_plan, n_exec = self.facts.n_plan, self.facts.n_exec
        if text in ("$", "end", "last"):
            return self.last_position
        if m := re.fullmatch(r"([+-])\s*(\d+)", text):
            delta = int(m.group(2)) * (1 if m.group(1) == "+" else -1)
            return min(max(self.position + delta, 0), self.last_position)
        if m := re.fullmatch(r"p(?:lan)?\s*(\d+)", text):
            s = int(m.group(1))
            if s >= n_plan:
                raise PositionError(f"plan step {s} is past the plan (0..{n_plan - 1})")
            return s
        if m := re.fullmatch(r"(?:s|step|e)?\s*(\d+)", text):
            k = int(m.group(1))
            if k == 0:
                raise PositionError(f"step 0 is the memory before the first step (llamacpu disasm TRACE --step 0); "
                                    f"the debugger's steps are 1..{n_exec}, after the plan p0..p{n_plan - 1}")
            if k > n_exec:
                raise PositionError(f"step {k} is past the run (1..{n_exec})")
            return n_plan + k - 1
        raise PositionError(f"not a step: {text!r} (try 12, p3, +5, -5 or $)")
