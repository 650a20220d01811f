"""A stopped evaluation keeps what finished: ``evaluate`` returns the batches it completed when
:class:`EvalStopped` comes, and ``llamacpu eval`` under SIGTERM prints those results, says so in
one line on stderr and exits 143."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from machine_fixtures import FIXTURE_RUN, LLAMACPU

from llamacpu import checkpoint as ckpt
from llamacpu import evaluate as ev
from llamacpu.tasks import get_task


def test_evaluate_keeps_the_batches_finished_before_a_stop(monkeypatch):
    machine, _, _ = ckpt.load_machine(FIXTURE_RUN, "cpu")
    task = get_task("add")
    real, calls = ev.free_run, []

    def stopping(machine, programs, **kwargs):
        calls.append(kwargs.get("from_target", False))
        if len(calls) == 5:  # the third batch's first run: two batches (of free run + from target) finished
            raise ev.EvalStopped("SIGTERM")
        return real(machine, programs, **kwargs)

    monkeypatch.setattr(ev, "free_run", stopping)
    result = ev.evaluate(machine, task, 2, 30, seed="stop", batch_size=4)
    assert (result.trials, result.stopped) == (8, "SIGTERM")
    assert 0 <= result.correct <= 8 and result.from_target is not None
    whole = ev.evaluate(machine, task, 2, 30, seed="stop", batch_size=4, problems=None, diagnostics=False)
    assert whole.stopped == "" and whole.trials == 30 and whole.from_target is None
    assert ev.results_json("add", [whole])["results"][0].keys().isdisjoint({"stopped", "failures"})
    assert ev.results_json("add", [result])["results"][0]["stopped"] == "SIGTERM"


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_eval_under_sigterm_prints_what_finished_and_exits_143(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 5 digits: past the fixture's trained 4, so a note on stderr says the evaluation is starting.
    proc = subprocess.Popen([str(LLAMACPU), "eval", "--run", str(FIXTURE_RUN), "--digits", "5,6", "--trials", "2000",
                             "--batch-size", "1", "--no-from-target", "--json"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and "outside the trained range" not in (proc.stderr.readline() or ""):
        pass
    time.sleep(6)  # single problems of 5 digits: a fraction of a second each
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("llamacpu eval: stopped by SIGTERM; the results cover")
    assert "Traceback" not in err
    rows = json.loads(out)["results"]
    assert len(rows) == 1 and rows[0]["digits"] == 5 and 0 < rows[0]["trials"] < 2000
    assert rows[0]["stopped"] == "SIGTERM" and rows[0]["from_target"] is None
