"""The general CPU: random programs, held-out splits, per-episode lengths, real branches, the
shipped trained CPU and the hand-written examples it runs."""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path

import pytest
import torch

from llamacpu import cli
from llamacpu.asm import parse, reference_run, run_program
from llamacpu.checkpoint import RunConfig, build_machine, load_machine, shipped_run
from llamacpu.controller import ControllerConfig, Prompt
from llamacpu.evaluate import draw_held_out, evaluate
from llamacpu.isa import INST, ISA, OP, OPDEF, SlotLayout
from llamacpu.memory import next_marked
from llamacpu.tasks import collate, get_task
from llamacpu.train import TrainConfig, Trainer

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.s"))
ISA_ = ISA(SlotLayout())


@pytest.fixture(scope="module")
def cpu():
    machine, _, _ = load_machine(shipped_run())
    return machine


def test_next_marked_moves_to_the_next_marked_slot():
    origin = torch.tensor([[1.0, 0, 0, 0, 0, 0], [0, 0, 0.5, 0, 0.5, 0]])
    marks = torch.tensor([[0, 0, 1.0, 1, 0, 1], [0, 0, 1.0, 1, 0, 1]])
    out = next_marked(origin, marks)
    assert torch.allclose(out[0], torch.tensor([0, 0, 1.0, 0, 0, 0]), atol=1e-5)
    assert torch.allclose(out[1], torch.tensor([0, 0, 0, 0.5, 0, 0.5]), atol=1e-5)


def test_generator_covers_the_isa_and_lays_memory_out_at_random():
    task = get_task("programs")
    rng = random.Random(0)
    ops, first_code, library_start, backward, trips = collections.Counter(), set(), set(), 0, set()
    for _ in range(300):
        size = rng.randint(2, 24)
        p = task.build(task.sample(rng, size), ISA_)
        assert p.window <= ISA_.layout.n_slots and int((p.types == INST).sum()) == size
        assert p.pc[-1].item() in (p.types == INST).nonzero().flatten().tolist()
        ops.update(int(p.contents[int(p.pointers[a, 0])]) for a in (p.types == INST).nonzero().flatten().tolist())
        first_code.add(int((p.types == INST).nonzero()[0]))
        library_start.add(int((p.types == OPDEF).nonzero()[0]))
        pcs = p.pc.tolist()
        back = sum(b <= a for a, b in zip(pcs, pcs[1:]))
        backward += back
        trips.add(back)
    assert set(ops) == set(range(len(OP)))  # every opcode, HALT and the jumps included
    assert len(first_code) > 20 and len(library_start) > 20  # code and library anywhere
    assert backward > 100 and len(trips) > 5  # loops, with trip counts that depend on the data


def test_a_program_is_named_by_its_size_and_seed():
    task = get_task("programs")
    a, b = task.build((12, 99), ISA_), task.build((12, 99), ISA_)
    assert torch.equal(a.types, b.types) and torch.equal(a.pc, b.pc)
    assert not torch.equal(task.build((12, 100), ISA_).pointers[:20], a.pointers[:20])


@pytest.mark.parametrize("name", ["add", "programs"])
def test_no_training_batch_holds_a_held_out_problem(name, tmp_path):
    machine = build_machine(RunConfig(controller=ControllerConfig(hidden=32, layers=1, heads=2, intermediate=64)))
    trainer = Trainer(tmp_path, machine, RunConfig(), TrainConfig(task=name, batch_size=64, max_digits=3))
    task = trainer.task
    held = {p for size in (1, 2, 3, 4, 8, 12) for p in draw_held_out(task, size, 50, "t")}
    assert held and all(task.is_held_out(p) for p in held)
    for stage in (1, 2, 3):
        trainer.stage = stage
        for _ in range(20):
            batch = trainer.sample_batch()
            assert not any(task.is_held_out(p.operands) for p in batch.programs)
            assert not held & {tuple(p.operands) for p in batch.programs}


def test_addition_trains_and_evaluates_operands_of_different_lengths():
    task = get_task("add")
    rng = random.Random(1)
    pairs = [task.sample(rng, 3) for _ in range(400)]
    assert all(max(len(str(a)), len(str(b))) == 3 for a, b in pairs)
    assert sum(len(str(a)) != len(str(b)) for a, b in pairs) > 100
    assert any(len(str(a)) < len(str(b)) for a, b in pairs) and any(len(str(a)) > len(str(b)) for a, b in pairs)


def test_a_batch_of_different_lengths_masks_each_episode_past_its_end():
    """Training-mode execution with per-episode lengths: an episode stops writing after its own
    last step, so its final memory is what it would be alone."""
    machine = build_machine(RunConfig(controller=ControllerConfig(hidden=32, layers=1, heads=2, intermediate=64)))
    task = get_task("programs")
    programs = [task.build((n, 5), machine.isa) for n in (3, 9)]
    batch = collate(programs, machine.isa)
    assert batch.lengths.tolist() == [p.steps for p in programs] and batch.steps == max(batch.lengths.tolist())
    prompt = Prompt.padding(2, 0)
    with torch.no_grad():
        both = machine.execute(prompt, batch.memory, batch.steps, lengths=batch.lengths)
        alone = machine.execute(Prompt.padding(1, 0), batch.memory[:1], programs[0].steps,
                                lengths=batch.lengths[:1])
    assert torch.allclose(both.memory[0], alone.memory[0], atol=1e-5)


def test_same_program_different_data_takes_each_interpreters_path_on_the_shipped_cpu(cpu):
    template = Path(EXAMPLES[0].parent / "countdown.s").read_text()
    paths = []
    for c in (0, 2, 4, 7):
        text = template.replace("0016  DATA   5", f"0016  DATA   {c}")
        program = parse(text, cpu.isa)
        trace = run_program(cpu, program)
        ref = reference_run(program, cpu.isa.layout.n_values)
        neural_path = trace["exec"]["pc"].float().argmax(-1).tolist()
        assert neural_path == ref.pc and trace["meta"]["correct"]
        assert ref.final.contents[14] == sum(range(c + 1)) % 20
        paths.append(tuple(ref.pc))
    assert len(set(paths)) == 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_hand_written_examples_run_right_on_the_shipped_cpu(path, capsys, tmp_path):
    assert cli.main(["asm", str(path), "--json", "-o", str(tmp_path / "t.pt")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matches_reference"] and out["meets_expectations"], out
    assert out["halted"] and out["steps"] == out["reference"]["steps"] and out["writes"] == out["reference"]["writes"]


def test_asm_reference_json(capsys):
    assert cli.main(["asm", str(EXAMPLES[0].parent / "multiply.s"), "--reference", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"program": str(EXAMPLES[0].parent / "multiply.s"), "halted": True, "steps": 19,
                   "writes": {"0041": 18, "0042": 0}, "fault": None, "meets_expectations": True}


def test_a_program_that_never_halts_stops_at_max_steps_and_says_so(tmp_path, capsys):
    prog = tmp_path / "spin.s"
    prog.write_text("0000 REG pc -> 0000\n0001 OPDEF JMP\n0002 OPDEF HALT\n0010 INST JMP -> 0010\n")
    assert cli.main(["asm", str(prog), "--max-steps", "30", "--json", "-o", str(tmp_path / "t.pt")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["halted"] and out["steps"] == 30
    assert out["reference"]["fault"] == "did not halt within 30 steps" and out["matches_reference"]
    assert cli.main(["asm", str(prog), "--max-steps", "30", "-o", str(tmp_path / "t.pt")]) == 0
    assert "neural CPU: did not halt: stopped at the step limit (30 steps)" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("0000 REG pc -> 0000\n0001 OPDEF JMP\n0010 INST JMP -> 0300\n", "address 0300 is past memory (0..255)"),
    ("0000 REG pc -> 0000\n0010 INST JUMP -> 0011\n", "unknown opcode 'JUMP'"),
])
def test_bad_programs_get_one_line(tmp_path, capsys, text, message):
    prog = tmp_path / "bad.s"
    prog.write_text(text)
    assert cli.main(["asm", str(prog), "--reference"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_shipped_cpu_is_small_and_inside_the_package():
    run = shipped_run()
    assert run.is_relative_to(Path(cli.__file__).parent)
    assert sum(f.stat().st_size for f in run.rglob("*") if f.is_file()) < 10 * 2**20


def test_shipped_cpu_runs_held_out_random_programs(cpu):
    task = get_task("programs")
    for size, trials in ((8, 40), (24, 40), (48, 20)):
        r = evaluate(cpu, task, size, trials, seed="test")
        assert r.trials == trials and r.accuracy == 1.0, (size, r)


def test_eval_programs_json(capsys):
    assert cli.main(["eval", "--run", str(shipped_run()), "--digits", "4,12", "--trials", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "programs" and [r["digits"] for r in out["results"]] == [4, 12]
    assert all(r["trials"] == 10 and r["accuracy"] == 1.0 for r in out["results"])


def test_the_debugger_lays_the_neural_run_beside_the_reference_by_path(cpu, tmp_path):
    """The first machine (tests/fixtures/tiny-add4) leaves a loop's path; the general CPU does
    not. The debugger's model says where, shows each jump's condition and verdict, and the
    breakpoint condition "departs from the reference" stops at the departure."""
    from llamacpu.trace import save_trace
    from tui.model import TraceView
    from tui.session import DebugSession, Kind

    fixture, _, _ = load_machine(Path(__file__).parent / "fixtures" / "tiny-add4")
    program = (EXAMPLES[0].parent / "countdown.s").read_text()
    views = {}
    for name, machine in (("general", cpu), ("first", fixture)):
        path = save_trace(run_program(machine, parse(program, machine.isa)), tmp_path / f"{name}.pt")
        views[name] = TraceView.open(path)
    good, bad = views["general"], views["first"]
    assert good.title == "general.pt: asm program, 20 slots, matches the reference run"
    assert bad.title.startswith("first.pt: asm program, 20 slots, DIFFERS from the reference run")
    assert good.departure is None and not good.departs_from_reference().any()
    first = good.control(good.position_of_step(0))
    assert (first.jump, first.condition, first.taken, first.target, first.ref_pc) == ("JZ", 5, False, 19, 11)
    loop_back = good.control(good.position_of_step(3))
    assert (loop_back.jump, loop_back.taken, loop_back.next_pc, loop_back.ref_taken) == ("JMP", True, 11, True)

    t = bad.departure
    assert t is not None
    assert bad.control(bad.position_of_step(t)).departed == t + 1
    if t > 0:
        assert bad.control(bad.position_of_step(t - 1)).departed is None
    session = DebugSession(bad)
    session.add(Kind.DEPARTS)
    session.first()
    assert session.cont().position == bad.position_of_step(t)
