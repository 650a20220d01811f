"""Problems in words: the grammar of each task's prompts, with nothing heavier than ``re``.

``llamacpu run`` checks the text before it loads a model (or torch), so a typo is answered at
once; the task compilers parse through the same functions. Each parser returns the problem's
operands as a tuple of ints:

- ``add``: ``(a, b)`` from "123 + 456", "calculate 123 + 456", "what is 123 + 456?";
- ``sub``: ``(a, b)`` from "123 - 45", "subtract 45 from 123" (the result may not be negative);
- ``mul``: ``(a, b)``, ``b`` the one-digit factor, from "345 * 7", "7 * 345", "345 x 7",
  "multiply 345 by 7";
- ``copy``, ``reverse``, ``sort``: the digits, left to right, from "copy 3 1 4 1 5" or
  "copy 31415" (single digits apart, by spaces or commas, or one digit string);
- ``search``: ``(v, *digits)`` from "find 4 in 3 1 4 1 5", "search for 4 in 31415",
  "index of 4 in 31415", "where is 4 in 31415".
"""

from __future__ import annotations

import re

from llamacpu.errors import LlamaCPUError

TASK_NAMES = ("add", "sub", "mul", "copy", "reverse", "search", "sort", "sort-unrolled", "programs")
SAME_WORDS = {"sort-unrolled": "sort"}  # an ablation reads its task's words (llamacpu/tasks/sort.py)
LIST_TASKS = ("copy", "reverse", "sort")

_ASK = r"^\s*(?:calculate\s+|compute\s+|what\s+is\s+)?"
_END = r"\s*(?:=\s*)?\??\s*$"
_ADDITION = re.compile(_ASK + r"(\d+)\s*\+\s*(\d+)" + _END, re.IGNORECASE)
_SUBTRACTION = re.compile(_ASK + r"(\d+)\s*-\s*(\d+)" + _END, re.IGNORECASE)
_SUBTRACT_FROM = re.compile(r"^\s*subtract\s+(\d+)\s+from\s+(\d+)\s*\.?\s*$", re.IGNORECASE)
_MULTIPLICATION = re.compile(_ASK + r"(\d+)\s*(?:\*|x|×|times)\s*(\d+)" + _END, re.IGNORECASE)
_MULTIPLY_BY = re.compile(r"^\s*multiply\s+(\d+)\s+by\s+(\d+)\s*\.?\s*$", re.IGNORECASE)
_LIST = r"(.*?)\s*[.?]?\s*$"  # what the list holds is checked by parse_digit_list, which names the fault
_LIST_COMMAND = {task: re.compile(rf"^\s*{task}\b\s*{_LIST}", re.IGNORECASE) for task in LIST_TASKS}
_SEARCH = re.compile(r"^\s*(?:find|search\s+for|index\s+of|where\s+is)\s+(\S+)\s+in\b\s*" + _LIST, re.IGNORECASE)
_EXAMPLES = {
    "add": "\"123 + 456\"", "sub": "\"123 - 45\" or \"subtract 45 from 123\"",
    "mul": "\"345 * 7\" or \"multiply 345 by 7\"", "copy": "\"copy 3 1 4 1 5\" or \"copy 31415\"",
    "reverse": "\"reverse 2 7 1 8\" or \"reverse 2718\"", "sort": "\"sort 3 1 4 1 5\" or \"sort 31415\"",
    "search": "\"find 4 in 3 1 4 1 5\"",
}
_WHAT = {"add": "an addition", "sub": "a subtraction", "mul": "a multiplication", "copy": "a copy",
         "reverse": "a reversal", "sort": "a sorting", "search": "a search"}


class ProblemError(LlamaCPUError):
    """Text that is not a problem this task can compile."""


def _not_a(task: str, text: str) -> ProblemError:
    return ProblemError(f"not {_WHAT[task]} problem: {text!r} (expected e.g. {_EXAMPLES[task]})")


def parse_addition(text: str) -> tuple[int, int]:
    """``(a, b)`` of ``a + b`` in symbols or in any phrasing of :mod:`llamacpu.phrasings`."""
    from llamacpu import phrasings

    match = _ADDITION.match(text)
    if match:
        return int(match.group(1)), int(match.group(2))
    words = phrasings.parse(text)
    if words is None:
        raise ProblemError(f"not an addition problem: {text!r} (expected e.g. \"123 + 456\" or "
                           "\"add 456 to 123\")")
    return words


def addition_prompt(text: str) -> str | None:
    """The prompt a typed addition runs with: None (the compiler's own ``a + b``) for symbols,
    the words as typed (spacing normalized) for a phrasing in words."""
    return None if _ADDITION.match(text) else " ".join(text.split())


def parse_subtraction(text: str) -> tuple[int, int]:
    """``(a, b)`` of ``a - b``; a negative result is refused (the compiler's borrow chain ends at
    the last digit of ``a``)."""
    if match := _SUBTRACTION.match(text):
        a, b = int(match.group(1)), int(match.group(2))
    elif match := _SUBTRACT_FROM.match(text):
        b, a = int(match.group(1)), int(match.group(2))
    else:
        raise _not_a("sub", text)
    if b > a:
        raise ProblemError(f"{a} - {b} is negative: subtraction gives results of 0 or more "
                           "(the first number must be at least the second)")
    return a, b


def parse_multiplication(text: str) -> tuple[int, int]:
    """``(a, b)`` of ``a * b`` with ``b`` the one-digit factor, whichever side it was written on."""
    match = _MULTIPLICATION.match(text) or _MULTIPLY_BY.match(text)
    if not match:
        raise _not_a("mul", text)
    x, y = match.group(1), match.group(2)
    if len(str(int(y))) > 1 and len(str(int(x))) == 1:
        x, y = y, x
    if len(str(int(y))) > 1:
        raise ProblemError(f"{int(x)} * {int(y)}: one factor must have one digit (multi-digit times one-digit "
                           "multiplication)")
    return int(x), int(y)


def parse_digit_list(text: str, what: str = "list") -> tuple[int, ...]:
    """Single digits apart (by spaces or commas), or one digit string: ``"3 1 4"``, ``"3,1,4"``,
    ``"314"`` -> ``(3, 1, 4)``."""
    pieces = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not pieces:
        raise ProblemError(f"the {what} is empty: give at least one digit")
    if not all(p.isdigit() and p.isascii() for p in pieces):
        raise ProblemError(f"the {what} holds something that is not a digit: {text.strip()!r}")
    if len(pieces) > 1 and any(len(p) > 1 for p in pieces):
        long = next(p for p in pieces if len(p) > 1)
        raise ProblemError(f"{long!r} in the {what}: items are single digits (\"3 1 4\" or \"314\")")
    return tuple(int(c) for c in "".join(pieces))


def parse_list_task(task: str, text: str) -> tuple[int, ...]:
    match = _LIST_COMMAND[task].match(text)
    if not match:
        raise _not_a(task, text)
    return parse_digit_list(match.group(1))


def parse_search(text: str) -> tuple[int, ...]:
    """``(v, *digits)``: find the digit ``v`` in the list."""
    match = _SEARCH.match(text)
    if not match:
        raise _not_a("search", text)
    value = match.group(1)
    if not (value.isdigit() and value.isascii() and len(value) == 1):
        raise ProblemError(f"find {value!r}: the value to find is one digit (0-9)")
    return (int(value), *parse_digit_list(match.group(2)))


_PARSERS = {"add": parse_addition, "sub": parse_subtraction, "mul": parse_multiplication, "search": parse_search}


def parse_problem(task: str, text: str) -> tuple[int, ...]:
    """The operands of ``text`` as a problem of ``task``; ProblemError names what is wrong."""
    task = SAME_WORDS.get(task, task)
    if task in _PARSERS:
        return _PARSERS[task](text)
    if task in LIST_TASKS:
        return parse_list_task(task, text)
    if task == "programs":
        raise ProblemError("the programs task takes no problems in words: write a program and run it "
                           "with `llamacpu asm PROGRAM.s`")
    raise ProblemError(f"unknown task {task!r} (known: {', '.join(TASK_NAMES)})")


def detect_task(text: str) -> str:
    """The task whose grammar ``text`` is written in, from its first word or its operator:
    ``"sort 3 1 2"`` -> ``sort``, ``"12 - 5"`` -> ``sub``; ``add`` where nothing else fits (its
    parser then names what is wrong)."""
    words = text.strip().lower().split()
    first = words[0] if words else ""
    if first in LIST_TASKS:
        return first
    if first in ("find", "search", "index", "where"):
        return "search"
    if first == "subtract" or _SUBTRACTION.match(text):
        return "sub"
    if first == "multiply" or _MULTIPLICATION.match(text):
        return "mul"
    return "add"
