"""Pointer attention as heatmaps: this step's PC/op/src1/src2/dst over addresses, or one of
them over addresses x steps. Both window and scroll instead of shrinking, and say what is left out.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui.colormap import levels, shade
from tui.model import DISTRIBUTIONS, TraceView

RAMP = " .:-=+*#%@"  # the cell's character also carries its probability (monochrome terminals)
LABEL = 6
DIM = Style(dim=True)
BOLD = Style(bold=True)
FG = (Style(color="white"), Style(color="black"))


def heat_segments(values: np.ndarray, cmap: str) -> list[Segment]:
    """A row of one-character cells coloured by probability: [n] -> segments, one per run of
    equal cells (a row of attention is mostly near zero: a few runs, not n segments)."""
    p = values.astype(np.float64)
    ramp = np.minimum((p * len(RAMP)).astype(np.int64), len(RAMP) - 1).clip(0)
    level = levels(p)
    fg = (p > 0.5).astype(np.int64)
    key = (level * len(RAMP) + ramp) * 2 + fg
    starts = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), len(key)]
    return [Segment(RAMP[ramp[a]] * (b - a), _cell(cmap, int(level[a]), int(fg[a])))
            for a, b in zip(starts, starts[1:]) if b > a]


@lru_cache(maxsize=None)
def _cell(cmap: str, level: int, bright: int) -> Style:
    return shade(cmap, level) + FG[bright]


class AttentionPane(Widget, can_focus=True):
    """This step's PC/op/src1/src2/dst over addresses, and below it one of them over addresses x
    steps (``dist``). Each window follows the PC and scrolls with , and .

    Drawn with the Line API from segments: thousands of coloured cells per step stay cheap.
    """

    # Its keys (m , . v) are the debugger screen's, so they work whichever pane has focus.

    position = reactive(0)
    dist = reactive(0)  # which distribution the addresses x steps view shows
    step_first = reactive(0)  # first address column of the step view
    run_first = reactive(0)  # first address row of the addresses x steps view
    cmap = reactive("viridis")  # or "cividis" (v): both perceptually uniform; cividis also for red-green blindness

    def __init__(self, view: TraceView, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = view
        self._lines: list[list[Segment]] | None = None  # this position's lines, built on the next paint
        self._strips: tuple[tuple[Style, int], list[Strip], Strip] | None = None  # ... styled at (base, width)

    @property
    def columns(self) -> int:
        return max(self.size.width - LABEL - 16, 8)  # room for ' 0037 0.96 H0.5'

    @property
    def run_rows(self) -> int:
        return max(self.size.height - len(DISTRIBUTIONS) - 4, 1)  # 4 lines of notes and markers

    def watch_position(self) -> None:
        marks = self.view.marks(self.position)
        focus = marks.pc if marks.pc is not None else marks.written
        if focus is not None:
            w = self.view.window
            if not self.step_first <= focus < self.step_first + self.columns:
                self.step_first = max(min(focus - self.columns // 3, w - self.columns), 0)
            if not self.run_first <= focus < self.run_first + self.run_rows:
                self.run_first = max(min(focus - self.run_rows // 3, w - self.run_rows), 0)
        self._lines = self._strips = None

    def _invalidate(self) -> None:
        self._lines = self._strips = None
        self.refresh()

    watch_dist = watch_step_first = watch_run_first = watch_cmap = _invalidate

    def on_resize(self) -> None:
        """Refit both windows to the new size at once (the paint at the new size may have
        used lines built for the old one)."""
        self.watch_position()
        self.refresh()

    def action_next_dist(self) -> None:
        """Cycle the distribution the addresses x steps view shows (pc, op, src1, src2, dst)."""
        self.dist = (self.dist + 1) % len(DISTRIBUTIONS)

    def action_toggle_cmap(self) -> None:
        """Colour the heatmaps with cividis instead of viridis, or back."""
        self.cmap = "cividis" if self.cmap == "viridis" else "viridis"
        self.border_subtitle = None if self.cmap == "viridis" else "cividis"

    def action_scroll_addr(self, direction: int) -> None:
        """Scroll both heatmaps over addresses."""
        w = self.view.window
        self.step_first = min(max(self.step_first + direction * max(self.columns // 2, 1), 0), max(w - self.columns, 0))
        self.run_first = min(max(self.run_first + direction * max(self.run_rows // 2, 1), 0), max(w - self.run_rows, 0))

    def render_lines(self, crop: Region) -> list[Strip]:
        base, width = self.rich_style, self.size.width  # both walk the DOM: once per paint, not per line
        if self._lines is None:
            self._lines = self._build()
        if self._strips is None or self._strips[0] != (base, width):
            strips = [Strip(line).apply_style(base).crop_extend(0, width, base) for line in self._lines]
            self._strips = ((base, width), strips, Strip.blank(width, base))
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        _, strips, blank = self._strips
        return strips[y] if y < len(strips) else blank

    def _build(self) -> list[list[Segment]]:
        if self.view.n_exec == 0:
            return [[Segment("no execute steps in this trace")]]
        return self._step_lines() + [[]] + self._run_lines()

    def _step_lines(self) -> list[list[Segment]]:
        view, pos = self.view, self.position
        dists = view.distributions(pos)
        if dists is None:
            return [[Segment("plan phase: no pointer attention yet", DIM)],
                    [Segment("(a: the plan screen shows prompt attention)", DIM)]]
        entropy = view.step_entropy(pos)
        lo = self.step_first
        hi = min(lo + self.columns, view.window)
        lines = [[Segment(f"this step: {self._window_note(lo, hi)}", DIM)]]
        for k, name in enumerate(DISTRIBUTIONS):
            row = dists[k]
            best = int(row.argmax())
            lines.append([Segment(f"{name:<{LABEL}}"), *heat_segments(row[lo:hi], self.cmap),
                          Segment(f" {best:04d} {row[best]:.2f} H{entropy[k]:.1f}")])
        return lines

    def _run_lines(self) -> list[list[Segment]]:
        view, pos = self.view, self.position
        phase, t = view.phase(pos)
        t = t if phase == "exec" else 0
        cols = self.columns
        s_lo = max(min(t - cols // 2, view.n_exec - cols), 0)
        s_hi = min(s_lo + cols, view.n_exec)
        a_lo = self.run_first
        a_hi = min(a_lo + self.run_rows, view.window)
        block = view.steps_view(self.dist, range(s_lo, s_hi), range(a_lo, a_hi))  # (addrs, steps)
        name = DISTRIBUTIONS[self.dist]
        lines = [[Segment(f"{name} x steps {s_lo + 1}-{s_hi}/{view.n_exec}: {self._window_note(a_lo, a_hi)}", DIM)]]
        marker = [" "] * (s_hi - s_lo)
        if phase == "exec":
            marker[t - s_lo] = "v"
        lines.append([Segment(" " * LABEL + "".join(marker), BOLD)])
        for i, addr in enumerate(range(a_lo, a_hi)):
            lines.append([Segment(f"{addr:04d}  "), *heat_segments(block[i], self.cmap)])
        return lines

    def _window_note(self, lo: int, hi: int) -> str:
        n = self.view.window
        note = f"addr {lo}-{hi - 1}/{n}"
        if lo or n - hi:
            note += f", {lo} before, {n - hi} after (, .)"
        return note
