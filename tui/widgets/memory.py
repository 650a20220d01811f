"""The memory pane: one row per slot, rendered only for the rows on screen (Line API)."""

from __future__ import annotations

from rich.segment import Segment
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.model import TraceView
from tui.session import DebugSession, Kind

LEGEND = "> pc  r read  w written  * changed  B break  W watch"


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

    position = reactive(0)
    revision = reactive(0)  # bumped when breakpoints change
    cursor = reactive(0)

    class Selected(Message):
        def __init__(self, addr: int) -> None:
            self.addr = addr
            super().__init__()

    def __init__(self, view: TraceView, session: DebugSession, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = view
        self.session = session
        self.virtual_size = Size(1, view.window)

    def watch_position(self) -> None:
        marks = self.view.marks(self.position)
        target = marks.pc if marks.pc is not None else marks.written
        if target is not None:
            self._reveal(target)
        self.refresh()

    def watch_revision(self) -> None:
        self.refresh()

    def watch_cursor(self, cursor: int) -> None:
        self._reveal(cursor)
        self.post_message(self.Selected(cursor))
        self.refresh()

    def validate_cursor(self, cursor: int) -> int:
        return min(max(cursor, 0), self.view.window - 1)

    def _reveal(self, addr: int) -> None:
        top, height = int(self.scroll_y), self.scrollable_content_region.height
        if height <= 0:
            return
        if addr < top or addr >= top + height:
            self.scroll_to(y=max(addr - height // 3, 0), animate=False)

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

    def _part(self, name: str):
        return self.get_component_rich_style(name, partial=True)  # only what the class sets

    def render_line(self, y: int) -> Strip:
        addr = y + int(self.scroll_y)
        width = self.scrollable_content_region.width
        if addr >= self.view.window:
            return Strip.blank(width, self.rich_style)
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
        )
        bps = ("B" if self.session.find(Kind.ADDRESS, addr) else " ") + ("W" if self.session.find(Kind.WATCH, addr) else " ")
        base = self.rich_style
        style = base
        if row.decoded.type_id == 0 and not row.role:
            style += self._part("memory--empty")
        if addr in marks.changed:
            style += self._part("memory--changed")
        if addr in marks.reads:
            style += self._part("memory--read")
        if addr == marks.written:
            style += self._part("memory--written")
        if addr == marks.pc:
            style += self._part("memory--pc")
        if addr == self.cursor:
            style += self._part("memory--cursor")
        conf_style = style + self._part("memory--doubt") if row.confidence < 0.9 else style
        role = f" ; {row.role}" if row.role else ""
        segments = [
            Segment(f"{flags}{bps} {addr:04d} {row.type:<7} {row.body:<34.34}", style),
            Segment(f" {row.confidence:4.2f}", conf_style),
            Segment(role, style + self._part("memory--role")),
        ]
        strip = Strip(segments)
        return strip.extend_cell_length(width, style).crop(0, width)
