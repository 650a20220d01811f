"""Figures with matplotlib: a trace at a glance, and a run's learning curves.

Built on ``matplotlib.figure.Figure`` (no pyplot state). Probabilities use viridis, perceptually
uniform and colour-blind safe; right and wrong are told apart by marker shape as well as colour.
Each figure is meant to be read by someone who has not read this code: every axis is labelled,
a colour scale that does not run 0-1 says so, legends sit beside the axes rather than on the
data, and noisy series are drawn smoothed over their raw values. ``FORMATS`` are the files the
``plot`` command writes (by the output's suffix).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llamacpu.errors import LlamaCPUError

CMAP = "viridis"
RIGHT, WRONG = "#0072B2", "#D55E00"  # Okabe-Ito blue and vermillion
FORMATS = (".png", ".svg", ".pdf")
STYLES = ("-", "--", "-.", ":")  # with colour, so that no two series look alike in grey either


class PlotError(LlamaCPUError):
    """Nothing to plot: a run without metrics, a metrics file without numbers."""


def _heatmap(fig: Figure, ax: Axes, data: torch.Tensor, title: str, xlabel: str, ylabel: str,
             steps: bool = False, scale_to_data: bool = False) -> None:
    """data: [rows, columns] probabilities, drawn rows on y. ``steps``: the columns are execute
    steps, numbered 1..T as everywhere else (column t is step t + 1). ``scale_to_data``: the
    colour scale runs from 0 to the data's maximum instead of 1 (attention spread over a prompt
    peaks far below 1 and would look uniformly dark), and the colour bar says so."""
    rows, cols = data.shape
    extent = (0.5, cols + 0.5, -0.5, rows - 0.5) if steps else None
    values = data.float()
    vmax = max(float(values.max()), 1e-6) if scale_to_data and values.numel() else 1.0
    im = ax.imshow(values.numpy(), aspect="auto", origin="lower", cmap=CMAP, vmin=0.0, vmax=vmax,
                   interpolation="nearest", extent=extent)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    label = "probability" if vmax == 1.0 else f"probability (scale 0-{vmax:.2f}, the largest value)"
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label=label)


def trace_figure(trace: dict[str, Any]) -> Figure:
    """Pointer attention (addresses x steps) per pointer, the PC distribution with its target,
    OEU right or wrong per step, and the plan's prompt attention."""
    meta, ex = trace["meta"], trace["exec"]
    names = trace["isa"]["pointer_names"]
    t = int(meta["steps"])
    fig = Figure(figsize=(15, 15), layout="constrained")
    grid = fig.add_gridspec(4, 2, height_ratios=[1.1, 1, 1, 0.45])
    verdict = "right" if meta["correct"] else "wrong"
    halted = "halted" if meta["halted"] else "did not halt"
    title = (f"{meta['prompt'] or meta['mode']}: produced {meta['produced']}, expected {meta['expected']} "
             f"({verdict}, {halted} after {t} steps)")
    if meta.get("training_step") is not None:
        stage = f", stage {meta['stage']}" if meta.get("stage") is not None else ""
        title += f"  |  run {meta.get('run')}{stage}, training step {meta['training_step']}"
    fig.suptitle(title, fontsize=12)

    ax = fig.add_subplot(grid[0, 0])
    known = ex["pc_target"] >= 0
    marked = " (white x: the compiler's PC)" if bool(known.any()) else ""
    _heatmap(fig, ax, ex["pc"].T, f"PC distribution, the controller's choice of instruction{marked}", "execute step",
             "address", steps=True)
    if marked:  # named in the title: a legend box would sit on the data
        steps = torch.arange(1, t + 1)[known]
        ax.scatter(steps.numpy(), ex["pc_target"][known].numpy(), s=14, marker="x", color="white", linewidths=1.0)

    ax = fig.add_subplot(grid[0, 1])
    attn = trace["plan"].get("prompt_attn")
    if attn is None or attn.shape[1] == 0:
        ax.text(0.5, 0.5, "no plan phase (program assembled by hand)", ha="center", va="center")
        ax.set_axis_off()
    else:
        _heatmap(fig, ax, attn, "plan: each slot's attention over the prompt", "prompt token", "slot address",
                 scale_to_data=True)
        pieces = trace["prompt_pieces"]
        ax.set_xticks(range(len(pieces)), [p.replace(" ", "\u2423") for p in pieces], fontsize=8)

    for k, name in enumerate(names):
        ax = fig.add_subplot(grid[1 + k // 2, k % 2])
        _heatmap(fig, ax, ex["ptr_attn"][:, k].T, f"pointer '{name}': attention over addresses",
                 "execute step", "address", steps=True)

    ax = fig.add_subplot(grid[3, :])
    _oeu_strip(ax, ex, t)
    return fig


OEU_ROW = 1.25  # where the right / wrong markers sit, above the 0-1 probability scale


def _oeu_strip(ax: Axes, ex: dict[str, Any], t: int) -> None:
    """Per step: the OEU right or wrong (a row of markers above), halt probability and write gate
    (lines on a 0-1 scale); the legend beside the axes."""
    out = ex["oeu_out"].float().argmax(-1)
    expected = ex["oeu_expected"]
    known = expected >= 0
    right = (out == expected) & known
    wrong = (out != expected) & known
    steps = torch.arange(1, t + 1)  # step numbers
    ax.scatter(steps[right].numpy(), [OEU_ROW] * int(right.sum()), marker="o", color=RIGHT, s=30,
               label=f"OEU right ({int(right.sum())})")
    ax.scatter(steps[wrong].numpy(), [OEU_ROW] * int(wrong.sum()), marker="X", color=WRONG, s=60,
               label=f"OEU wrong ({int(wrong.sum())})")
    ax.plot(steps.numpy(), ex["halt"].float().numpy(), color="0.2", lw=1.2, label="halt probability")
    ax.plot(steps.numpy(), ex["write_gate"].float().numpy(), color="0.55", lw=1.2, ls="--", label="write gate")
    ax.axhline(0.5, color="0.8", lw=0.6, ls=":")
    ax.set_ylim(-0.05, OEU_ROW + 0.2)
    ax.set_yticks([0, 0.5, 1, OEU_ROW], ["0", "0.5", "1", "OEU"])
    ax.set_ylabel("probability")
    ax.set_xlim(0.5, max(t, 1) + 0.5)
    ax.set_xlabel("execute step")
    ax.set_title("OEU result vs. the ISA's result on what it read (top row), halt and write gate, per step",
                 fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.4), fontsize=8, ncol=4, frameon=False)


def save_trace_plot(trace: dict[str, Any], path: str | Path) -> Path:
    """The trace figure as PNG, SVG or PDF (by the suffix)."""
    path = Path(path)
    trace_figure(trace).savefig(path, dpi=90)
    return path


def smooth(values: list[float], window: int) -> list[float]:
    """Centred moving average over ``window`` points (fewer at the ends): the trend of a noisy
    series. A loss on a log scale is averaged in log space, so one spike does not lift it."""
    if window <= 1 or len(values) < 3:
        return list(values)
    logs = [math.log(v) if v > 0 else None for v in values]
    use_log = all(v is not None for v in logs)
    xs = logs if use_log else values
    half = window // 2
    out = []
    for i in range(len(xs)):
        chunk = xs[max(0, i - half): i + half + 1]
        mean = sum(chunk) / len(chunk)
        out.append(math.exp(mean) if use_log else mean)
    return out


def read_metrics(run_dir: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The records of ``run_dir/metrics.jsonl`` (flattened one level) and how many lines were unreadable."""
    path = Path(run_dir) / "metrics.jsonl"
    if not Path(run_dir).is_dir():
        raise PlotError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise PlotError(f"{run_dir}: no metrics.jsonl (has this run trained yet?)")
    records, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(rec, dict):
            bad += 1
            continue
        flat: dict[str, Any] = {}
        for k, v in rec.items():
            if isinstance(v, dict):
                flat.update({f"{k}/{kk}": vv for kk, vv in v.items()})
            else:
                flat[k] = v
        records.append(flat)
    return records, bad


def _continued_from(run_dir: Path, records: list[dict[str, Any]]) -> float:
    """The step a run's successor began from: its ``latest`` checkpoint's step (the weights
    ``--set init_from`` takes), else the last step its metrics name."""
    latest = run_dir / "latest"
    if latest.is_file():
        name = latest.read_text().strip()
        digits = name.rsplit("-", 1)[-1]
        if digits.isdigit():
            return float(digits)
    steps = [x for r in records for x in (_number(r.get("step")), _number(r.get("at_step"))) if x is not None]
    return max(steps, default=0.0)


def chain_records(run_dirs: list[str | Path]) -> tuple[list[dict[str, Any]], list[tuple[float, str]], int]:
    """The records of runs that each went on from the one before (``--set init_from``, as one
    session's run goes on in the next), their steps counted on from it: each run's steps plus
    the step its predecessor's weights were taken at. Returns the records, where each run began
    ((step, folder name)) and how many lines were unreadable."""
    out: list[dict[str, Any]] = []
    starts: list[tuple[float, str]] = []
    offset, bad = 0.0, 0
    for run_dir in run_dirs:
        records, b = read_metrics(run_dir)
        bad += b
        starts.append((offset, Path(run_dir).resolve().name))
        for r in records:
            r = dict(r)
            for k in ("step", "at_step"):
                if _number(r.get(k)) is not None:
                    r[k] = r[k] + offset
            out.append(r)
        offset += _continued_from(Path(run_dir), records)
    return out, starts, bad


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _quick_check_accuracy(record: dict[str, Any]) -> float | None:
    """A ``quick_check`` event's accuracy: the share of its held-out problems not failed."""
    if record.get("event") != "quick_check" or not isinstance(record.get("digits"), int):
        return None
    evaluated, failed = _number(record.get("evaluated")), _number(record.get("failed"))
    if not evaluated or failed is None:
        return None
    return 1.0 - failed / evaluated


def run_figure(records: list[dict[str, Any]], title: str, runs: list[tuple[float, str]] | None = None) -> Figure:
    """Each loss over training steps (log scale), and accuracy by stage and problem size; with
    ``runs`` (a chain's (first step, name) pairs, :func:`chain_records`) a line where each run began."""
    x_key = next((k for k in ("step", "training_step", "global_step") if any(k in r for r in records)), None)
    losses: dict[str, list[tuple[float, float]]] = defaultdict(list)
    accs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    stage_starts: list[tuple[int, float]] = []  # every start of a stage: a chain of runs may begin one again
    seen_stages: set[int] = set()
    current: int | None = None
    for i, r in enumerate(records):
        x = _number(r.get(x_key)) if x_key else float(i)
        stage = r.get("stage")
        if isinstance(stage, int):
            seen_stages.add(stage)
            if r.get("event") == "stage_end" and _number(r.get("at_step")) is not None:
                current = stage + 1
                stage_starts.append((current, float(r["at_step"])))  # where the next stage began
                continue
            if x is not None and stage != current:
                current = stage
                stage_starts.append((stage, 0.0 if stage == 1 and not stage_starts else x))
        if x is None:
            continue
        quick = _quick_check_accuracy(r)
        if quick is not None:  # the trainer's frequent check of the current size alone
            accs[f"quick check, {r['digits']} digit{'' if r['digits'] == 1 else 's'}"].append((x, quick))
            continue
        for k, v in r.items():
            y = _number(v)
            if y is None:
                continue
            if "loss" in k.lower():
                losses[k].append((x, y))
            elif "acc" in k.lower() or k.lower() in ("plan_exact", "from_target"):
                label = k if "digits" not in r else f"{k}, {r['digits']} digit{'' if r['digits'] == 1 else 's'}"
                accs[label].append((x, y))
    stage_starts = sorted({(k, v) for k, v in stage_starts if k in seen_stages}, key=lambda kv: (kv[1], kv[0]))
    if not losses and not accs:
        raise PlotError("metrics.jsonl holds no loss or accuracy figures to plot")
    fig = Figure(figsize=(14, 10), layout="constrained")
    fig.suptitle(title, fontsize=12)
    loss_ax = fig.add_subplot(2, 1, 1)
    panels = (
        (loss_ax, losses, "loss (nats, log scale)", True,
         "every loss the trainer logs: faint, each logged value; solid, a moving average"),
        (fig.add_subplot(2, 1, 2, sharex=loss_ax), accs, "accuracy (0-1)", False,
         "held-out free-running checks: solid, exact answers; dashed, plans equal to the compiler's image; "
         "dotted with crosses, the quick checks of the stage's size"),
    )
    for ax, series, ylabel, log, what in panels:
        _draw_series(ax, series, smoothed=log)
        if log and series and all(p[1] > 0 for s in series.values() for p in s):
            ax.set_yscale("log")
        if not log:
            ax.set_ylim(-0.02, 1.02)
        span = max((x for _, x in stage_starts), default=0.0) - min((x for _, x in stage_starts), default=0.0)
        row, last = 0, None
        for stage, x in stage_starts:  # labelled above the axes: no legend covers them
            row = row + 1 if last is not None and x - last < 0.04 * span else 0  # near ones stacked
            last = x
            ax.axvline(x, color="0.6", lw=0.8, ls=":")
            ax.annotate(f"stage {stage}", (x, 1.0), xycoords=("data", "axes fraction"), xytext=(2, 2 + 9 * (row % 3)),
                        textcoords="offset points", fontsize=8, color="0.3", va="bottom", ha="left")
        for x, name in (runs or [])[1:]:  # a chain's later runs, named inside the axes at the bottom
            ax.axvline(x, color="#CC79A7", lw=1.0, ls="-", alpha=0.7)
            ax.annotate(name, (x, 0.0), xycoords=("data", "axes fraction"), xytext=(2, 3), rotation=90,
                        textcoords="offset points", fontsize=7, color="#CC79A7", va="bottom", ha="left")
        ax.set_title(what, fontsize=9, color="0.3", loc="left", pad=32 if runs else 14)
        ax.set_xlabel(x_key or "record")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        else:
            ax.text(0.5, 0.5, f"no {ylabel} figures in metrics.jsonl", ha="center", transform=ax.transAxes)
    return fig


def _draw_series(ax: Axes, series: dict[str, list[tuple[float, float]]], smoothed: bool) -> None:
    """One line per series, each its own colour and dash. Losses (``smoothed``): the raw values
    faint, a moving average over about a thirtieth of the points solid; the total loss thicker.
    Accuracies: one colour per problem size, solid for accuracy and dashed for plan exact."""
    import matplotlib

    names = sorted(series)
    sizes = sorted({n.rsplit(", ", 1)[1] for n in names if ", " in n})
    size_colours = matplotlib.colormaps["viridis"].resampled(max(len(sizes), 2))
    tab = matplotlib.colormaps["tab10"]
    for i, name in enumerate(names):
        points = sorted(series[name])
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if smoothed:
            colour, style = tab(i % 10), STYLES[(i // 10 + i) % len(STYLES)]
            width = 2.4 if name.endswith("total") else 1.4
            ax.plot(xs, ys, color=colour, lw=0.6, alpha=0.25)
            ax.plot(xs, smooth(ys, max(1, len(ys) // 30)), color=colour, lw=width, ls=style, label=name)
        else:
            size = name.rsplit(", ", 1)[1] if ", " in name else None
            colour = size_colours(sizes.index(size) / max(len(sizes) - 1, 1) * 0.85) if size else tab(i % 10)
            style = "--" if name.startswith("plan_exact") else ("-" if name.startswith("accuracy") else ":")
            marker = "x" if name.startswith("quick check") else "o"
            ax.plot(xs, ys, color=colour, lw=1.5, ls=style, marker=marker if len(points) < 30 else None, ms=3,
                    label=name)


def save_run_plot(run_dir: str | Path, path: str | Path) -> tuple[Path, int]:
    """Learning curves of a run -> PNG, SVG or PDF (by the suffix); returns the path and the
    number of unreadable lines."""
    records, bad = read_metrics(run_dir)
    path = Path(path)
    run_figure(records, f"run {Path(run_dir).resolve().name}: learning curves").savefig(path, dpi=90)
    return path, bad


def save_chain_plot(run_dirs: list[str | Path], path: str | Path) -> tuple[Path, int]:
    """Learning curves of runs that each went on from the one before (:func:`chain_records`) as
    one curve over all their steps -> PNG, SVG or PDF; returns the path and the unreadable lines."""
    records, starts, bad = chain_records(run_dirs)
    path = Path(path)
    names = [name for _, name in starts]
    title = f"runs {names[0]} to {names[-1]}, each from the one before: learning curves over {len(names)} runs"
    run_figure(records, title, runs=starts).savefig(path, dpi=90)
    return path, bad
