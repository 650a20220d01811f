"""The compiled tasks (sub, mul, copy, reverse, search, sort): every compiler's programs run by the
reference interpreter on random inputs of every size that fits, their prompts parsed back,
held-out splits, loops that are real jumps, and the commands that name the tasks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llamacpu import interpreter
from llamacpu.evaluate import draw_held_out
from llamacpu.isa import INST, ISA, OP, SlotLayout
from llamacpu.problems import TASK_NAMES, ProblemError, detect_task, parse_problem
from llamacpu.tasks import TASKS, Program, get_task
from llamacpu.tasks.base import IGNORE
from llamacpu.tasks.image import number_of

from machine_fixtures import assert_one_clear_line, run_cli

ISA_ = ISA(SlotLayout())
COMPILED = ("sub", "mul", "copy", "reverse", "search", "sort")
TRAINED_SIZES = {"sub": 8, "mul": 4, "copy": 8, "reverse": 8, "search": 8, "sort": 5}  # issue 14's sizes
FITS = {"sub": 22, "mul": 22, "copy": 23, "reverse": 23, "search": 9, "sort": 23}  # in the default 256 slots


def expected(name: str, problem: tuple[int, ...]) -> int:
    """The answer, from Python alone: what the result slots must spell."""
    if name == "sub":
        return problem[0] - problem[1]
    if name == "mul":
        return problem[0] * problem[1]
    if name == "search":
        value, *items = problem
        return items.index(value) if value in items else len(items)
    items = {"copy": list(problem), "reverse": list(reversed(problem)), "sort": sorted(problem)}[name]
    return int("".join(str(d) for d in items))


def interpret(program: Program) -> interpreter.Run:
    image = interpreter.Image.from_targets(program.types, program.pointers, program.contents, IGNORE)
    return interpreter.run(image, ISA_.layout.n_values)


def check(name: str, problem: tuple[int, ...]) -> interpreter.Run:
    """Compile, run on the interpreter, and check the answer, the targets and the step budget."""
    program = get_task(name).build(problem, ISA_)
    ref = interpret(program)
    assert ref.halted, ref.fault
    digits = [ref.final.contents[a] for a in program.answer_slots.tolist()]
    assert number_of(digits) == expected(name, problem) == program.answer, (problem, digits)
    assert digits == program.answer_digits.tolist() and all(0 <= d <= 9 for d in digits)
    assert ref.pc == program.pc.tolist() and ref.results == program.oeu_result.tolist()
    assert ref.writes == program.writes.tolist()
    assert program.window == get_task(name).slots_needed(program.digits) <= ISA_.layout.n_slots
    assert program.window == len(ref.final)
    return ref


# ---- the compilers, on the interpreter ----

digit = st.integers(0, 9)
digit_lists = st.lists(digit, min_size=1, max_size=8).map(tuple)


@settings(max_examples=150, deadline=None)
@given(a=st.integers(0, 10**8 - 1), data=st.data())
def test_subtraction_leaves_the_difference(a, data):
    check("sub", (a, data.draw(st.integers(0, a))))


@settings(max_examples=150, deadline=None)
@given(a=st.integers(0, 10**4 - 1), b=digit)
def test_multiplication_leaves_the_product(a, b):
    ref = check("mul", (a, b))
    assert ref.taken_jumps == b  # into the loop, then b - 1 times back


@settings(max_examples=100, deadline=None)
@given(items=digit_lists)
def test_copy_and_reverse_leave_the_string(items):
    check("copy", items)
    check("reverse", items)


@settings(max_examples=150, deadline=None)
@given(items=digit_lists, data=st.data())
def test_search_leaves_the_first_index_or_the_length(items, data):
    value = data.draw(st.one_of(digit, st.sampled_from(items)))
    ref = check("search", (value, *items))
    assert ref.taken_jumps >= len(items) - 1  # n trips: n - 1 jumps back at least


@settings(max_examples=150, deadline=None)
@given(items=st.lists(digit, min_size=1, max_size=5).map(tuple))
def test_sort_leaves_the_string_sorted(items):
    check("sort", items)


@pytest.mark.parametrize("name", COMPILED)
def test_every_size_that_fits_compiles_and_runs_right(name):
    """Seeded random problems of every size from 1 to the largest the default memory holds."""
    task = get_task(name)
    assert task.max_digits(ISA_) == FITS[name] >= TRAINED_SIZES[name]
    rng = random.Random(f"sizes-{name}")
    for size in range(1, task.max_digits(ISA_) + 1):
        for _ in range(6 if size <= TRAINED_SIZES[name] else 2):
            problem = task.sample(rng, size)
            check(name, problem)
            assert task.build(problem, ISA_).digits == size


@pytest.mark.parametrize("name", COMPILED)
def test_a_problem_past_the_memory_is_refused_in_one_sentence(name):
    task = get_task(name)
    size = task.max_digits(ISA_) + 1
    problem = task.sample(random.Random(0), size)
    with pytest.raises(ProblemError, match=f"{size}-(digit|item) {name}"):
        task.build(problem, ISA_)
    small = ISA(SlotLayout(n_slots=40))
    assert task.max_digits(small) == (0 if task.slots_needed(1) > 40 else 1)


def test_subtraction_refuses_a_negative_result_and_another_value_range():
    with pytest.raises(ProblemError, match="negative"):
        get_task("sub").build((3, 5), ISA_)
    with pytest.raises(ProblemError, match="20 value codes"):
        get_task("sub").build((5, 3), ISA(SlotLayout(n_values=24)))


# ---- loops that are real jumps ----

def opcodes_run(ref: interpreter.Run) -> set[str]:
    from llamacpu.isa import OPCODES

    return {OPCODES[op] for op in ref.op}


def backward_jumps(ref: interpreter.Run) -> int:
    return sum(b <= a for a, b in zip(ref.pc, ref.pc[1:]))


def test_sort_passes_are_a_loop_whose_trips_depend_on_the_data():
    """The same code runs one pass over a sorted string and more over a shuffled one; the swap
    is skipped or run by a JZ on the LT's result, so different data take different paths."""
    task = get_task("sort")
    sorted_run, shuffled_run = check("sort", (1, 2, 3, 4, 5)), check("sort", (5, 4, 3, 2, 1))
    code = [task.build(p, ISA_) for p in ((1, 2, 3, 4, 5), (5, 4, 3, 2, 1))]
    assert torch.equal(code[0].types, code[1].types) and torch.equal(code[0].pointers, code[1].pointers)
    assert backward_jumps(sorted_run) == 0 and backward_jumps(shuffled_run) == 4  # 5 passes
    assert {"LT", "JZ", "JNZ", "COPY", "HALT"} == opcodes_run(shuffled_run)
    rng = random.Random(2)
    paths = {tuple(check("sort", tuple(rng.randrange(10) for _ in range(4))).pc) for _ in range(40)}
    assert len(paths) > 10


def test_search_is_a_loop_of_n_trips_over_the_same_code():
    task = get_task("search")
    for n in range(1, 9):
        items = tuple(range(n))
        ref = check("search", (9, *items))  # not found
        assert backward_jumps(ref) == n - 1 and ref.final.contents[17] == n
        loop = {"SUB", "JMP"} if n > 1 else set()
        assert opcodes_run(ref) == {"EQ", "JZ", "COPY", "HALT"} | loop
    program = task.build((4, 3, 1, 4, 1, 5), ISA_)
    assert int((program.types == INST).sum()) == 5 + 3 + 4  # the loop's code grows by one shift per digit
    assert check("search", (1, 3, 1, 4, 1, 5)).final.contents[17] == 1  # the first 1, not the last


def test_multiplication_loops_b_times():
    steps = [get_task("mul").build((4071, b), ISA_).steps for b in range(10)]
    assert steps == [2 + b * (4 * 4 + 3) for b in range(10)]


def test_copy_and_reverse_are_one_copy_per_digit():
    for name in ("copy", "reverse"):
        program = get_task(name).build((2, 7, 1, 8), ISA_)
        assert program.steps == 5 and backward_jumps(interpret(program)) == 0


# ---- prompts ----

@pytest.mark.parametrize("task, text, problem", [
    ("sub", "123 - 45", (123, 45)), ("sub", "calculate 123-45 =", (123, 45)), ("sub", "subtract 45 from 123", (123, 45)),
    ("sub", "7 - 7", (7, 7)), ("mul", "345 * 7", (345, 7)), ("mul", "7 * 345", (345, 7)), ("mul", "3 x 4", (3, 4)),
    ("mul", "multiply 345 by 7", (345, 7)), ("mul", "what is 12 times 3?", (12, 3)),
    ("copy", "copy 3 1 4 1 5", (3, 1, 4, 1, 5)), ("copy", "copy 31415", (3, 1, 4, 1, 5)),
    ("copy", "Copy 0, 0, 7.", (0, 0, 7)), ("reverse", "reverse 2 7 1 8", (2, 7, 1, 8)),
    ("search", "find 4 in 3 1 4 1 5", (4, 3, 1, 4, 1, 5)), ("search", "where is 9 in 31415?", (9, 3, 1, 4, 1, 5)),
    ("search", "search for 0 in 0", (0, 0)), ("search", "index of 5 in 3,1,4,1,5", (5, 3, 1, 4, 1, 5)),
    ("sort", "sort 3 1 4 1 5", (3, 1, 4, 1, 5)), ("sort", "sort 9", (9,)),
])
def test_prompts_in_words_parse(task, text, problem):
    assert parse_problem(task, text) == problem == get_task(task).parse(text)
    assert detect_task(text) == task


@pytest.mark.parametrize("task, text, message", [
    ("sub", "3 - 5", "negative"), ("sub", "3 + 5", "not a subtraction problem"),
    ("mul", "12 * 34", "one factor must have one digit"), ("mul", "multiply 3", "not a multiplication problem"),
    ("copy", "copy", "empty"), ("copy", "copy 31 4", "items are single digits"), ("copy", "copy 3 a", "not a digit"),
    ("reverse", "reverse -1 2", "not a digit"), ("sort", "sorted 3 1", "not a sorting problem"),
    ("search", "find 12 in 3 4", "one digit"), ("search", "find 1 in", "empty"),
    ("search", "find 1 within 2", "not a search problem"), ("programs", "1 + 1", "llamacpu asm"),
    ("divide", "6 / 3", "unknown task"),
])
def test_bad_prompts_say_what_is_wrong(task, text, message):
    with pytest.raises(ProblemError, match=message):
        parse_problem(task, text)


@pytest.mark.parametrize("name", COMPILED)
def test_the_canonical_prompt_parses_back_to_its_problem(name):
    task = get_task(name)
    rng = random.Random(name)
    for size in (1, 2, 5):
        for _ in range(20):
            problem = task.sample(rng, size)
            assert task.parse(task.prompt(problem)) == problem
            assert task.build(problem, ISA_).prompt == task.prompt(problem)


def test_answers_read_as_run_shows_them():
    assert get_task("copy").answer_text(12, 4) == "0012"  # leading zeros are digits of the string
    assert get_task("search").answer_text(5, 5) == "5 (not found)" and get_task("search").answer_text(2, 5) == "2"
    assert get_task("sort").build((0, 3, 0), ISA_).answer == 3


def test_every_task_is_registered_where_the_commands_look():
    assert tuple(TASKS) == TASK_NAMES
    from llamacpu.cli_train import TASK_HELP

    for name in TASK_NAMES:
        assert name in TASK_HELP
        assert get_task(name).eval_sizes
    assert get_task("sort").eval_sizes == (1, 2, 3, 4, 5)


# ---- held out ----

@pytest.mark.parametrize("name", COMPILED)
def test_held_out_problems_never_reach_a_training_batch(name, tmp_path):
    from llamacpu.checkpoint import RunConfig, build_machine
    from llamacpu.controller import ControllerConfig
    from llamacpu.train import TrainConfig, Trainer

    machine = build_machine(RunConfig(controller=ControllerConfig(hidden=32, layers=1, heads=2, intermediate=64)))
    trainer = Trainer(tmp_path, machine, RunConfig(), TrainConfig(task=name, batch_size=32, max_digits=3))
    task = trainer.task
    for size in (1, 2, 3):
        held = draw_held_out(task, size, 50, "t")
        assert held and all(task.is_held_out(p) for p in held)
    every = {p for size in (1, 2, 3) for p in draw_held_out(task, size, 200, "all")}
    for stage in (1, 2, 3):
        trainer.stage = stage
        for _ in range(10):
            batch = trainer.sample_batch()
            operands = {tuple(p.operands) for p in batch.programs}
            assert not any(task.is_held_out(p) for p in operands) and not every & operands


def test_about_a_fifth_is_held_out_and_stage_one_of_a_string_trains_two_lengths():
    for name in COMPILED:
        task = get_task(name)
        rng = random.Random(5)
        problems = {task.sample(rng, 3) for _ in range(3000)}
        share = sum(map(task.is_held_out, problems)) / len(problems)
        assert 0.15 < share < 0.25, (name, share)
    assert list(get_task("copy").stage_sizes(1)) == [1, 2] and list(get_task("sort").stage_sizes(3)) == [3]
    assert list(get_task("search").stage_sizes(1)) == [1, 2] and list(get_task("sub").stage_sizes(1)) == [1]


# ---- the commands ----

def test_training_records_probes_of_the_task_it_trains(tmp_path: Path):
    from llamacpu.checkpoint import RunConfig, build_machine
    from llamacpu.controller import ControllerConfig
    from llamacpu.recording import TrainingRecorder

    machine = build_machine(RunConfig(controller=ControllerConfig(hidden=32, layers=1, heads=2, intermediate=64)))
    for name in COMPILED:
        recorder = TrainingRecorder(tmp_path / name, tmp_path / "run", RunConfig(train={"task": name}), machine)
        assert [pid for pid, _ in recorder.probes] == list(get_task(name).probes)
        assert [p.digits for _, p in recorder.probes] == [1, 2, 3]
    recorder = TrainingRecorder(tmp_path / "s", tmp_path / "run", RunConfig(train={"task": "sort"}), machine,
                                probes=["sort 3 1 2"])
    assert [pid for pid, _ in recorder.probes] == ["sort 312"]
    with pytest.raises(ProblemError, match="not a sorting problem"):
        TrainingRecorder(tmp_path / "s", tmp_path / "run", RunConfig(train={"task": "sort"}), machine, probes=["3 + 5"])


def test_run_names_bad_text_in_one_line_before_loading_a_model(tmp_path: Path):
    run = Path(__file__).parent.parent / "llamacpu" / "runs" / "general-cpu"
    result = run_cli(["run", "--run", str(run), "sort 31 4"], cwd=tmp_path)
    assert_one_clear_line(result, "items are single digits")
    result = run_cli(["run", "--run", str(run), "find 3 in " + "1" * 10], cwd=tmp_path)
    assert_one_clear_line(result, "10-item search", "at most 9 items")


def test_run_detects_the_task_and_shows_the_answer(tmp_path: Path):
    import json

    run = Path(__file__).parent.parent / "llamacpu" / "runs" / "general-cpu"
    result = run_cli(["run", "--run", str(run), "sort 3 1 2", "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["problem"] == "sort 312" and out["expected"] == 123 and out["operands"] == [3, 1, 2]


# ---- learning starts: one seeded short training per task family, free running on held-out problems ----

MID = {"hidden": 64, "layers": 2, "heads": 4, "intermediate": 192}  # a tiny controller, 0.3 s a step on one core


def short_training(name: str, steps: int, run_dir: Path, batch_size: int = 32, shipped_oeu: bool = False):
    """Stage 1 of ``name``'s curriculum for exactly ``steps`` steps (no competence checks, so no
    early stop) on a new MID controller; with ``shipped_oeu``, beside the shipped general CPU's
    OEU, which knows the operator table (loaded as `llamacpu train --set init_from=...` does).
    One thread, whatever the suite's OMP_NUM_THREADS: with two, seed 0's search reached 84 %, found
    45 % (one thread: 86 %, found 79 %), so the seeded figures hold for one thread only."""
    from llamacpu import checkpoint as ckpt
    from llamacpu.controller import ControllerConfig
    from llamacpu.train import TrainConfig, config_dict

    from machine_fixtures import make_trainer

    train = TrainConfig(task=name, max_digits=1, seed=0, device="cpu", batch_size=batch_size, eval_every=10**6,
                        quick_every=0, checkpoint_every=10**6)
    trainer = make_trainer(run_dir, ckpt.RunConfig(controller=ControllerConfig(**MID), train=config_dict(train)))
    if shipped_oeu:
        fresh = ckpt.init_from(trainer.machine, ckpt.shipped_run())  # the controller's shapes differ: all new
        assert fresh and all(n.startswith("controller.") for n in fresh)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the figures in the docstrings are one core's: other thread counts sum in another order
    try:
        trainer.run(max_steps=steps)
    finally:
        torch.set_num_threads(threads)
    assert trainer.step == steps
    return trainer


def held_out_accuracy(trainer, hard=None) -> tuple[float, float | None, int]:
    """Free-running accuracy on the held-out problems of every size stage 1 trains (1 digit; 1 and
    2 for strings), and on those of them that ``hard`` picks (the ones a trivial answer gets wrong)."""
    from llamacpu.evaluate import evaluate

    right = total = hard_right = hard_total = 0
    for size in trainer.task.stage_sizes(1):
        pool = trainer.heldout.get(size)  # never in a training batch
        r = evaluate(trainer.machine, trainer.task, size, len(pool), seed=0, problems=pool, diagnostics=False,
                     keep_failures=True)
        right, total = right + r.correct, total + r.trials
        if hard is not None:
            picked = [p for p in pool if hard(p)]
            hard_right += sum(p not in r.failures for p in picked)
            hard_total += len(picked)
    return right / total, (hard_right / hard_total if hard_total else None), total


@pytest.mark.slow
def test_subtraction_learning_starts(tmp_path):
    """From scratch: 300 steps of 1-digit subtraction (seed 0 reached 16/16 held out; 10/16 at 250)."""
    accuracy, _, n = held_out_accuracy(short_training("sub", 300, tmp_path / "run"))
    assert accuracy >= 0.75, f"held-out 1-digit subtraction {accuracy:.0%} of {n}"


@pytest.mark.parametrize("name", ["copy", "reverse"])
def test_digit_string_learning_starts(name, tmp_path):
    """From scratch: 150 steps of strings of 1 and 2 digits (seed 0 reached 100 % of 26 held-out
    copies and of 18 reversals from step 125 on)."""
    accuracy, _, n = held_out_accuracy(short_training(name, 150, tmp_path / "run"))
    assert accuracy >= 0.8, f"held-out 1-2 digit {name} {accuracy:.0%} of {n}"


@pytest.mark.slow
@pytest.mark.longest  # 5-11 minutes of one core
def test_search_learning_starts(tmp_path):
    """From scratch: 1000 steps on strings of 1 and 2 digits. "Not found" is right for 168 of the
    210, so the found ones have their own bar. Before step 800 finding is still being learned and
    the trajectory depends on the CPU's kernels: at step 500 seed 0 gave 206/210 on AVX2 EPYCs
    (2026-12-03) and 31 %, found 10 % on an AVX512 Xeon, where it swung between 2 % and 98 % from
    step 300 to 800. On the Xeon (2026-12-07, one thread, docs/experiments.md "Session 35"), held
    out at step 1000: seed 0 95.2 %, found 90.5 %; seeds 1, 2 and 3 100 %, every seed at 95 % or
    more from step 800 on."""
    trainer = short_training("search", 1000, tmp_path / "run")
    accuracy, found, n = held_out_accuracy(trainer, hard=lambda p: p[0] in p[1:])
    assert accuracy >= 0.7 and found >= 0.5, f"held-out 1-2 digit search {accuracy:.0%} of {n}, found {found:.0%}"


@pytest.mark.slow
def test_sorting_learning_starts_beside_the_general_cpus_oeu(tmp_path):
    """A new MID controller beside the shipped general CPU's OEU: 175 steps on strings of 1 and 2
    digits. Seed 0: 21/21 held out from step 150 on, 4/21 at 100 (from scratch: 0/20 at 2 digits
    after 300 steps; on every weight of the shipped CPU, batch 16: 21/21 at 175). Never swapping
    is right for sorted strings, so the unsorted ones have their own bar."""
    trainer = short_training("sort", 175, tmp_path / "run", shipped_oeu=True)
    accuracy, unsorted, n = held_out_accuracy(trainer, hard=lambda p: list(p) != sorted(p))
    assert accuracy >= 0.8 and unsorted >= 0.6, f"held-out 1-2 digit sort {accuracy:.0%} of {n}, unsorted {unsorted:.0%}"


def test_sizes_are_named_in_each_tasks_own_words(tmp_path):
    from llamacpu.tasks.base import sized

    assert sized(get_task("add"), 8) == "8-digit add"
    assert sized(get_task("search"), 5) == "5-item search"
    assert sized(get_task("programs"), 12) == "12-instruction programs"
    result = run_cli(["train", "--run", str(tmp_path / "run"), "--task", "search", "--max-digits", "40",
                      "--slots", "60", "--no-traces"], tmp_path)
    assert_one_clear_line(result, "40-item search needs")


def test_eval_notes_sizes_past_a_tasks_trained_range(tmp_path):
    """A copy run that passed its 2-item stage: eval at 5 items says 5 is past 1-2 items."""
    import json as json_

    from machine_fixtures import make_trainer, small_run_config, small_train_config

    run = tmp_path / "run"
    trainer = make_trainer(run, small_run_config(n_slots=80, train=small_train_config(task="copy", max_digits=2)))
    trainer.save()
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json_.dumps({"event": "stage_end", "stage": 2, "passed": True, "accuracy": 1.0, "at_step": 0}) + "\n")
    result = run_cli(["eval", "--run", str(run), "--task", "copy", "--digits", "2,5", "--trials", "1", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "5-item problems are outside the trained range: this run was trained on 1-2 items" in result.stderr
