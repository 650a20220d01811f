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
    assert cli.main(["plot", str(path), "-o", str(tmp_path / "c.txt")]) == 2
    assert ".png, .svg, .pdf" in capsys.readouterr().err


def test_plot_writes_svg_and_pdf_beside_png(trace, tmp_path):
    path = save_trace(trace, tmp_path / "t.pt")
    _metrics(tmp_path / "run")
    for target, name in ((path, "trace"), (tmp_path / "run", "curves")):
        assert cli.main(["plot", str(target), "-o", str(tmp_path / f"{name}.svg")]) == 0
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<?xml")
        assert cli.main(["plot", str(target), "-o", str(tmp_path / f"{name}.pdf")]) == 0
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_plan_attention_is_coloured_to_its_own_range(trace):
    fig = trace_figure(trace)
    ax = next(a for a in fig.axes if a.get_title().startswith("plan:"))
    peak = float(trace["plan"]["prompt_attn"].float().max())
    assert peak < 0.9  # spread over the prompt: on a 0-1 scale it would look uniformly dark
    assert ax.images[0].get_clim() == pytest.approx((0.0, peak), rel=1e-3)
    assert any("scale 0-" in a.get_ylabel() for a in fig.axes)  # its colour bar says so


def test_oeu_strip_has_a_y_axis_and_a_legend_off_the_markers(trace):
    fig = trace_figure(trace)
    renderer = _drawn(fig)
    ax = next(a for a in fig.axes if a.get_title().startswith("OEU"))
    assert ax.get_ylabel() == "probability"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.5", "1", "OEU"]
    legend = ax.get_legend()
    assert not _overlaps(legend.get_window_extent(renderer), ax.get_window_extent(renderer))


def test_learning_curves_are_smoothed_told_apart_and_their_legends_cover_nothing(tmp_path):
    from llamacpu.plots import read_metrics, run_figure

    _metrics(tmp_path / "run")
    records, _ = read_metrics(tmp_path / "run")
    fig = run_figure(records, "curves")
    renderer = _drawn(fig)
    losses, accuracy = fig.axes[:2]
    named = [line for line in losses.get_lines() if not line.get_label().startswith("_")]
    assert {line.get_label() for line in named} == {"loss/plan", "loss/pc", "loss_total"}
    assert len([line for line in losses.get_lines() if line.get_alpha() == 0.25]) == len(named)  # raw, faint
    assert len({(line.get_color(), line.get_linestyle()) for line in named}) == len(named)
    for ax in (losses, accuracy):
        legend = ax.get_legend().get_window_extent(renderer)
        assert not _overlaps(legend, ax.get_window_extent(renderer))
        for text in ax.texts:  # the stage labels
            assert text.get_text().startswith("stage") and not _overlaps(legend, text.get_window_extent(renderer))


def test_smoothing_follows_the_trend_and_keeps_the_ends():
    from llamacpu.plots import smooth

    noisy = [1.0, 100.0, 1.0, 100.0, 1.0, 100.0, 1.0]
    out = smooth(noisy, 3)
    assert len(out) == len(noisy) and max(out) < 50 and min(out) > 2
    assert smooth([0.0, 1.0, 0.0], 3) == pytest.approx([0.5, 1 / 3, 0.5])  # zeros: averaged plainly
    assert smooth([3.0, 4.0], 5) == [3.0, 4.0]


def test_quick_checks_are_drawn_as_the_share_of_problems_not_failed():
    """The trainer's quick checks (every 25 steps, the stage's size only) are most of a run's
    accuracy readings: each is drawn at 1 - failed / evaluated, in its size's colour, on the
    same step axis as the losses."""
    from llamacpu.plots import run_figure

    records = [{"event": "train", "step": s, "stage": 2, "loss_total": 1.0 / s} for s in (10, 20, 30, 40, 50)]
    records += [{"event": "quick_check", "step": 25, "stage": 2, "digits": 2, "evaluated": 50, "failed": 32,
                 "passed": False},
                {"event": "quick_check", "step": 50, "stage": 2, "digits": 2, "evaluated": 200, "failed": 0,
                 "passed": True},
                {"event": "check", "step": 50, "stage": 2, "digits": 2, "accuracy": 1.0, "plan_exact": 0.985},
                {"event": "quick_check", "step": 30, "stage": 2, "digits": 2, "evaluated": 0, "failed": 0}]
    fig = run_figure(records, "curves")
    losses, accuracy = fig.axes[:2]
    lines = {line.get_label(): line for line in accuracy.get_lines()}
    quick = lines["quick check, 2 digits"]
    assert list(quick.get_xdata()) == [25.0, 50.0]  # the check of nothing is left out
    assert list(quick.get_ydata()) == pytest.approx([0.36, 1.0])
    assert quick.get_marker() == "x" and quick.get_linestyle() == ":"
    assert quick.get_color() == lines["accuracy, 2 digits"].get_color()
    assert accuracy.get_shared_x_axes().joined(accuracy, losses)
