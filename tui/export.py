"""Export what the debugger shows: heatmaps as PNG (matplotlib), the disassembly as text.

The SVG screenshot is Textual's own (``App.save_screenshot``).
"""

from __future__ import annotations

from pathlib import Path

from tui.model import DISTRIBUTIONS, TraceView

MAX_STEPS = 400  # the addresses x steps figure shows this many steps around the position


def export_text(view: TraceView, pos: int, path: Path) -> Path:
    header = [f"; {view.title}", f"; {view.label(pos)}"]
    path.write_text("\n".join(header + view.disassembly(pos)) + "\n")
    return path


def export_png(view: TraceView, pos: int, path: Path, cmap: str = "viridis") -> Path:
    """This step's attention over addresses, and the PC over addresses x steps (cmap: viridis or
    cividis, as the heatmap pane shows them)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    phase, i = view.phase(pos)
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), constrained_layout=True)
    if phase == "exec":
        dists = view.distributions(pos)
        im = axes[0].imshow(dists, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[0].set_yticks(range(len(DISTRIBUTIONS)), DISTRIBUTIONS)
        axes[0].set_xlabel("address")
        axes[0].set_title(f"pointer attention at {view.label(pos)}")
        fig.colorbar(im, ax=axes[0], label="probability")
    else:
        attn = view.trace["plan"].get("prompt_attn")
        if attn is not None:
            vmax = max(float(attn.float().max()), 1e-6) if attn.numel() else 1.0  # it peaks far below 1
            im = axes[0].imshow(attn.float().numpy(), aspect="auto", cmap=cmap, vmin=0, vmax=vmax,
                                interpolation="nearest")
            axes[0].set_xticks(range(len(view.prompt_pieces)), view.prompt_pieces)
            axes[0].axhline(i, color="white", lw=0.8)
            fig.colorbar(im, ax=axes[0], label=f"attention (scale 0-{vmax:.2f}, the largest value)")
        axes[0].set_title(f"plan: prompt attention per planned slot ({view.label(pos)})")
        axes[0].set_ylabel("plan step")
    if view.n_exec:
        t = i if phase == "exec" else 0
        lo = max(min(t - MAX_STEPS // 2, view.n_exec - MAX_STEPS), 0)
        hi = min(lo + MAX_STEPS, view.n_exec)
        block = view.steps_view(0, range(lo, hi), range(0, view.window))
        im = axes[1].imshow(block, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest",
                            extent=(lo + 0.5, hi + 0.5, view.window - 0.5, -0.5))  # step numbers 1..T
        if phase == "exec":
            axes[1].axvline(t + 1, color="white", lw=0.8)
        left_out = view.n_exec - (hi - lo)
        axes[1].set_title("PC over addresses x steps" + (f" (steps {lo + 1}-{hi}; {left_out} left out)" if left_out else ""))
        axes[1].set_xlabel("execute step")
        axes[1].set_ylabel("address")
        fig.colorbar(im, ax=axes[1], label="probability")
    fig.suptitle(view.title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
