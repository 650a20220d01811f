"""The timeline: plan steps then execute steps, the PC of each, halting, breakpoint hits.

A window of cells around the current position; the first line says which part is shown.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.model import TraceView
from tui.session import DebugSession

CELL = 5


class Timeline(Widget):
    position = reactive(0)
    revision = reactive(0)

    def __init__(self, view: TraceView, session: DebugSession, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = view
        self.session = session
        self._wrong = view.oeu_wrong()  # [S + T] bool: fixed for the trace, so computed once
        self._halting = view.halting()

    def render(self) -> Text:
        view, pos = self.view, self.position
        n = view.length
        cells = max(self.size.width // CELL, 1)
        lo = max(min(pos - cells // 2, n - cells), 0)
        hi = min(lo + cells, n)
        hits = self.session.hit_positions()[lo:hi] if self.session.breakpoints else np.zeros(hi - lo, bool)
        wrong = self._wrong[lo:hi]
        halting = self._halting[lo:hi]
        head, pcs = Text(), Text()
        for i, p in enumerate(range(lo, hi)):
            phase, k = view.phase(p)
            style = "reverse bold" if p == pos else ("bold yellow" if hits[i] else ("red" if wrong[i] else ""))
            head.append(f"{('p' if phase == 'plan' else 's') + str(view.step_number(p)):<{CELL}}"[:CELL], style)
            if phase == "plan":
                body = f"@{int(view.plan_addr[k]):03d}" if view.plan_addr[k] < 1000 else "@..."
            else:
                body = "HALT" if halting[i] else f"{int(view.pc_addr[k]):04d}"
            pcs.append(f"{body:<{CELL}}", style + (" dim" if phase == "plan" and p != pos else ""))
        note = Text(f"{view.label(pos)}   plan 0-{view.n_plan - 1}, steps 1-{view.n_exec}; "
                    f"showing {lo}-{hi - 1} of {n} positions", "dim")
        return Text("\n", no_wrap=True, overflow="crop").join([note, head, pcs])  # three fixed lines: no wrapping
