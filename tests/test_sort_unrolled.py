"""The unrolled bubble sort, the loop's ablation (benchmarks/loop_vs_unrolled.py): its programs
run by the reference interpreter leave the string sorted, jump only forward, and grow as n^2."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamacpu import interpreter
from llamacpu.problems import ProblemError
from llamacpu.tasks import get_task
from llamacpu.tasks.image import PAGE, number_of, page
from llamacpu.tasks.sort import I_LT, UnrolledSortTask

from machine_fixtures import run_cli
from test_tasks import ISA_, interpret


def run(task, items: tuple[int, ...]) -> tuple[interpreter.Run, object]:
    program = task.build(items, ISA_)
    return interpret(program), program


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.integers(0, 9), min_size=1, max_size=5).map(tuple))
def test_unrolled_sort_leaves_the_string_sorted(items):
    task = UnrolledSortTask()
    ref, program = run(task, items)
    assert ref.halted, ref.fault
    digits = [ref.final.contents[a] for a in program.answer_slots.tolist()]
    assert number_of(digits) == int("".join(map(str, sorted(items)))) == program.answer
    assert ref.pc == program.pc.tolist() and ref.results == program.oeu_result.tolist()
    assert program.window == task.slots_needed(len(items)) == len(ref.final)
    n = len(items)
    assert 2 * (n - 1) ** 2 + 1 <= program.steps <= 5 * (n - 1) ** 2 + 1


def test_unrolled_sort_never_jumps_back_and_runs_every_compare():
    """Sorted or reversed, the same (n-1)^2 compares run; the loop stops after one pass on a
    sorted string and jumps back on a shuffled one."""
    task, loop = UnrolledSortTask(), get_task("sort")
    for items in ((1, 2, 3, 4, 5), (5, 4, 3, 2, 1)):
        ref, program = run(task, items)
        assert all(b > a for a, b in zip(ref.pc, ref.pc[1:])), "an unrolled program only goes forward"
        compares = sum(1 for pc in ref.pc if (pc - page(0)) % PAGE == I_LT and pc != ref.pc[-1])
        assert compares == 16
    sorted_steps = run(loop, (1, 2, 3, 4, 5))[1].steps
    assert sorted_steps == 2 * 5 + 3 < run(task, (1, 2, 3, 4, 5))[1].steps


def test_unrolled_sort_memory_grows_as_n_squared_and_refuses_what_does_not_fit():
    task, loop = UnrolledSortTask(), get_task("sort")
    assert [task.slots_needed(n) for n in (1, 2, 3, 4, 5)] == [34, 54, 84, 134, 204]
    assert task.max_digits(ISA_) == 5 and loop.max_digits(ISA_) == 23  # in the default 256 slots
    assert task.slots_needed(16) == 20 + 10 * (17 + 14 * 15) + 4 and loop.slots_needed(16) == 185
    with pytest.raises(ProblemError, match="6-item sort-unrolled needs 294 slots; this machine has 256"):
        task.build((3, 1, 4, 1, 5, 9), ISA_)


def test_unrolled_sort_reads_the_same_words_and_keeps_the_same_problems_out():
    task, loop = UnrolledSortTask(), get_task("sort")
    assert task.parse("sort 3 1 2") == loop.parse("sort 3 1 2") == (3, 1, 2)
    rng = random.Random(0)
    problems = [tuple(rng.randrange(10) for _ in range(4)) for _ in range(200)]
    assert [task.is_held_out(p) for p in problems] == [loop.is_held_out(p) for p in problems]


def test_run_compiles_the_words_with_the_runs_own_layout(tmp_path):
    """`llamacpu run` on a sort-unrolled run reads "sort 3 1 2" as its own task, not the loop's."""
    shipped = Path(__file__).parent.parent / "llamacpu" / "runs" / "general-cpu"
    run = tmp_path / "unrolled"
    shutil.copytree(shipped, run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["task"] = "sort-unrolled"
    (run / "config.json").write_text(json.dumps(config))
    outs = {}
    for name, path in (("loop", shipped), ("unrolled", run)):
        result = run_cli(["run", "--run", str(path), "sort 3 1 2", "--json"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outs[name] = json.loads(result.stdout)
    assert outs["unrolled"]["expected"] == outs["loop"]["expected"] == 123
    assert outs["unrolled"]["task"] == "sort-unrolled" and outs["loop"]["task"] == "sort"
