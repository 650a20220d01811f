"""The memory pane: one row per slot, rendered only for the rows on screen (Line API)."""

from __future__ import annotations

from functools import cached_property

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llamacpu.isa import EMPTY
from tui.model import Marks, TraceView
from tui.session import DebugSession, Kind

LEGEND = "> pc  r read  w written  * changed  ! unlike compiler  B break  W watch"
FIXED = 8 + 5 + 8  # marks and breakpoint flags, address, type: the columns before the reading
CONFIDENCE = 5  # " 1.00"
MAX_BODY = 34  # a reading longer than this is cut
CHROME = 4  # border and vertical scrollbar


class MemoryView(ScrollView, can_focus=True):
    """Slots at the current position: marks, address, type, decoded text, confidence, role."""

    INHERIT_BINDINGS = False  # the screen's home/end/left/right move in time, not in this pane
    COMPONENT_CLASSES = {
        "memory--pc", "memory--read", "memory--written", "memory--changed", "memory--cursor",
        "memory--doubt", "memory--empty", "memory--role",
    }
    BINDINGS = [
        Binding("up", "cursor(-1)", "slot up", show=False),
        Binding("down", "cursor(1)", "slot down", show=False),
        Binding("pageup", "cursor(-20)", "page up", show=False),
        Binding("pagedown", "cursor(20)", "page down", show=False),
        Binding("f", "follow_pc", "select PC", id="memory.follow"),
    ]

    # The watchers below repaint what changed; a reactive's own repaint would redo every row.
    position = reactive(0, repaint=False)
    revision = reactive(0)  # bumped when breakpoints change: every row may gain or lose B / W
    cursor = reactive(0, repaint=False)

    class Selected(Message):
        def __init__(self, addr: int) -> None:
            self.addr = addr
            super().__init__()

    def __init__(self, view: TraceView, session: DebugSession, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = view
        self.session = session
        self.virtual_size = Size(1, view.window)
        self._base, self._width = Style(), 1  # set at each paint
        self._parts: dict[str, Style] = {}

    def on_mount(self) -> None:
        self.call_after_refresh(self._reveal_position)  # sized only after the first layout

    @cached_property
    def body_width(self) -> int:
        """The reading column: as wide as the longest reading of the compiled image and of the
        final memory (instructions are the longest, and steps rarely change them), at most MAX_BODY."""
        view = self.view
        ends = {max(view.n_plan - 1, 0), view.length - 1}
        return min(max((len(view.row(p, a).body) for p in ends for a in range(view.window)), default=1), MAX_BODY)

    @cached_property
    def role_width(self) -> int:
        return max((len(f" ; {r}") for r in self.view.roles.values()), default=0)

    @property
    def content_width(self) -> int:
        """Columns that show every part of every row, chrome included: the pane's natural width."""
        return FIXED + self.body_width + CONFIDENCE + self.role_width + CHROME

    def _reveal_position(self) -> None:
        """Scroll the current instruction (or the slot just planned) into view."""
        marks = self.view.marks(self.position)
        target = marks.pc if marks.pc is not None else marks.written
        if target is not None:
            self._reveal(target)  # scrolling repaints every row

    def watch_position(self, old: int, new: int) -> None:
        self._reveal_position()
        marks = self.view.marks(new)
        changed = self.view.rows_changed(old, new)
        if changed is None:
            self.refresh()
            return
        # A step repaints only the rows it can alter: those it changed, and those marked
        # (pc, read, written, changed) before or after it. The rest keep their cached lines.
        before = self.view.marks(old)
        for addr in changed | _marked(before) | _marked(marks):
            self.refresh_line(addr)

    def watch_revision(self) -> None:
        self.refresh()

    def watch_cursor(self, old: int, cursor: int) -> None:
        self._reveal(cursor)
        self.post_message(self.Selected(cursor))
        self.refresh_line(old)
        self.refresh_line(cursor)

    def validate_cursor(self, cursor: int) -> int:
        return min(max(cursor, 0), self.view.window - 1)

    def _reveal(self, addr: int) -> None:
        top, height = int(self.scroll_y), self.scrollable_content_region.height
        if height <= 0:
            return
        if addr < top or addr >= top + height:
            self.scroll_to(y=max(addr - height // 3, 0), animate=False)

    def select(self, addr: int) -> None:
        """Select a slot and scroll it into view (even when it is selected already)."""
        self.cursor = addr
        self._reveal(self.cursor)

    def action_cursor(self, delta: int) -> None:
        self.cursor += delta

    def action_follow_pc(self) -> None:
        """Select the slot of the current instruction (or the slot just planned)."""
        marks = self.view.marks(self.position)
        target = marks.pc if marks.pc is not None else marks.written
        if target is not None:
            self.cursor = target

    def on_click(self, event) -> None:
        y = event.y + int(self.scroll_y)
        if 0 <= y < self.view.window:
            self.cursor = y

    def _part(self, name: str) -> Style:
        """What a component class sets, and nothing else (so parts add up). A partial style drops
        the alpha of a colour like ``$text-muted``: that colour is taken blended instead."""
        part = self.get_component_rich_style(name, partial=True)
        if part.color is None:
            return part
        return part + Style(color=self.get_component_rich_style(name).color)

    def render_lines(self, crop: Region) -> list[Strip]:
        # These walk the DOM: once per paint, not once per row.
        self._base, self._width = self.rich_style, self.scrollable_content_region.width
        self._parts = {name.removeprefix("memory--"): self._part(name) for name in self.COMPONENT_CLASSES}
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        addr = y + int(self.scroll_y)
        width = self._width
        if addr >= self.view.window:
            return Strip.blank(width, self._base)
        return self._row_strip(addr, width)

    def _row_strip(self, addr: int, width: int) -> Strip:
        view, pos = self.view, self.position
        row = view.row(pos, addr)
        marks = view.marks(pos)
        flags = (
            (">" if addr == marks.pc else " ")
            + ("r" if addr in marks.reads else " ")
            + ("w" if addr == marks.written else " ")
            + ("*" if addr in marks.changed else " ")
            + ("!" if addr in view.unlike_at(pos) else " ")
        )
        bps = ("B" if self.session.find(Kind.ADDRESS, addr) else " ") + ("W" if self.session.find(Kind.WATCH, addr) else " ")
        style, parts = self._base, self._parts
        if row.decoded.type_id == EMPTY and not row.role:  # a reserved slot (a role) is not dimmed
            style += parts["empty"]
        if addr in marks.changed:
            style += parts["changed"]
        if addr in marks.reads:
            style += parts["read"]
        if addr == marks.written:
            style += parts["written"]
        if addr == marks.pc:
            style += parts["pc"]
        if addr == self.cursor:
            style += parts["cursor"]
        conf_style = style + parts["doubt"] if row.confidence < 0.9 else style
        role = f" ; {row.role}" if row.role else ""
        # Readings line up in one column. Where the pane is too narrow for that column and the
        # roles, rows with a role pad less (to one narrower column) so that confidences and
        # roles still show; rows without one (instructions) keep the full column.
        room = width - FIXED - CONFIDENCE - (self.role_width if role else 0)
        pad = max(min(self.body_width, room), len(row.body))
        segments = [
            Segment(f"{flags}{bps} {addr:04d} {row.type:<7} {row.body:<{pad}.{MAX_BODY}}", style),
            Segment(f" {row.confidence:4.2f}", conf_style),
            Segment(role, style + parts["role"]),
        ]
        strip = Strip(segments)
        return strip.extend_cell_length(width, style).crop(0, width)


def _marked(marks: Marks) -> set[int]:
    """Rows that carry a mark at a position: > r w *."""
    return {a for a in (marks.pc, marks.written) if a is not None} | set(marks.reads) | marks.changed
