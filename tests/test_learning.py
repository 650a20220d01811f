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


def test_spike_skip_drops_only_an_update_far_above_the_recent_norms(tmp_path: Path) -> None:
    """With spike_skip, a gradient norm over that many times the recent median leaves every weight
    as it was; others update; the recent norms and the count survive a checkpoint."""
    import torch

    from machine_fixtures import small_run_config, small_train_config

    trainer = make_trainer(tmp_path / "run", small_run_config(train=small_train_config(spike_skip=5.0)))
    trainable = lambda: {n: p.detach().clone() for n, p in trainer.machine.named_parameters() if p.requires_grad}  # noqa: E731
    trainer.recent_norms = [1e-9] * 20  # against these, every real gradient is a spike
    before = trainable()
    out = trainer.train_step()
    assert out["skipped"] == 1.0 and trainer.skipped_updates == 1
    assert all(torch.equal(before[n], p) for n, p in trainable().items())
    trainer.recent_norms = [out["grad_norm"]] * 20
    trainer.config.spike_skip = 1e6
    out = trainer.train_step()
    assert "skipped" not in out and any(not torch.equal(before[n], p) for n, p in trainable().items())
    state = trainer.state()
    resumed = make_trainer(tmp_path / "other", small_run_config(train=small_train_config(spike_skip=5.0)))
    resumed.load_state(state)
    assert resumed.recent_norms == trainer.recent_norms and resumed.skipped_updates == 1
    plain = make_trainer(tmp_path / "plain", small_run_config(train=small_train_config()))
    plain.recent_norms = [1e-9] * 20
    assert "skipped" not in plain.train_step()  # spike_skip 0: never


def test_stage_lr_decay_scales_every_group_per_stage_past_the_first(tmp_path: Path) -> None:
    """stage_lr_decay d: after warm-up, stage k's rates are d**(k-1) times the configured ones
    (the OEU's group keeps its scale); 1.0 leaves them; a decay outside (0, 1] is refused."""
    from machine_fixtures import small_run_config, small_train_config

    trainer = make_trainer(tmp_path / "run", small_run_config(train=small_train_config(stage_lr_decay=0.5, warmup=1)))
    base = [g["initial_lr"] for g in trainer.optimizer.param_groups]
    for stage, factor in ((1, 1.0), (2, 0.5), (3, 0.25)):
        trainer.stage, trainer.stage_start = stage, trainer.step
        trainer.scheduler.step()
        assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([b * factor for b in base])
    plain = make_trainer(tmp_path / "plain", small_run_config(train=small_train_config(warmup=1)))
    plain.stage, plain.stage_start = 4, plain.step
    plain.scheduler.step()
    assert [g["lr"] for g in plain.optimizer.param_groups] == pytest.approx(base)
    for bad in (0.0, 1.5):
        with pytest.raises(ckpt.RunError, match="stage_lr_decay"):
            small_train_config(stage_lr_decay=bad)


def test_a_refused_compile_mode_names_the_modes() -> None:
    from machine_fixtures import small_train_config

    with pytest.raises(ckpt.RunError, match="compile='fast' is not one of '', 'default'"):
        small_train_config(compile="fast")


@pytest.mark.slow
def test_a_compiled_backbone_trains_as_the_eager_one(tmp_path: Path) -> None:
    """compile="default": every decoder layer compiled, the same losses step for step as eager
    from the same seed, and the same parameter names (a compiled run's checkpoints load eager)."""
    from llamacpu.train import decoder_layers
    from machine_fixtures import small_run_config, small_train_config

    runs = {}
    for mode in ("", "default"):
        trainer = make_trainer(tmp_path / f"run{mode}", small_run_config(train=small_train_config(compile=mode)))
        runs[mode] = (trainer, [trainer.train_step()["loss_total"] for _ in range(3)])
    (eager, eager_losses), (compiled, compiled_losses) = runs[""], runs["default"]
    layers = decoder_layers(compiled.machine.controller.backbone)
    assert layers and all(getattr(m, "_compiled_call_impl", None) is not None for m in layers)
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    assert list(compiled.machine.state_dict()) == list(eager.machine.state_dict())
