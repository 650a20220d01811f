"""What every task compiled from words shares: the curriculum by size, the held-out hash, the
prompt grammar, the memory a size needs and the answer's text.

A subclass names its task (``name``), the slots of its tail page (``tail``), an optional cap on
the size (``size_cap``: what the answer's digits or the value range allow), and implements
``sample``, ``prompt`` and ``compile``. Problems are tuples of ints, exactly what
:func:`llamacpu.problems.parse_problem` returns for the task's text.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

from llamacpu.isa import ISA
from llamacpu.problems import ProblemError, parse_problem
from llamacpu.tasks.base import Program, held_out
from llamacpu.tasks.image import HEADER, PAGE, ImageBuilder, number_of


class CompiledTask(ABC):
    name = ""
    planned = True  # compiled from a prompt by the plan phase
    size_name = "digits"
    unit = "digit"  # one item of the size, for messages ("5-digit sub", "9-item search")
    tail = PAGE  # slots of the tail page that the window holds
    size_cap: int | None = None  # largest size whatever the memory (None: the memory decides)
    eval_sizes: tuple[int, ...] = (1, 2, 3, 4)  # `llamacpu eval`'s default sizes
    probes: tuple[str, ...] = ()  # problems `llamacpu train` records every few hundred steps

    def stage_size(self, stage: int) -> int:
        """The size a curriculum stage is checked at: stage k is size k."""
        return stage

    def stage_sizes(self, stage: int) -> range:
        """The sizes a stage trains on (each batch one of them)."""
        return range(stage, stage + 1)

    def is_held_out(self, problem: tuple[int, ...]) -> bool:
        """A hash of the problem's canonical prompt (which names the task) decides."""
        return held_out(self.prompt(problem))

    def slots_needed(self, size: int) -> int:
        return HEADER + PAGE * size + self.tail

    def max_digits(self, isa: ISA) -> int:
        return self.max_digits_for(isa.layout.n_slots)

    def max_digits_for(self, n_slots: int) -> int:
        fits = (n_slots - HEADER - self.tail) // PAGE
        return fits if self.size_cap is None else min(fits, self.size_cap)

    def parse(self, text: str) -> tuple[int, ...]:
        return parse_problem(self.name, text)

    def build(self, problem: tuple[int, ...], isa: ISA) -> Program:
        return self.compile(problem, isa)

    @abstractmethod
    def sample(self, rng: random.Random, size: int) -> tuple[int, ...]:
        """A random problem of ``size`` (the curriculum's and evaluation's draw)."""

    @abstractmethod
    def prompt(self, problem: tuple[int, ...]) -> str:
        """The problem's canonical prompt, which names the task (its held-out hash too)."""

    @abstractmethod
    def compile(self, problem: tuple[int, ...], isa: ISA) -> Program:
        """The problem's target image and execution trace (ProblemError past the memory)."""

    def builder(self, isa: ISA, size: int) -> ImageBuilder:
        """An empty image for a problem of ``size``, refused (ProblemError) past the cap or the memory."""
        what = f"{size}-{self.unit} {self.name}"
        most = f"at most {self.max_digits(isa)} {self.unit}s"
        if self.size_cap is not None and size > self.size_cap:
            raise ProblemError(f"{what}: this task takes {most}")
        return ImageBuilder(isa, self.slots_needed(size), what, most)

    def answer_text(self, value: int, size: int) -> str:
        """The answer as `llamacpu run` shows it: ``value`` is what the result slots spell
        (least significant first), ``size`` the problem's size."""
        return str(value)


class DigitListTask(CompiledTask):
    """A task on a string of digits, answered by a string of as many digits.

    The string lives in memory right-aligned, like a number: page k holds the digit k places
    from the right end (page 0: the last digit), so block k always reads the prompt's digit of
    place value k + 1 whatever the length. The canonical prompt writes the string without spaces
    (``"sort 31415"``): a digit string is one number of the prompt, and each digit's place value
    names its page.
    """

    size_name = "items"
    unit = "item"

    def stage_sizes(self, stage: int) -> range:
        """Stage 1 trains strings of 1 and 2 digits: ten 1-digit strings are too few to hold some
        out (a held-out one holds a digit that no 1-digit training string holds; of search's 100
        1-digit problems, only ten find their digit)."""
        return range(1, 3) if stage == 1 else range(stage, stage + 1)

    def sample(self, rng: random.Random, size: int) -> tuple[int, ...]:
        return tuple(rng.randrange(10) for _ in range(size))

    def prompt(self, problem: tuple[int, ...]) -> str:
        return f"{self.name} {''.join(str(d) for d in problem)}"

    def answer_text(self, value: int, size: int) -> str:
        return f"{value:0{size}d}"


def random_number(rng: random.Random, digits: int) -> int:
    """A number of exactly ``digits`` digits (1 digit: 0..9)."""
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def right_aligned(items: tuple[int, ...]) -> list[int]:
    """Digits left to right -> their order in memory, page 0 first (the last digit)."""
    return list(reversed(items))


def spelled(items: list[int]) -> int:
    """The number a digit string spells (left to right): its answer value."""
    return number_of(right_aligned(tuple(items)))


__all__ = ["CompiledTask", "DigitListTask", "random_number", "right_aligned", "spelled"]
