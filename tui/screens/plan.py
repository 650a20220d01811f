"""The plan screen: each planned slot with the prompt tokens it was compiled from, as attention."""

from __future__ import annotations

from rich.text import Text

from tui.colormap import cell_style
from tui.model import TraceView
from tui.screens.text import TextScreen
from tui.widgets.attention import RAMP


def plan_text(view: TraceView, cmap: str = "viridis") -> Text:
    """[S lines] slot, planned reading, role, then one heat cell per prompt token and the best token."""
    pieces = view.prompt_pieces
    width = min(max((len(p) for p in pieces), default=1), 4) + 1
    out = Text()
    if view.trace["plan"].get("prompt_attn") is None:
        out.append("this trace holds no plan attention over the prompt\n")
    header = "".join(f"{p[: width - 1]:<{width}}" for p in pieces)
    out.append(f"{'slot':<5}{'planned':<28}{'role':<12}{header}  most attended\n", "bold")
    for s in range(view.n_plan):
        addr = int(view.plan_addr[s])
        row = view.row(s, addr)
        out.append(f"{addr:04d} {row.type:<6} {row.body:<20.20} {row.role:<12.12}")
        attn = view.prompt_attention(s)
        if attn is not None and attn.size:
            for p in attn.tolist():
                level = min(int(p * len(RAMP)), len(RAMP) - 1)
                out.append(RAMP[level] * width, cell_style(p, cmap))
            best = int(attn.argmax())
            piece = pieces[best] if best < len(pieces) else str(best)
            out.append(f"  {piece!r} {attn[best]:.2f}")
        out.append("\n")
    return out


class PlanScreen(TextScreen):
    def __init__(self, view: TraceView, cmap: str = "viridis") -> None:
        super().__init__(f"plan: {view.meta.get('prompt')!r} compiled into {view.n_plan} slots "
                         f"(cells: attention over prompt tokens, {cmap})", plan_text(view, cmap))
