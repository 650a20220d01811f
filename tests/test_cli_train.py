"""``llamacpu train`` and ``llamacpu eval`` from a shell: help for every option, and bad input
answered by one clear line on stderr, a non-zero exit and no traceback."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from llamacpu.cli import build_parser

from machine_fixtures import FIXTURE_RUN, assert_one_clear_line, run_cli, run_cli_all


def subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def test_top_level_help_names_every_command() -> None:
    result = run_cli(["--help"], cwd=Path.cwd())
    assert result.returncode == 0, result.stderr
    names = subcommands()
    assert {"train", "eval"} <= set(names)
    for name in names:
        assert name in result.stdout, name
    assert "--verbose" in result.stdout


@pytest.mark.parametrize("command", ["train", "eval"])
def test_help_explains_every_option(command: str) -> None:
    result = run_cli([command, "--help"], cwd=Path.cwd())
    assert result.returncode == 0, result.stderr
    parser_options = options(subcommands()[command])
    assert parser_options
    for action in parser_options:
        assert action.help and action.help.strip(), f"{action.option_strings} has no explanation"
        for flag in action.option_strings:
            assert flag in result.stdout, flag
    if command == "train":
        for flag in ("--run", "--cpu", "--max-digits", "--load-in-4bit", "--max-steps", "--slots", "--hub"):
            assert flag in result.stdout
        # the help names them without importing the modules that define them (they import torch)
        from llamacpu.cli_train import COMPUTE_DTYPE_NAMES, TASK_NAMES
        from llamacpu.controller import COMPUTE_DTYPES, PRESETS
        from llamacpu.tasks import TASKS

        assert COMPUTE_DTYPE_NAMES == COMPUTE_DTYPES and TASK_NAMES == tuple(TASKS)
        for name in (*PRESETS, *COMPUTE_DTYPES, *TASKS):
            assert name in result.stdout, name


# ---- bad input: one clear line each ----

QUICK = ["--max-steps", "1", "--no-traces", "--quiet"]
ONE = ["--digits", "1", "--trials", "1"]
# Case -> (arguments, run in the folder that `bad_results` prepares; what the one stderr line holds).
CASES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "unknown preset": (["train", "--run", "new1", "--cpu", "nosuchpreset"], ("nosuchpreset", "tiny, smollm2")),
    "hub id without --hub": (["train", "--run", "new8", "--cpu", "someone/no-such-model"],
                             ("someone/no-such-model", "tiny, smollm2", "--hub")),
    "too many digits": (["train", "--run", "new2", "--max-digits", "30"], ("30-digit", "256")),
    "too few slots": (["train", "--run", "new3", "--slots", "40", "--max-digits", "3"], ("58 slots", "40")),
    "zero digits": (["train", "--run", "new4", "--max-digits", "0"], ("--max-digits",)),
    "negative quick checks": (["train", "--run", "new5", "--quick-every", "-1"], ("--quick-every",)),
    "no full checks": (["train", "--run", "new6", "--eval-every", "0"], ("--eval-every", "at least 1")),
    "compute dtype without 4-bit": (["train", "--run", "new7", "--compute-dtype", "float32"],
                                    ("--compute-dtype", "--load-in-4bit")),
    "train into a folder that is not a run": (["train", "--run", "notes", *QUICK], ("notes", "not a run")),
    "train into a file": (["train", "--run", "a-file", *QUICK], ("a-file",)),
    "eval of a folder that is not a run": (["eval", "--run", "notes"], ("notes", "config.json")),
    "eval of a missing folder": (["eval", "--run", "gone"], ("gone", "does not exist")),
    "garbage config": (["eval", "--run", "bad-config"], ("bad-config/config.json",)),
    "eval with other address keys": (["eval", "--run", "key-seed", *ONE], ("key-seed/", "model.safetensors", "layout")),
    "train with other address keys": (["train", "--run", "key-seed", *QUICK], ("key-seed/", "model.safetensors",
                                                                               "layout")),
    "eval with another memory size": (["eval", "--run", "n-slots", *ONE], ("n-slots/", "model.safetensors", "layout")),
    "eval with another controller": (["eval", "--run", "hidden", *ONE], ("hidden/", "model.safetensors",
                                                                         "does not fit")),
    "resume with another preset": (["train", "--run", "tiny", "--cpu", "smollm2", *QUICK], ("smollm2", "tiny")),
    "eval past the memory": (["eval", "--run", "tiny", "--digits", "30"], ("30-digit", "256")),
}


def edited_fixture(root: Path, name: str, section: str, key: str, value: object) -> None:
    """A copy of the trained fixture run whose config.json says something else."""
    run_dir = root / name
    shutil.copytree(FIXTURE_RUN, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    if section:
        config[section][key] = value
    (run_dir / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """Every case, run in one prepared folder."""
    root = tmp_path_factory.mktemp("bad")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a run\n")
    (root / "a-file").write_text("x")
    (root / "bad-config").mkdir()
    (root / "bad-config" / "config.json").write_text("{not json")
    edited_fixture(root, "key-seed", "layout", "key_seed", 1)
    edited_fixture(root, "n-slots", "layout", "n_slots", 200)
    edited_fixture(root, "hidden", "controller", "hidden", 64)
    edited_fixture(root, "tiny", "", "", None)
    return root, run_cli_all({name: args for name, (args, _) in CASES.items()}, root)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clear_line(bad_results: tuple[Path, dict[str, subprocess.CompletedProcess]],
                                        case: str) -> None:
    _, results = bad_results
    assert_one_clear_line(results[case], *CASES[case][1])


def test_an_unknown_controller_fails_at_once(tmp_path: Path) -> None:
    """Without --hub, a hub-shaped name is refused before anything is loaded (it took 52 s of
    hub retries and 57 log lines)."""
    start = time.perf_counter()
    result = run_cli(["train", "--run", "r", "--cpu", "someone/no-such-model"], cwd=tmp_path)
    assert time.perf_counter() - start < 5
    assert_one_clear_line(result, "--hub")
    assert result.stdout == ""


def test_bad_input_leaves_no_run_behind(bad_results: tuple[Path, dict[str, subprocess.CompletedProcess]]) -> None:
    root, _ = bad_results
    assert not any((root / f"new{i}").exists() for i in range(1, 9))
    assert sorted(p.name for p in (root / "notes").iterdir()) == ["todo.txt"]
    assert (root / "a-file").read_text() == "x"


def test_ctrl_c_stops_after_the_step_and_keeps_it(tmp_path: Path) -> None:
    """SIGINT mid-training: the step in flight ends, is checkpointed (not only every 1000 steps),
    the exit is clean, and a resumed run goes on from there."""
    import os
    import signal

    from machine_fixtures import LLAMACPU

    run = tmp_path / "r"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([str(LLAMACPU), "train", "--run", str(run), "--max-digits", "1", "--no-traces", "--quiet",
                             "--checkpoint-every", "1000", "--set", "log_every=1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and sum('"train"' in line for line in metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "SIGINT: stopping after step" in err, err
    assert "held-out free-running accuracy" not in out + err  # asked to stop: no final evaluation
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if '"train"' in line]
    last = (run / "latest").read_text().strip()
    assert last == f"ckpt-{steps[-1]:07d}" and steps[-1] >= 3 and steps[-1] % 1000, (last, steps)

    resumed = run_cli(["train", "--run", str(run), "--max-steps", str(steps[-1] + 1), "--no-traces", "--quiet"],
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {steps[-1]}," in resumed.stderr, resumed.stderr
