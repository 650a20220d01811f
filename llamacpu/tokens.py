"""Tokens as machine code: a trace's prompt as pieces and ids, and the tokens each slot was compiled from.

The plan phase compiles a prompt of ``L`` tokens into ``S`` slots; the trace keeps each plan
query's attention over the prompt (``plan.prompt_attn`` [S, L], the last layer's heads averaged).
:func:`token_listing` lays it out beside the disassembly: for each slot its reading and the prompt
tokens it attended to most. ``llamacpu disasm --tokens`` prints it; the debugger's tokens screen
shows the same lines (:func:`format_listing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from llamacpu.disasm import format_line, read_slots, slot_text
from llamacpu.isa import ISA


class NoPromptError(ValueError):
    """A trace that was not compiled from a prompt (a program run by ``asm``)."""


@dataclass(frozen=True)
class SlotSource:
    """One planned slot and the prompt tokens it attended to most: (token index, weight), best first."""

    address: int
    line: str  # the disassembly line of the planned slot
    text: str  # its instruction part alone (no address, no role)
    role: str | None
    sources: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class TokenListing:
    prompt: str
    ids: list[int]  # [L]
    pieces: list[str]  # [L]
    slots: list[SlotSource]  # [S]


def token_listing(trace: dict[str, Any], isa: ISA, top: int = 3) -> TokenListing:
    """The prompt's tokens and, per plan step, the ``top`` prompt tokens its query attended to."""
    plan = trace["plan"]
    attn = plan.get("prompt_attn")
    ids = [int(i) for i in trace.get("prompt_tokens", torch.zeros(0)).tolist()]
    if attn is None or not ids:
        raise NoPromptError("holds no prompt: its memory was not compiled from tokens (a program run by asm)")
    attn = attn.float()  # (S, L)
    roles = {int(k): v for k, v in trace["meta"].get("roles", {}).items()}
    readings = read_slots(plan["slot"].float(), isa, roles)
    k = min(top, attn.shape[1])
    slots = []
    for s, addr in enumerate(plan["addr"].tolist()):
        weights, where = torch.topk(attn[s], k)
        r = readings[addr]
        slots.append(SlotSource(addr, format_line(r), slot_text(r), r.role,
                                tuple((int(i), float(w)) for w, i in zip(weights, where))))
    return TokenListing(trace["meta"].get("prompt", ""), ids, [str(p) for p in trace.get("prompt_pieces", [])], slots)


def format_listing(listing: TokenListing, width: int = 56) -> list[str]:
    """The text form: a header of token index, piece and id, then one line per slot,
    ``0007  DATA   3   ; a[0]   <- '3'#0 0.82  '+'#2 0.10``."""
    cells = [max(len(repr(p)), len(str(i)), len(str(n))) + 2
             for n, (p, i) in enumerate(zip(listing.pieces, listing.ids))]
    out = [f"; prompt {listing.prompt!r}: {len(listing.ids)} tokens, compiled into {len(listing.slots)} slots",
           "; token " + "".join(f"{n:<{w}}" for n, w in zip(range(len(cells)), cells)),
           "; piece " + "".join(f"{p!r:<{w}}" for p, w in zip(listing.pieces, cells)),
           "; id    " + "".join(f"{i:<{w}}" for i, w in zip(listing.ids, cells)),
           "; each slot: the prompt tokens its plan query attended to most ('piece'#token weight)"]
    for s in listing.slots:
        src = "  ".join(f"{_piece(listing, i)!r}#{i} {w:.2f}" for i, w in s.sources)
        out.append(f"{s.line:<{width}} <- {src}")
    return out


def listing_json(listing: TokenListing) -> dict[str, Any]:
    """The headless twin: tokens and, per slot, its sources with pieces and ids."""
    return {"prompt": listing.prompt, "tokens": [{"index": n, "piece": p, "id": i} for n, (p, i)
                                                 in enumerate(zip(listing.pieces, listing.ids))],
            "slots": [{"address": s.address, "text": s.text, "role": s.role,
                       "sources": [{"token": i, "piece": _piece(listing, i), "id": listing.ids[i],
                                    "weight": round(w, 4)} for i, w in s.sources]} for s in listing.slots]}


def _piece(listing: TokenListing, i: int) -> str:
    return listing.pieces[i] if i < len(listing.pieces) else str(listing.ids[i])
