"""What an expert compiler hands the machine: the target memory image and execution trace."""

from __future__ import annotations

from typing import Any

import hashlib
from dataclasses import dataclass, field

import torch

from llamacpu.isa import EMPTY, ISA

IGNORE = -100  # target index that no loss reads (pointers of data slots, content of instructions)
HELD_OUT_FRACTION = 0.2  # of every task's problems, at every size


_SIZE_UNITS = {"digits": "digit", "items": "item", "length": "instruction"}


def size_unit(task: Any) -> str:
    """One unit of the task's size: "digit", "item" or "instruction"."""
    return _SIZE_UNITS.get(getattr(task, "size_name", "digits"), "digit")


def sized(task: Any, size: int) -> str:
    """A problem's size in the task's own words: "8-digit add", "5-item sort", "12-instruction programs"."""
    return f"{size}-{size_unit(task)} {task.name}"


def held_out(key: str, fraction: float = HELD_OUT_FRACTION) -> bool:
    """Is the problem named ``key`` kept out of training? A hash of the problem decides, so eval
    at any size and seed is disjoint from every training batch by construction."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


@dataclass
class Program:
    """One compiled problem.

    The memory window is the first ``window`` slots; slots past it stay EMPTY and are not fed to
    the controller. ``T`` is the number of execute steps, HALT included. ``digits`` is the
    problem's size for the curriculum (digits of addition, instructions of a random program).
    A program with an empty prompt is run from its target image (no plan phase).
    """

    prompt: str
    operands: tuple[int, ...]
    digits: int
    answer: int
    window: int
    types: torch.Tensor  # [W] long: slot type of each address
    pointers: torch.Tensor  # [W, P] long: target address per pointer, IGNORE where unused
    contents: torch.Tensor  # [W] long: content code, IGNORE where unused
    pc: torch.Tensor  # [T] long: the instruction run at each step
    oeu_result: torch.Tensor  # [T] long: the value the OEU must produce at each step
    writes: torch.Tensor  # [T] bool: does step t write its result
    answer_slots: torch.Tensor  # [R] long: addresses of the result digits, least significant first
    answer_digits: torch.Tensor  # [R] long
    roles: dict[int, str] = field(default_factory=dict)  # address -> comment for the disassembly
    taken_jumps: int | None = None  # jumps the interpreter's run takes (random programs; reported by eval)

    @property
    def steps(self) -> int:
        return int(self.pc.numel())

    def memory_image(self, isa: ISA) -> torch.Tensor:
        """The hard target memory [W, D]."""
        return memory_image(isa, self.types, self.pointers, self.contents)


@dataclass
class ProgramBatch:
    """Programs stacked along a batch dimension B, padded to the longest window W and the longest
    run T: padding slots are EMPTY, padding steps and answer digits are IGNORE, and ``lengths``
    says how many steps each episode runs (each halts on its own)."""

    programs: list[Program]
    prompts: list[str]
    types: torch.Tensor  # [B, W]
    pointers: torch.Tensor  # [B, W, P]
    contents: torch.Tensor  # [B, W]
    pc: torch.Tensor  # [B, T]
    oeu_result: torch.Tensor  # [B, T]
    writes: torch.Tensor  # [B, T]
    answer_slots: torch.Tensor  # [B, R]
    answer_digits: torch.Tensor  # [B, R], IGNORE past a program's own result slots
    memory: torch.Tensor  # [B, W, D] hard target image
    lengths: torch.Tensor  # [B] long: steps of each episode, HALT included

    @property
    def planned(self) -> bool:
        """Compiled from prompts (plan phase), or given as memory images (empty prompts)."""
        return any(self.prompts)

    @property
    def window(self) -> int:
        return int(self.types.shape[1])

    @property
    def steps(self) -> int:
        return int(self.pc.shape[1])

    @property
    def windows(self) -> torch.Tensor:
        """Each program's own window [B] long (the batch's window W is the largest)."""
        return torch.tensor([p.window for p in self.programs], dtype=torch.long)

    def to(self, device: torch.device | str) -> "ProgramBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return ProgramBatch(**moved)


def collate(programs: list[Program], isa: ISA) -> ProgramBatch:
    """Stack programs, padding windows, runs and result slots to the longest of the batch."""
    if not programs:
        raise ValueError("an empty batch")
    if len({bool(p.prompt) for p in programs}) != 1:
        raise ValueError("a batch holds either compiled problems or memory images, not both")
    w = max(p.window for p in programs)
    t = max(p.steps for p in programs)
    r = max(int(p.answer_slots.numel()) for p in programs)

    def pad(x: torch.Tensor, n: int, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, n - x.shape[0]), value=value) if x.dim() == 1 else \
            torch.cat([x, torch.full((n - x.shape[0], *x.shape[1:]), value, dtype=x.dtype)])

    types = torch.stack([pad(p.types, w, EMPTY) for p in programs])
    pointers = torch.stack([pad(p.pointers, w, IGNORE) for p in programs])
    contents = torch.stack([pad(p.contents, w, IGNORE) for p in programs])
    return ProgramBatch(
        programs=programs,
        prompts=[p.prompt for p in programs],
        types=types,
        pointers=pointers,
        contents=contents,
        pc=torch.stack([pad(p.pc, t, IGNORE) for p in programs]),
        oeu_result=torch.stack([pad(p.oeu_result, t, IGNORE) for p in programs]),
        writes=torch.stack([pad(p.writes, t, False) for p in programs]),
        answer_slots=torch.stack([pad(p.answer_slots, r, 0) for p in programs]),
        answer_digits=torch.stack([pad(p.answer_digits, r, IGNORE) for p in programs]),
        memory=memory_image(isa, types, pointers, contents),
        lengths=torch.tensor([p.steps for p in programs]),
    )


def labelled(isa: ISA, types: torch.Tensor, pointers: torch.Tensor, contents: torch.Tensor,
             max_steps: int) -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]":
    """The execution targets of an image, from the reference interpreter: pc [T], OEU result
    [T], writes [T] and the interpreter's run (a program that does not halt is refused)."""
    from llamacpu.interpreter import Image, run

    ref = run(Image.from_targets(types, pointers, contents, IGNORE), isa.layout.n_values, max_steps)
    if not ref.halted:
        raise ValueError(f"the program does not halt: {ref.fault}")
    return (torch.tensor(ref.pc, dtype=torch.long), torch.tensor(ref.results, dtype=torch.long),
            torch.tensor(ref.writes, dtype=torch.bool), ref)


def memory_image(isa: ISA, types: torch.Tensor, pointers: torch.Tensor, contents: torch.Tensor) -> torch.Tensor:
    """Hard slots from targets: types [..., W], pointers [..., W, P], contents [..., W] -> [..., W, D].

    IGNORE pointers become zero keys and IGNORE contents an all-zero content part.
    """
    type_probs = torch.nn.functional.one_hot(types, isa.layout.n_types).float()
    keys = isa.keys[pointers.clamp(min=0)] * (pointers != IGNORE).unsqueeze(-1)  # [..., W, P, A]
    content = torch.nn.functional.one_hot(contents.clamp(min=0), isa.layout.n_values).float()
    content = content * (contents != IGNORE).unsqueeze(-1)
    return torch.cat([type_probs, keys.flatten(-2), content], dim=-1)
