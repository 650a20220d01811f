"""The reference interpreter: every opcode, jumps, REG, faults, and the compilers checked by it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamacpu import interpreter
from llamacpu.asm import parse, reference_run
from llamacpu.isa import DATA, INST, ISA, SlotLayout
from llamacpu.tasks import get_task
from llamacpu.tasks.base import IGNORE

ISA_ = ISA(SlotLayout())
LIB = "\n".join(f"{1 + i:04d}  OPDEF  {name}" for i, name in enumerate(
    ("NOP", "ADD", "SUB", "MUL", "DIV", "MOD", "COPY", "LT", "EQ", "JMP", "JZ", "JNZ", "HALT")))


def run(text: str, max_steps: int = 1000) -> interpreter.Run:
    return reference_run(parse(f"0000 REG pc -> 0000\n{LIB}\n{text}", ISA_), ISA_.layout.n_values, max_steps)


@pytest.mark.parametrize("op, a, b, want", [
    ("ADD", 7, 8, 15), ("ADD", 15, 9, 4), ("SUB", 3, 5, 18), ("MUL", 4, 6, 4), ("DIV", 17, 5, 3),
    ("DIV", 3, 0, 0), ("MOD", 17, 5, 2), ("MOD", 3, 0, 0), ("LT", 2, 3, 1), ("LT", 3, 3, 0),
    ("EQ", 4, 4, 1), ("EQ", 4, 5, 0),
])
def test_arithmetic_writes_its_result_modulo_the_value_range(op, a, b, want):
    r = run(f"0020 DATA {a}\n0021 DATA {b}\n0022 DATA 0\n0030 INST {op} [0020], [0021] -> [0022]\n0031 INST HALT")
    assert r.halted and r.steps == 2 and r.written == {22: want} and r.pc == [30, 31]


def test_copy_reads_its_first_source():
    r = run("0020 DATA 9\n0022 DATA 0\n0030 INST COPY [0020] -> [0022]\n0031 INST HALT")
    assert r.written == {22: 9}


def test_next_instruction_skips_slots_of_other_types():
    r = run("0030 INST NOP\n0031 DATA 4\n0032 EMPTY\n0035 INST HALT")
    assert r.pc == [30, 35] and r.halted


@pytest.mark.parametrize("jump, cond, taken", [("JZ", 0, True), ("JZ", 3, False), ("JNZ", 3, True),
                                               ("JNZ", 0, False)])
def test_conditional_jump_reads_its_condition_from_src1(jump, cond, taken):
    r = run(f"0020 DATA {cond}\n0021 DATA 0\n0030 INST {jump} [0020], -> 0033\n"
            "0031 INST ADD [0020], [0020] -> [0021]\n0032 INST NOP\n0033 INST HALT")
    assert r.pc == ([30, 33] if taken else [30, 31, 32, 33])
    assert r.taken == [taken] + [False] * (r.steps - 1)
    assert r.results[0] == int(taken)  # a jump's result is its condition: 1 = taken


def test_unconditional_jump_and_a_loop_with_a_data_dependent_trip_count():
    loop = ("0020 DATA {n}\n0021 DATA 1\n0022 DATA 0\n0030 INST ADD [0022], [0021] -> [0022]\n"
            "0031 INST SUB [0020], [0021] -> [0020]\n0032 INST JNZ [0020], -> 0030\n0033 INST JMP -> 0035\n"
            "0034 INST ADD [0022], [0022] -> [0022]\n0035 INST HALT")
    for n in (1, 3, 5):
        r = run(loop.format(n=n))
        assert r.written[22] == n and r.written[20] == 0 and r.taken_jumps == (n - 1) + 1
        assert r.steps == 3 * n + 2 and 34 not in r.pc


def test_reg_holds_the_last_instruction_and_its_result():
    r = run("0020 DATA 2\n0021 DATA 3\n0022 DATA 0\n0030 INST MUL [0020], [0021] -> [0022]\n0031 INST HALT")
    assert r.final.pointers[0][0] == 31 and r.final.contents[0] == 0  # HALT's result is 0
    r = run("0020 DATA 2\n0021 DATA 3\n0022 DATA 0\n0030 INST MUL [0020], [0021] -> [0022]\n0031 INST NOP",
            max_steps=1)
    assert r.final.pointers[0][0] == 30 and r.final.contents[0] == 6 and r.fault.startswith("did not halt")


def test_a_write_over_an_instruction_turns_it_into_data():
    r = run("0020 DATA 5\n0030 INST COPY [0020] -> [0031]\n0031 INST ADD [0020], [0020] -> [0020]\n"
            "0032 INST HALT")
    assert r.pc == [30, 32] and r.final.types[31] == DATA and r.final.contents[31] == 5


@pytest.mark.parametrize("text, fault", [
    ("0020 DATA 1\n0030 INST JMP -> 0020", "executed a DATA slot at 0020 (not an instruction)"),
    ("0030 INST NOP", "ran off the end of the code (no INST slot after 0030)"),
    ("0030 INST JMP -> 0030", "did not halt within 50 steps"),
])
def test_faults_say_why_the_run_stopped(text, fault):
    r = run(text, max_steps=50)
    assert not r.halted and r.fault == fault


def test_summary_is_what_asm_json_prints():
    r = run("0020 DATA 2\n0022 DATA 0\n0030 INST ADD [0020], [0020] -> [0022]\n0031 INST HALT")
    assert r.summary() == {"halted": True, "steps": 2, "writes": {"0022": 4}}


@settings(max_examples=60, deadline=None)
@given(a=st.integers(0, 99_999), b=st.integers(0, 99_999))
def test_the_addition_compilers_program_computes_the_sum_on_the_interpreter(a, b):
    """Property: whatever the operands (lengths may differ), the compiled image run by the ISA's
    semantics leaves a + b in the result slots, and the compiler's targets are that run."""
    program = get_task("add").compile(a, b, ISA_)
    ref = interpreter.run(interpreter.Image.from_targets(program.types, program.pointers, program.contents, IGNORE),
                          ISA_.layout.n_values)
    digits = [ref.final.contents[s] for s in program.answer_slots.tolist()]
    assert ref.halted and sum(d * 10**i for i, d in enumerate(digits)) == a + b
    assert ref.pc == program.pc.tolist() and ref.results == program.oeu_result.tolist()
    assert ref.writes == program.writes.tolist()


def test_generated_programs_are_labelled_by_the_interpreter():
    task = get_task("programs")
    rng = random.Random(3)
    for size in (2, 5, 11, 24, 40):
        p = task.build(task.sample(rng, size), ISA_)
        ref = interpreter.run(interpreter.Image.from_targets(p.types, p.pointers, p.contents, IGNORE),
                              ISA_.layout.n_values)
        assert ref.halted and ref.pc == p.pc.tolist() and ref.results == p.oeu_result.tolist()
        assert dict(zip(p.answer_slots.tolist(), p.answer_digits.tolist())) == ref.written
        assert int((p.types == INST).sum()) == size
