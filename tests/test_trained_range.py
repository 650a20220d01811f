"""Problems outside what a run was trained on: the rule, read from the run, and the one stderr
line that ``run`` and ``eval`` print beside the answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llamacpu import cli
from llamacpu.trained_range import RangeError, TrainedRange, run_trained_range, trained_range

from machine_fixtures import FIXTURE_RUN

STAGES = [{"event": "stage_end", "stage": s, "passed": True} for s in (1, 2, 3)] + [
    {"event": "stage_end", "stage": 4, "passed": False}, {"event": "train", "stage": 4}]


def test_inferred_from_the_passed_stages() -> None:
    r = trained_range({"task": "add"}, STAGES)
    assert r == TrainedRange(3, "equal", "curriculum")
    assert r.contains((123, 456)) and r.contains((0, 9)) and r.contains((5, 7))
    assert "3 and 1 digits" in r.outside((123, 5))
    assert "4-digit operands are past" in r.outside((1234, 5678))
    assert "1-3 digits" in r.outside((1000, 1))


def test_no_stage_passed_is_outside_everything() -> None:
    r = trained_range({}, [{"event": "stage_end", "stage": 1, "passed": False}])
    assert r.max_digits == 0 and "no curriculum stage" in r.outside((1, 2))


def test_a_described_range_wins_over_the_stages() -> None:
    r = trained_range({"task": "add", "trained_range": {"max_digits": 6, "lengths": "any"}}, STAGES)
    assert r == TrainedRange(6, "any", "config")
    assert r.contains((123, 5)) and r.contains((123456, 1)) and not r.contains((1234567, 1))
    with pytest.raises(RangeError, match="lengths"):
        trained_range({"trained_range": {"max_digits": 4, "lengths": "some"}}, [])
    assert trained_range({"task": "a-task-without-a-known-curriculum"}, STAGES) is None


def test_read_from_a_run_folder() -> None:
    assert run_trained_range(FIXTURE_RUN) == TrainedRange(4, "equal", "curriculum")


@pytest.mark.parametrize("problem, note", [("123 + 5", "operands of 3 and 1 digits"),
                                           ("1000 + 1", "operands of 4 and 1 digits"),
                                           ("12345 + 67890", "5-digit operands are past")])
def test_run_says_when_a_problem_is_outside(problem: str, note: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["run", "--run", str(FIXTURE_RUN), problem]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{problem} = ")  # the answer is still shown
    lines = err.strip().splitlines()
    assert len(lines) == 1 and note in lines[0] and "equal length, 1-4 digits" in lines[0]


def test_run_inside_the_range_says_nothing_more(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["run", "--run", str(FIXTURE_RUN), "1234 + 5678", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["outside_trained_range"] is None


def test_eval_names_the_sizes_past_the_range(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["eval", "--run", str(FIXTURE_RUN), "--digits", "4,5", "--trials", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [r["digits"] for r in json.loads(out)["results"]] == [4, 5]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "5-digit problems are outside the trained range" in lines[0]


def test_a_run_config_can_describe_its_range(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "described"
    shutil.copytree(FIXTURE_RUN, run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["trained_range"] = {"max_digits": 4, "lengths": "any"}
    (run / "config.json").write_text(json.dumps(config))
    assert cli.main(["run", "--run", str(run), "123 + 5"]) == 0
    assert capsys.readouterr().err == ""
