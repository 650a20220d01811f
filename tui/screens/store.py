"""The store browser: filter a trace store's index, choose a trace to debug."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Select, Static

from llamacpu.trace import TraceRow

ANY = "any"


class StoreScreen(Screen):
    """Traces of a store, newest training step first; enter opens one."""

    BINDINGS = [
        Binding("q", "quit", "quit (twice)", id="store.quit"),
        Binding("question_mark", "app.help", "help", id="store.help"),
    ]
    QUIT_WINDOW = 2.0  # seconds in which a second q quits

    class Chosen(Message):
        def __init__(self, row: TraceRow, rows: list[TraceRow]) -> None:
            self.row = row
            self.rows = rows
            super().__init__()

    def __init__(self, root: Path, rows: list[TraceRow]) -> None:
        super().__init__()
        self.root = root
        self.all_rows = rows
        self.shown: list[TraceRow] = []
        self._quit_asked = -1e9  # monotonic time of the last q

    def action_quit(self) -> None:
        """q twice quits: the browser is the root of the session, a stray q should not end it."""
        now = time.monotonic()
        if now - self._quit_asked < self.QUIT_WINDOW:
            self.app.exit()
            return
        self._quit_asked = now
        self.notify("press q again to quit", timeout=self.QUIT_WINDOW)

    def opening(self, row: TraceRow | None) -> None:
        """Show that a trace is being opened (None: done)."""
        table = self.query_one(DataTable)
        table.loading = row is not None
        title = self.query_one(".screen-title", Static)
        title.update(f"opening {row.path.name} ..." if row is not None else self._title())

    def _title(self) -> str:
        return f"trace store {self.root.name}: {len(self.all_rows)} traces (enter opens one)"

    def compose(self) -> ComposeResult:
        rows = self.all_rows
        yield Static(self._title(), classes="screen-title")
        with Horizontal(id="filters"):
            yield Select([("right", "right"), ("wrong", "wrong")], prompt="result: any", id="f-result")
            yield Select([(f"{d} digits", d) for d in sorted({r.digits for r in rows})], prompt="size: any", id="f-digits")
            probes = sorted({r.probe_id for r in rows if r.probe_id})
            yield Select([(p, p) for p in probes], prompt="probe: any", id="f-probe")
            steps = sorted({r.training_step for r in rows if r.training_step is not None})
            yield Select([(str(s), s) for s in steps], prompt="train step: any", id="f-step")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("train step", "problem", "produced", "result", "digits", "probe", "stage", "steps", "file")
        self._fill()
        table.focus()

    def on_select_changed(self) -> None:
        self._fill()

    def _value(self, select_id: str):
        value = self.query_one(f"#{select_id}", Select).value
        return None if value is Select.NULL else value

    def _fill(self) -> None:
        result, digits = self._value("f-result"), self._value("f-digits")
        probe, step = self._value("f-probe"), self._value("f-step")
        self.shown = [
            r for r in self.all_rows
            if (result is None or r.correct == (result == "right"))
            and (digits is None or r.digits == digits)
            and (probe is None or r.probe_id == probe)
            and (step is None or r.training_step == step)
        ]
        table = self.query_one(DataTable)
        table.clear()
        for r in self.shown:
            table.add_row("-" if r.training_step is None else str(r.training_step), r.problem, str(r.produced),
                          "right" if r.correct else "WRONG", str(r.digits), r.probe_id or "",
                          "" if r.stage is None else str(r.stage), str(r.steps), r.path.name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.shown):
            self.post_message(self.Chosen(self.shown[event.cursor_row], self.all_rows))
