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


def test_a_chain_of_runs_counts_its_steps_on_from_each_runs_weights(tmp_path):
    """Runs that each went on from the one before: the second's steps follow the step of the
    first's latest checkpoint (the weights it started from), not its last logged step, and a
    third without a ``latest`` is counted on from the second's last logged step."""
    from llamacpu.plots import chain_records

    first, second, third = tmp_path / "s1", tmp_path / "s2", tmp_path / "s3"
    _metrics(first)
    (first / "latest").write_text("ckpt-0000195\n")  # logged to 190, checkpointed at 195
    second.mkdir()
    (second / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"event": "train", "step": 10, "stage": 3, "loss_total": 0.5},
        {"event": "stage_end", "stage": 3, "passed": True, "accuracy": 1.0, "at_step": 25},
        {"event": "check", "step": 40, "stage": 4, "digits": 4, "accuracy": 0.5}]) + "\n")
    third.mkdir()
    (third / "metrics.jsonl").write_text(json.dumps({"event": "check", "step": 5, "stage": 4, "digits": 4,
                                                     "accuracy": 1.0}) + "\n")
    records, starts, bad = chain_records([first, second, third])
    assert bad == 1
    assert starts == [(0.0, "s1"), (195.0, "s2"), (235.0, "s3")]
    assert [r["step"] for r in records if r.get("digits") == 4] == [235.0, 240.0]
    assert [r["at_step"] for r in records if r.get("event") == "stage_end"] == [220.0]


def test_plot_command_draws_a_chain_and_refuses_a_trace_in_one(trace, tmp_path, capsys):
    _metrics(tmp_path / "s1")
    _metrics(tmp_path / "s2")
    out = tmp_path / "chain.png"
    assert cli.main(["plot", str(tmp_path / "s1"), str(tmp_path / "s2"), "-o", str(out)]) == 0
    assert imread(out).shape[1] > 800
    assert "skipped 2 unreadable lines" in capsys.readouterr().out
    path = save_trace(trace, tmp_path / "t.pt")
    assert cli.main(["plot", str(tmp_path / "s1"), str(path), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{path}: not a run folder (several targets are a chain of runs)")


def test_a_chain_marks_every_start_of_a_stage_and_every_run(tmp_path):
    """A run continued from stage 2's weights but begun at stage 1 again (no start_stage): the
    chain's figure marks stage 1 twice, stage 2 twice, and the second run by its name."""
    from llamacpu.plots import chain_records, run_figure

    _metrics(tmp_path / "s1")  # stage 1 to step 90, stage 2 from 100
    _metrics(tmp_path / "s2")
    records, starts, _ = chain_records([tmp_path / "s1", tmp_path / "s2"])
    fig = run_figure(records, "chain", runs=starts)
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert texts.count("stage 1") == 2 and texts.count("stage 2") == 2 and texts.count("s2") == 1
    single = run_figure(chain_records([tmp_path / "s1"])[0], "one run")
    assert sorted(t.get_text() for t in single.axes[1].texts) == ["stage 1", "stage 2"]
