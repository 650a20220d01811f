"""Trace schema, files (including untrusted ones) and the trace store."""

from __future__ import annotations

import pickle

import pytest
import torch

from llamacpu.checkpoint import RunConfig, build_machine
from llamacpu.evaluate import free_run
from llamacpu.isa import OP
from llamacpu.tasks import AdditionTask
from llamacpu.trace import (
    SCHEMA, TraceError, TraceStore, decode_memory, encode_memory, find_stores, load_trace, oeu_expected,
    save_trace, traces_from_run, validate,
)


@pytest.fixture(scope="module")
def machine():
    torch.manual_seed(0)
    return build_machine(RunConfig())


@pytest.fixture(scope="module")
def traces(machine):
    task = AdditionTask()
    programs = [task.compile(a, b, machine.isa) for a, b in ((12, 34), (99, 1))]
    run = free_run(machine, programs, record=True)
    return traces_from_run(machine, run, stage=2, training_step=40, run="r1", probe_id=["p0", "p1"])


def test_trace_fields_and_shapes(traces):
    t = traces[0]
    meta = t["meta"]
    assert t["schema"] == SCHEMA
    assert meta["prompt"] == "12 + 34" and meta["expected"] == 46 and meta["digits"] == 2
    assert meta["probe_id"] == "p0" and traces[1]["meta"]["probe_id"] == "p1"
    assert meta["roles"]["21"] == "a[0]" and meta["answer_slots"] == [25, 35, 45]
    w, steps = meta["window"], meta["steps"]
    assert w == 48
    assert t["exec"]["memory"].shape == (steps + 1, w, 121) and t["exec"]["memory"].dtype == torch.float16
    assert t["exec"]["ptr_attn"].shape == (steps, 4, w)
    assert t["plan"]["prompt_attn"].shape == (w, len(t["prompt_tokens"])) == (w, 7)
    assert t["prompt_pieces"] == list("12 + 34")
    assert t["exec"]["pc_target"][:3].tolist() == [26, 27, 28]
    validate(t)


def test_oeu_expected_follows_isa_semantics():
    c = 20
    rows = torch.zeros(3, 3, c)
    for t, (op, a, b) in enumerate(((OP["ADD"], 7, 8), (OP["MOD"], 15, 10), (OP["DIV"], 15, 10))):
        rows[t, 0, op] = rows[t, 1, a] = rows[t, 2, b] = 1
    assert oeu_expected(rows, c).tolist() == [15, 5, 1]


def test_memory_encoding_is_lossless():
    mem = torch.randn(1, 6, 5).repeat(9, 1, 1).half()
    mem[3:, 2] = 1.5
    mem[5:, 4] = -2
    mem[8, 0] = 7
    packed = encode_memory(mem)
    assert packed["step"].numel() == 3
    assert torch.equal(decode_memory(packed, 8), mem)


def test_save_load_round_trip(traces, tmp_path):
    path = save_trace(traces[0], tmp_path / "a.pt")
    back = load_trace(path)
    assert back["meta"] == traces[0]["meta"]
    for part in ("plan", "exec"):
        for k, v in traces[0][part].items():
            assert torch.equal(back[part][k], v), k
    assert torch.equal(back["isa"]["keys"], traces[0]["isa"]["keys"])
    assert not list(tmp_path.glob(".*tmp*"))


def _marker_payload(marker):
    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return {"schema": SCHEMA, "evil": Evil()}


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(_marker_payload(marker), path)
    assert not marker.exists()
    with pytest.raises(TraceError, match="refused"):
        load_trace(path)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["empty", "truncated", "plain pickle", "other schema", "directory", "missing",
                                  "not a dict", "bad shape"])
def test_bad_files_give_one_clear_error(case, traces, tmp_path):
    path = tmp_path / "t.pt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        save_trace(traces[0], path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "plain pickle":
        path.write_bytes(pickle.dumps({"schema": SCHEMA}))
    elif case == "other schema":
        torch.save({**traces[0], "schema": "llamacpu.trace/0"}, path)
    elif case == "directory":
        path.mkdir()
    elif case == "not a dict":
        torch.save([1, 2, 3], path)
    elif case == "bad shape":
        bad = {**traces[0], "exec": {**traces[0]["exec"], "pc": torch.zeros(2, 2)}}
        torch.save(bad, path)
    with pytest.raises(TraceError) as err:
        load_trace(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message


def test_store_add_list_filter(traces, tmp_path):
    store = TraceStore(tmp_path / "store", create=True)
    paths = [store.add(t) for t in traces]
    assert all(p.is_file() and p.parent == store.root for p in paths)
    rows = store.rows()
    assert len(rows) == 2 and store.count() == 2
    assert {r.probe_id for r in rows} == {"p0", "p1"}
    assert [r.probe_id for r in store.rows(probe_id="p1")] == ["p1"]
    assert store.count(digits=2) == 2 and store.count(digits=3) == 0
    failing = sum(not t["meta"]["correct"] for t in traces)
    assert store.count(failing=True) == failing
    assert load_trace(rows[0].path)["meta"]["run"] == "r1"
    assert [s.root for s in find_stores(tmp_path)] == [store.root]


def test_killed_writer_leaves_no_indexed_half_trace(traces, tmp_path, monkeypatch):
    store = TraceStore(tmp_path / "store", create=True)

    def dies(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04half a trace")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        store.add(traces[0])
    monkeypatch.undo()
    assert store.count() == 0
    assert list(store.root.iterdir()) == [store.index]


def test_store_missing_or_corrupt_index(traces, tmp_path):
    root = tmp_path / "store"
    store = TraceStore(root, create=True)
    store.add(traces[0])
    store.index.unlink()
    with pytest.raises(TraceError, match="not a trace store"):
        TraceStore(root)
    store.index.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(TraceError, match="corrupt trace index"):
        TraceStore(root)
    (root / "junk.pt").write_bytes(b"")
    rebuilt, skipped = TraceStore.reindex(root)
    assert rebuilt.count() == 1 and len(skipped) == 1


def test_store_open_errors(tmp_path):
    with pytest.raises(TraceError, match="no such trace store"):
        TraceStore(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(TraceError, match="is a file"):
        TraceStore(tmp_path / "f")
