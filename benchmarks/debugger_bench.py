"""How fast the debugger opens and steps a large trace, and how much memory it holds.

    OMP_NUM_THREADS=1 python benchmarks/debugger_bench.py [--steps 10000] [--slots 256]

Targets (issue 4): a trace of 10,000 execute steps over 256 slots opens in under 1.5 s; a step
key is handled and repainted in under 50 ms (median, through the pilot); memory under 1 GB.
The trace is synthetic (tests/debug_fixtures.py) and written as the recorder writes it.
Each figure is measured in a fresh process, so imports and caches do not leak between them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def build(path: Path, steps: int, slots: int) -> None:
    from debug_fixtures import make_trace
    from llamacpu.isa import SlotLayout
    from llamacpu.trace import save_trace

    layout = SlotLayout(n_slots=slots)
    digits = (slots - 20) // 10 - 1
    a, b = int("7" * digits), int("5" * digits)
    save_trace(make_trace(a, b, layout=layout, steps=steps, window=slots, wrong_step=steps // 2), path)


def measure(path: Path, presses: int) -> dict:
    """Runs in a child process: open, first paint, step latency, continue, peak memory."""
    t0 = time.perf_counter()
    from tui.app import DebuggerApp
    from tui.model import TraceView
    from tui.session import Kind

    t_import = time.perf_counter() - t0
    out: dict = {"imports_s": round(t_import, 3)}

    async def run() -> None:
        t1 = time.perf_counter()
        view = TraceView.open(path)
        out["trace_open_s"] = round(time.perf_counter() - t1, 3)
        app = DebuggerApp(view=view)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            out["open_to_first_paint_s"] = round(time.perf_counter() - t1, 3)
            screen = app.screen
            times = []
            for key in ["n"] * presses + ["p"] * (presses // 2):
                k0 = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                times.append(time.perf_counter() - k0)
            out["step_ms_median"] = round(1000 * statistics.median(times), 2)
            out["step_ms_p90"] = round(1000 * sorted(times)[int(0.9 * len(times))], 2)
            idle = []
            for _ in range(presses // 2):  # the pilot's own cost: a key bound to nothing
                k0 = time.perf_counter()
                await pilot.press("z")
                await pilot.pause()
                idle.append(time.perf_counter() - k0)
            out["pilot_unbound_key_ms_median"] = round(1000 * statistics.median(idle), 2)
            out["step_minus_pilot_ms"] = round(out["step_ms_median"] - out["pilot_unbound_key_ms_median"], 2)
            for label, key in (("goto_last_ms", "end"), ("goto_first_ms", "home")):
                k0 = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                out[label] = round(1000 * (time.perf_counter() - k0), 2)
            screen.session.add(Kind.OEU_WRONG)
            k0 = time.perf_counter()
            await pilot.press("c")
            await pilot.pause()
            out["continue_oeu_wrong_ms"] = round(1000 * (time.perf_counter() - k0), 2)
            out["stopped_at"] = view.label(screen.position)
            screen.session.add(Kind.CONFIDENCE, threshold=0.5)  # needs one pass over every step
            k0 = time.perf_counter()
            await pilot.press("c")
            await pilot.pause()
            out["continue_low_confidence_first_ms"] = round(1000 * (time.perf_counter() - k0), 2)

    asyncio.run(run())
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it is not inherited over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cold_start(path: Path) -> float:
    """Wall time of a fresh interpreter: imports, open, first paint in a headless app, exit."""
    code = (
        "import asyncio, sys; sys.path.insert(0, %r)\n"
        "from tui.app import DebuggerApp\nfrom tui.model import TraceView\n"
        "async def main():\n"
        "    app = DebuggerApp(view=TraceView.open(%r))\n"
        "    async with app.run_test(size=(160, 50)) as pilot:\n"
        "        await pilot.pause()\n"
        "asyncio.run(main())\n" % (str(ROOT), str(path))
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=256)
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.presses)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.pt"
        t0 = time.perf_counter()
        build(path, args.steps, args.slots)
        print(f"trace: {args.steps} execute steps x {args.slots} slots, "
              f"{path.stat().st_size / 2**20:.1f} MiB on disk, built in {time.perf_counter() - t0:.1f} s")
        child = subprocess.run([sys.executable, __file__, "--child", str(path), "--presses", str(args.presses)],
                               check=True, capture_output=True, text=True)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        figures["cold_start_s"] = round(cold_start(path), 3)
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")
    print("targets: open_to_first_paint_s < 1.5, step_ms_median < 50, peak_rss_mb < 1024. "
          "cold_start_s adds the interpreter and imports (torch alone is about 1.2 s); "
          "pilot_unbound_key_ms_median is what the pilot costs for a key that does nothing.")


if __name__ == "__main__":
    main()
