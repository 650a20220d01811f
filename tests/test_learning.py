"""The tiny preset learns 1-digit addition from scratch, measured free running on held-out problems."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llamacpu import checkpoint as ckpt
from llamacpu.evaluate import evaluate
from llamacpu.train import TrainConfig, config_dict

from machine_fixtures import make_trainer

STEPS = 400  # seed 0 passes stage 1 (99 % on the 20 held-out pairs) at step 350 (quick checks), on CPU as on GPU


@pytest.mark.slow
def test_tiny_learns_one_digit_addition(tmp_path: Path) -> None:
    train = TrainConfig(max_digits=1, seed=0, device="cpu")
    trainer = make_trainer(tmp_path / "run", ckpt.RunConfig(train=config_dict(train)))
    summary = trainer.run(max_steps=STEPS)
    assert summary["step"] <= STEPS

    pool = trainer.heldout.get(1)  # never in a training batch
    rng = random.Random("learning-test")
    problems = [rng.choice(pool) for _ in range(100)]
    result = evaluate(trainer.machine, trainer.task, 1, len(problems), seed=0, problems=problems, diagnostics=False)
    assert result.accuracy >= 0.95, f"held-out 1-digit accuracy {result.accuracy:.0%} after {trainer.step} steps"
    assert result.halted == result.trials


def test_teacher_forcing_anneals_to_its_floor(tmp_path: Path) -> None:
    """Scheduled sampling falls linearly from tf_start over tf_steps of each stage, to tf_end."""
    from machine_fixtures import small_run_config, small_train_config

    for end, last in ((0.0, 0.0), (0.2, 0.2)):
        cfg = small_train_config(tf_start=0.5, tf_steps=100, tf_end=end)
        trainer = make_trainer(tmp_path / f"run-{end}", small_run_config(train=cfg))
        seen = []
        for step in (0, 50, 100, 1000):
            trainer.step = trainer.stage_start + step
            seen.append(round(trainer.teacher_forcing(), 6))
        assert seen == [0.5, max(0.25, end), last, last]
