"""The debugger's engine and trace model, without a terminal."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from debug_fixtures import make_trace, save_trace, write_store
from llamacpu import cli
from llamacpu.isa import DATA, INST, ISA, REG, SlotLayout
from llamacpu.trace import TraceError, load_trace
from tui.dump import dump
from tui.keys import KeysError, load_keymap
from tui.model import TraceView, slot_confidence
from tui.series import series_for
from tui.session import Breakpoint, DebugSession, Kind, PositionError
from tui.slot_text import slot_line
from tui.trace_file import open_trace

WRONG_STEP = 5  # the OEU is wrong at execute step 5 of the default trace
DOUBTFUL = 21  # a[0] is planned with probability 0.61


class FakeFacts:
    """A timeline of 3 plan steps and 7 execute steps with facts set by hand."""

    n_plan, n_exec = 3, 7

    @property
    def length(self) -> int:
        return 10

    def _at(self, *positions: int) -> np.ndarray:
        out = np.zeros(10, dtype=bool)
        out[list(positions)] = True
        return out

    def pc_reaches(self, addr: int) -> np.ndarray:
        return self._at(4, 8) if addr == 31 else self._at()

    def writes(self, addr: int) -> np.ndarray:
        return self._at(1, 6)

    def oeu_wrong(self) -> np.ndarray:
        return self._at(7)

    def low_confidence(self, below: float) -> np.ndarray:
        return self._at(2) if below > 0.5 else self._at()

    def high_entropy(self, above: float) -> np.ndarray:
        return self._at(5)

    def pc_not_instruction(self) -> np.ndarray:
        return self._at()

    def halting(self) -> np.ndarray:
        return self._at(9)

    def plan_unlike_target(self) -> np.ndarray:
        return self._at(1)


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "t.pt"
    return save_trace(make_trace(123, 456, wrong_step=WRONG_STEP, doubtful_slot=DOUBTFUL), path)


@pytest.fixture(scope="module")
def view(trace_path) -> TraceView:
    return TraceView.open(trace_path)


# ---- session on hand-made facts ----

def test_steps_clamp_at_both_ends():
    s = DebugSession(FakeFacts())
    assert s.back().reason == "start" and s.position == 0
    assert s.step(3).position == 3
    assert s.last().position == 9
    assert s.step().reason == "end" and s.position == 9
    assert s.goto(100).position == 9 and s.goto(-4).position == 0


def test_continue_and_reverse_stop_at_enabled_breakpoints():
    s = DebugSession(FakeFacts())
    bp = s.add(Kind.ADDRESS, addr=31)
    stop = s.cont()
    assert (stop.position, stop.reason, stop.hits) == (4, "breakpoint", (bp,))
    assert s.cont().position == 8
    assert s.cont().reason == "end" and s.position == 9
    assert s.reverse().position == 8
    s.toggle_enabled(bp.id)
    assert s.reverse().reason == "start" and s.position == 0
    s.add(Kind.OEU_WRONG)
    s.add(Kind.ENTROPY, threshold=2.0)
    assert [s.cont().position for _ in range(3)] == [5, 7, 9]


def test_toggle_delete_and_adopt():
    s = DebugSession(FakeFacts())
    w = s.toggle_at(Kind.WATCH, 25)
    assert w is not None and s.find(Kind.WATCH, 25) is w
    assert s.toggle_at(Kind.WATCH, 25) is None and not s.breakpoints
    a = s.add(Kind.HALT)
    b = s.add(Kind.CONFIDENCE, threshold=0.8)
    s.delete(a.id)
    assert s.breakpoints == [b]
    other = DebugSession(FakeFacts())
    other.adopt(s.breakpoints)
    assert [x.describe() for x in other.breakpoints] == ["confidence < 0.8"]
    assert other.add(Kind.HALT).id == b.id + 1
    with pytest.raises(ValueError):
        s.add(Kind.WATCH)
    with pytest.raises(KeyError):
        s.delete(999)


@pytest.mark.parametrize("text, pos", [("1", 3), ("7", 9), ("p2", 2), ("plan 1", 1), ("$", 9), ("+4", 6), ("-9", 0)])
def test_parse_position(text, pos):
    s = DebugSession(FakeFacts(), position=2)
    assert s.parse_position(text) == pos


@pytest.mark.parametrize("text", ["0", "8", "p3", "soon", ""])
def test_parse_position_refuses(text):
    with pytest.raises(PositionError):
        DebugSession(FakeFacts()).parse_position(text)


# ---- the trace model ----

def test_lazy_memory_equals_dense(tmp_path):
    trace = make_trace(987, 654, wrong_step=3)
    packed, _ = open_trace(save_trace(trace, tmp_path / "p.pt"))
    _, lazy = open_trace(tmp_path / "p.pt")
    _, dense = open_trace(save_trace(trace, tmp_path / "d.pt", dense=True))
    full = trace["exec"]["memory"]
    for k in range(full.shape[0]):
        assert torch.equal(lazy[k], full[k]) and torch.equal(dense[k], full[k])
    walked = [m.clone() for m in lazy.walk()]
    assert all(torch.equal(w, full[k]) for k, w in enumerate(walked))
    for t in range(full.shape[0] - 1):
        assert set(lazy.changed(t)) == set(dense.changed(t))
    assert list(lazy.writes_to(25)) == list(dense.writes_to(25))


def test_slot_confidence_matches_isa_decode():
    isa = ISA(SlotLayout(n_slots=32, key_dim=16))
    gen = torch.Generator().manual_seed(0)
    slots = [isa.encode(INST, (3, 4, 5, 6)), isa.encode(DATA, content=7), isa.encode(REG, (9,))]
    for _ in range(20):
        s = torch.rand(isa.layout.slot_dim, generator=gen)
        s[isa.type_slice] = torch.softmax(4 * s[isa.type_slice], -1)
        s[isa.content_slice] = torch.softmax(4 * s[isa.content_slice], -1)
        slots.append(s)
    batch = torch.stack(slots)
    want = torch.tensor([isa.decode(s).confidence for s in slots])
    assert torch.allclose(slot_confidence(isa, batch), want, atol=1e-5)


def test_rows_marks_and_oeu(view):
    assert (view.n_plan, view.n_exec, view.window) == (58, 14, 58)
    pos = view.position_of_step(WRONG_STEP)
    marks = view.marks(pos)
    assert marks.pc == 37 and marks.reads == (2, 33, 32) and marks.written == 34
    assert marks.changed == {0, 34}
    assert view.row(pos, 37).body == "ADD [0033], [0032] -> [0034]"
    assert view.row(pos, DOUBTFUL).body == "3?0.61"
    oeu = view.oeu(pos)
    assert (oeu.op, oeu.a, oeu.b, oeu.out, oeu.expected, oeu.right) == ("ADD", 2, 5, 10, 7, False)
    assert view.oeu(0) is None and view.marks(3).written == 3


def test_rows_taken_from_a_neighbour_match_a_fresh_decode(trace_path):
    """A step decodes the slots it changed and takes the others from the neighbouring position:
    walking forwards, then backwards from the end, gives what decoding each memory afresh gives."""
    length = TraceView.open(trace_path).length
    for order in (range(length), reversed(range(length))):
        view = TraceView.open(trace_path)  # a fresh cache for each walk
        for pos in order:
            mem = view.memory_at(pos)
            for addr in range(view.window):
                assert view.row(pos, addr) == view.decode_at(mem, addr), (pos, addr)


def test_rows_changed_between_neighbours(view):
    assert view.rows_changed(0, 5) is None  # not neighbours
    assert view.rows_changed(view.n_plan - 1, view.n_plan) is None  # memory 0 is recorded apart from the plan
    for pos in range(1, view.length):
        changed = view.rows_changed(pos - 1, pos)
        if changed is None:  # only where an OPDEF slot is planned (rows name operators through it)
            assert pos == view.n_plan or view.row(pos, view.marks(pos).written).type == "OPDEF"
            continue
        assert changed == view.rows_changed(pos, pos - 1)
        for addr in set(range(view.window)) - changed:
            assert view.row(pos - 1, addr) == view.row(pos, addr), (pos, addr)


def test_search_slots(view):
    pos = view.position_of_step(WRONG_STEP)
    assert view.search(pos, "37") == (37, 1) and view.search(pos, "0037") == (37, 1)
    assert view.search(pos, "999") is None  # past the window
    first, count = view.search(pos, "INST")
    assert view.row(pos, first).type == "INST" and count > 1
    second, _ = view.search(pos, "inst", after=first)  # case ignored; from the slot after `after`
    assert second > first and view.row(pos, second).type == "INST"
    last = max(a for a in range(view.window) if view.row(pos, a).type == "INST")
    assert view.search(pos, "INST", after=last)[0] == first  # wraps round
    assert view.search(pos, "r[2]") == (45, 1)  # the role comment, brackets and all
    assert view.search(pos, "ADD [0033], [0032]")[0] == 37  # the reading
    assert view.search(pos, "DATA 3?0.61") == (DOUBTFUL, 1)
    ones = {a for a in range(view.window) if view.row(pos, a).type == "DATA" and view.row(pos, a).body == "1"}
    assert ones and view.search(pos, "DATA 1")[1] == len(ones)  # whole words: DATA 10 is not DATA 1
    assert view.search(pos, "no such words") is None and view.search(pos, "  ") is None


def test_plan_positions_fill_memory(view):
    assert view.row(20, 20).type == "DATA" and view.row(20, 21).type == "EMPTY"
    assert view.row(21, 21).body == "3?0.61"


def test_neural_fact_breakpoints(view):
    s = DebugSession(view)
    s.add(Kind.OEU_WRONG)
    assert s.cont().position == view.position_of_step(WRONG_STEP)
    s.breakpoints.clear()
    s.first()
    s.add(Kind.CONFIDENCE, threshold=0.9)
    assert s.cont().position == DOUBTFUL  # the plan writes it
    assert s.cont().position == view.position_of_step(0)  # step 0 reads a[0]
    s.breakpoints.clear()
    s.add(Kind.HALT)
    s.first()
    assert s.cont().position == view.length - 1
    s.breakpoints.clear()
    s.first()
    s.add(Kind.WATCH, addr=25)  # r[0]: planned at plan step 25, written at step 2
    assert [s.cont().position for _ in range(2)] == [25, view.position_of_step(2)]
    s.breakpoints.clear()
    s.first()
    s.add(Kind.ADDRESS, addr=28)
    assert s.cont().position == view.position_of_step(2)
    assert s.reverse().reason == "start"


def test_pc_off_instructions_and_high_entropy(tmp_path):
    trace = make_trace(12, 34)
    ex = trace["exec"]
    ex["pc"][3] = torch.zeros_like(ex["pc"][3])
    ex["pc"][3, 21] = 1.0  # the PC lands on a[0], a DATA slot
    ex["pc"][6] = torch.full_like(ex["pc"][6], 1.0 / ex["pc"].shape[1])  # no idea where to go
    view = TraceView.open(save_trace(trace, tmp_path / "t.pt"))
    # step 6's argmax is slot 0 (REG): not an instruction either
    assert np.flatnonzero(view.pc_not_instruction()).tolist() == [view.position_of_step(3), view.position_of_step(6)]
    assert np.flatnonzero(view.high_entropy(3.0)).tolist() == [view.position_of_step(6)]


def test_disassembly_and_slot_line(view):
    lines = view.disassembly(view.position_of_step(0))
    assert lines[0].startswith("0000  REG    pc -> 0026")
    assert any(line.startswith("0026  INST   ADD [0020], [0021] -> [0023]") for line in lines)
    isa = view.isa
    jz = isa.decode(isa.encode(INST, (11, 20, None, 31)))
    assert slot_line(44, jz, lambda a: "JZ") == "0044  INST   JZ  [0020], -> 0031"


def test_plan_exact(view, tmp_path):
    assert view.plan_exact == 0
    trace = make_trace(5, 6)
    trace["plan"]["slot"][21] = trace["plan"]["target"][22]
    assert TraceView.open(save_trace(trace, tmp_path / "x.pt")).plan_exact == 1


# ---- headless twin, bad input, keys, series ----

def test_dump_text_and_json(view):
    text = dump(view, view.position_of_step(WRONG_STEP))
    assert "OEU  ADD(2, 5) = 10" in text and "WRONG" in text and "3?0.61" in text
    data = json.loads(dump(view, view.position_of_step(WRONG_STEP), as_json=True))
    assert data["oeu"]["right"] is False and data["attention"]["pc"]["top"][0][0] == 37


def test_cli_dump(trace_path, capsys):
    assert cli.main(["debug", str(trace_path), "--dump", "5"]) == 0
    assert "step 5/14" in capsys.readouterr().out
    assert cli.main(["debug", str(trace_path), "--dump", "99"]) == 2
    assert "past the run (1..14)" in capsys.readouterr().err
    assert cli.main(["debug", str(trace_path), "--dump", "0"]) == 2
    assert "disasm TRACE --step 0" in capsys.readouterr().err


def test_one_step_numbering_in_disasm_dump_and_debugger(trace_path, view, capsys):
    """Step k is the k-th execute cycle and its memory is memory after it, in all three;
    step 0 (memory before the first cycle) is disasm's alone."""
    t = view.n_exec
    memory = load_trace(trace_path)["exec"]["memory"]
    for k in (1, 4, t):
        assert cli.main(["disasm", str(trace_path), "--step", str(k), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert cli.main(["debug", str(trace_path), "--dump", str(k), "--json"]) == 0
        dumped = json.loads(capsys.readouterr().out)
        pos = DebugSession(view).parse_position(str(k))
        assert listed["step"] == dumped["step"] == view.step_number(pos) == k
        assert listed["steps"] == t and dumped["label"] == view.label(pos) == f"step {k}/{t}"
        assert torch.equal(view.memory_at(pos), memory[k])
        assert [r["type"].split("?")[0] for r in dumped["memory"]] == [s["type"] for s in listed["slots"]]
    assert cli.main(["disasm", str(trace_path), "--step", str(t + 1)]) == 2
    assert f"steps 0..{t}" in capsys.readouterr().err


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
    (lambda p: (p.write_bytes(b"not a zip at all"), p)[1], "not a trace file"),
    (lambda p: (torch.save({"schema": "other/9"}, p), p)[1], "trace schema 'other/9'"),
    (lambda p: (torch.save(torch.zeros(3), p), p)[1], "not a trace"),
    (lambda p: (torch.save({"x": pickle.loads(pickle.dumps(Path("/")))}, p), p)[1], "refused"),
])
def test_bad_files_are_one_line(tmp_path, capsys, make, message):
    path = make(tmp_path / "bad.pt")
    with pytest.raises(TraceError, match=message):
        TraceView.open(path)
    assert cli.main(["debug", str(path), "--dump", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_truncated_file(tmp_path, trace_path):
    data = trace_path.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError):
        TraceView.open(path)


def test_empty_store_missing_demo_and_no_terminal(tmp_path, capsys, monkeypatch, trace_path):
    (tmp_path / "empty").mkdir()
    assert cli.main(["debug", str(tmp_path / "empty")]) == 2
    assert "holds no traces" in capsys.readouterr().err
    import llamacpu.cli_debug as cli_debug

    monkeypatch.setattr(cli_debug, "DEMO", Path("no") / "such" / "demo.pt")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["debug"]) == 2
    assert "demo trace is missing" in capsys.readouterr().err
    assert cli.main(["debug", str(trace_path)]) == 2  # pytest's stdin is no terminal
    assert "needs a terminal" in capsys.readouterr().err


def test_keymap_file(tmp_path):
    known = {"step", "back"}
    good = tmp_path / "keys.toml"
    good.write_text('[keys]\nstep = "j, right"\n')
    assert load_keymap(good, known) == {"step": "j,right"}
    as_json = tmp_path / "keys.json"
    as_json.write_text('{"keys": {"back": "k"}}')
    assert load_keymap(as_json, known) == {"back": "k"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[keys]\nfly = "f"\n')
    with pytest.raises(KeysError, match="unknown binding ids fly"):
        load_keymap(bad, known)
    with pytest.raises(KeysError, match="no such key file"):
        load_keymap(tmp_path / "none.toml", known)


def test_training_series_from_store(tmp_path):
    store = write_store(tmp_path / "store")
    middle = store / "probe-p0-step000200.pt"
    view = TraceView.open(middle)
    series = series_for(middle, view.meta)
    assert [r.training_step for r in series.rows] == [100, 200, 300] and series.index == 1
    assert series.neighbour(1).current.path.name == "probe-p0-step000300.pt"
    assert series.neighbour(1).neighbour(1) is None
    assert series_for(store / "fail-step000300.pt", TraceView.open(store / "fail-step000300.pt").meta) is None


def test_plan_differs_condition_and_saved_breakpoints_round_trip():
    s = DebugSession(FakeFacts())
    bp = s.add(Kind.PLAN_DIFFERS)
    assert bp.describe() == "planned slot unlike the compiler's image"
    assert s.cont().position == 1
    s.add(Kind.WATCH, addr=25)
    s.add(Kind.CONFIDENCE, threshold=0.5).enabled = False
    again = [Breakpoint.from_dict(i + 1, b.to_dict()) for i, b in enumerate(s.breakpoints)]
    assert [b.to_dict() for b in again] == [b.to_dict() for b in s.breakpoints]
    for bad in ({"kind": "watch"}, {"kind": "nonsense"}, {"kind": "confidence", "threshold": "x"}):
        with pytest.raises((ValueError, KeyError)):
            Breakpoint.from_dict(1, bad)


def test_dump_marks_slots_unlike_the_compilers(tmp_path):
    trace = make_trace(12, 34)
    trace["plan"]["slot"][30] = trace["plan"]["slot"][31]  # carry[1] planned as a[1]
    view = TraceView.open(save_trace(trace, tmp_path / "plan.pt"))
    assert view.plan_exact == 1 and view.unlike_target == {30}
    data = json.loads(dump(view, view.position_of_step(0), as_json=True))
    assert [r["addr"] for r in data["memory"] if r["unlike_target"]] == [30]
    assert not any(r["unlike_target"] for r in json.loads(dump(view, 29, as_json=True))["memory"])
    line = next(l for l in dump(view, view.position_of_step(0)).splitlines() if " 0030 " in l)
    assert line.startswith("    ! 0030")
