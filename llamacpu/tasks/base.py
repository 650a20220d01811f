"""What an expert compiler hands the machine: the target memory image and execution trace."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from llamacpu.isa import ISA

IGNORE = -100  # target index that no loss reads (pointers of data slots, content of instructions)


@dataclass
class Program:
    """One compiled problem.

    The memory window is the first ``window`` slots; slots past it stay EMPTY and are not fed to
    the controller. ``T`` is the number of execute steps, HALT included.
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

    @property
    def steps(self) -> int:
        return int(self.pc.numel())

    def memory_image(self, isa: ISA) -> torch.Tensor:
        """The hard target memory [W, D]."""
        return memory_image(isa, self.types, self.pointers, self.contents)


@dataclass
class ProgramBatch:
    """Programs of one memory window and step count, stacked along a batch dimension B."""

    programs: list[Program]
    prompts: list[str]
    types: torch.Tensor  # [B, W]
    pointers: torch.Tensor  # [B, W, P]
    contents: torch.Tensor  # [B, W]
    pc: torch.Tensor  # [B, T]
    oeu_result: torch.Tensor  # [B, T]
    writes: torch.Tensor  # [B, T]
    answer_slots: torch.Tensor  # [B, R]
    answer_digits: torch.Tensor  # [B, R]
    memory: torch.Tensor  # [B, W, D] hard target image

    @property
    def window(self) -> int:
        return int(self.types.shape[1])

    @property
    def steps(self) -> int:
        return int(self.pc.shape[1])

    def to(self, device: torch.device | str) -> "ProgramBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return ProgramBatch(**moved)


def collate(programs: list[Program], isa: ISA) -> ProgramBatch:
    """Stack programs that share one memory window and one step count."""
    windows = {p.window for p in programs}
    steps = {p.steps for p in programs}
    if len(windows) != 1 or len(steps) != 1:
        raise ValueError("a batch holds problems of one size: windows %s, steps %s" % (windows, steps))
    return ProgramBatch(
        programs=programs,
        prompts=[p.prompt for p in programs],
        types=torch.stack([p.types for p in programs]),
        pointers=torch.stack([p.pointers for p in programs]),
        contents=torch.stack([p.contents for p in programs]),
        pc=torch.stack([p.pc for p in programs]),
        oeu_result=torch.stack([p.oeu_result for p in programs]),
        writes=torch.stack([p.writes for p in programs]),
        answer_slots=torch.stack([p.answer_slots for p in programs]),
        answer_digits=torch.stack([p.answer_digits for p in programs]),
        memory=torch.stack([p.memory_image(isa) for p in programs]),
    )


def memory_image(isa: ISA, types: torch.Tensor, pointers: torch.Tensor, contents: torch.Tensor) -> torch.Tensor:
    """Hard slots from targets: types [..., W], pointers [..., W, P], contents [..., W] -> [..., W, D].

    IGNORE pointers become zero keys and IGNORE contents an all-zero content part.
    """
    type_probs = torch.nn.functional.one_hot(types, isa.layout.n_types).float()
    keys = isa.keys[pointers.clamp(min=0)] * (pointers != IGNORE).unsqueeze(-1)  # [..., W, P, A]
    content = torch.nn.functional.one_hot(contents.clamp(min=0), isa.layout.n_values).float()
    content = content * (contents != IGNORE).unsqueeze(-1)
    return torch.cat([type_probs, keys.flatten(-2), content], dim=-1)
