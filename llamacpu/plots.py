"""Figures with matplotlib: a trace at a glance, and a run's learning curves.

Built on ``matplotlib.figure.Figure`` (no pyplot state). Probabilities use viridis, perceptually
uniform and colour-blind safe; right and wrong are told apart by marker shape as well as colour.
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


class PlotError(LlamaCPUError):
    """Nothing to plot: a run without metrics, a metrics file without numbers."""


def _heatmap(fig: Figure, ax: Axes, data: torch.Tensor, title: str, xlabel: str, ylabel: str,
             steps: bool = False) -> None:
    """data: [rows, columns] probabilities, drawn rows on y. ``steps``: the columns are execute
    steps, numbered 1..T as everywhere else (column t is step t + 1)."""
    rows, cols = data.shape
    extent = (0.5, cols + 0.5, -0.5, rows - 0.5) if steps else None
    im = ax.imshow(data.float().numpy(), aspect="auto", origin="lower", cmap=CMAP, vmin=0.0, vmax=1.0,
                   interpolation="nearest", extent=extent)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="probability")


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
    _heatmap(fig, ax, ex["pc"].T, "PC distribution (controller's choice of instruction)", "execute step", "address",
             steps=True)
    known = ex["pc_target"] >= 0
    if bool(known.any()):
        steps = torch.arange(1, t + 1)[known]
        ax.scatter(steps.numpy(), ex["pc_target"][known].numpy(), s=14, marker="x", color="white",
                   linewidths=1.0, label="target PC")
        ax.legend(loc="upper left", fontsize=8, framealpha=0.6)

    ax = fig.add_subplot(grid[0, 1])
    attn = trace["plan"].get("prompt_attn")
    if attn is None or attn.shape[1] == 0:
        ax.text(0.5, 0.5, "no plan phase (program assembled by hand)", ha="center", va="center")
        ax.set_axis_off()
    else:
        _heatmap(fig, ax, attn, "plan: each slot's attention over the prompt", "prompt token", "slot address")
        pieces = trace["prompt_pieces"]
        ax.set_xticks(range(len(pieces)), [p.replace(" ", "\u2423") for p in pieces], fontsize=8)

    for k, name in enumerate(names):
        ax = fig.add_subplot(grid[1 + k // 2, k % 2])
        _heatmap(fig, ax, ex["ptr_attn"][:, k].T, f"pointer '{name}': attention over addresses",
                 "execute step", "address", steps=True)

    ax = fig.add_subplot(grid[3, :])
    _oeu_strip(ax, ex, t)
    return fig


def _oeu_strip(ax: Axes, ex: dict[str, Any], t: int) -> None:
    out = ex["oeu_out"].float().argmax(-1)
    expected = ex["oeu_expected"]
    known = expected >= 0
    right = (out == expected) & known
    wrong = (out != expected) & known
    steps = torch.arange(1, t + 1)  # step numbers
    ax.scatter(steps[right].numpy(), [1] * int(right.sum()), marker="o", color=RIGHT, s=30,
               label=f"OEU right ({int(right.sum())})")
    ax.scatter(steps[wrong].numpy(), [1] * int(wrong.sum()), marker="X", color=WRONG, s=60,
               label=f"OEU wrong ({int(wrong.sum())})")
    ax.plot(steps.numpy(), ex["halt"].float().numpy() * 0.8, color="0.3", lw=1, label="halt probability (x0.8)")
    ax.plot(steps.numpy(), ex["write_gate"].float().numpy() * 0.8, color="0.6", lw=1, ls="--",
            label="write gate (x0.8)")
    ax.set_ylim(-0.1, 1.3)
    ax.set_yticks([])
    ax.set_xlim(0.5, max(t, 1) + 0.5)
    ax.set_xlabel("execute step")
    ax.set_title("OEU result vs. the ISA's result on what it read, per step", fontsize=10)
    ax.legend(loc="upper right", fontsize=8, ncol=4)


def save_trace_plot(trace: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    trace_figure(trace).savefig(path, dpi=90)
    return path


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


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def run_figure(records: list[dict[str, Any]], title: str) -> Figure:
    """Each loss over training steps (log scale), and accuracy by stage and problem size."""
    x_key = next((k for k in ("step", "training_step", "global_step") if any(k in r for r in records)), None)
    losses: dict[str, list[tuple[float, float]]] = defaultdict(list)
    accs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    stage_starts: dict[int, float] = {}
    seen_stages: set[int] = set()
    for i, r in enumerate(records):
        x = _number(r.get(x_key)) if x_key else float(i)
        stage = r.get("stage")
        if isinstance(stage, int):
            seen_stages.add(stage)
            if r.get("event") == "stage_end" and _number(r.get("at_step")) is not None:
                stage_starts[stage + 1] = float(r["at_step"])  # where the next stage began
                continue
            if x is not None and stage not in stage_starts:
                stage_starts[stage] = 0.0 if stage == 1 else x
        if x is None:
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
    stage_starts = {k: v for k, v in stage_starts.items() if k in seen_stages}
    if not losses and not accs:
        raise PlotError("metrics.jsonl holds no loss or accuracy figures to plot")
    fig = Figure(figsize=(13, 9), layout="constrained")
    fig.suptitle(title, fontsize=12)
    for ax, series, ylabel, log in ((fig.add_subplot(2, 1, 1), losses, "loss (nats)", True),
                                    (fig.add_subplot(2, 1, 2), accs, "accuracy", False)):
        for label, points in sorted(series.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, lw=1.2,
                    marker="o" if len(points) < 30 else None, ms=3)
        for stage, x in sorted(stage_starts.items()):
            ax.axvline(x, color="0.7", lw=0.8, ls=":")
            ax.annotate(f"stage {stage}", (x, 1), xycoords=("data", "axes fraction"), fontsize=8,
                        color="0.4", va="top", rotation=90)
        if log and series and all(p[1] > 0 for s in series.values() for p in s):
            ax.set_yscale("log")
        if not log:
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(x_key or "record")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=8, ncol=3, loc="best")
        else:
            ax.text(0.5, 0.5, f"no {ylabel} figures in metrics.jsonl", ha="center", transform=ax.transAxes)
    return fig


def save_run_plot(run_dir: str | Path, path: str | Path) -> tuple[Path, int]:
    """Learning curves of a run -> PNG; returns the path and the number of unreadable lines."""
    records, bad = read_metrics(run_dir)
    path = Path(path)
    run_figure(records, f"run {Path(run_dir).resolve().name}: learning curves").savefig(path, dpi=90)
    return path, bad
