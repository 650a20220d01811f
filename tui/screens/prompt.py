"""Small modal dialogs: go to a step, add a condition breakpoint, search slots."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.session import CONDITIONS, Kind


class AskScreen(ModalScreen[str | None]):
    """One line of input; dismisses with the text, or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, placeholder: str = "", value: str = "") -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question)
            yield Input(value=self.value, placeholder=self.placeholder)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


DEFAULT_THRESHOLD = {Kind.CONFIDENCE: "0.9", Kind.ENTROPY: "1.0"}


class ConditionScreen(ModalScreen[tuple[Kind, float | None] | None]):
    """Choose a condition on neural facts, then its threshold where it has one."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Break when (enter chooses, escape cancels):")
            yield OptionList(*(Option(text, id=kind.value) for kind, text in CONDITIONS.items()))
            yield Input(placeholder="threshold x", id="threshold")

    def on_mount(self) -> None:
        self.query_one(Input).display = False

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        kind = Kind(event.option.id)
        if not kind.needs_threshold:
            self.dismiss((kind, None))
            return
        self.kind = kind
        box = self.query_one(Input)
        box.display = True
        box.value = DEFAULT_THRESHOLD[kind]
        box.placeholder = "confidence below x (0..1)" if kind is Kind.CONFIDENCE else "entropy above x bits"
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            value = float(event.value)
        except ValueError:
            self.notify(f"not a number: {event.value!r}", severity="error")
            return
        self.dismiss((self.kind, value))

    def action_cancel(self) -> None:
        self.dismiss(None)
