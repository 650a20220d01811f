"""Length generalization's machinery: position tags shared by places and block pages, random
tag offsets in training, no RoPE, absolute pointers limited to the header, and a memory that
grows at evaluation (docs/length-generalization.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llamacpu import checkpoint as ckpt
from llamacpu.controller import HEADER_PAGES, ControllerConfig, ControllerError
from llamacpu.evaluate import evaluate
from llamacpu.train import batch_losses

from machine_fixtures import assert_one_clear_line, make_trainer, run_cli, small_run_config

TAGGED = {"position_offsets": 50, "rope": False, "absolute_slots": 20}


def tagged_machine(n_slots: int = 60, **controller):
    torch.manual_seed(0)
    return ckpt.build_machine(small_run_config(n_slots=n_slots, **{**TAGGED, **controller}))


def test_block_page_and_place_share_one_tag():
    """Page 2 (digit block 0) carries the units' tag, page 2 + i the tag of place i + 1, and the
    episode's shift moves both: the plan query of a block and the digits it reads meet in one row."""
    machine = tagged_machine()
    ctrl = machine.controller
    prompt = ctrl.tokenizer.batch(["47 + 385"])
    prompt.shift = torch.tensor([7])
    emb = ctrl.prompt_embedding(prompt) - ctrl.backbone.get_input_embeddings()(prompt.ids).float() \
        - ctrl.number_emb(prompt.numbers)  # (1, L, d): the tags alone
    chars = list("47 + 385")
    units_of_385 = len(chars) - 1
    assert torch.allclose(emb[0, units_of_385], ctrl.place_emb.weight[1 + 7])
    addr = ctrl.address_embedding(60, torch.device("cpu"), prompt.shift)  # (1, W, d)
    offset = ctrl.offset_emb.weight
    for page_no in range(HEADER_PAGES, 6):
        tag = page_no - (HEADER_PAGES - 1) + 7
        want = ctrl.page_emb.weight[HEADER_PAGES] + ctrl.place_emb.weight[tag] + offset[3]
        assert torch.allclose(addr[0, page_no * 10 + 3], want, atol=1e-6)
    assert torch.allclose(addr[0, 13], ctrl.page_emb.weight[1] + offset[3])  # a header page has no tag


def test_weights_do_not_depend_on_the_memory_size():
    small, large = tagged_machine(60), tagged_machine(400)
    shapes = {n: t.shape for n, t in ckpt.trainable_state(small).items()}
    assert shapes == {n: t.shape for n, t in ckpt.trainable_state(large).items()}
    assert torch.equal(large.isa.keys[:60], small.isa.keys)  # new addresses, same scheme


def test_absolute_pointers_reach_only_the_first_slots():
    """With the mix all absolute, a 120-slot plan points into the first 20 slots only."""
    machine = tagged_machine(120)
    for head in machine.controller.pointer_heads:
        assert head.absolute.out_features == 20
        with torch.no_grad():
            head.mix.bias.fill_(50.0)  # g = 1: the absolute part alone
    plan = machine.controller.plan(machine.controller.tokenizer.batch(["12 + 34"]), 120)
    assert plan.pointers.shape[-1] == 120
    assert torch.allclose(plan.pointers[..., :20].sum(-1), torch.ones(1), atol=1e-5)
    assert float(plan.pointers[..., 20:].detach().abs().max()) < 1e-6


def test_without_rope_every_position_id_is_zero(monkeypatch):
    machine = tagged_machine()
    seen = []
    forward = type(machine.controller.backbone).forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs["position_ids"])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(machine.controller.backbone), "forward", spy)
    machine.controller.plan(machine.controller.tokenizer.batch(["5 + 7", "123 + 4"]), 60)
    assert seen and all(bool((p == 0).all()) for p in seen)


def test_training_draws_each_episodes_offset_from_the_seeded_generator(tmp_path):
    """Offsets in 0..position_offsets, one per episode, from the checkpointed generator (so a
    resumed run draws the same ones); evaluation uses none."""
    trainer = make_trainer(tmp_path / "run", small_run_config(**TAGGED))
    drawn = []
    original = trainer.machine.controller.prompt_embedding

    def spy(prompt):
        drawn.append(prompt.shift)
        return original(prompt)

    trainer.machine.controller.prompt_embedding = spy
    trainer.config = trainer.config.__class__(**{**trainer.config.__dict__, "batch_size": 64})
    batch = trainer.sample_batch()
    batch_losses(trainer.machine, batch, 0.5, torch.Generator().manual_seed(3), 16)
    first = drawn[-1]
    assert first.shape == (64,) and int(first.min()) >= 0 and int(first.max()) <= 50 and len(set(first.tolist())) > 10
    batch_losses(trainer.machine, batch, 0.5, torch.Generator().manual_seed(3), 16)
    assert torch.equal(drawn[-1], first)
    evaluate(trainer.machine, trainer.task, 1, 2, seed="x")
    assert drawn[-1] is None


def test_a_growable_run_evaluates_past_its_memory(tmp_path):
    """A 2-digit memory; `eval --digits 6` grows it and says so on stderr."""
    run = tmp_path / "run"
    trainer = make_trainer(run, small_run_config(n_slots=48, **TAGGED))
    trainer.run(max_steps=1)
    trainer.save()
    result = run_cli(["eval", "--run", str(run), "--digits", "6", "--trials", "2", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "memory grown to 88 slots" in result.stderr
    assert '"digits": 6' in result.stdout
    ran = run_cli(["run", "--run", str(run), "123456 + 654321", "--json"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["expected"] == 777777


def test_a_run_whose_weights_need_its_memory_size_is_refused_a_larger_one(tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(run, small_run_config(n_slots=48))
    trainer.run(max_steps=1)
    trainer.save()
    with pytest.raises(ckpt.RunError, match="cannot run in 88"):
        ckpt.load_machine(run, n_slots=88)
    result = run_cli(["eval", "--run", str(run), "--digits", "6", "--trials", "2"], tmp_path)
    assert_one_clear_line(result, "6-digit add needs up to 88 slots")


def test_resuming_with_a_new_runs_option_is_one_clear_line(tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(run, small_run_config(**TAGGED))
    trainer.run(max_steps=1)
    trainer.save()
    result = run_cli(["train", "--run", str(run), "--no-rope", "--max-steps", "2"], tmp_path)
    assert_one_clear_line(result, "--no-rope shapes a new run")


def test_negative_offsets_are_refused():
    with pytest.raises(ControllerError, match="counts"):
        ControllerConfig(position_offsets=-1)



def test_shift_distribution_one_offset_at_a_time_matches_all_at_once(monkeypatch):
    """A plan over thousands of slots shifts one offset at a time (the all-at-once tensor of a
    1000-digit plan would be 80 GB); both ways give the same distribution."""
    from llamacpu import memory

    torch.manual_seed(0)
    base = torch.softmax(torch.randn(6, 50), -1)
    offsets = torch.softmax(torch.randn(6, 9), -1)
    at_once = memory.shift_distribution(base, offsets, 4)
    monkeypatch.setattr(memory, "UNFOLD_LIMIT", 0)
    assert torch.allclose(memory.shift_distribution(base, offsets, 4), at_once, atol=1e-6)
    one_hot = torch.zeros(1, 50)
    one_hot[0, 10] = 1.0
    moved = memory.shift_distribution(one_hot, torch.eye(9)[[6]], 4)  # offset +2
    assert int(moved.argmax()) == 12
