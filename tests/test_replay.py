"""Replay of earlier sizes: uniform by default; with ``replay_by="errors"``, weighted by each
size's error at the last full check, so a size being forgotten gets the replay back; with
``replay_per="problem"`` (the default), drawn for every problem rather than for the whole batch."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from machine_fixtures import make_trainer, small_run_config, small_train_config

from llamacpu import checkpoint as ckpt
from llamacpu.isa import EMPTY
from llamacpu.train import REPLAY_FLOOR, TrainConfig, config_dict


def test_errors_weigh_the_replayed_stages_and_survive_a_checkpoint(tmp_path):
    cfg = small_train_config(max_digits=3, replay_by="errors", eval_every=1, eval_trials=4)
    trainer = make_trainer(tmp_path / "run", small_run_config(train=cfg))
    trainer.stage = 3
    before = Counter(trainer.replay_stage() for _ in range(2000))
    assert set(before) == {1, 2} and abs(before[1] - before[2]) < 200  # no check yet: equal weights
    trainer.stage_errors = {1: 0.0, 2: 0.9, 3: 1.0}
    drawn = Counter(trainer.replay_stage() for _ in range(4000))
    share = drawn[2] / 4000
    expected = (REPLAY_FLOOR + 0.9) / (2 * REPLAY_FLOOR + 0.9)
    assert abs(share - expected) < 0.02, (share, expected)

    trainer.check()  # a full check writes every size's error
    assert set(trainer.stage_errors) == {1, 2, 3} and all(0.0 <= e <= 1.0 for e in trainer.stage_errors.values())
    trainer.save()
    again = make_trainer(tmp_path / "run", small_run_config(train=cfg))
    assert again.stage_errors == trainer.stage_errors


def test_uniform_replay_is_the_default_and_an_unknown_mode_is_refused(tmp_path):
    trainer = make_trainer(tmp_path / "a", small_run_config(train=small_train_config(max_digits=3)))
    trainer.stage, trainer.stage_errors = 3, {1: 0.0, 2: 1.0}
    drawn = Counter(trainer.replay_stage() for _ in range(2000))
    assert abs(drawn[1] - drawn[2]) < 200  # errors are ignored
    with pytest.raises(ckpt.RunError, match="replay_by='worst' is not one of 'uniform', 'errors'"):
        make_trainer(tmp_path / "b", small_run_config(train=small_train_config(replay_by="worst")))


def test_per_problem_is_the_default_and_an_older_run_resumes_per_batch():
    assert TrainConfig().replay_per == "problem"
    old = config_dict(TrainConfig())
    del old["replay_per"]  # a config.json written before session 33
    assert TrainConfig.from_dict(old).replay_per == "batch"
    assert TrainConfig.from_dict(config_dict(TrainConfig())).replay_per == "problem"


def test_replay_per_problem_mixes_every_size_into_one_padded_batch(tmp_path):
    cfg = small_train_config(max_digits=3, batch_size=48, replay_per="problem")
    trainer = make_trainer(tmp_path / "mixed", small_run_config(train=cfg))
    trainer.stage = 3
    batch = trainer.sample_batch()
    sizes = Counter(p.digits for p in batch.programs)
    assert set(sizes) == {1, 2, 3} and 12 <= sizes[3] <= 36, sizes  # replay 0.5: half the stage's own size
    assert batch.window == max(p.window for p in batch.programs)
    for row, program in enumerate(batch.programs):  # a shorter program's window ends in EMPTY slots
        assert torch.equal(batch.types[row, : program.window], program.types)
        assert (batch.types[row, program.window:] == EMPTY).all()
    losses = trainer.train_step()
    assert all(math.isfinite(v) for v in losses.values())

    plain = make_trainer(tmp_path / "plain", small_run_config(train=small_train_config(max_digits=3, batch_size=48,
                                                                                        replay_per="batch")))
    plain.stage = 3
    assert all(len({p.digits for p in plain.sample_batch().programs}) == 1 for _ in range(6))  # one size a batch
    with pytest.raises(ckpt.RunError, match="replay_per='step' is not one of 'batch', 'problem'"):
        make_trainer(tmp_path / "bad", small_run_config(train=small_train_config(replay_per="step")))


def test_the_end_marker_sits_on_each_problems_own_last_page_in_a_mixed_batch(tmp_path):
    """A problem padded into a larger window plans its own slots as it does alone: the marker is
    on its own last page (given ``windows``), not on the batch window's."""
    from llamacpu.tasks import collate

    cfg = small_train_config(max_digits=3, batch_size=16, replay_per="problem")
    trainer = make_trainer(tmp_path / "marked", small_run_config(train=cfg, end_marker=True))
    trainer.stage = 3
    machine = trainer.machine.eval()
    with torch.no_grad():
        machine.controller.end_emb.mul_(50.0)  # a marker large enough to show where it sits
    batch = trainer.sample_batch()
    row = min(range(len(batch.programs)), key=lambda i: batch.programs[i].window)
    own = batch.programs[row].window
    assert own < batch.window
    tok = machine.controller.tokenizer
    with torch.no_grad():
        alone = machine.plan(tok.batch([batch.prompts[row]]), own).type_logits[0]  # (own, K)
        mixed = machine.plan(tok.batch(batch.prompts), batch.window, windows=batch.windows).type_logits[row]
        window_marked = machine.plan(tok.batch(batch.prompts), batch.window).type_logits[row]
    assert torch.allclose(mixed[:own], alone, atol=1e-5)
    last_page = slice(own - machine.isa.layout.page_size, own)
    assert not torch.allclose(window_marked[last_page], alone[last_page], atol=1e-3)  # the old marker: elsewhere
    assert collate([batch.programs[row]], machine.isa).windows.tolist() == [own]
