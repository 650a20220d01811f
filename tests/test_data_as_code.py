"""Data run as code on the shipped general CPU, and the breakpoint that stops where it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamacpu.asm import assemble_file, run_program
from llamacpu.checkpoint import load_machine
from llamacpu.data_as_code import DataStep, data_steps
from llamacpu.run_folder import shipped_run
from llamacpu.trace import save_trace, trace_isa
from tui.model import TraceView
from tui.session import DebugSession, Kind

PROGRAM = Path(__file__).parent.parent / "examples" / "faults" / "jump-to-data.s"


@pytest.fixture(scope="module")
def trace() -> dict:
    machine, _, _ = load_machine(shipped_run())
    return run_program(machine, assemble_file(PROGRAM, machine.isa), max_steps=8)


def test_a_data_slot_runs_as_add_of_the_status_flag_into_reg(trace) -> None:
    assert trace["reference"]["fault"] == "executed a DATA slot at 0020 (not an instruction)"
    steps = data_steps(trace, trace_isa(trace))
    # The DATA slot has no pointers: all four read slot 0, whose content is the JMP's flag (1).
    assert steps[0] == DataStep(step=3, pc=20, slot_type="DATA", content=3, op_addr=0, src1=0, src2=0, dst=0,
                                opcode="ADD", a=1, b=1, result=2, wrote=True, reg_overwritten=True)
    # REG is now DATA 2 whose pointer 0 names the slot just run: run as code, its op is x (3: MUL).
    assert (steps[1].step, steps[1].pc, steps[1].op_addr, steps[1].opcode, steps[1].result) == (4, 0, 20, "MUL", 4)
    assert [s.step for s in steps] == [3, 4, 7, 8]  # a four-cycle loop through the program again
    assert not trace["meta"]["halted"]


def test_the_breakpoint_pc_not_on_an_instruction_stops_there(trace, tmp_path: Path) -> None:
    view = TraceView.open(save_trace(trace, tmp_path / "jump.pt"))
    session = DebugSession(view)
    session.add(Kind.PC_NOT_INST)
    stop = session.cont()
    assert stop.reason == "breakpoint" and view.step_number(stop.position) == 3
    assert view.step_number(session.cont().position) == 4
