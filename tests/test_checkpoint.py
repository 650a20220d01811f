"""Checkpoints: exact resume, atomic writes, and one clear line for a corrupt checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llamacpu import checkpoint as ckpt
from llamacpu.train import Trainer

from machine_fixtures import (assert_one_clear_line, make_trainer, run_cli, run_cli_all, small_run_config,
                              small_train_config)

# Stage 1 passes at step 3 and stage 2 at step 6 (threshold 0): an interruption at step 4 falls
# inside stage 2, where batches replay 1-digit problems, and the resume crosses a stage end.
RESUME_TRAIN = small_train_config(max_digits=3, eval_every=3, threshold=0.0)
STEPS = 8


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return ckpt.trainable_state(trainer.machine)


def without_speed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a run reports, less wall-clock speed and time."""
    return [{k: v for k, v in r.items() if k not in ("episodes_per_s", "wall_s")} for r in records]


def last_train(records: list[dict[str, Any]]) -> dict[str, Any]:
    return [r for r in records if r["event"] == "train"][-1]


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return without_speed([json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()])


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), name


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trainer, list[dict[str, Any]]]:
    """STEPS steps without interruption."""
    losses: list[dict[str, Any]] = []
    trainer = make_trainer(tmp_path_factory.mktemp("straight") / "run", small_run_config(train=RESUME_TRAIN), losses)
    trainer.run(max_steps=STEPS)
    assert trainer.step == STEPS and trainer.stage == 3 and len(trainer.history) == 2
    return trainer, losses


def test_resume_is_exact(straight: tuple[Trainer, list[dict[str, Any]]], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = small_run_config(train=RESUME_TRAIN)
    first: list[dict[str, Any]] = []
    make_trainer(run_dir, config, first).run(max_steps=STEPS // 2)
    assert ckpt.latest_checkpoint(run_dir).name == f"ckpt-{STEPS // 2:07d}"

    torch.manual_seed(1234)  # a new process: nothing of the first one's RNG state survives
    second: list[dict[str, Any]] = []
    resumed = make_trainer(run_dir, ckpt.read_config(run_dir), second)
    assert (resumed.step, resumed.stage) == (STEPS // 2, 2)
    resumed.run(max_steps=STEPS)

    trainer, losses = straight
    assert (resumed.step, resumed.stage, resumed.history) == (trainer.step, trainer.stage, trainer.history)
    assert_same_weights(weights(resumed), weights(trainer))
    assert without_speed(first + second) == without_speed(losses)
    last, last_straight = last_train(second), last_train(losses)
    assert last["step"] == last_straight["step"] == STEPS
    assert last["loss_total"] == pytest.approx(last_straight["loss_total"], rel=1e-6)


def test_resume_after_steps_past_the_last_checkpoint(straight: tuple[Trainer, list[dict[str, Any]]],
                                                     tmp_path: Path) -> None:
    """Killed at step 6 with the newest checkpoint at step 4: steps 5-6 run again, and the
    metrics file reads as one uninterrupted run."""
    run_dir = tmp_path / "run"
    config = small_run_config(train=small_train_config(**{**vars(RESUME_TRAIN), "checkpoint_every": 4}))
    make_trainer(run_dir, config).run(max_steps=6)
    shutil.rmtree(run_dir / "ckpt-0000006")
    (run_dir / "latest").write_text("ckpt-0000004")

    resumed = make_trainer(run_dir, ckpt.read_config(run_dir))
    assert resumed.step == 4
    resumed.run(max_steps=STEPS)

    trainer, _ = straight
    assert_same_weights(weights(resumed), weights(trainer))
    assert metrics(run_dir) == metrics(trainer.run_dir)


# ---- atomic writes ----

@pytest.fixture
def saved_run(tmp_path: Path) -> tuple[Path, Trainer]:
    """A run folder with one good checkpoint at step 2."""
    run_dir = tmp_path / "run"
    trainer = make_trainer(run_dir, small_run_config())
    trainer.run(max_steps=2)
    assert ckpt.latest_checkpoint(run_dir) == run_dir / "ckpt-0000002"
    return run_dir, trainer


def test_stale_temporary_and_incomplete_folders_are_never_latest(saved_run: tuple[Path, Trainer]) -> None:
    run_dir, _ = saved_run
    good = run_dir / "ckpt-0000002"
    shutil.copytree(good, run_dir / ".tmp-ckpt-0000009-4242")  # complete-looking, never renamed
    (run_dir / "ckpt-0000007").mkdir()  # no model.safetensors
    (run_dir / "ckpt-0000007" / "state.pt").write_bytes((good / "state.pt").read_bytes())

    assert ckpt.latest_checkpoint(run_dir) == good
    _, _, latest = ckpt.load_machine(run_dir)
    assert latest == good
    assert make_trainer(run_dir, ckpt.read_config(run_dir)).step == 2


@pytest.mark.parametrize("failing", ["save_file", "torch.save"])
def test_interrupted_write_leaves_the_previous_checkpoint_latest(saved_run: tuple[Path, Trainer], failing: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, trainer = saved_run
    before = load_file(str(run_dir / "ckpt-0000002" / "model.safetensors"))
    before.pop("isa.keys")
    trainer.train_step()

    def half_written(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"\x00" * 100)  # a partial file, then the process dies
        raise KeyboardInterrupt

    if failing == "save_file":
        monkeypatch.setattr(ckpt, "save_file", half_written)
    else:
        monkeypatch.setattr(ckpt.torch, "save", half_written)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    monkeypatch.undo()

    assert (run_dir / "latest").read_text().strip() == "ckpt-0000002"
    assert not (run_dir / "ckpt-0000003").exists()
    assert ckpt.latest_checkpoint(run_dir) == run_dir / "ckpt-0000002"
    machine, _, _ = ckpt.load_machine(run_dir)
    assert_same_weights(ckpt.trainable_state(machine), before)
    assert make_trainer(run_dir, ckpt.read_config(run_dir)).step == 2
    assert trainer.save() == run_dir / "ckpt-0000003"  # the next write succeeds
    assert ckpt.latest_checkpoint(run_dir) == run_dir / "ckpt-0000003"


class Crash(BaseException):
    """The process dies here."""


def crash_at_call(monkeypatch: pytest.MonkeyPatch, k: int) -> list[int]:
    """Make the k-th file-system change in checkpoint.py (rename, delete, copy) kill the process;
    returns the running count of those calls."""
    calls = [0]
    for owner, name in ((ckpt.os, "replace"), (ckpt.shutil, "rmtree"), (ckpt.shutil, "copytree")):
        original = getattr(owner, name)

        def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == k:
                raise Crash
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)
    return calls


@pytest.mark.parametrize("step", [2, 3], ids=["same step again", "next step"])
def test_a_crash_anywhere_in_a_write_leaves_a_complete_latest(saved_run: tuple[Path, Trainer], step: int,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing the newest step again happens at every stage end that falls on a checkpoint step."""
    run_dir, trainer = saved_run
    machine, state = trainer.machine, trainer.state()
    clean = tmp_path / "clean"
    shutil.copytree(run_dir, clean)
    calls = crash_at_call(monkeypatch, 0)
    ckpt.save_checkpoint(clean, machine, step, state)
    monkeypatch.undo()
    assert calls[0] >= 3

    for k in range(1, calls[0] + 1):
        copy = tmp_path / f"crash-{k}"
        shutil.copytree(run_dir, copy)
        crash_at_call(monkeypatch, k)
        with pytest.raises(Crash):
            ckpt.save_checkpoint(copy, machine, step, state)
        monkeypatch.undo()
        latest = ckpt.latest_checkpoint(copy)
        assert latest is not None and (latest / "state.pt").is_file(), f"crash at call {k}"
        ckpt.load_weights(ckpt.build_machine(ckpt.read_config(copy)), latest)
        assert int(ckpt.load_state(latest)["step"]) == 2


# ---- corrupt checkpoints: one clear line through the CLI ----

QUICK = ["--max-steps", "3", "--no-traces", "--quiet"]
# Case -> (run folder, damaged file, command).
CORRUPT = {
    "eval, truncated weights": ("weights", "model.safetensors", ["eval", "--digits", "1", "--trials", "2"]),
    "train, truncated weights": ("weights", "model.safetensors", ["train", *QUICK]),
    "train, garbage state": ("state", "state.pt", ["train", *QUICK]),
}


@pytest.fixture(scope="module")
def corrupt_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    root = tmp_path_factory.mktemp("corrupt")
    make_trainer(root / "good", small_run_config()).run(max_steps=2)
    for name in ("weights", "state"):
        shutil.copytree(root / "good", root / name)
    weights_file = root / "weights" / "ckpt-0000002" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[: weights_file.stat().st_size // 2])
    (root / "state" / "ckpt-0000002" / "state.pt").write_bytes(b"this is not a torch file")
    commands = {case: [args[0], "--run", run, *args[1:]] for case, (run, _, args) in CORRUPT.items()}
    return root, run_cli_all(commands, root)


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_checkpoint_gives_one_line_naming_the_file(
        corrupt_results: tuple[Path, dict[str, subprocess.CompletedProcess]], case: str) -> None:
    _, results = corrupt_results
    run, damaged, _ = CORRUPT[case]
    assert_one_clear_line(results[case], f"{run}/ckpt-0000002/{damaged}", "corrupt")


# ---- exact resume through the command ----

def cli_train_args(run: str, steps: int) -> list[str]:
    return ["train", "--run", run, "--max-steps", str(steps), "--max-digits", "1", "--slots", "40",
            "--batch-size", "2", "--set", "table_rows=64", "--set", "warmup=3", "--set", "log_every=1",
            "--no-traces", "--quiet"]


@pytest.mark.slow
def test_cli_resume_matches_a_straight_run(tmp_path: Path) -> None:
    first = run_cli_all({"straight": cli_train_args("straight", 8), "split": cli_train_args("split", 4)}, tmp_path)
    assert all(r.returncode == 0 for r in first.values()), [r.stderr for r in first.values()]
    assert ckpt.latest_checkpoint(tmp_path / "split").name == "ckpt-0000004"
    resumed = run_cli(cli_train_args("split", 8), tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    assert ckpt.latest_checkpoint(tmp_path / "split").name == "ckpt-0000008"
    straight = load_file(str(ckpt.latest_checkpoint(tmp_path / "straight") / "model.safetensors"))
    split = load_file(str(ckpt.latest_checkpoint(tmp_path / "split") / "model.safetensors"))
    assert_same_weights(split, straight)
    assert metrics(tmp_path / "split") == metrics(tmp_path / "straight")


def test_a_finished_curriculum_resumed_with_more_digits_goes_on(tmp_path: Path) -> None:
    """A run that passed its last stage is done; resumed with a larger max_digits it starts the
    next stage where it stopped, and ends after that one."""
    run = tmp_path / "run"
    short = small_run_config(train=small_train_config(max_digits=1, eval_every=2, quick_every=0, threshold=0.0))
    first = make_trainer(run, short)
    first.run(max_steps=20)
    assert first.done and [h["stage"] for h in first.history] == [1]
    longer = small_run_config(train=small_train_config(max_digits=2, eval_every=2, quick_every=0, threshold=0.0))
    second = make_trainer(run, longer)
    assert not second.done and second.stage == 2 and second.stage_start == first.step
    second.run(max_steps=40)
    assert second.done and [(h["stage"], h["passed"]) for h in second.history] == [(1, True), (2, True)]
    again = make_trainer(run, longer)  # nothing left to do at 2
    assert again.done and again.stage == 2
