"""Commands around traces: ``run``, ``disasm``, ``traces``, ``plot`` (``asm``: cli_asm.py).

Each handler takes the parsed arguments and returns an exit code; bad input raises a
:class:`~llamacpu.errors.LlamaCPUError`, which ``cli.main`` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llamacpu.errors import LlamaCPUError

DEFAULT_STORE = Path("traces")
GROWN_SLOTS = 10_028  # the largest memory `run` grows a growable run to (1000-digit addition)
_RUN_STORE = Path("<the run's store>")  # --traces given without a folder


class UsageError(LlamaCPUError):
    """An option value that makes no sense for this trace or store."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="one free-running episode: answer, right or wrong, and its trace")
    p.add_argument("--run", required=True, type=Path, metavar="DIR", help="the run folder whose machine to use")
    p.add_argument("problem", help='the problem in words, e.g. "123 + 456"')
    _trace_options(p)
    p.add_argument("--task", default=None, help="task that compiles the problem (default: the one whose form the "
                   "text has, e.g. sort for \"sort 3 1 2\", add where none other fits)")
    p.add_argument("--json", action="store_true", help="print one JSON object: problem, answer, verdict, trace")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("disasm", help="print a trace's memory as pseudo-assembly")
    p.add_argument("trace", type=Path, metavar="TRACE.pt")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--plan", action="store_true", help="the memory image the plan phase compiled (soft)")
    which.add_argument("--step", type=int, metavar="N", help="memory after execute step N (0: before the first)")
    which.add_argument("--tokens", action="store_true",
                       help="the prompt as text pieces and token ids, and for each planned slot the prompt tokens "
                       "it was compiled from (the plan query's attention over the prompt)")
    p.add_argument("--slots", metavar="A:B", help="only addresses A..B-1 (either end may be left out)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object: the trace, problem and step shown, and 'slots', one object per slot "
                   "with every part's probability")
    p.add_argument("--threshold", type=float, default=0.9,
                   help="mark a part whose best reading is less likely than this (default 0.9)")
    p.set_defaults(func=cmd_disasm)

    p = subparsers.add_parser("traces", help="list what a trace store holds")
    p.add_argument("store", nargs="?", type=Path, default=DEFAULT_STORE,
                   help="a store folder, or a folder of stores (default: traces/)")
    p.add_argument("--failing", action="store_true", help="only traces whose answer is wrong")
    p.add_argument("--digits", type=int, metavar="N", help="only N-digit problems")
    p.add_argument("--probe", metavar="ID", help="only this probe problem")
    p.add_argument("--limit", type=int, default=100, metavar="N",
                   help="show at most N rows per store, newest first (0: all; default 100)")
    p.add_argument("--reindex", action="store_true", help="rebuild the store's index from its .pt files first")
    p.add_argument("--json", action="store_true", help="print one JSON object: the filters and a 'traces' array")
    p.set_defaults(func=cmd_traces)

    p = subparsers.add_parser("plot", help="draw a trace (attention, PC, OEU) or a run's learning curves",
                              description="Draw a trace, or a run's learning curves. Several runs, each "
                              "continued from the one before (--set init_from), draw as one curve over "
                              "all their steps.")
    p.add_argument("target", type=Path, metavar="TRACE.pt|RUN")
    p.add_argument("more", type=Path, nargs="*", metavar="RUN",
                   help="runs that went on from TARGET, in order: one curve, steps counted on")
    p.add_argument("-o", "--output", type=Path, metavar="FILE.png",
                   help="the figure: .png, .svg or .pdf, by the suffix (default: the target's name + .png)")
    p.set_defaults(func=cmd_plot)


def _trace_options(p: argparse.ArgumentParser) -> None:
    """Where ``run`` and ``asm`` keep the episode's trace: nowhere unless asked, so that trying
    a problem writes nothing into the folder the user happens to be in."""
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("-o", "--output", type=Path, metavar="TRACE.pt",
                      help="write the trace to this file (without -o or --traces no trace is written)")
    keep.add_argument("--traces", type=Path, nargs="?", const=_RUN_STORE, metavar="DIR",
                      help="add the trace to the trace store DIR (--traces alone: traces/<run folder name>)")


def _console() -> Console:
    return Console(highlight=False)


def _store_for(args: argparse.Namespace) -> Path:
    return DEFAULT_STORE / args.run.resolve().name if args.traces == _RUN_STORE else args.traces


def _check_output(args: argparse.Namespace) -> None:
    if args.output is not None and args.output.is_dir():
        raise UsageError(f"-o {args.output}: is a directory, expected a file name (trace.pt)")


def _write(trace: dict[str, Any], args: argparse.Namespace) -> Path | None:
    """The trace's path, or None when it was not asked for (see :func:`_trace_options`)."""
    from llamacpu.trace import TraceStore, save_trace

    _check_output(args)
    if args.output is not None:
        return save_trace(trace, args.output)
    if args.traces is None:
        return None
    return TraceStore(_store_for(args), create=True).add(trace)


def _checkpoint_meta(run_dir: Path, ckpt: Path | None) -> dict[str, Any]:
    step = None
    if ckpt is not None and (m := re.match(r"ckpt-(\d+)$", ckpt.name)):
        step = int(m.group(1))
    return {"run": run_dir.resolve().name, "checkpoint": ckpt.name if ckpt else None, "training_step": step}


def _compile_problem(args: argparse.Namespace) -> tuple[Any, Any]:
    """The task and the compiled problem, checked before any model loads: a run folder that is
    not one, text that is not a problem, a problem larger than the run's memory."""
    from llamacpu.run_folder import read_config_json

    from llamacpu.problems import SAME_WORDS, addition_prompt, detect_task, parse_problem

    raw = read_config_json(args.run)
    _check_output(args)
    if not args.task:  # the text's form names the task; a run of an ablation that reads the same words keeps its own
        own, detected = raw.get("train", {}).get("task"), detect_task(args.problem)
        args.task = own if SAME_WORDS.get(own) == detected else detected
    problem = parse_problem(args.task, args.problem)  # before torch: a typo is answered at once
    from llamacpu.isa import ISA, SlotLayout
    from llamacpu.tasks import get_task

    from llamacpu.controller import ControllerConfig

    task = get_task(args.task)
    try:
        trained = SlotLayout(**raw.get("layout", {}))
        growable = ControllerConfig.from_dict(raw.get("controller", {})).growable
    except (TypeError, LlamaCPUError) as err:
        raise UsageError(f"{args.run}/config.json: unusable layout or controller ({err})") from None
    # A run whose weights do not depend on the memory size runs a problem larger than its memory:
    # compiled for a memory as large as it needs (cmd_run builds the machine to the program's window).
    isa = ISA(replace(trained, n_slots=max(trained.n_slots, GROWN_SLOTS)) if growable else trained)
    if task.name == "add":  # words run as typed
        return task, task.compile(*problem[:2], isa, prompt=addition_prompt(args.problem))
    return task, task.build(problem, isa)


def cmd_run(args: argparse.Namespace) -> int:
    task, program = _compile_problem(args)
    from llamacpu.checkpoint import load_machine
    from llamacpu.evaluate import free_run
    from llamacpu.trace import trace_from_run

    machine, _, ckpt = load_machine(args.run, n_slots=program.window)  # grown only past the run's own memory
    run = free_run(machine, [program], record=True)
    trace = trace_from_run(machine, run, 0, task=task.name, **_checkpoint_meta(args.run, ckpt))
    path = _write(trace, args)
    meta = trace["meta"]
    note = _outside_trained_range(args.run, program.operands)
    if args.json:
        print(json.dumps(run_json(meta, path) | {"outside_trained_range": note}))
        _print_note(note)
        return 0
    con = _console()
    expected = task.answer_text(meta["expected"], program.digits)
    verdict = "[green]right[/]" if meta["correct"] else f"[red]wrong[/] (expected {expected})"
    produced = task.answer_text(meta["produced"], program.digits) if meta["produced"] >= 0 else "not a number"
    con.print(f"{program.prompt} = {produced}  {verdict}")
    if not meta["halted"]:
        con.print(f"[yellow]did not halt[/] within {meta['steps']} steps")
    if path is not None:
        con.print(f"trace: {path}")
    _print_note(note)
    return 0


def _outside_trained_range(run_dir: Path, operands: tuple[int, ...]) -> str | None:
    from llamacpu.trained_range import run_trained_range

    trained = run_trained_range(run_dir)
    return None if trained is None else trained.outside(operands)


def _print_note(note: str | None) -> None:
    """One line on stderr: the answer above may be nonsense, and why."""
    if note is not None:
        sys.stdout.flush()
        print(f"llamacpu run: note: {note}", file=sys.stderr)


RUN_FIELDS = ("task", "prompt", "operands", "digits", "expected", "produced", "correct", "halted", "steps", "run",
              "checkpoint", "training_step")


def run_json(meta: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """What ``run --json`` prints: the episode's verdict and where its trace went (null: none)."""
    out = {("problem" if key == "prompt" else key): meta.get(key) for key in RUN_FIELDS}
    out["produced"] = None if out["produced"] is not None and out["produced"] < 0 else out["produced"]
    out["operands"] = list(out["operands"]) if out["operands"] is not None else None
    out["trace"] = None if path is None else str(path)
    return out


def _parse_slots(text: str | None, window: int) -> tuple[int, int] | None:
    if text is None:
        return None
    m = re.match(r"^\s*(\d*)\s*:\s*(\d*)\s*$", text)
    if not m:
        raise UsageError(f"--slots {text!r}: expected A:B, e.g. 20:30")
    lo = int(m.group(1)) if m.group(1) else 0
    hi = min(int(m.group(2)) if m.group(2) else window, window)
    if lo >= hi:
        raise UsageError(f"--slots {text}: no addresses in this window of {window} slots")
    return lo, hi


def cmd_disasm(args: argparse.Namespace) -> int:
    from llamacpu.disasm import disassemble, read_slots, slot_json
    from llamacpu.trace import load_trace, trace_isa

    trace = load_trace(args.trace)
    isa = trace_isa(trace)
    meta = trace["meta"]
    if args.tokens:
        return _disasm_tokens(args, trace, isa)
    t = int(meta["steps"])
    step = None
    if args.plan:
        memory, what = trace["plan"]["slot"], "memory image compiled by the plan phase"
    else:
        step = t if args.step is None else args.step
        if not 0 <= step <= t:
            raise UsageError(f"--step {step}: this trace has steps 0..{t}")
        memory = trace["exec"]["memory"][step]
        what = f"memory after step {step} of {t}" if step else f"memory before the first step (step 0 of {t})"
    roles = {int(k): v for k, v in meta["roles"].items()}
    slots = _parse_slots(args.slots, memory.shape[0])
    if args.json:
        readings = read_slots(memory, isa, roles)
        lo, hi = slots if slots else (0, len(readings))
        header = json.dumps(disasm_header(args.trace, meta, step))
        body = ",\n".join(json.dumps(slot_json(r)) for r in readings[lo:hi])
        print(f'{header[:-1]}, "slots": [\n{body}\n]}}')  # one slot a line, as the text form
        return 0
    print(f"; {meta['prompt'] or meta['mode']}: {what}")
    print(f"; produced {meta['produced']}, expected {meta['expected']}, "
          f"{'right' if meta['correct'] else 'wrong'}, {'halted' if meta['halted'] else 'did not halt'}")
    print("\n".join(disassemble(memory, isa, roles, threshold=args.threshold, slots=slots)))
    return 0


def _disasm_tokens(args: argparse.Namespace, trace: dict[str, Any], isa: Any) -> int:
    from llamacpu.tokens import NoPromptError, format_listing, listing_json, token_listing

    if args.slots is not None:
        raise UsageError("--slots goes with the memory listing, not with --tokens")
    try:
        listing = token_listing(trace, isa)
    except NoPromptError as err:
        raise UsageError(f"{args.trace}: {err}") from None
    if args.json:
        print(json.dumps({"trace": str(args.trace), **listing_json(listing)}))
    else:
        print("\n".join(format_listing(listing)))
    return 0


def disasm_header(path: Path, meta: dict[str, Any], step: int | None) -> dict[str, Any]:
    """What ``disasm --json`` says before its slots: which trace, problem and memory."""
    return {"trace": str(path), "problem": meta["prompt"] or None, "mode": meta["mode"],
            "memory": "plan" if step is None else "step", "step": step, "steps": int(meta["steps"]),
            "window": int(meta["window"]), "expected": meta["expected"],
            "produced": meta["produced"] if meta["produced"] >= 0 else None, "correct": meta["correct"],
            "halted": meta["halted"]}


def cmd_traces(args: argparse.Namespace) -> int:
    from llamacpu.trace import TraceStore, find_stores

    if args.reindex:
        _, skipped = TraceStore.reindex(args.store)
        for line in skipped:
            _console().print(f"[yellow]skipped[/] {line}")
    stores = find_stores(args.store)
    if not stores:
        raise UsageError(f"{args.store}: no trace stores here")
    rows, total = [], 0
    for store in stores:
        filters = dict(failing=args.failing, digits=args.digits, probe_id=args.probe)
        total += store.count(**filters)
        rows += store.rows(limit=args.limit or None, **filters)
    if args.json:
        print(json.dumps({"store": str(args.store), "failing": args.failing, "digits": args.digits,
                          "probe": args.probe, "total": total, "shown": len(rows),
                          "traces": [_row_json(r) for r in rows]}, indent=1))
        return 0
    con = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)  # piped: one line a trace
    con.print(_traces_table(rows, f"traces in {args.store}"), soft_wrap=not sys.stdout.isatty())
    if len(rows) < total:
        con.print(f"showing {len(rows)} of {total} traces (newest first); --limit 0 shows all")
    return 0


def _row_json(r: Any) -> dict[str, Any]:
    out = {name: getattr(r, name) for name in r.__dataclass_fields__}
    out["path"] = str(r.path)
    out["produced"] = None if r.produced < 0 else r.produced
    return out


def _traces_table(rows: list[Any], title: str) -> Table:
    """One row a trace; the stage, training-step and probe columns only where some trace has
    one (traces made by ``run`` have none); paths relative to the current folder."""
    columns = [("run", lambda r: r.run or ""),
               ("stage", lambda r: "" if r.stage is None else str(r.stage)),
               ("step", lambda r: "" if r.training_step is None else str(r.training_step)),
               ("problem", lambda r: r.problem or r.mode),
               ("expected", lambda r: str(r.expected)),
               ("answer", lambda r: str(r.produced) if r.produced >= 0 else "-"),
               ("result", lambda r: "[green]right[/]" if r.correct else ("[red]wrong[/]" if r.halted else "[red]no halt[/]")),
               ("steps", lambda r: str(r.steps)),
               ("probe", lambda r: r.probe_id or ""),
               ("path", lambda r: _short_path(r.path))]
    optional = {"stage", "step", "probe"}
    columns = [(name, cell) for name, cell in columns
               if name not in optional or any(cell(r) for r in rows)]
    table = Table(*(name for name, _ in columns), title=title)
    for r in rows:
        table.add_row(*(cell(r) for _, cell in columns))
    return table


def _short_path(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def cmd_plot(args: argparse.Namespace) -> int:
    from llamacpu.plots import save_chain_plot, save_run_plot, save_trace_plot
    from llamacpu.trace import load_trace

    target: Path = args.target
    out = args.output or Path(f"{target.resolve().name}.png" if target.is_dir() else target.with_suffix(".png").name)
    from llamacpu.plots import FORMATS

    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"-o {out}: write a {', '.join(FORMATS)} file")
    con = _console()
    bad = 0  # unreadable lines of metrics.jsonl
    if args.more:
        not_runs = [str(r) for r in [target, *args.more] if not r.is_dir()]
        if not_runs:
            raise UsageError(f"{not_runs[0]}: not a run folder (several targets are a chain of runs)")
        path, bad = save_chain_plot([target, *args.more], out)
    elif target.is_dir():
        path, bad = save_run_plot(target, out)
    else:
        path = save_trace_plot(load_trace(target), out)
    if bad:
        con.print(f"[yellow]skipped {bad} unreadable lines of metrics.jsonl[/]")
    con.print(f"wrote {path}")
    return 0
