"""Where a wrong plan is wrong: ``plan_errors`` names each field (type, content, pointer) wrong in
a slot of a given target type, per problem, and ``evaluate`` counts them per size."""

from __future__ import annotations

import torch
from machine_fixtures import make_trainer, small_run_config

from llamacpu.evaluate import evaluate, image_plan, plan_error_slots, plan_errors, plan_exact, results_json
from llamacpu.isa import DATA, INST, SLOT_TYPES, ISA, SlotLayout
from llamacpu.tasks import collate, get_task


def _batch():
    isa = ISA(SlotLayout(n_slots=60))
    task = get_task("add")
    batch = collate([task.build(p, isa) for p in [(12, 34), (56, 7), (99, 1)]], isa)
    return isa, batch


def test_an_exact_plan_has_no_errors_and_each_corruption_is_named() -> None:
    isa, batch = _batch()
    plan = image_plan(batch, isa.layout.n_types, isa.layout.n_values)
    assert plan_exact(plan, batch) == [True] * 3 and plan_errors(plan, batch) == [set(), set(), set()]

    data = int((batch.types[0] == DATA).nonzero()[0])  # a data slot of problem 0: a wrong value
    right = int(batch.contents[0, data])
    plan.content_logits[0, data] = 0.0
    plan.content_logits[0, data, (right + 1) % isa.layout.n_values] = 1e4
    inst = int((batch.types[1] == INST).nonzero()[0])  # an instruction of problem 1: a wrong first operand
    ptr = (batch.pointers[1, inst] >= 0).nonzero()
    p = int(ptr[0])
    target = int(batch.pointers[1, inst, p])
    plan.pointers[1, inst, p] = 0.0
    plan.pointers[1, inst, p, (target + 1) % batch.window] = 1.0
    plan.type_logits[2, inst] = torch.roll(plan.type_logits[2, inst], 1)  # problem 2: an instruction typed otherwise

    assert plan_exact(plan, batch) == [False] * 3
    assert plan_errors(plan, batch) == [{"content DATA"}, {"pointer INST"}, {"type INST"}]
    assert plan_error_slots(plan, batch) == [{data}, {inst}, {inst}]  # the very slots corrupted
    assert "DATA" in SLOT_TYPES and "INST" in SLOT_TYPES


def test_evaluate_counts_plan_errors_and_eval_json_keeps_them(tmp_path) -> None:
    trainer = make_trainer(tmp_path / "run", small_run_config())  # untrained: its plans are wrong
    result = evaluate(trainer.machine, trainer.task, 2, 12, seed=0, diagnostics=False)
    assert result.plan_exact < 1.0 and result.plan_errors
    assert all(0 < n <= result.trials for n in result.plan_errors.values())
    assert all(k.split(" ")[0] in ("type", "content", "pointer") and k.split(" ")[1] in SLOT_TYPES
               for k in result.plan_errors)
    inexact = round((1.0 - result.plan_exact) * result.trials)
    assert max(result.plan_errors.values()) <= inexact  # an error kind is counted once per wrong plan
    row = results_json("add", [result])["results"][0]
    assert row["plan_errors"] == result.plan_errors
    slots = result.plan_error_slots  # window slot -> problems wrong there
    assert slots and all(0 <= s < trainer.task.slots_needed(2) and 0 < n <= inexact for s, n in slots.items())
    assert list(slots) == sorted(slots) and row["plan_error_slots"] == slots


def test_eval_prints_the_slots_wrong_in_the_most_problems(tmp_path, capsys) -> None:
    from llamacpu import cli
    from llamacpu.cli_train import TOP_SLOTS

    trainer = make_trainer(tmp_path / "run", small_run_config())  # untrained: its plans are wrong
    trainer.save()
    assert cli.main(["eval", "--run", str(tmp_path / "run"), "--digits", "2", "--trials", "6"]) == 0
    out = capsys.readouterr().out
    assert "wrong plans by slot" in out
    result = evaluate(trainer.machine, trainer.task, 2, 6, seed="eval-12345-2", diagnostics=False)
    worst = sorted(result.plan_error_slots.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SLOTS]
    rows = [line.split("│")[1:5] for line in out.splitlines() if line.count("│") == 5]
    slot_rows = {(int(r[1]), int(r[2])) for r in rows if r[0].strip() == "2" and "%" in r[3]}
    assert set(worst) <= slot_rows
