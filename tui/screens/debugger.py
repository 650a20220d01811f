"""The debugger screen: memory, attention, OEU, breakpoints and timeline around one session."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.model import TraceView
from tui.screens.plan import PlanScreen
from tui.screens.prompt import AskScreen, ConditionScreen
from tui.screens.text import TextScreen
from tui.screens.tokens import TokensScreen
from tui.saved import SavedBreakpoints
from tui.series import TrainingSeries
from tui.session import Breakpoint, DebugSession, Kind, PositionError, Stop
from tui.widgets.attention import AttentionPane
from tui.widgets.breakpoints import BreakpointList
from tui.widgets.memory import LEGEND, MemoryView
from tui.widgets.oeu import OEUPane
from tui.widgets.timeline import Timeline

MIN_SIZE = (80, 24)  # columns, rows: below this the panes do not fit
SIDE_MIN = 20  # columns the attention, OEU and breakpoint panes keep beside the memory pane


class DebuggerScreen(Screen):
    """One trace under the debugger. ``position`` flows down to every pane (data binding)."""

    # The footer shows the keys of a first session, help (?) all of them: at 80 columns more
    # would be cut off mid-word.
    BINDINGS = [
        Binding("question_mark", "app.help", "help", id="help"),
        Binding("q", "app.quit", "quit", id="quit"),
        Binding("n,right", "step", "step", id="step", priority=True),
        Binding("p,left", "back", "back", id="back", priority=True),
        Binding("c", "cont", "continue", id="continue"),
        Binding("r", "reverse", "reverse", id="reverse"),
        Binding("home", "first", "first", id="first", priority=True, show=False),
        Binding("end", "last", "last", id="last", priority=True, show=False),
        Binding("g", "goto", "go to", id="goto"),
        Binding("b", "break_here", "break", id="break"),
        Binding("w", "watch", "watch", id="watch"),
        Binding("x", "condition", "condition", id="condition"),
        Binding("slash", "search", "search", id="search"),
        Binding("d", "next_unlike", "next unlike compiler", id="plan.differs"),
        Binding("l", "listing", "listing", id="listing", show=False),
        Binding("a", "plan", "plan", id="plan", show=False),
        Binding("t", "tokens", "tokens", id="tokens", show=False),
        Binding("left_square_bracket", "train(-1)", "prev train", id="train.prev", show=False),
        Binding("right_square_bracket", "train(1)", "next train", id="train.next", show=False),
        Binding("e", "export", "export", id="export", show=False),
        Binding("s", "store", "store", id="store", show=False),
        Binding("m", "heatmap('next_dist')", "heatmap pointer", id="attention.pointer", show=False),
        Binding("comma", "heatmap('scroll_addr(-1)')", "heatmap left", id="attention.left", show=False),
        Binding("full_stop", "heatmap('scroll_addr(1)')", "heatmap right", id="attention.right", show=False),
        Binding("v", "heatmap('toggle_cmap')", "heatmap colours", id="attention.cmap", show=False),
    ]

    # The panes bound to these repaint themselves; repainting the screen would redraw everything.
    position = reactive(0, repaint=False)
    revision = reactive(0, repaint=False)

    def __init__(self, view: TraceView, position: int | None = None, breakpoints: list[Breakpoint] | None = None,
                 series: TrainingSeries | None = None, from_store: bool = False,
                 saved: SavedBreakpoints | None = None) -> None:
        """``position`` None: where :meth:`TraceView.opening` says there is something to see.
        ``saved``: where this trace's breakpoints are kept between sessions (None: nowhere);
        they are restored unless ``breakpoints`` are given."""
        super().__init__()
        self.view = view
        self.session = DebugSession(view)
        self.saved = saved if view.path is not None else None
        self.restored = 0  # breakpoints restored from an earlier session
        if breakpoints:
            self.session.adopt(breakpoints)
        elif self.saved is not None:
            self.session.adopt(self.saved.load(view.path))
            self.restored = len(self.session.breakpoints)
        self.opened_because = ""
        if position is None:
            position, why = view.opening()
            self.opened_because = f"{view.label(position)}, {why} (home: the plan)"
        self.session.goto(position)
        self.series = series
        self.from_store = from_store
        self.last_search = ""  # offered again by the next search: / enter finds the next match
        self.set_reactive(DebuggerScreen.position, self.session.position)

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="title")
        with Horizontal(id="main"):
            memory = MemoryView(self.view, self.session, id="memory")
            memory.border_title = f"memory ({self.view.window} slots)"
            memory.border_subtitle = LEGEND
            yield memory.data_bind(DebuggerScreen.position, DebuggerScreen.revision)
            with Vertical(id="side"):
                attention = AttentionPane(self.view, id="attention")
                attention.border_title = "pointer attention"
                yield attention.data_bind(DebuggerScreen.position)
                oeu = OEUPane(self.view, id="oeu")
                oeu.border_title = "OEU"
                yield oeu.data_bind(DebuggerScreen.position)
                bps = BreakpointList(self.view, self.session, id="breakpoints")
                bps.border_title = "breakpoints and watches"
                yield bps.data_bind(DebuggerScreen.revision)
        timeline = Timeline(self.view, self.session, id="timeline")
        yield timeline.data_bind(DebuggerScreen.position, DebuggerScreen.revision)
        yield Static("", id="status")
        yield Static("", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(MemoryView).focus()
        self.query_one(BreakpointList).watch_revision()
        restored = f"{self.restored} breakpoints restored from the last session" if self.restored else ""
        problem = self.saved.problem if self.saved else None
        parts = (self.series.describe() if self.series else "", self.opened_because, restored, problem or "")
        self.status(" | ".join(p for p in parts if p))

    def watch_revision(self) -> None:
        """Breakpoints changed: keep them for the next session on this trace."""
        if self.saved is not None:
            try:
                self.saved.save(self.view.path, self.session.breakpoints)
            except OSError as err:
                self.status(f"breakpoints not saved: {err}")

    def _title(self) -> str:
        exact = self.view.plan_exact
        plan = "" if exact is None else f"  plan exact: {'yes' if exact == 0 else f'no ({exact} slots differ)'}"
        return self.view.title + plan

    # ---- helpers ----
    def status(self, text: str) -> None:
        self.query_one("#status", Static).update(text, layout=False)  # one fixed line: no relayout

    def _moved(self, stop: Stop) -> None:
        self.position = stop.position
        parts = [self.view.label(stop.position)]
        if stop.message:
            parts.append(stop.message)
        for bp in stop.hits:
            if bp.kind is Kind.WATCH:
                parts.append(self._watch_change(bp.addr, stop.position))
        self.status(" | ".join(parts))

    def _watch_change(self, addr: int, pos: int) -> str:
        old = self.view.decode_at(self.view.memory_before(pos), addr)
        new = self.view.row(pos, addr)
        return f"{addr:04d} {old.type} {old.body} -> {new.type} {new.body}"

    def _changed_breakpoints(self, text: str) -> None:
        self.revision += 1
        self.status(text)

    def on_breakpoint_list_changed(self) -> None:
        self.revision += 1

    def on_resize(self, event: Resize) -> None:
        self._check_size(*event.size)

    def on_screen_resume(self) -> None:
        self._check_size(*self.app.size)

    def _check_size(self, w: int, h: int) -> None:
        # The memory pane takes what its rows need, the heatmaps the rest (no blank columns).
        memory = self.query_one(MemoryView)
        memory.styles.width = max(min(memory.content_width, w - SIDE_MIN), MIN_SIZE[0] - SIDE_MIN)
        small = w < MIN_SIZE[0] or h < MIN_SIZE[1]
        self.set_class(small, "too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"Terminal too small: {w}x{h}. The debugger needs at least {MIN_SIZE[0]}x{MIN_SIZE[1]}; "
                "enlarge the window (q quits).")

    # ---- moving ----
    def action_step(self) -> None:
        """Step forward one position."""
        self._moved(self.session.step())

    def action_back(self) -> None:
        """Step back one position."""
        self._moved(self.session.back())

    def action_cont(self) -> None:
        """Continue to the next breakpoint."""
        self._moved(self.session.cont())

    def action_reverse(self) -> None:
        """Reverse-continue to the previous breakpoint."""
        self._moved(self.session.reverse())

    def action_first(self) -> None:
        """Go to the first plan step."""
        self._moved(self.session.first())

    def action_last(self) -> None:
        """Go to the last execute step."""
        self._moved(self.session.last())

    def action_goto(self) -> None:
        """Go to a step: 12, p3, +5, -5 or $."""
        def done(text: str | None) -> None:
            if text:
                try:
                    self._moved(self.session.goto(self.session.parse_position(text)))
                except PositionError as err:
                    self.status(str(err))

        self.app.push_screen(AskScreen("Go to step (12, p3 plan step, +5, -5, $ last):", "12"), done)

    def action_search(self) -> None:
        """Search the memory slots: an address (31), a type (INST) or words (ADD, carry[1], DATA 11)."""
        def done(text: str | None) -> None:
            if text:
                self.last_search = text
                self._search(text)

        question = "Search slots after the selected one: an address (31), a type (INST) or words (ADD, carry[1]):"
        self.app.push_screen(AskScreen(question, "INST", value=self.last_search), done)

    def _search(self, text: str) -> None:
        memory = self.query_one(MemoryView)
        found = self.view.search(self.position, text, after=memory.cursor)
        if found is None:
            self.status(f"no slot matches {text!r} at {self.view.label(self.position)}")
            return
        addr, count = found
        memory.select(addr)
        row = self.view.row(self.position, addr)
        role = f" ; {row.role}" if row.role else ""
        matches = "1 slot matches" if count == 1 else f"{count} slots match"
        self.status(f"{addr:04d} {row.type} {row.body}{role}   ({matches} {text!r}; / enter: the next)")

    def action_next_unlike(self) -> None:
        """Go to the next plan step that wrote a slot unlike the compiler's image (marked !)."""
        if self.view.plan_differs is None:
            self.status("this trace has no compiler's image to compare the plan with")
            return
        found = self.view.next_unlike(self.position)
        if found is None:
            self.status("every planned slot reads as the compiler's image")
            return
        pos, index, count = found
        self._moved(self.session.goto(pos))
        addr = int(self.view.plan_addr[pos])
        self.query_one(MemoryView).select(addr)
        got = self.view.row(pos, addr)
        want = self.view.decode_at(self.view.trace["plan"]["target"], pos)
        role = f" ({got.role})" if got.role else ""
        self.status(f"{addr:04d}{role} planned {got.type} {got.body}, the compiler's {want.type} {want.body}   "
                    f"({index} of {count}; d: the next)")

    # ---- breakpoints ----
    def action_break_here(self) -> None:
        """Toggle a breakpoint on the selected address (stop when the PC reaches it)."""
        addr = self.query_one(MemoryView).cursor
        bp = self.session.toggle_at(Kind.ADDRESS, addr)
        self._changed_breakpoints(f"breakpoint #{bp.id}: {bp.describe()}" if bp else f"breakpoint at {addr:04d} removed")

    def action_watch(self) -> None:
        """Toggle a watch on the selected slot (stop when it is written)."""
        addr = self.query_one(MemoryView).cursor
        bp = self.session.toggle_at(Kind.WATCH, addr)
        self._changed_breakpoints(f"watch #{bp.id}: {bp.describe()}" if bp else f"watch on {addr:04d} removed")

    def action_condition(self) -> None:
        """Add a breakpoint on a neural fact (OEU wrong, low confidence, high entropy, ...)."""
        def done(choice: tuple[Kind, float | None] | None) -> None:
            if choice:
                bp = self.session.add(choice[0], threshold=choice[1])
                self._changed_breakpoints(f"breakpoint #{bp.id}: {bp.describe()}")

        self.app.push_screen(ConditionScreen(), done)

    # ---- screens ----
    def action_listing(self) -> None:
        """Show the disassembly listing at this position."""
        text = "\n".join(self.view.disassembly(self.position))
        self.app.push_screen(TextScreen(f"disassembly at {self.view.label(self.position)}", text))

    def action_plan(self) -> None:
        """Show the plan: each slot with the prompt tokens it was compiled from."""
        self.app.push_screen(PlanScreen(self.view, cmap=self.query_one(AttentionPane).cmap))

    def action_tokens(self) -> None:
        """Show the prompt as token ids and pieces, and the tokens each slot was compiled from."""
        self.app.push_screen(TokensScreen(self.view))

    def action_train(self, direction: int) -> None:
        """The same probe at the previous / next training step, at the same position."""
        if self.series is None:
            self.status("no training series: this trace has no probe id, or no store index beside it")
            return
        nxt = self.series.neighbour(direction)
        if nxt is None:
            self.status(f"no {'later' if direction > 0 else 'earlier'} training step for this probe")
            return
        self.app.open_in_series(self, nxt)

    def action_store(self) -> None:
        """Back to the store browser."""
        if self.from_store:
            self.app.pop_screen()
        else:
            self.status("opened from a file: no store browser (llamacpu debug STORE opens one)")

    async def action_heatmap(self, action: str) -> None:
        """A heatmap key (m , . v), whichever pane has focus."""
        await self.query_one(AttentionPane).run_action(action)

    def action_export(self) -> None:
        """Export the screen (SVG), the heatmaps (PNG) and the disassembly (text)."""
        paths = self.app.export_all(self)
        self.status("exported " + ", ".join(str(p) for p in paths))


def export_stem(view: TraceView, pos: int) -> str:
    name = Path(view.path).stem if view.path else "trace"
    return f"{name}-{view.label(pos).split('/')[0].replace(' ', '')}"
