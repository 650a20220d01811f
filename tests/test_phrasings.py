"""Problems in words: the phrasing sets, their grammar, and how training and eval use them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from llamacpu import cli, phrasings
from llamacpu.controller import CHARS
from llamacpu.isa import ISA, SlotLayout
from llamacpu.problems import ProblemError, addition_prompt, parse_addition
from llamacpu.tasks import AdditionTask
from llamacpu.train import Trainer

from machine_fixtures import FIXTURE_RUN, small_run_config, small_train_config

ISA60 = ISA(SlotLayout(n_slots=60))


@pytest.mark.parametrize("template", phrasings.TRAINED + phrasings.HELD_OUT)
def test_every_phrasing_renders_and_parses_back_to_its_roles(template: str) -> None:
    rng = random.Random(template)
    for _ in range(50):
        a, b = rng.randint(0, 10**rng.randint(1, 8)), rng.randint(0, 10**rng.randint(1, 8))
        text = phrasings.render(template, a, b)
        assert parse_addition(text) == (a, b)
        assert parse_addition(f"  {text.upper()}  ") == (a, b)
        assert set(text) <= set(CHARS)  # the tiny controller's tokenizer has every character


def test_held_out_phrasings_are_new_words_and_some_swap_the_operands() -> None:
    assert not set(phrasings.TRAINED) & set(phrasings.HELD_OUT)
    for group in (phrasings.TRAINED, phrasings.HELD_OUT):
        assert any(t.index("{b}") < t.index("{a}") for t in group)  # the second operand named first
    assert parse_addition("add 456 to 123") == (123, 456)
    assert parse_addition("what is 3 + 4?") == (3, 4)  # the grammar before phrasings still parses
    with pytest.raises(ProblemError, match="not an addition problem: 'add 5'"):
        parse_addition("add 5")
    with pytest.raises(phrasings.PhrasingError, match="unknown phrasing set 'poetry'"):
        phrasings.phrasing_set("poetry")


def test_typed_words_are_the_prompt_symbols_are_the_compilers_own() -> None:
    assert addition_prompt("  add 5   to 7 ") == "add 5 to 7"
    assert addition_prompt("7+5") is None and addition_prompt("calculate 7 + 5") is None


def test_a_phrasing_changes_the_prompt_and_nothing_else() -> None:
    task = AdditionTask()
    symbols = task.sample(random.Random(3), 2)
    task.phrasings = phrasings.TRAINED
    worded = task.sample(random.Random(3), 2)
    assert len(symbols) == 2 and worded[:2] == symbols  # the same operands first, then the phrasing
    a, b, k = worded
    program, plain = task.build(worded, ISA60), task.build((a, b), ISA60)
    assert program.prompt == phrasings.render(phrasings.TRAINED[k], a, b)
    for name in ("types", "pointers", "contents", "pc", "oeu_result", "answer_digits"):
        assert torch.equal(getattr(program, name), getattr(plain, name)), name
    assert task.is_held_out(worded) == task.is_held_out((a, b))  # held out by the operands alone


def test_training_batches_use_trained_phrasings_only(tmp_path: Path) -> None:
    train = small_train_config(phrasings="trained", batch_size=64)
    trainer = Trainer(tmp_path, *_machine_and_config(train), train)
    prompts = [p for _ in range(5) for p in trainer.sample_batch().prompts]
    parsed = [parse_addition(p) for p in prompts]
    assert all(not trainer.task.is_held_out(p) for p in parsed)
    assert all(p in {phrasings.render(t, a, b) for t in phrasings.TRAINED} for p, (a, b) in zip(prompts, parsed))
    used = {t for t in phrasings.TRAINED for p, (a, b) in zip(prompts, parsed) if phrasings.render(t, a, b) == p}
    assert len(used) >= 6


def _machine_and_config(train):
    from llamacpu import checkpoint as ckpt

    config = small_run_config(train=train)
    return ckpt.build_machine(config), config


def test_eval_on_held_out_phrasings(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "--run", str(FIXTURE_RUN), "--digits", "1", "--trials", "8", "--json"]
    assert cli.main([*args, "--phrasings", "held-out"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["phrasings"] == "held-out" and out["results"][0]["trials"] == 8
    by = out["results"][0]["by_phrasing"]
    assert set(by) <= set(phrasings.HELD_OUT) and sum(n for n, _, _ in by.values()) == 8
    assert all(0 <= ok <= n and 0 <= same <= n for n, ok, same in by.values())
    assert cli.main(args) == 0
    symbols = json.loads(capsys.readouterr().out)
    assert symbols["phrasings"] == "symbols" and "by_phrasing" not in symbols["results"][0]  # the run's own
    assert cli.main([*args, "--task", "programs", "--phrasings", "trained"]) != 0
    assert "--phrasings applies to addition" in capsys.readouterr().err


def test_run_takes_a_problem_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--run", str(FIXTURE_RUN), "add 5 to 7", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["operands"] == [7, 5] and out["expected"] == 12
