"""Regenerate the debugger screenshots in the README and docs/debugger.md.

    python docs/screenshots.py

docs/debugger-demo.svg: the shipped demo trace at execute step 4, where the first carry of
``512 + 489`` is computed: ``DIV [0024], [0014] -> [0030]`` reads t2[0] = 2 + 9 = 11 and the
base 10 and writes carry[1] = 1.

docs/debugger.svg: a synthetic trace of ``4785 + 3917`` whose OEU gets 8 + 9 wrong at execute
step 10, stopped there by a breakpoint on wrong OEU output, beside a breakpoint on r[2].

docs/debugger-heatmaps.png: what the export key (e) writes as PNG at that step.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from debug_fixtures import make_trace, save_trace  # noqa: E402
from llamacpu.cli_debug import DEMO  # noqa: E402
from tui.app import DebuggerApp  # noqa: E402
from tui.export import export_png  # noqa: E402
from tui.model import TraceView  # noqa: E402
from tui.widgets.memory import MemoryView  # noqa: E402

SIZE = (140, 45)


async def shoot(trace: Path, out: Path, keys: list[str], cursor: int | None = None) -> None:
    app = DebuggerApp(view=TraceView.open(trace))
    async with app.run_test(size=SIZE) as pilot:
        if cursor is not None:
            app.screen.query_one(MemoryView).select(cursor)
        await pilot.press(*keys)
        await pilot.pause()
        app.save_screenshot(out.name, str(out.parent))
    print(f"wrote {out.relative_to(ROOT)}")


async def main() -> None:
    await shoot(ROOT / DEMO, ROOT / "docs" / "debugger-demo.svg", ["g", "4", "enter"])
    with tempfile.TemporaryDirectory() as tmp:
        wrong = save_trace(make_trace(4785, 3917, wrong_step=9), Path(tmp) / "demo.pt")
        await shoot(wrong, ROOT / "docs" / "debugger.svg", ["home", "b", "x", "enter", "c"], cursor=45)
        view = TraceView.open(wrong)
        out = export_png(view, view.position_of_step(9), ROOT / "docs" / "debugger-heatmaps.png")
        print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
