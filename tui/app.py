"""The Textual app: a store browser and/or debugger screens, the palette, export, key remapping."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from llamacpu.trace import TraceError, TraceRow
from tui.export import export_png, export_text
from tui.model import TraceView
from tui.screens.debugger import DebuggerScreen, export_stem
from tui.screens.store import StoreScreen
from tui.saved import SavedBreakpoints
from tui.screens.text import HelpScreen
from tui.series import TrainingSeries, series_for
from tui.widgets.attention import AttentionPane
from tui.widgets.breakpoints import BreakpointList
from tui.widgets.memory import MemoryView

# Every binding the debugger has, where it lives (for help, the palette and key remapping).
BINDING_SOURCES: tuple[tuple[str, type], ...] = (
    ("", DebuggerScreen), ("memory", MemoryView), ("breakpoint list", BreakpointList), ("store", StoreScreen),
)


def all_bindings() -> list[tuple[str, Binding]]:
    return [(where, b) for where, cls in BINDING_SOURCES for b in cls.BINDINGS if isinstance(b, Binding)]


def binding_ids() -> set[str]:
    return {b.id for _, b in all_bindings() if b.id}


def key_display(keys: str) -> str:
    names = {"left_square_bracket": "[", "right_square_bracket": "]", "question_mark": "?",
             "comma": ",", "full_stop": ".", "colon": ":", "slash": "/"}
    return "/".join(names.get(k, k) for k in keys.split(","))


class DebuggerApp(App):
    """``llamacpu debug``: one trace, or a store to choose traces from."""

    CSS_PATH = "debugger.tcss"
    TITLE = "llamacpu debug"
    COMMAND_PALETTE_BINDING = "colon"  # single keys only: ctrl combinations collide with tmux

    def __init__(self, view: TraceView | None = None, store: Path | None = None,
                 rows: list[TraceRow] | None = None, keymap: dict[str, str] | None = None,
                 export_dir: Path = Path("."), breakpoints_file: Path | None = None) -> None:
        """``breakpoints_file``: where breakpoints persist per trace (None: not kept)."""
        super().__init__()
        self.saved = SavedBreakpoints(breakpoints_file) if breakpoints_file is not None else None
        self.view = view
        self.store = store
        self.rows = rows or []
        self.user_keymap = keymap or {}
        self.export_dir = export_dir

    def on_mount(self) -> None:
        if self.user_keymap:
            self.set_keymap(self.user_keymap)
        if self.view is not None:
            series = series_for(self.view.path, self.view.meta) if self.view.path else None
            self.push_screen(DebuggerScreen(self.view, series=series, saved=self.saved))
        else:
            self.push_screen(StoreScreen(self.store, self.rows))

    # ---- traces ----
    def on_store_screen_chosen(self, event: StoreScreen.Chosen) -> None:
        """Open the trace off the UI thread: a large one takes seconds, and the browser says so."""
        if isinstance(self.screen, StoreScreen):
            self.screen.opening(event.row)
        self._open_from_store(event.row, event.rows)

    @work(thread=True, exclusive=True, group="open-trace")
    def _open_from_store(self, row: TraceRow, rows: list[TraceRow]) -> None:
        try:
            view = TraceView.open(row.path)
            series = series_for(row.path, view.meta, rows)
            view.opening()  # its facts are swept here too, not on the first paint
        except TraceError as err:
            self.call_from_thread(self._opened, None, None, str(err))
            return
        self.call_from_thread(self._opened, view, series, None)

    def _opened(self, view: TraceView | None, series: TrainingSeries | None, error: str | None) -> None:
        store = next((s for s in self.screen_stack if isinstance(s, StoreScreen)), None)
        if store is not None:
            store.opening(None)
        if view is None:
            self.notify(error or "the trace could not be opened", severity="error")
            return
        self.push_screen(DebuggerScreen(view, series=series, from_store=True, saved=self.saved))

    def open_in_series(self, screen: DebuggerScreen, series: TrainingSeries) -> None:
        """Replace the debugger screen by the same probe at another training step."""
        try:
            view = TraceView.open(series.current.path)
        except TraceError as err:
            screen.status(str(err))
            return
        before = screen.series.current.training_step if screen.series else None
        new = DebuggerScreen(view, position=min(screen.position, view.length - 1),
                             breakpoints=screen.session.breakpoints, series=series, from_store=screen.from_store,
                             saved=self.saved)
        self.switch_screen(new)
        new.call_after_refresh(new.status, f"training step {before} -> {series.current.training_step}: "
                                           f"{series.describe()}")

    # ---- help, palette, export ----
    def help_rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for where, b in all_bindings():
            keys = self.user_keymap.get(b.id, b.key) if b.id else b.key
            rows.append((where, key_display(keys), b.description))
        rows.append(("", ":", "command palette"))
        return rows

    def action_help(self) -> None:
        """Show every key."""
        self.push_screen(HelpScreen(self.help_rows()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, DebuggerScreen):
            return
        for where, b in all_bindings():
            if where == "store":
                continue
            target = screen if where in ("",) else self._widget_for(screen, where)
            if target is None:
                continue
            keys = key_display(self.user_keymap.get(b.id, b.key) if b.id else b.key)
            title = b.description if not where else f"{where}: {b.description}"
            yield SystemCommand(title, f"key {keys}", partial(target.run_action, b.action))
        yield SystemCommand("Export SVG screenshot", "the current screen as SVG", partial(self.export, screen, "svg"))
        yield SystemCommand("Export PNG heatmaps", "the current heatmaps through matplotlib",
                            partial(self.export, screen, "png"))
        yield SystemCommand("Export disassembly", "the memory listing as text", partial(self.export, screen, "txt"))

    @staticmethod
    def _widget_for(screen: DebuggerScreen, where: str):
        cls = dict(BINDING_SOURCES).get(where)
        found = screen.query(cls) if cls else []
        return found.first() if found else None

    def export(self, screen: DebuggerScreen, kind: str) -> Path:
        pos = screen.position
        stem = export_stem(screen.view, pos)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        path = self.export_dir / f"{stem}.{kind}"
        if kind == "svg":
            self.save_screenshot(path.name, str(self.export_dir))
        elif kind == "png":
            export_png(screen.view, pos, path, cmap=screen.query_one(AttentionPane).cmap)
        else:
            export_text(screen.view, pos, path)
        screen.status(f"exported {path}")
        return path

    def export_all(self, screen: DebuggerScreen) -> list[Path]:
        return [self.export(screen, kind) for kind in ("svg", "png", "txt")]
