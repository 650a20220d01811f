"""Figures of docs/embedding-language.md: cross-ISA accuracy, value arithmetic, code similarity.

Same conventions as :mod:`llamacpu.plots` (``Figure`` without pyplot, viridis, Okabe-Ito colours,
hatching as well as colour for the conditions, every axis labelled).
"""

from __future__ import annotations

from typing import Any

import torch
from matplotlib.figure import Figure

from llamacpu.plots import CMAP, RIGHT, WRONG

CONDITION_LABELS = {"a_on_a": "A on A", "a_on_b": "A's code on B", "translated": "translated on B",
                    "b_on_b": "B on B"}
CONDITION_STYLE = {"a_on_a": ("#999999", ""), "a_on_b": (WRONG, "//"), "translated": (RIGHT, ""),
                   "b_on_b": ("#CCCCCC", "..")}


def cross_isa_figure(rows: list[dict[str, Any]]) -> Figure:
    """Grouped bars: per pair of machines (and size), the accuracy of each condition.

    rows: ``{"label": str, "a_on_a": float, "a_on_b": float, "translated": float, "b_on_b": float
    | None}`` (accuracies 0..1)."""
    fig = Figure(figsize=(max(6.0, 1.05 * len(rows) + 2.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.2
    for k, name in enumerate(CONDITION_LABELS):
        xs = [i + (k - 1.5) * width for i in range(len(rows))]
        vals = [r.get(name) for r in rows]
        colour, hatch = CONDITION_STYLE[name]
        bars = ax.bar([x for x, v in zip(xs, vals) if v is not None], [100 * v for v in vals if v is not None],
                      width, label=CONDITION_LABELS[name], color=colour, hatch=hatch, edgecolor="black", linewidth=0.5)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], fontsize=7)
    ax.set_ylabel("free-running accuracy (%)")
    ax.set_ylim(0, 112)
    ax.set_title("Machine A's compiled code on machine B: as it is, and translated (disasm A -> asm B)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig


def sum_grids_figure(grids: list[tuple[str, torch.Tensor, int, int]]) -> Figure:
    """One panel per space: for each pair (a, b), the value nearest to ``e(a) - e(0) + e(b)``.

    grids: (title, predicted [C, C] long, hits, pairs). A cell is drawn in viridis by the value
    found (blank: a tie, -1); a dot marks a hit (the nearest is a + b), a cross a miss, so right
    and wrong do not rest on colour."""
    cols = min(4, len(grids))
    rows = -(-len(grids) // cols)
    fig = Figure(figsize=(3.4 * cols, 3.3 * rows + 0.4), layout="constrained")
    for k, (title, pred, hits, pairs) in enumerate(grids):
        ax = fig.add_subplot(rows, cols, k + 1)
        c = pred.shape[0]
        shown = torch.where(pred < 0, torch.nan, pred.float())  # a tie (-1) is left blank: no answer
        im = ax.imshow(shown.numpy(), origin="lower", cmap=CMAP, vmin=0, vmax=c - 1, interpolation="nearest")
        a, b = torch.meshgrid(torch.arange(c), torch.arange(c), indexing="ij")
        target = a + b
        valid = (target < c) & (a != b) & (a != target) & (b != target)
        hit = valid & (pred == target)
        miss = valid & ~hit
        ax.scatter(b[hit].numpy(), a[hit].numpy(), s=14, c="white", edgecolors="black", linewidths=0.6,
                   marker="o", label="nearest is a + b")
        ax.scatter(b[miss].numpy(), a[miss].numpy(), s=5, c="black", marker="x", linewidths=0.5,
                   label="nearest is not a + b (or a tie)")
        ties = int((pred[valid] < 0).sum())
        note = f", {ties} ties (blank)" if ties else ""
        ax.set_title(f"{title}\n{hits}/{pairs} pairs land on a + b{note}", fontsize=9)
        ax.set_xlabel("b")
        ax.set_ylabel("a")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="value nearest e(a) - e(0) + e(b)")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.suptitle("Is e(a) - e(0) + e(b) nearest (cosine) to e(a + b)? Pairs with a = b, a = 0 or b = 0 are not "
                 "counted (inputs are left out of the ranking)", fontsize=10)
    return fig


def cosine_figure(tables: list[tuple[str, torch.Tensor]]) -> Figure:
    """Cosine similarity between the encodings of the values 0..C-1, one panel per space.

    tables: (title, vectors [C, d]). A diverging map: similarities run -1..1."""
    cols = min(4, len(tables))
    rows = -(-len(tables) // cols)
    fig = Figure(figsize=(3.4 * cols, 3.0 * rows + 0.3), layout="constrained")
    fig.suptitle("Cosine similarity between the encodings of the values", fontsize=10)
    for k, (title, t) in enumerate(tables):
        ax = fig.add_subplot(rows, cols, k + 1)
        t = t.float()
        unit = t / t.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        im = ax.imshow((unit @ unit.T).numpy(), origin="lower", cmap="RdBu_r", vmin=-1, vmax=1,
                       interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("value")
        ax.set_ylabel("value")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="cosine similarity")
    return fig
