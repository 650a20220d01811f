"""Figures: a trace's panels and a run's learning curves are written as PNGs."""

from __future__ import annotations

import json

import pytest
from matplotlib.image import imread

from llamacpu import cli
from llamacpu.checkpoint import RunConfig, build_machine
from llamacpu.evaluate import free_run
from llamacpu.plots import PlotError, save_run_plot, save_trace_plot, trace_figure
from llamacpu.tasks import AdditionTask
from llamacpu.trace import save_trace, trace_from_run


@pytest.fixture(scope="module")
def trace():
    machine = build_machine(RunConfig())
    run = free_run(machine, [AdditionTask().compile(47, 85, machine.isa)], record=True)
    return trace_from_run(machine, run, 0, training_step=300, run="r", stage=2)


def test_trace_figure_has_every_panel(trace, tmp_path):
    fig = trace_figure(trace)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("PC distribution") for t in titles)
    assert any("prompt" in t for t in titles)
    for name in ("op", "src1", "src2", "dst"):
        assert any(f"'{name}'" in t for t in titles)
    assert any(t.startswith("OEU") for t in titles)
    for ax in fig.axes:
        if ax.get_title():
            assert ax.get_xlabel(), ax.get_title()
    path = save_trace_plot(trace, tmp_path / "t.png")
    assert imread(path).shape[0] > 800


def _metrics(run_dir):
    run_dir.mkdir()
    lines = []
    for step in range(0, 200, 10):
        lines.append({"step": step, "stage": 1 + step // 100, "loss": {"plan": 2.0 / (step + 1), "pc": 1.0 / (step + 2)},
                      "loss_total": 3.0 / (step + 1)})
        if step % 50 == 0:
            lines.append({"step": step, "stage": 1 + step // 100, "digits": 1, "accuracy": step / 200})
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(l) for l in lines) + "\nnot json\n")


def test_run_plot(tmp_path):
    _metrics(tmp_path / "run")
    path, bad = save_run_plot(tmp_path / "run", tmp_path / "curves.png")
    assert bad == 1 and imread(path).shape[1] > 800


def test_run_plot_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlotError, match="no metrics.jsonl"):
        save_run_plot(tmp_path / "empty", tmp_path / "x.png")
    (tmp_path / "empty" / "metrics.jsonl").write_text('{"note": "hi"}\n')
    with pytest.raises(PlotError, match="no loss or accuracy"):
        save_run_plot(tmp_path / "empty", tmp_path / "x.png")


def test_plot_command(trace, tmp_path, capsys):
    path = save_trace(trace, tmp_path / "t.pt")
    assert cli.main(["plot", str(path), "-o", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 10_000
    _metrics(tmp_path / "run")
    assert cli.main(["plot", str(tmp_path / "run"), "-o", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").is_file()
    assert cli.main(["plot", str(tmp_path), "-o", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("no metrics.jsonl (has this run trained yet?)")
    assert cli.main(["plot", str(path), "-o", str(tmp_path / "c.svg")]) == 2
