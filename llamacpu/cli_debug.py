"""``llamacpu debug``: the trace debugger, its store browser and its headless twin (``--dump``).

The machine package never imports Textual: the TUI is imported inside the handler, and only when
a terminal app is started (``--dump`` prints text without it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llamacpu.errors import LlamaCPUError

DEMO = Path("traces") / "demo" / "demo.pt"


class DebugInputError(LlamaCPUError):
    """A debugger target that cannot be opened."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "debug", help="step through a trace in the debugger (no argument: the demo trace)",
        description="Step the neural machine forwards and backwards through a recorded trace. "
        "TARGET is a trace file (.pt) or a trace store folder (a browser opens); without it, "
        "the shipped demo trace. Keys: ? in the app, or docs/debugger.md.",
    )
    p.add_argument("target", nargs="?", type=Path, help="a trace file or a trace store folder")
    p.add_argument("--dump", metavar="STEP",
                   help="print what the panes show at STEP (12: execute step, p3: plan step, $: last) and exit")
    p.add_argument("--json", action="store_true", help="with --dump: JSON instead of text")
    p.add_argument("--keys", type=Path, help="key remapping file (default ~/.config/llamacpu/keys.toml)")
    p.add_argument("--export-dir", type=Path, default=Path("."), help="where e (export) writes (default: .)")
    p.add_argument("--breakpoints", type=Path, metavar="FILE",
                   help="where breakpoints are kept per trace between sessions "
                   "(default $XDG_STATE_HOME/llamacpu/breakpoints.json, ~/.local/state/... when unset)")
    p.set_defaults(func=handler)


def demo_path() -> Path:
    """The demo trace: beside the package (a checkout or an install), or under the working directory."""
    import tui

    candidates = [Path(tui.__file__).resolve().parent.parent / DEMO, Path.cwd() / DEMO]
    for path in candidates:
        if path.is_file():
            return path
    raise DebugInputError(
        f"the demo trace is missing (looked for {' and '.join(str(c) for c in dict.fromkeys(candidates))}); "
        "name a trace or a store: llamacpu debug TRACE.pt | traces/RUN"
    )


def handler(args: argparse.Namespace) -> int:
    from llamacpu.trace import find_stores

    target: Path = args.target if args.target is not None else demo_path()
    if args.json and args.dump is None:
        raise DebugInputError("--json goes with --dump STEP")
    if target.is_dir():
        if args.dump is not None:
            raise DebugInputError(f"{target}: --dump needs a trace file, not a store")
        stores = find_stores(target)
        rows = [row for store in stores for row in store.rows()]
        if not rows:
            raise DebugInputError(f"{target}: the trace store holds no traces")
        return _run_app(args, store=target, rows=rows)

    from tui.model import TraceView

    view = TraceView.open(target)
    if args.dump is not None:
        from tui.dump import dump
        from tui.session import DebugSession, PositionError

        try:
            pos = DebugSession(view).parse_position(args.dump)
        except PositionError as err:
            raise DebugInputError(str(err)) from None
        print(dump(view, pos, as_json=args.json))
        return 0
    return _run_app(args, view=view)


def _run_app(args: argparse.Namespace, **what) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DebugInputError("the debugger needs a terminal; for text, use --dump STEP [--json]")
    from tui.app import DebuggerApp, binding_ids
    from tui.keys import load_keymap

    from tui.saved import default_path

    keymap = load_keymap(args.keys, binding_ids())
    DebuggerApp(keymap=keymap, export_dir=args.export_dir, breakpoints_file=args.breakpoints or default_path(),
                **what).run()
    return 0
