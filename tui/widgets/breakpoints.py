"""Breakpoints and watches: listed, toggled, deleted."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.model import TraceView
from tui.session import DebugSession, Kind


class BreakpointList(OptionList):
    """One line per breakpoint: ``[x] #2 watch 0025 (r[0])``."""

    BINDINGS = [
        Binding("space", "toggle_selected", "enable/disable", id="breakpoints.toggle"),
        Binding("delete,backspace", "delete_selected", "delete", id="breakpoints.delete"),
    ]

    revision = reactive(0)

    class Changed(Message):
        """Breakpoints were toggled or deleted here."""

    def __init__(self, view: TraceView, session: DebugSession, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = view
        self.session = session

    def watch_revision(self) -> None:
        highlighted = self.highlighted
        self.clear_options()
        if not self.session.breakpoints:
            self.add_option(Option("no breakpoints: b address, w watch, x condition", disabled=True))
            return
        for bp in self.session.breakpoints:
            role = self.view.roles.get(bp.addr, "") if bp.kind in (Kind.ADDRESS, Kind.WATCH) else ""
            text = f"[{'x' if bp.enabled else ' '}] #{bp.id} {bp.describe()}" + (f" ({role})" if role else "")
            self.add_option(Option(Text(text), id=str(bp.id)))  # Text: "[x]" is not markup
        self.highlighted = min(highlighted or 0, len(self.session.breakpoints) - 1)

    def _selected_id(self) -> int | None:
        if self.highlighted is None or not self.session.breakpoints:
            return None
        option = self.get_option_at_index(self.highlighted)
        return int(option.id) if option.id else None

    def action_toggle_selected(self) -> None:
        """Enable or disable the highlighted breakpoint."""
        bp_id = self._selected_id()
        if bp_id is not None:
            self.session.toggle_enabled(bp_id)
            self.post_message(self.Changed())

    def action_delete_selected(self) -> None:
        """Delete the highlighted breakpoint."""
        bp_id = self._selected_id()
        if bp_id is not None:
            self.session.delete(bp_id)
            self.post_message(self.Changed())
