"""Ways to say a problem in words, and the sets of them a run trains and is evaluated on.

A phrasing is a template over the operands' roles: ``{a}`` is the first operand of ``a + b``,
``{b}`` the second, wherever the words put them ("add {b} to {a}" names the second operand
first). The plan phase must place each number in its role's slots, so a phrasing that swaps
the order is a test of reading the words, not only the digits.

Sets (``TrainConfig.phrasings``, ``llamacpu eval --phrasings``):

- ``symbols``: ``{a} + {b}`` only (every run before phrasings existed);
- ``trained``: :data:`TRAINED`, symbols and words, what a run with ``phrasings="trained"`` sees;
- ``held-out``: :data:`HELD_OUT`, never in any training batch: how far the compiler's reading
  of the prompt carries to words it never saw.

Torch-free, like :mod:`llamacpu.problems`, which parses every phrasing of every set.
"""

from __future__ import annotations

import re

from llamacpu.errors import LlamaCPUError

SYMBOLS = ("{a} + {b}",)
TRAINED = (
    "{a} + {b}",
    "calculate {a} + {b}",
    "what is {a} plus {b}?",
    "add {b} to {a}",
    "{a} plus {b}",
    "the sum of {a} and {b}",
    "compute {a}+{b}",
    "{a} + {b} =",
)
HELD_OUT = (
    "what is the sum of {a} and {b}?",
    "add {a} and {b}",
    "{b} added to {a}",
    "please work out {a} plus {b}",
)
SETS = {"symbols": SYMBOLS, "trained": TRAINED, "held-out": HELD_OUT}


class PhrasingError(LlamaCPUError):
    """An unknown phrasing set."""


def phrasing_set(name: str) -> tuple[str, ...]:
    try:
        return SETS[name]
    except KeyError:
        raise PhrasingError(f"unknown phrasing set {name!r} (known: {', '.join(SETS)})") from None


def render(template: str, a: int, b: int) -> str:
    return template.format(a=a, b=b)


def _pattern(template: str) -> re.Pattern[str]:
    """A template as a regular expression: its words in any case, any spacing around them and
    the operands, an optional trailing ``?`` or ``=``."""
    parts = re.split(r"(\{a\}|\{b\})", template.rstrip("?= ").strip())
    body = ""
    for part in parts:
        if part == "{a}":
            body += r"(?P<a>\d+)"
        elif part == "{b}":
            body += r"(?P<b>\d+)"
        else:
            words = part.split()
            body += r"\s*" + r"\s+".join(re.escape(w) for w in words) + r"\s*" if words else r"\s*"
    return re.compile(rf"^\s*{body}\s*(?:=\s*)?\??\s*$", re.IGNORECASE)


_PATTERNS = [_pattern(t) for t in dict.fromkeys(TRAINED + HELD_OUT)]


def parse(text: str) -> tuple[int, int] | None:
    """``(a, b)`` of an addition in any known phrasing, or None."""
    for pattern in _PATTERNS:
        match = pattern.match(text)
        if match:
            return int(match.group("a")), int(match.group("b"))
    return None
