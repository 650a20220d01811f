"""Disassembler and assembler: the design's text format, doubt marks, round trips, errors, runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from llamacpu import cli
from llamacpu.asm import AsmError, parse, reference_run, run_program
from llamacpu.checkpoint import RunConfig, build_machine, load_machine
from llamacpu.disasm import disassemble, read_slots, slot_json
from llamacpu.evaluate import free_run
from llamacpu.isa import DATA, ISA, SlotLayout, op_table
from llamacpu.tasks import AdditionTask
from llamacpu.trace import load_trace, save_trace, trace_from_run, validate

FIXTURES = Path(__file__).parent / "fixtures"

# 123 + 456 written by hand in the addition task's memory map (tasks/add.py).
ADD3 = """\
; 123 + 456 by hand: per digit t1 = carry + a, t2 = t1 + b, r = t2 mod 10, carry = t2 div 10
.window 58
0000  REG    pc -> 0000                ; program counter
0001  OPDEF  NOP
0002  OPDEF  ADD
0003  OPDEF  SUB
0004  OPDEF  MUL
0005  OPDEF  DIV
0006  OPDEF  MOD
0007  OPDEF  COPY
0008  OPDEF  LT
0009  OPDEF  EQ
0010  OPDEF  JMP
0011  OPDEF  JZ
0012  OPDEF  JNZ
0013  OPDEF  HALT
0014  DATA   10                        ; base

0020  DATA   0                         ; carry[0]
0021  DATA   3                         ; a[0]
0022  DATA   6                         ; b[0]
0023  DATA   0                         ; t1[0]
0024  DATA   0                         ; t2[0]
0025  DATA   0                         ; r[0]
0026  INST   ADD [0020], [0021] -> [0023]
0027  INST   ADD [0023], [0022] -> [0024]
0028  INST   MOD [0024], [0014] -> [0025]
0029  INST   DIV [0024], [0014] -> [0030]

0030  DATA   0                         ; carry[1]
0031  DATA   2                         ; a[1]
0032  DATA   5                         ; b[1]
0033  DATA   0                         ; t1[1]
0034  DATA   0                         ; t2[1]
0035  DATA   0                         ; r[1]
0036  INST   ADD [0030], [0031] -> [0033]
0037  INST   ADD [0033], [0032] -> [0034]
0038  INST   MOD [0034], [0014] -> [0035]
0039  INST   DIV [0034], [0014] -> [0040]

0040  DATA   0                         ; carry[2]
0041  DATA   1                         ; a[2]
0042  DATA   4                         ; b[2]
0043  DATA   0                         ; t1[2]
0044  DATA   0                         ; t2[2]
0045  DATA   0                         ; r[2]
0046  INST   ADD [0040], [0041] -> [0043]
0047  INST   ADD [0043], [0042] -> [0044]
0048  INST   MOD [0044], [0014] -> [0045]
0049  INST   DIV [0044], [0014] -> [0050]

0050  DATA   0                         ; carry[3]
0055  DATA   0                         ; r[3]
0056  INST   COPY [0050], [0050] -> [0055]
0057  INST   HALT
"""


@pytest.fixture(scope="module")
def isa():
    return ISA(SlotLayout())


@pytest.fixture(scope="module")
def machine():
    return build_machine(RunConfig())


def _strip(lines: list[str]) -> list[str]:
    """Lines without confidence marks or column padding."""
    return [" ".join(re.sub(r"\?\d\.\d\d", "", line).split()) for line in lines]


def test_hand_written_program_is_the_compilers_image(isa):
    program = parse(ADD3, isa, "add3.s")
    target = AdditionTask().compile(123, 456, isa)
    assert program.window == target.window == 58
    assert torch.equal(program.image, target.memory_image(isa))
    assert program.answer_slots() == [25, 35, 45, 55]
    ref = reference_run(program, isa.layout.n_values)
    assert ref.pc == target.pc.tolist() and ref.results == target.oeu_result.tolist() and ref.halted
    assert [ref.final.contents[a] for a in program.answer_slots()] == [9, 7, 5, 0]


def test_disassembly_format(isa):
    lines = disassemble(parse(ADD3, isa).image, isa, {0: "program counter", 21: "a[0]"})
    assert lines[0] == "0000  REG    pc -> 0000        ; program counter"
    assert lines[2] == "0002  OPDEF  ADD"
    assert lines[15] == "0015  EMPTY"
    assert lines[21] == "0021  DATA   3                 ; a[0]"  # as DESIGN.md prints it
    assert lines[26] == "0026  INST   ADD [0020], [0021] -> [0023]"
    assert lines[56] == "0056  INST   COPY [0050], [0050] -> [0055]"
    assert lines[57] == "0057  INST   HALT"
    jumps = parse("0001 OPDEF JZ\n0002 OPDEF JMP\n0020 DATA 0\n0031 INST JZ [0020], -> 0031\n0032 INST JMP -> 0031",
                  isa).image
    out = disassemble(jumps, isa)
    assert out[31] == "0031  INST   JZ  [0020], -> 0031" and out[32] == "0032  INST   JMP -> 0031"


def test_doubt_is_shown_as_text(isa):
    slot = isa.encode(DATA, (), 3)
    slot[isa.content_slice] = 0.0
    slot[isa.content_slice.start + 3], slot[isa.content_slice.start + 4] = 0.61, 0.39
    lines = disassemble(torch.stack([isa.encode(0), slot]), isa)
    assert lines[1] == "0001  DATA   3?0.61"
    assert disassemble(torch.stack([isa.encode(0), slot]), isa, threshold=0.5)[1] == "0001  DATA   3"
    obj = slot_json(read_slots(torch.stack([isa.encode(0), slot]), isa)[1])
    assert obj["type"] == "DATA" and obj["value"] == 3 and obj["value_prob"] == pytest.approx(0.61)


def test_indirect_operator_that_is_not_the_first_opdef(isa):
    text = "0001 OPDEF ADD\n0002 OPDEF ADD\n0003 DATA 1\n0004 INST ADD@0002 [0003], [0003] -> [0003]\n0005 INST ?@0003"
    image = parse(text, isa).image
    lines = disassemble(image, isa)
    assert lines[4] == "0004  INST   ADD@0002 [0003], [0003] -> [0003]"
    assert lines[5] == "0005  INST   ?@0003"
    assert torch.equal(parse("\n".join(lines), isa).image, image)


def test_round_trip_of_a_soft_plan(machine, isa):
    """Disassemble a plan (every doubt shown), assemble it, disassemble again: same reading."""
    task = AdditionTask()
    run = free_run(machine, [task.compile(123, 456, machine.isa)], record=True)
    trace = trace_from_run(machine, run, 0)
    plan = trace["plan"]["slot"]
    first = disassemble(plan, machine.isa, threshold=1.01)
    image = parse("\n".join(first), machine.isa).image
    assert image.shape == plan.shape
    assert _strip(disassemble(image, machine.isa)) == _strip(first)
    # and the decoded parts that matter agree slot by slot
    for a, b in zip(read_slots(plan, machine.isa), read_slots(image, machine.isa)):
        assert (a.slot.type_id, a.mnemonic) == (b.slot.type_id, b.mnemonic)


def test_round_trip_of_a_target_image(isa):
    target = AdditionTask().compile(4071, 938, isa)
    roles = target.roles
    text = "\n".join(disassemble(target.memory_image(isa), isa, roles))
    again = parse(text, isa)
    assert torch.equal(again.image, target.memory_image(isa))
    assert again.roles == roles


@pytest.mark.parametrize("source, message", [
    ("0001 OPDEF ADD\n\n0002 INST ADDX [0001], [0001] -> [0001]", "prog.s:3: unknown opcode 'ADDX'"),
    ("0001 OPDEF ADD\n0002 INST ADD [00x1], [0001] -> [0001]", "prog.s:2: bad address '00x1'"),
    ("0001 OPDEF ADD\n0002 INST ADD [0300], [0001] -> [0001]", "prog.s:2: address 0300 is past memory (0..255)"),
    ("0300 DATA 1", "prog.s:1: address 0300 is past memory (0..255)"),
    ("0001 DATA 25", "prog.s:1: value 25 is outside 0..19"),
    ("0001 DATA 1\n0001 DATA 2", "prog.s:2: address 0001 is defined twice (first on line 1)"),
    ("0002 INST ADD [0001], [0001] -> [0001]", "prog.s:1: no OPDEF slot defines ADD"),
    ("0002 WORD 7", "prog.s:1: unknown slot type 'WORD'"),
    ("0002 OPDEF ADDX", "prog.s:1: unknown opcode 'ADDX'"),
])
def test_assembly_errors_name_the_line(isa, source, message):
    with pytest.raises(AsmError) as err:
        parse(source, isa, "prog.s")
    assert str(err.value).startswith(message)


def test_assembly_errors_through_the_cli(tmp_path, capsys):
    from llamacpu.checkpoint import write_config

    run_dir = tmp_path / "run"
    write_config(run_dir, RunConfig())
    prog = tmp_path / "prog.s"
    prog.write_text("0001 OPDEF ADD\n0002 INST ADDX [0001], [0001] -> [0001]\n")
    assert cli.main(["asm", str(prog), "--run", str(run_dir), "-o", str(tmp_path / "t.pt")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"llamacpu asm: {prog}:2: unknown opcode 'ADDX'"
    assert "Traceback" not in err


def test_asm_runs_on_an_untrained_machine(machine, isa, tmp_path):
    program = parse(ADD3, machine.isa, "add3.s")
    trace = run_program(machine, program, run="r")
    validate(trace)
    meta = trace["meta"]
    assert meta["mode"] == "asm" and meta["expected"] == 579 and meta["window"] == 58
    assert trace["prompt_tokens"].numel() == 0 and trace["plan"]["prompt_attn"] is None
    assert torch.equal(trace["plan"]["slot"], program.image.half())
    assert torch.equal(trace["exec"]["memory"][0], program.image.half())
    back = load_trace(save_trace(trace, tmp_path / "asm.pt"))
    assert back["meta"] == meta


class _TableOEU(nn.Module):
    """An OEU that is its operator table exactly (argmax of its inputs)."""

    def __init__(self, n_values: int) -> None:
        super().__init__()
        results, writes = op_table(n_values)
        self.results, self.writes, self.n_values = results, writes, n_values

    def forward(self, op, a, b):
        r = self.results[op.argmax(-1), a.argmax(-1), b.argmax(-1)]
        return 30.0 * nn.functional.one_hot(r, self.n_values).float(), self.writes[op.argmax(-1)]


def test_a_correct_cpu_runs_the_hand_written_program(isa):
    """The plumbing from text to answer: with a control unit that follows the program and an
    exact OEU, the machine's hard reads of the assembled image compute 123 + 456 = 579."""
    machine = build_machine(RunConfig())
    program = parse(ADD3, machine.isa, "add3.s")
    pcs = iter(reference_run(program, isa.layout.n_values).pc)

    def next_pc(prompt_kv, mask, memory, control, shift=None):
        return nn.functional.one_hot(torch.tensor([next(pcs)]), memory.shape[1]).float(), torch.ones(1, 2)

    machine.controller.next_pc = next_pc
    machine.oeu = _TableOEU(isa.layout.n_values)
    trace = run_program(machine, program)
    meta = trace["meta"]
    assert meta["halted"] and meta["steps"] == 14
    assert meta["produced"] == 579 and meta["correct"]
    out = trace["exec"]["oeu_out"].float().argmax(-1)
    assert torch.equal(out, trace["exec"]["oeu_expected"])


def _trained_run() -> Path | None:
    runs = sorted(p.parent for p in FIXTURES.glob("*/config.json")) if FIXTURES.is_dir() else []
    return runs[0] if runs else None


@pytest.mark.skipif(_trained_run() is None, reason="no trained tiny run folder under tests/fixtures/ yet "
                    "(the main engineer ships one); an untrained controller cannot pick the PCs")
def test_trained_tiny_machine_runs_hand_written_addition():
    machine, _, _ = load_machine(_trained_run())
    trace = run_program(machine, parse(ADD3, machine.isa, "add3.s"))
    assert trace["meta"]["halted"] and trace["meta"]["produced"] == 579 and trace["meta"]["correct"]


def test_memory_after_its_run_reassembled_says_why_there_is_no_result(tmp_path, capsys):
    """The last step's memory has REG at the HALT: the ISA runs off the code from there, and asm
    says so instead of comparing a result the ISA never produced."""
    demo = Path(__file__).parents[1] / "traces" / "demo" / "demo.pt"
    assert cli.main(["disasm", str(demo)]) == 0
    source = tmp_path / "after.s"
    source.write_text(capsys.readouterr().out)
    assert cli.main(["asm", str(source)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "ran off the end of the code" in out
    assert "the ISA's run stops without halting, so there is no result to match" in out
