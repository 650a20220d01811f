"""Full-screen text views: the disassembly listing and help."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static


class TextScreen(Screen):
    """A title and scrollable text; escape or q goes back."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "back")]

    def __init__(self, title: str, body: Text | str) -> None:
        super().__init__()
        self.heading = title
        self.body = body

    def compose(self) -> ComposeResult:
        yield Static(self.heading, classes="screen-title")
        with VerticalScroll():
            yield Static(self.body, classes="listing")
        yield Footer()


class HelpScreen(ModalScreen):
    """Every key, generated from the bindings (so help and footer never disagree)."""

    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("LlamaCPU debugger: keys\n\n", "bold")
        width = max((len(key) for _, key, _ in self.rows), default=0) + 3  # a gap after the longest
        for where, key, description in self.rows:
            text.append(f"{key:<{width}}", "bold")
            text.append(f"{description}")
            text.append(f"   ({where})\n" if where else "\n", "dim")
        text.append("\n: or ctrl+p opens the command palette: every action by name.\n")
        text.append("Positions: plan steps p0.., then execute steps 1..T (step k: memory after the\n")
        text.append("k-th cycle, as disasm --step k); g accepts 12, p3, +5, -5, $.\n")
        text.append("Memory marks: > pc, r read, w written, * changed, ! unlike the compiler's image,\n")
        text.append("B breakpoint, W watch; d goes to the next slot marked !.\n")
        text.append("a reading in doubt shows its probability: DATA 3?0.61; EMPTY slots are dimmed.\n")
        text.append("/ searches slots after the selected one: an address (31), a type (INST) or\n")
        text.append("whole words of a row (ADD, carry[1], DATA 11); / then enter: the next match.\n")
        text.append("Heatmaps: viridis, or cividis (v, whichever pane has focus); the cell's character\n")
        text.append("grows with the probability too.\n")
        with VerticalScroll(classes="dialog help"):
            yield Static(text)
