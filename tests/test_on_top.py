"""A task's compiler trained on top of the shipped CPU: ``init_from`` and ``freeze``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from llamacpu import checkpoint as ckpt
from llamacpu.checkpoint import shipped_run
from llamacpu.train import FREEZE, Trainer, config_dict

from machine_fixtures import small_train_config


def on_top_trainer(run_dir: Path, freeze: str) -> Trainer:
    """What ``llamacpu train --task add --set init_from=<shipped> --set freeze=...`` builds."""
    shipped = ckpt.read_config(shipped_run())
    train = small_train_config(task="add", freeze=freeze, init_from=str(shipped_run()), batch_size=2)
    config = replace(shipped, train=config_dict(train))
    torch.manual_seed(0)
    machine = ckpt.build_machine(config)
    run_dir.mkdir()
    ckpt.write_config(run_dir, config)
    trainer = Trainer(run_dir, machine, config, train)
    assert ckpt.init_from(machine, shipped_run()) == []  # every tensor comes from the shipped CPU
    return trainer


def shipped_weights() -> dict[str, torch.Tensor]:
    machine, _, _ = ckpt.load_machine(shipped_run())
    return {n: p.detach().clone() for n, p in machine.named_parameters()}


@pytest.mark.parametrize("freeze", ["cpu", "execute"])
def test_freeze_keeps_the_cpu_and_trains_the_compiler(freeze: str, tmp_path: Path) -> None:
    trainer = on_top_trainer(tmp_path / "run", freeze)
    for _ in range(3):
        trainer.train_step()
    before = shipped_weights()
    params = dict(trainer.machine.named_parameters())
    frozen = {n for n in params if n.startswith(FREEZE[freeze])}
    assert frozen and all(not params[n].requires_grad for n in frozen)
    assert all(torch.equal(params[n].detach(), before[n]) for n in frozen)
    moved = {n for n, p in params.items() if not torch.equal(p.detach(), before[n])}
    assert {"controller.plan_query", "controller.content_head.weight"} <= moved
    assert ("controller.backbone.layers.0.self_attn.q_proj.weight" in moved) == (freeze == "execute")

    # A checkpoint keeps the frozen CPU: a fresh machine loaded from it runs it unchanged.
    saved = trainer.save()
    machine = ckpt.build_machine(ckpt.read_config(tmp_path / "run"))
    ckpt.load_weights(machine, saved)
    reloaded = dict(machine.named_parameters())
    assert all(torch.equal(reloaded[n].detach(), before[n]) for n in frozen)


def test_unknown_freeze_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ckpt.RunError, match="freeze='oeu' is not one of '', 'execute', 'cpu'"):
        on_top_trainer(tmp_path / "run", "oeu")


def test_init_from_gives_a_controller_of_another_width_the_trained_oeu() -> None:
    """The OEU reads an opcode and two value codes, not the controller: a machine whose
    controller has another width (as SmolLM2's 576 against the shipped tiny 128) started from the
    shipped CPU gets its OEU exactly and keeps its own controller tensors as initialized."""
    shipped = ckpt.read_config(shipped_run())
    wide = replace(shipped, controller=replace(shipped.controller, hidden=96, heads=4, intermediate=192, layers=1))
    torch.manual_seed(0)
    machine = ckpt.build_machine(wide)
    new = ckpt.init_from(machine, shipped_run())
    before = shipped_weights()
    oeu = {n: p for n, p in machine.named_parameters() if n.startswith("oeu.")}
    assert oeu and all(torch.equal(p.detach(), before[n]) for n, p in oeu.items())
    assert not any(n.startswith("oeu.") for n in new)
    assert {"controller.plan_query", "controller.type_head.weight"} <= set(new)
