"""The tokens screen: the prompt as machine code, the twin of ``llamacpu disasm --tokens``.

The prompt's pieces and token ids, then each planned slot with the prompt tokens its plan query
attended to most. The lines are :func:`llamacpu.tokens.format_listing`'s, so the screen and the
command never disagree.
"""

from __future__ import annotations

from llamacpu.tokens import NoPromptError, format_listing, token_listing
from tui.model import TraceView
from tui.screens.text import TextScreen


def tokens_text(view: TraceView) -> str:
    """The listing, or one line saying why this trace has none."""
    try:
        return "\n".join(format_listing(token_listing(view.trace, view.isa)))
    except NoPromptError as err:
        return f"this trace {err}"


class TokensScreen(TextScreen):
    def __init__(self, view: TraceView) -> None:
        super().__init__(f"tokens: {view.meta.get('prompt')!r} as token ids, and the tokens each slot was "
                         "compiled from", tokens_text(view))
