"""Recomputing each cycle's control unit in backward (``--set recompute=true``): the same losses
and gradients as keeping every activation, with fewer tensors kept between forward and backward."""

from __future__ import annotations

import torch
import pytest
from machine_fixtures import make_trainer, small_run_config, small_train_config

from llamacpu import checkpoint as ckpt
from llamacpu.train import TrainConfig, batch_losses


def _losses_and_grads(trainer, batch, recompute: bool) -> tuple[dict[str, float], dict[str, torch.Tensor], int]:
    """One batch's losses, the gradients of their sum, and the bytes autograd kept for backward."""
    machine = trainer.machine
    machine.zero_grad(set_to_none=True)
    kept = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = batch_losses(machine, batch, 0.5, torch.Generator().manual_seed(5), 64, recompute=recompute)
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in machine.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in losses.items()}, grads, kept[0]


def test_recompute_gives_the_same_losses_and_gradients_and_keeps_less(tmp_path):
    trainer = make_trainer(tmp_path / "run", small_run_config(train=small_train_config(max_digits=2, batch_size=8)))
    batch = trainer.sample_batch()
    plain, plain_grads, plain_kept = _losses_and_grads(trainer, batch, recompute=False)
    again, again_grads, again_kept = _losses_and_grads(trainer, batch, recompute=True)
    assert plain.keys() == again.keys() and all(abs(plain[k] - again[k]) < 1e-6 for k in plain)
    assert plain_grads.keys() == again_grads.keys() and len(plain_grads) > 10
    for name, grad in plain_grads.items():
        assert torch.allclose(grad, again_grads[name], rtol=1e-4, atol=1e-6), name
    # This one-layer, width-32 controller is a small share of a cycle (0.51 of the bytes kept);
    # benchmarks/recompute_memory.py measures the presets' peak memory.
    assert again_kept < 0.6 * plain_kept, (again_kept, plain_kept)


def test_recompute_is_a_training_option_the_trainer_uses(tmp_path):
    assert TrainConfig().recompute is False
    trainer = make_trainer(tmp_path / "run", small_run_config(train=small_train_config(recompute=True)))
    seen = []
    original = trainer.machine.execute

    def spy(*args, **kwargs):
        seen.append(kwargs.get("recompute"))
        return original(*args, **kwargs)

    trainer.machine.execute = spy
    out = trainer.train_step()
    assert seen == [True] and out["loss_total"] > 0
    with pytest.raises(ckpt.RunError, match="recompute='yes' is not true or false"):
        make_trainer(tmp_path / "bad", small_run_config(train=small_train_config(recompute="yes")))
