"""The OEU pane: operator, decoded arguments, output, expected, right or wrong; then control
flow: a jump's condition and whether it was taken, and the reference interpreter's path beside
the neural one (by path: once the PC leaves the reference's, the pane says since which step).

At a plan position it shows what the plan step wrote instead: the planned slot beside its target.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.model import TraceView


class OEUPane(Widget):
    position = reactive(0)

    def __init__(self, view: TraceView, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = view

    def render(self) -> Text:
        view, pos = self.view, self.position
        oeu = view.oeu(pos)
        if oeu is None:
            return self._plan_text()
        out = Text()
        out.append(f"{oeu.op}", "bold")
        out.append(f"({oeu.a}, {oeu.b})" if oeu.op not in ("HALT", "NOP") else "")
        out.append(f" = {oeu.out}", "bold")
        out.append(f"  p {oeu.out_prob:.2f}")
        if min(oeu.op_prob, oeu.a_prob, oeu.b_prob) < 0.9:
            out.append(f"  (inputs p {oeu.op_prob:.2f} {oeu.a_prob:.2f} {oeu.b_prob:.2f})", "dim")
        out.append("\nexpected ")
        if oeu.right is None:
            out.append("unknown")
        else:
            out.append(f"{oeu.expected}  ")
            out.append("right" if oeu.right else "WRONG", "bold green" if oeu.right else "bold red")
        out.append(f"  gate {oeu.gate:.2f}  halt {oeu.halt:.2f}")
        marks = view.marks(pos)
        target = view.pc_target(pos)
        out.append(f"\nPC {marks.pc:04d}")
        if target is not None:
            out.append(f" (target {target:04d}{'' if target == marks.pc else ' MISSED'})")
        flow = view.control(pos)
        if flow is not None:
            out.append_text(_control_text(flow))
        return out

    def _plan_text(self) -> Text:
        view, pos = self.view, self.position
        _, s = view.phase(pos)
        addr = int(view.plan_addr[s])
        row = view.row(pos, addr)
        out = Text()
        out.append(f"plan step {s}: slot {addr:04d}\n", "bold")
        out.append(f"planned {row.type} {row.body}  ({row.confidence:.2f})\n")
        target = view.trace["plan"].get("target")
        if target is not None:
            want = view.decode_at(target, s)
            same = want.decoded.type_id == row.decoded.type_id and want.body == _certain(row.body)
            out.append(f"target  {want.type} {want.body}  ")
            out.append("same" if same else "DIFFERS", "green" if same else "bold red")
        attn = view.prompt_attention(s)
        if attn is not None and attn.size:
            pieces = view.prompt_pieces
            best = int(attn.argmax())
            piece = pieces[best] if best < len(pieces) else str(best)
            out.append(f"\ncompiled from {piece!r} ({attn[best]:.2f})")
        return out


def _control_text(flow) -> Text:
    """The PC line's tail (the reference's PC here) and, at a jump, its condition and verdict."""
    out = Text()
    if flow.departed is not None:
        out.append(f"  off the reference path since step {flow.departed}", "bold red")
    elif flow.ref_pc is not None:
        out.append(f"  reference {flow.ref_pc:04d}", "dim")
    if flow.jump is not None:
        cond = "" if flow.condition is None else f" on {flow.condition}"
        out.append(f"\n{flow.jump}{cond}: ")
        out.append("taken" if flow.taken else "not taken", "bold")
        if flow.target is not None:
            out.append(f" (to {flow.target:04d})")
        if flow.ref_taken is not None and flow.departed is None:
            out.append(f"  reference: {'taken' if flow.ref_taken else 'not taken'}", "dim")
    return out


def _certain(text: str) -> str:
    """The reading without its doubt marks: ``3?0.61`` -> ``3``."""
    return re.sub(r"\?\d\.\d\d", "", text)
