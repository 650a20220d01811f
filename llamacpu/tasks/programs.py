"""Random valid programs drawn straight from the ISA: the material the CPU itself learns from.

A program of size ``L`` has exactly ``L`` instructions, HALT included. It is built from pieces:

- ``arith``: one of ``ADD SUB MUL DIV MOD COPY LT EQ`` (or a NOP) on random variables;
- ``skip``: a forward jump over 1-3 instructions: ``JZ``/``JNZ`` on a variable, on the result of
  a fresh ``LT``/``EQ``, or an unconditional ``JMP`` over dead code;
- ``loop``: a loop whose trip count is data (a counter's initial value, 0-4): ``do { body; c = c - 1 }
  while c != 0`` (``JNZ`` back), ``while c != 0 { body; c = c - 1 }`` (``JZ`` out, ``JMP`` back), or
  ``for i < n`` (``LT``, ``JZ`` out, ``ADD``, ``JMP`` back);
- ``halt``: a conditional HALT in the middle (``JNZ x`` over a ``HALT``), and the final HALT.

Then memory is laid out at random: the code (in up to three pieces with gaps of EMPTY or spare
DATA slots between them), the variables and the operator library (its thirteen OPDEF slots in a
random order, as one block or scattered) in any order after the REG slot, with gaps. The
reference interpreter labels every program (PC, OEU result and writes per step); the result
slots are every slot the run wrote. A program is named by ``(L, seed)``: the same pair is the
same program, and a hash of it decides whether it is held out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from llamacpu.errors import LlamaCPUError
from llamacpu.interpreter import Image, run
from llamacpu.isa import DATA, EMPTY, INST, ISA, OP, OPCODES, OPDEF, REG
from llamacpu.problems import parse_problem
from llamacpu.tasks.base import IGNORE, Program, held_out

ARITH = ("ADD", "SUB", "MUL", "DIV", "MOD", "COPY", "LT", "EQ")
STAGE_LENGTHS = (4, 8, 12, 16, 20, 24)  # the curriculum: stage k trains lengths up to STAGE_LENGTHS[k-1]


class ProgramError(LlamaCPUError):
    """A program the generator cannot make (too long for the memory)."""


@dataclass(frozen=True)
class GeneratorConfig:
    max_trips: int = 4  # loop counters start at 0..max_trips (do-while loops at 1..max_trips)
    loop_every: int = 6  # at most one loop per this many instructions
    max_steps: int = 2000  # a program whose run is longer is drawn again
    gaps: int = 4  # largest gap between memory regions


@dataclass
class _Code:
    """Symbolic instructions: (opcode, src1, src2, dst) with variables by name and jump targets
    as labels; ``labels[name]`` is the index of the instruction a label stands before."""

    insts: list[tuple[str, str | None, str | None, str | None]]
    labels: dict[str, int]

    def emit(self, op: str, s1: str | None = None, s2: str | None = None, dst: str | None = None) -> None:
        self.insts.append((op, s1, s2, dst))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insts)


class ProgramGenerator:
    def __init__(self, n_values: int, config: GeneratorConfig = GeneratorConfig()) -> None:
        self.n_values = n_values
        self.config = config

    def code(self, rng: random.Random, length: int) -> tuple[_Code, dict[str, int]]:
        """Symbolic code of exactly ``length`` instructions and the variables' initial values."""
        c = self.config
        variables = {f"v{i}": rng.randrange(self.n_values) for i in range(rng.randint(2, 5))}
        variables["one"] = 1
        code = _Code([], {})
        n_labels = 0
        loops_left = max(0, length // c.loop_every)

        def var() -> str:
            return rng.choice([v for v in variables if v.startswith("v")])

        def operand() -> str:
            return rng.choice(list(variables))

        def arith() -> None:
            if rng.random() < 0.05:
                code.emit("NOP")
                return
            op = rng.choice(ARITH)
            code.emit(op, operand(), None if op == "COPY" else operand(), var())

        def new_label() -> str:
            nonlocal n_labels
            n_labels += 1
            return f"L{n_labels}"

        while len(code.insts) < length - 1:
            room = length - 1 - len(code.insts)
            kind = rng.choices(["arith", "skip", "loop", "halt"], weights=[5, 2, 3 if loops_left else 0, 0.5])[0]
            if kind == "loop" and room >= 4:
                loops_left -= 1
                self._loop(rng, code, variables, room, new_label(), new_label(), arith)
            elif kind == "skip" and room >= 3:
                after = new_label()
                style = rng.choice(["flag", "compare", "jmp"])
                over = rng.randint(1, min(3, room - (2 if style == "compare" else 1)))
                if style == "compare":
                    f = f"f{n_labels}"
                    variables[f] = 0
                    code.emit(rng.choice(("LT", "EQ")), operand(), operand(), f)
                    code.emit(rng.choice(("JZ", "JNZ")), f, None, after)
                elif style == "flag":
                    code.emit(rng.choice(("JZ", "JNZ")), var(), None, after)
                else:
                    code.emit("JMP", None, None, after)
                for _ in range(over):
                    arith()
                code.label(after)
            elif kind == "halt" and room >= 2:
                after = new_label()
                code.emit(rng.choice(("JZ", "JNZ")), var(), None, after)
                code.emit("HALT")
                code.label(after)
            else:
                arith()
        code.emit("HALT")
        return code, variables

    def _loop(self, rng: random.Random, code: _Code, variables: dict[str, int], room: int,
              top: str, end: str, arith: "object") -> None:
        """One loop whose trip count is a counter's initial value (data); its body never writes
        the counter, its bound or ``one``."""
        trips = self.config.max_trips
        k = len(code.insts)
        style = rng.choice(["do", "while", "for"] if room >= 5 else ["do"])
        fixed = {"do": 2, "while": 3, "for": 4}[style]
        body = rng.randint(1, min(3, room - fixed))
        counter = f"c{k}"
        if style == "do":
            variables[counter] = rng.randint(1, trips)
            code.label(top)
            for _ in range(body):
                arith()
            code.emit("SUB", counter, "one", counter)
            code.emit("JNZ", counter, None, top)
        elif style == "while":
            variables[counter] = rng.randint(0, trips)
            code.label(top)
            code.emit("JZ", counter, None, end)
            for _ in range(body):
                arith()
            code.emit("SUB", counter, "one", counter)
            code.emit("JMP", None, None, top)
            code.label(end)
        else:
            bound, flag = f"n{k}", f"f{k}"
            variables[counter], variables[bound], variables[flag] = 0, rng.randint(0, trips), 0
            code.label(top)
            code.emit("LT", counter, bound, flag)
            code.emit("JZ", flag, None, end)
            for _ in range(body):
                arith()
            code.emit("ADD", counter, "one", counter)
            code.emit("JMP", None, None, top)
            code.label(end)

    def layout(self, rng: random.Random, code: _Code, variables: dict[str, int], n_slots: int) -> Image:
        """Place code, variables and the operator library at random in memory."""
        g = self.config.gaps
        n_code = len(code.insts)
        cuts = sorted(rng.sample(range(1, n_code), k=min(n_code - 1, rng.randint(0, 2)))) if n_code > 1 else []
        pieces = [(a, b) for a, b in zip([0, *cuts], [*cuts, n_code])]
        names = list(variables)
        rng.shuffle(names)
        library = list(range(len(OPCODES)))
        rng.shuffle(library)
        scattered = rng.random() < 0.3
        regions: list[tuple[str, object]] = [("code", p) for p in pieces] + [("data", names)]
        if not scattered:
            regions.append(("lib", library))
        rng.shuffle(regions)
        # The code pieces keep their order: the next instruction is the next INST in address order.
        order = iter(pieces)
        regions = [("code", next(order)) if kind == "code" else (kind, what) for kind, what in regions]
        addr = 1 + rng.randint(0, g)
        inst_addr: list[int] = [0] * n_code
        var_addr: dict[str, int] = {}
        op_addr: dict[int, int] = {}
        spare: list[int] = []  # gap slots that may hold scattered OPDEFs
        for kind, what in regions:
            if kind == "code":
                a, b = what
                for i in range(a, b):
                    inst_addr[i] = addr
                    addr += 1
            elif kind == "data":
                for name in what:
                    var_addr[name] = addr
                    addr += 1
            else:
                for op in what:
                    op_addr[op] = addr
                    addr += 1
            gap = rng.randint(0, g)
            spare += range(addr, addr + gap)
            addr += gap
        if scattered:  # each OPDEF in a gap slot or past everything
            for op in library:
                if spare and rng.random() < 0.7:
                    op_addr[op] = spare.pop(rng.randrange(len(spare)))
                else:
                    op_addr[op] = addr
                    addr += rng.randint(1, 2)
        window = max([addr, *op_addr.values(), *var_addr.values(), *inst_addr]) + 1
        if window > n_slots:
            raise ProgramError(f"a {n_code}-instruction program needs {window} slots; this machine has {n_slots}")
        types = [EMPTY] * window
        pointers: list[list[int | None]] = [[None] * 4 for _ in range(window)]
        contents: list[int | None] = [None] * window
        types[0], pointers[0][0] = REG, 0
        for op, a in op_addr.items():
            types[a], contents[a] = OPDEF, op
        for name, a in var_addr.items():
            types[a], contents[a] = DATA, variables[name]
        for a in range(window):  # a few gap slots hold junk data the program never reads
            if types[a] == EMPTY and a > 0 and rng.random() < 0.2:
                types[a], contents[a] = DATA, rng.randrange(self.n_values)
        for i, (op, s1, s2, dst) in enumerate(code.insts):
            a = inst_addr[i]
            types[a] = INST
            target = None
            if dst is not None:
                target = inst_addr_of(code, inst_addr, dst) if op in ("JMP", "JZ", "JNZ") else var_addr[dst]
            pointers[a] = [op_addr[OP[op]], var_addr.get(s1) if s1 else None, var_addr.get(s2) if s2 else None, target]
        return Image(types, pointers, contents)


def inst_addr_of(code: _Code, inst_addr: list[int], label: str) -> int:
    """The address a label stands for: the instruction after it (the final HALT at the latest)."""
    return inst_addr[min(code.labels[label], len(inst_addr) - 1)]


class ProgramsTask:
    """``--task programs``: the execute phase learns the ISA from random programs."""

    name = "programs"
    planned = False  # given as memory images: no plan phase
    size_name = "length"  # instructions, HALT included
    eval_sizes = (4, 8, 12, 16, 24, 48, 96)  # `llamacpu eval`'s default sizes

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        self.config = config

    def stage_size(self, stage: int) -> int:
        return STAGE_LENGTHS[min(stage, len(STAGE_LENGTHS)) - 1]

    def stage_sizes(self, stage: int) -> range:
        lo = STAGE_LENGTHS[stage - 2] + 1 if stage > 1 else 2
        return range(lo, self.stage_size(stage) + 1)

    def max_stages(self) -> int:
        return len(STAGE_LENGTHS)

    def slots_needed(self, size: int) -> int:
        """A generous bound: code, variables, library and gaps."""
        return 1 + size + 5 + 2 * (size // self.config.loop_every + size // 3) + len(OPCODES) + 8 * self.config.gaps

    def max_digits(self, isa: ISA) -> int:
        return self.max_stages()

    def sample(self, rng: random.Random, size: int) -> tuple[int, int]:
        return size, rng.getrandbits(48)

    def is_held_out(self, problem: tuple[int, int]) -> bool:
        return held_out(f"programs:{problem[0]}:{problem[1]}")

    def parse(self, text: str) -> tuple[int, int]:
        return parse_problem(self.name, text)  # says: no problems in words

    def build(self, problem: tuple[int, int], isa: ISA) -> Program:
        """The program named (length, seed), laid out and labelled by the interpreter."""
        length, seed = problem
        gen = ProgramGenerator(isa.layout.n_values, self.config)
        rng = random.Random(f"program-{length}-{seed}")
        for _ in range(100):
            code, variables = gen.code(rng, length)
            image = gen.layout(rng, code, variables, isa.layout.n_slots)
            ref = run(image, isa.layout.n_values, self.config.max_steps)
            if ref.halted:
                return program_from_image(image, ref, length, problem)
        raise ProgramError(f"no halting program of {length} instructions from seed {seed}")


def program_from_image(image: Image, ref: "object", size: int, operands: tuple[int, ...] = ()) -> Program:
    """A :class:`Program` (targets included) from an image and its interpreter run."""
    w = len(image)
    types = torch.tensor(image.types, dtype=torch.long)
    pointers = torch.tensor([[IGNORE if q is None else q for q in row] for row in image.pointers], dtype=torch.long)
    contents = torch.tensor([IGNORE if c is None else c for c in image.contents], dtype=torch.long)
    roles = {0: "program counter"}
    written = sorted(ref.written)
    roles.update({a: f"out[{i}]" for i, a in enumerate(written)})
    return Program(
        prompt="",
        operands=tuple(operands),
        digits=size,
        answer=-1,
        window=w,
        types=types,
        pointers=pointers,
        contents=contents,
        pc=torch.tensor(ref.pc, dtype=torch.long),
        oeu_result=torch.tensor(ref.results, dtype=torch.long),
        writes=torch.tensor(ref.writes, dtype=torch.bool),
        answer_slots=torch.tensor(written, dtype=torch.long),
        answer_digits=torch.tensor([ref.written[a] for a in written], dtype=torch.long),
        roles=roles,
        taken_jumps=ref.taken_jumps,
    )


__all__ = ["GeneratorConfig", "ProgramError", "ProgramGenerator", "ProgramsTask", "STAGE_LENGTHS",
           "program_from_image"]
