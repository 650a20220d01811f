"""Small machines, run configs and trainers for the machine, checkpoint and preset tests.

A tiny controller at width 32 with one layer and a 60-slot memory (up to 3 digits) trains a step
in a fraction of a second on one CPU core, so resume and gradient tests stay fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from llamacpu import checkpoint as ckpt
from llamacpu.controller import ControllerConfig
from llamacpu.isa import SlotLayout
from llamacpu.oeu import OEUConfig
from llamacpu.train import TrainConfig, Trainer, config_dict

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "tiny-add4"
LLAMACPU = Path(sys.executable).with_name("llamacpu")


def small_train_config(**overrides: Any) -> TrainConfig:
    """A training config whose steps take milliseconds: small batches, a small table sample."""
    base = TrainConfig(max_digits=1, batch_size=4, table_rows=64, eval_every=10**6, quick_every=0, eval_trials=10,
                       checkpoint_every=10**6, log_every=1, warmup=3, device="cpu")
    return replace(base, **overrides)


def small_run_config(n_slots: int = 60, train: TrainConfig | None = None, **controller: Any) -> ckpt.RunConfig:
    """A run config with a 1-layer, width-32 tiny controller and a small OEU."""
    ctrl = ControllerConfig(**{"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, **controller})
    return ckpt.RunConfig(layout=SlotLayout(n_slots=n_slots), controller=ctrl, oeu=OEUConfig(hidden=64),
                          train=config_dict(train or small_train_config()))


def make_trainer(run_dir: Path, config: ckpt.RunConfig, losses: list[dict[str, Any]] | None = None) -> Trainer:
    """What ``llamacpu train`` does: a new run, or the exact resume of the run at ``run_dir``."""
    train_cfg = TrainConfig.from_dict(config.train)
    resuming = ckpt.is_run(run_dir)
    torch.manual_seed(train_cfg.seed)
    machine = ckpt.build_machine(config, train_cfg.device)
    latest = ckpt.latest_checkpoint(run_dir) if resuming else None
    ckpt.write_config(run_dir, config)
    on_progress = None if losses is None else (lambda record: losses.append(record))
    trainer = Trainer(run_dir, machine, config, train_cfg, on_progress=on_progress)
    if latest is not None:
        ckpt.load_weights(machine, latest)
        trainer.load_state(ckpt.load_state(latest))
    return trainer


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``llamacpu`` console script, one thread (tests may share the cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([str(LLAMACPU), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_cli_all(commands: dict[str, list[str]], cwd: Path) -> dict[str, subprocess.CompletedProcess]:
    """Several commands, two at a time: each is mostly interpreter start-up on one core."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_cli, args, cwd) for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, exactly one line on stderr that holds every needle, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def one_error_line(capsys: Any, argv: list[str]) -> str:
    """``llamacpu ARGV`` in this process fails with exactly one line on stderr; returns it."""
    from llamacpu import cli

    assert cli.main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]
