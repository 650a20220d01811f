"""The trace commands through ``llamacpu.cli.main``: output, and one clear line for bad input."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch

from llamacpu import cli
from llamacpu.checkpoint import RunConfig, build_machine, save_checkpoint, write_config
from llamacpu.trace import SCHEMA, TraceStore, load_trace


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "tiny"
    config = RunConfig()
    write_config(path, config)
    save_checkpoint(path, build_machine(config), 120, {})
    return path


@pytest.fixture(scope="module")
def trace_file(run_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.pt"
    assert cli.main(["run", "--run", str(run_dir), "123 + 456", "-o", str(path)]) == 0
    return path


def test_run_writes_a_trace(trace_file, run_dir):
    trace = load_trace(trace_file)
    meta = trace["meta"]
    assert meta["prompt"] == "123 + 456" and meta["expected"] == 579
    assert meta["run"] == "tiny" and meta["training_step"] == 120 and meta["checkpoint"] == "ckpt-0000120"


def test_run_prints_answer_and_verdict_and_writes_nothing(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--run", str(run_dir), "7 + 5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("7 + 5 = ") and ("right" in out or "wrong (expected 12)" in out)
    assert "trace:" not in out
    assert list(tmp_path.iterdir()) == [] and not (run_dir / "traces").exists()


def test_run_adds_its_trace_to_a_store_when_asked(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--run", str(run_dir), "7 + 5", "--traces"]) == 0
    store = TraceStore(tmp_path / "traces" / "tiny")
    out = capsys.readouterr().out
    assert store.count() == 1 and f"trace: traces/tiny/{store.rows()[0].path.name}" in out
    assert cli.main(["run", "--run", str(run_dir), "7 + 5", "--traces", str(tmp_path / "mine")]) == 0
    assert TraceStore(tmp_path / "mine").count() == 1


def test_asm_writes_no_trace_unless_asked(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prog = tmp_path / "p.s"
    prog.write_text("0001 OPDEF HALT\n0002 INST HALT\n")
    assert cli.main(["asm", str(prog), "--run", str(run_dir)]) == 0
    assert "trace:" not in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["p.s"]


def test_disasm_default_plan_step_and_slots(trace_file, capsys):
    assert cli.main(["disasm", str(trace_file), "--slots", "20:26"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("; 123 + 456: memory after step")
    body = [l for l in lines if not l.startswith(";")]
    assert [l[:4] for l in body] == ["0020", "0021", "0022", "0023", "0024", "0025"]
    assert body[1].endswith("; a[0]")
    assert cli.main(["disasm", str(trace_file), "--step", "0", "--slots", ":3"]) == 0
    body = [l for l in capsys.readouterr().out.splitlines() if not l.startswith(";")]
    assert [l[:4] for l in body] == ["0000", "0001", "0002"]
    assert cli.main(["disasm", str(trace_file), "--plan", "--slots", "0:2", "--threshold", "1.01"]) == 0
    assert "?0." in capsys.readouterr().out


def test_disasm_json(trace_file, capsys):
    assert cli.main(["disasm", str(trace_file), "--plan", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trace"] == str(trace_file) and out["problem"] == "123 + 456" and out["expected"] == 579
    assert out["memory"] == "plan" and out["step"] is None and out["window"] == 58
    slots = out["slots"]
    assert len(slots) == 58 and [s["address"] for s in slots[:3]] == [0, 1, 2]
    for s in slots:
        assert {"address", "type", "type_prob", "opcode", "pointers", "value", "value_prob"} <= set(s)
        if s["type"] == "INST":
            assert set(s["pointers"]) == {"op", "src1", "src2", "dst"}


def test_disasm_json_names_its_step(trace_file, capsys):
    assert cli.main(["disasm", str(trace_file), "--step", "3", "--slots", "20:22", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["memory"] == "step" and out["step"] == 3 and out["steps"] == load_trace(trace_file)["meta"]["steps"]
    assert [s["address"] for s in out["slots"]] == [20, 21]


def test_run_json(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--run", str(run_dir), "7 + 5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problem"] == "7 + 5" and out["operands"] == [7, 5] and out["expected"] == 12
    assert out["trace"] is None and out["run"] == "tiny" and out["training_step"] == 120
    assert isinstance(out["correct"], bool) and (out["produced"] is None or isinstance(out["produced"], int))
    assert cli.main(["run", "--run", str(run_dir), "7 + 5", "--json", "-o", "t.pt"]) == 0
    assert json.loads(capsys.readouterr().out)["trace"] == "t.pt"


def test_traces_json_and_piped_table(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for problem in ("1 + 2", "34 + 56"):
        assert cli.main(["run", "--run", str(run_dir), problem, "--traces"]) == 0
    capsys.readouterr()
    assert cli.main(["traces", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == out["shown"] == 2
    assert {t["problem"]: t["expected"] for t in out["traces"]} == {"1 + 2": 3, "34 + 56": 90}
    assert all(Path(t["path"]).is_file() and t["stage"] is None for t in out["traces"])
    assert cli.main(["traces"]) == 0  # captured: not a terminal, as when piped
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "problem" in line)
    assert "expected" in header and "stage" not in header and "probe" not in header
    rows = [line for line in lines if "+" in line and "traces/tiny/" in line]
    assert len(rows) == 2  # each trace on one line, its path whole
    assert all(re.search(r"traces/tiny/\S+\.pt", line) for line in rows)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert re.fullmatch(r"llamacpu \S+.*\n", capsys.readouterr().out)


def test_traces_lists_and_filters(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for problem in ("1 + 2", "34 + 56"):
        assert cli.main(["run", "--run", str(run_dir), problem, "--traces"]) == 0
    capsys.readouterr()
    assert cli.main(["traces"]) == 0
    out = capsys.readouterr().out
    assert "1 + 2" in out and "34 + 56" in out and "tiny" in out
    assert cli.main(["traces", "traces/tiny", "--digits", "2"]) == 0
    out = capsys.readouterr().out
    assert "34 + 56" in out and "1 + 2" not in out
    assert cli.main(["traces", "--probe", "nothing"]) == 0
    assert "1 + 2" not in capsys.readouterr().out


def test_asm_command(run_dir, tmp_path, capsys):
    prog = tmp_path / "p.s"
    prog.write_text("0001 OPDEF ADD\n0002 OPDEF HALT\n0003 DATA 2 ; r[0]\n"
                    "0004 INST ADD [0003], [0003] -> [0003]\n0005 INST HALT\n")
    out_path = tmp_path / "p.pt"
    assert cli.main(["asm", str(prog), "--run", str(run_dir), "-o", str(out_path)]) == 0
    out = capsys.readouterr().out
    assert "result:" in out and "ISA semantics: 4" in out
    assert load_trace(out_path)["meta"]["mode"] == "asm"


def _bad_files(tmp_path, trace_file):
    cases = {}
    cases["empty"] = tmp_path / "empty.pt"
    cases["empty"].write_bytes(b"")
    cases["truncated"] = tmp_path / "trunc.pt"
    cases["truncated"].write_bytes(trace_file.read_bytes()[:5000])
    cases["plain pickle"] = tmp_path / "plain.pt"
    cases["plain pickle"].write_bytes(pickle.dumps({"schema": SCHEMA, "meta": {}}))
    other = torch.load(trace_file, weights_only=True)
    other["schema"] = "llamacpu.trace/2"
    cases["other schema"] = tmp_path / "other.pt"
    torch.save(other, cases["other schema"])
    cases["directory"] = tmp_path / "dir.pt"
    cases["directory"].mkdir()
    cases["missing"] = tmp_path / "missing.pt"
    return cases


CASES = ["empty", "truncated", "plain pickle", "other schema", "directory", "missing"]


@pytest.mark.parametrize("command, case", [("disasm", c) for c in CASES]
                         + [("plot", c) for c in CASES if c != "directory"])  # plot DIR: a run folder
def test_bad_trace_files_one_line(command, case, tmp_path, trace_file, capsys):
    path = _bad_files(tmp_path, trace_file)[case]
    argv = [command, str(path)] + (["-o", str(tmp_path / "x.png")] if command == "plot" else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"llamacpu {command}: ")
    assert "Traceback" not in err


def test_malicious_pickle_refused_and_never_run(tmp_path, capsys):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"schema": SCHEMA, "x": Evil()}, path)
    assert cli.main(["disasm", str(path)]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("case", ["missing index", "corrupt index", "no store"])
def test_bad_store_one_line(case, tmp_path, capsys):
    root = tmp_path / "store"
    if case != "no store":
        TraceStore(root, create=True)
        if case == "missing index":
            (root / "index.sqlite").unlink()
            (root / "x.pt").write_bytes(b"")
        else:
            (root / "index.sqlite").write_bytes(b"garbage" * 500)
    assert cli.main(["traces", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_arguments_one_line(trace_file, run_dir, tmp_path, capsys):
    for argv in (["disasm", str(trace_file), "--step", "9999"],
                 ["disasm", str(trace_file), "--slots", "abc"],
                 ["run", "--run", str(run_dir), "what is love"],
                 ["run", "--run", str(run_dir), "1234567890123456789012345 + 1"],
                 ["run", "--run", str(tmp_path / "nope"), "1 + 1"],
                 ["asm", str(tmp_path / "nope.s"), "--run", str(run_dir)],
                 ["run", "--run", str(run_dir), "1 + 1", "-o", str(tmp_path)]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, argv
