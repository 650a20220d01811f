"""Traces recorded while training, and the shipped demo trace."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from llamacpu.trace import TraceStore, load_trace

from machine_fixtures import run_cli

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "traces" / "demo" / "demo.pt"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(list(args), cwd, timeout=600)


def _small_run(*extra: str) -> list[str]:
    """A short CPU training that checks competence every 2 steps (it fails all of them)."""
    return ["train", "--run", "runs/r", "--quiet", "--max-steps", "4", "--batch-size", "4", "--slots", "60",
            "--max-digits", "2", "--set", "eval_every=2", "--set", "eval_trials=8", *extra]


def test_training_records_probes_every_k_steps_and_failures_at_checks(tmp_path):
    done = _cli(*_small_run("--probe-every", "2", "--probes", "3 + 5,47 + 38"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    store = TraceStore(tmp_path / "traces" / "r")
    probes = store.rows(probe_id="47 + 38")
    assert sorted(r.training_step for r in probes) == [1, 2, 4]  # after the first step, then every 2
    assert {r.probe_id for r in store.rows(probe_id="3 + 5")} == {"3 + 5"}
    failures = [r for r in store.rows() if r.probe_id is None]
    assert failures and all(not r.correct for r in failures)  # an untrained machine fails every check
    assert {r.training_step for r in failures} <= {2, 4}
    trace = load_trace(store.root / probes[0].path)
    assert trace["meta"]["run"] == "r" and trace["meta"]["prompt"] == "47 + 38"
    assert trace["exec"]["memory"].shape[0] == trace["meta"]["steps"] + 1


def test_no_traces_records_nothing_and_bad_probe_is_one_line(tmp_path):
    assert _cli(*_small_run("--no-traces"), cwd=tmp_path).returncode == 0
    assert not (tmp_path / "traces").exists()
    bad = _cli(*_small_run("--probes", "3 + 5,seven plus two"), cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "not an addition problem" in bad.stderr
    too_big = _cli(*_small_run("--probes", "123456 + 1"), cwd=tmp_path)
    assert too_big.returncode == 2 and "Traceback" not in too_big.stderr and "slots" in too_big.stderr


def test_metrics_after_the_last_checkpoint_are_dropped_on_resume(tmp_path):
    args = _small_run("--no-traces", "--checkpoint-every", "2", "--set", "log_every=1")
    assert _cli(*args, cwd=tmp_path).returncode == 0
    run = tmp_path / "runs" / "r"
    # As if killed after step 4 was logged but before its checkpoint: resume from step 2.
    (run / "latest").write_text("ckpt-0000002")
    assert _cli(*args, cwd=tmp_path).returncode == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r["event"] == "check"] == [2, 4]  # stage 1 never passes: 1-digit checks only


def test_demo_trace_is_small_correct_and_disassembles(tmp_path):
    assert DEMO.stat().st_size < 2_000_000
    meta = load_trace(DEMO)["meta"]
    assert meta["digits"] == 3 and meta["correct"] and meta["controller"] == "tiny"
    done = _cli("disasm", str(DEMO), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "INST   HALT" in done.stdout and "; r[0]" in done.stdout
    assert f"produced {meta['expected']}" in done.stdout


def test_demo_trace_says_how_it_was_made():
    text = (DEMO.parent / "README.md").read_text()
    assert "llamacpu run --run tests/fixtures/tiny-add4" in text
