"""The forgetting guard (``rewinds``): when a full check finds a size an earlier stage passed
fallen under ``rewind_below``, the stage goes back to the weights and optimizer state it
started from, at ``rewind_lr`` times the rates, at most ``rewinds`` times; resume stays exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from machine_fixtures import make_trainer, small_run_config, small_train_config

from llamacpu import checkpoint as ckpt
from llamacpu.evaluate import SizeResult
from llamacpu.train import Trainer

# Held-out accuracy by step and size that the fake evaluation reports: stage 1 passes at step 2;
# at steps 4 and 6 size 1 has fallen (size 2 still unlearned), from step 8 on it has recovered.
ACCURACY = {2: {1: 1.0}, 4: {1: 0.5, 2: 0.0}, 6: {1: 0.4, 2: 0.0}}


def _fake_checks(trainer: Trainer) -> None:
    def evaluate(digits: int, **_: object) -> SizeResult:
        acc = ACCURACY.get(trainer.step, {}).get(digits, 1.0 if digits == 1 else 0.0)
        return SizeResult(digits, 10, round(10 * acc), acc, 10, acc, None, [])
    trainer._evaluate_heldout = evaluate  # type: ignore[method-assign]


def _trainer(run_dir: Path, **overrides: object) -> Trainer:
    cfg = small_train_config(**{"max_digits": 2, "eval_every": 2, "rewinds": 1, "rewind_lr": 0.5, **overrides})
    trainer = make_trainer(run_dir, small_run_config(train=cfg))
    _fake_checks(trainer)
    return trainer


def _events(run_dir: Path, event: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["event"] == event]


def test_a_fallen_size_rewinds_the_stage_to_its_start_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer = _trainer(run)
    trainer.run(max_steps=2)
    assert trainer.stage == 2 and trainer.stage_start == 2
    snapshot = ckpt.stage_start(run, 2)
    assert snapshot is not None
    at_start = ckpt.trainable_state(trainer.machine)

    trainer.run(max_steps=4)  # step 4: size 1 at 50 % -> back to step 2's weights
    assert ckpt.trainable_state(trainer.machine).keys() == at_start.keys()
    assert all(torch.equal(t, at_start[n]) for n, t in ckpt.trainable_state(trainer.machine).items())
    assert (trainer.stage, trainer.stage_rewinds, trainer.segment_start, trainer.stage_start) == (2, 1, 4, 2)
    warm = 1 / trainer.config.warmup  # warm-up starts again, at half the rates
    expected = [base * warm * 0.5 for base in trainer.scheduler.base_lrs]
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx(expected)
    assert trainer.teacher_forcing() == pytest.approx(trainer.config.tf_start)

    trainer.run(max_steps=8)  # step 6: fallen again, but the one rewind is spent
    rewinds = _events(run, "rewind")
    assert [(r["step"], r["stage"], r["fallen"], r["rewinds"], r["to_step"]) for r in rewinds] == [(4, 2, [1], 1, 2)]
    assert rewinds[0]["lr"] == pytest.approx(trainer.scheduler.base_lrs[0] * 0.5)  # the rate warm-up climbs back to
    assert trainer.stage_rewinds == 1 and not trainer.done


def test_resume_across_a_rewind_is_exact(tmp_path: Path) -> None:
    straight = _trainer(tmp_path / "a")
    straight.run(max_steps=9)
    first = _trainer(tmp_path / "b")
    first.run(max_steps=5)  # stopped one step after the rewind; checkpointed
    resumed = _trainer(tmp_path / "b")
    assert (resumed.step, resumed.stage_rewinds, resumed.segment_start) == (5, 1, 4)
    resumed.run(max_steps=9)
    a, b = ckpt.trainable_state(straight.machine), ckpt.trainable_state(resumed.machine)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert _events(tmp_path / "a", "rewind") == _events(tmp_path / "b", "rewind")


def test_no_snapshot_no_rewind(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", rewinds=0)  # the guard off: no snapshot is written
    trainer.run(max_steps=6)
    assert trainer.stage == 2 and not (tmp_path / "run" / ckpt.STAGE_START).exists()
    assert _events(tmp_path / "run", "rewind") == [] and trainer.stage_rewinds == 0
    assert trainer.rewind([1]) is False and trainer.stage_rewinds == 0  # asked anyway: nothing to go back to


@pytest.mark.parametrize("option, message", [
    ({"rewinds": -1}, "rewinds=-1 is not a whole number of 0 or more"),
    ({"rewinds": 1.5}, "rewinds=1.5 is not a whole number of 0 or more"),
    ({"rewind_lr": 0.0}, r"rewind_lr=0.0 is not in \(0, 1\]"),
    ({"rewind_below": 1.5}, r"rewind_below=1.5 is not in \(0, 1\]"),
])
def test_bad_rewind_options_are_refused(option: dict, message: str) -> None:
    with pytest.raises(ckpt.RunError, match=message):
        small_train_config(**option)


def test_a_run_can_begin_past_stage_one_and_guard_its_first_stage(tmp_path: Path) -> None:
    """start_stage=2: the curriculum begins at stage 2 (its batches are size 2 or replay size 1),
    and with the guard on, the weights it began with are the stage's snapshot: size 1 falling at
    step 4 sends it back to step 0."""
    run = tmp_path / "run"
    trainer = _trainer(run, start_stage=2)
    assert trainer.stage == 2
    sizes = {max(p.digits for p in trainer.sample_batch().programs) for _ in range(20)}
    assert sizes == {1, 2}
    at_start = {n: t.clone() for n, t in ckpt.trainable_state(trainer.machine).items()}
    trainer.run(max_steps=4)
    assert ckpt.stage_start(run, 0) is not None
    assert [(r["step"], r["stage"], r["fallen"], r["to_step"]) for r in _events(run, "rewind")] == [(4, 2, [1], 0)]
    assert all(torch.equal(t, at_start[n]) for n, t in ckpt.trainable_state(trainer.machine).items())


def test_start_stage_must_be_a_stage_of_the_curriculum() -> None:
    for bad in (0, 3, 1.5):
        with pytest.raises(ckpt.RunError, match=f"start_stage={bad} is not a stage of this curriculum"):
            small_train_config(max_digits=2, start_stage=bad)
