"""Quick checks between full checks: the stage's own size alone, given up at the first failure
past what the threshold allows; a pass calls the full check at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

from llamacpu.evaluate import evaluate

from machine_fixtures import make_trainer, small_run_config, small_train_config


def _events(run_dir: Path, event: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_evaluate_stops_past_max_failures(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", small_run_config())  # untrained: (nearly) every problem fails
    problems = [(a, b) for a in range(10) for b in range(10)]
    full = evaluate(trainer.machine, trainer.task, 1, len(problems), seed=0, problems=problems,
                    batch_size=25, diagnostics=False)
    assert full.trials == 100 and full.correct < 25
    cut = evaluate(trainer.machine, trainer.task, 1, len(problems), seed=0, problems=problems,
                   batch_size=25, diagnostics=False, max_failures=2)
    assert cut.trials == 25  # the first batch already failed more than 2
    first = evaluate(trainer.machine, trainer.task, 1, 25, seed=0, problems=problems[:25], diagnostics=False)
    assert (cut.correct, cut.accuracy) == (first.correct, first.accuracy)  # over the 25 that ran


def test_failing_quick_check_runs_no_full_check(tmp_path: Path) -> None:
    config = small_run_config(train=small_train_config(max_digits=2, quick_every=2, threshold=1.0))
    trainer = make_trainer(tmp_path / "run", config)
    trainer.run(max_steps=4)
    quick = _events(tmp_path / "run", "quick_check")
    assert [q["step"] for q in quick] == [2, 4]
    assert all(not q["passed"] and q["failed"] >= 1 for q in quick)
    assert _events(tmp_path / "run", "check") == []
    assert trainer.stage == 1


def test_passing_quick_check_ends_the_stage_at_once(tmp_path: Path) -> None:
    config = small_run_config(train=small_train_config(max_digits=2, quick_every=3, threshold=0.0))
    trainer = make_trainer(tmp_path / "run", config)
    started = time.perf_counter()
    trainer.run(max_steps=3)
    quick = _events(tmp_path / "run", "quick_check")[0]
    held_out = len(trainer.heldout.get(1))  # eval_trials of the held-out 1-digit pairs
    assert (quick["step"], quick["stage"], quick["evaluated"], quick["passed"]) == (3, 1, held_out, True)
    checks = _events(tmp_path / "run", "check")
    assert [(c["step"], c["digits"]) for c in checks] == [(3, 1)]  # the full check, called at once
    end = _events(tmp_path / "run", "stage_end")[0]
    assert end["at_step"] == 3
    assert 0 < end["wall_s"] < time.perf_counter() - started  # the run's own time to the stage, logged
    assert trainer.stage == 2
