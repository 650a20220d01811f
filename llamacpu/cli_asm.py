"""``llamacpu asm``: a hand-written program on the neural CPU, judged by the reference interpreter.

With no ``--run`` the program runs on the trained general CPU that ships inside the package
(:func:`llamacpu.run_folder.shipped_run`); ``--reference`` runs it on the interpreter alone.
``--json`` prints one object: ``halted``, ``steps``, ``writes`` (every address written, as a
4-digit string, to its final value) and, for a neural run, ``reference`` (the same from the
interpreter) and ``matches_reference``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llamacpu.cli_trace import _trace_options
from llamacpu.errors import LlamaCPUError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "asm", help="assemble a hand-written program and run it on the neural CPU (or the reference interpreter)",
        description="Assemble PROGRAM.s (the text `llamacpu disasm` prints) and run it: on the trained general CPU "
        "that ships with llamacpu, on a run's machine (--run), or on the ISA's reference interpreter alone "
        "(--reference). A neural run is judged by the interpreter: halted alike, and every slot the interpreter "
        "wrote holding its value.")
    p.add_argument("program", type=Path, metavar="PROGRAM.s")
    p.add_argument("--run", type=Path, metavar="DIR", default=None,
                   help="the run folder whose machine to use (default: the shipped general CPU)")
    p.add_argument("--reference", action="store_true", help="run on the reference interpreter alone (no model)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N cycles (default: twice the reference's run plus 8; 1000 if it never halts)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    _trace_options(p)
    p.set_defaults(func=cmd_asm)


def cmd_asm(args: argparse.Namespace) -> int:
    if args.max_steps is not None and args.max_steps < 1:
        raise LlamaCPUError("--max-steps must be at least 1")
    if args.reference:
        from llamacpu.asm import assemble_file, reference_run
        from llamacpu.checkpoint import read_config
        from llamacpu.interpreter import DEFAULT_MAX_STEPS
        from llamacpu.isa import ISA
        from llamacpu.run_folder import shipped_run

        layout = read_config(args.run or shipped_run()).layout
        program = assemble_file(args.program, ISA(layout))
        ref = reference_run(program, layout.n_values, args.max_steps or DEFAULT_MAX_STEPS)
        summary = {"program": str(args.program), **ref.summary(), "fault": ref.fault}
        if program.expect:
            got = {f"{a:04d}": ref.final.contents[a] for a in sorted(program.expect)}
            summary["meets_expectations"] = all(got[f"{a:04d}"] == v for a, v in program.expect.items())
        if args.json:
            print(json.dumps(summary))
        else:
            _print_reference(args.program, program, ref)
        return 0
    return _neural(args)


def _neural(args: argparse.Namespace) -> int:
    from rich.table import Table

    from llamacpu.cli_trace import _check_output, _checkpoint_meta, _console, _write
    from llamacpu.run_folder import check_run

    run_dir = args.run or _shipped()
    args.run = run_dir
    check_run(run_dir)
    _check_output(args)
    from llamacpu.asm import assemble_file, expectations, run_program, run_summary
    from llamacpu.checkpoint import load_machine

    machine, _, ckpt = load_machine(run_dir)
    program = assemble_file(args.program, machine.isa)
    trace = run_program(machine, program, source=str(args.program), max_steps=args.max_steps,
                        **_checkpoint_meta(run_dir, ckpt))
    path = _write(trace, args)
    summary = {"program": str(args.program), "run": str(run_dir), **run_summary(trace, machine.isa),
               **expectations(trace, program, machine.isa), "trace": None if path is None else str(path)}
    if args.json:
        print(json.dumps(summary))
        return 0
    meta, ref = trace["meta"], trace["reference"]
    con = _console()
    halt = (f"halted after {meta['steps']} steps" if meta["halted"]
            else f"[yellow]did not halt: stopped at the step limit ({meta['steps']} steps)[/]")
    said = f"halted after {ref['steps']} steps" if ref["halted"] else f"stops without halting: {ref['fault']}"
    con.print(f"{args.program}: {meta['window']} slots, run on {run_dir.name}")
    con.print(f"neural CPU: {halt}")
    con.print(f"ISA semantics: {said}")
    final = trace["exec"]["memory"][-1].float()
    table = Table("address", "role", "value", "ISA says", "", title="slots the program writes")
    for key, want in ref["writes"].items():
        a = int(key)
        v = int(final[a, machine.isa.content_slice].argmax())
        ok = "[green]ok[/]" if v == want else "[red]differs[/]"
        table.add_row(key, program.roles.get(a, ""), str(v), str(want), ok)
    con.print(table)
    if not ref["halted"]:  # e.g. memory disassembled after its run: REG already points at the HALT
        con.print(f"result: the ISA's run stops without halting, so there is no result to match; the neural "
                  f"CPU {'halted' if meta['halted'] else 'did not halt either'}: "
                  f"{'[green]alike[/]' if not meta['halted'] else '[red]differs[/]'}")
    elif meta["answer_slots"]:
        verdict = "[green]right[/]" if meta["produced"] == meta["expected"] and meta["correct"] else "[red]wrong[/]"
        con.print(f"result: {meta['produced']} (ISA semantics: {meta['expected']})  {verdict}")
    else:
        con.print(f"result: {'[green]matches[/]' if meta['correct'] else '[red]differs from[/]'} the ISA's semantics")
    if "expected" in summary:
        ok = "[green]as the program expects[/]" if summary["meets_expectations"] else "[red]not as the program expects[/]"
        con.print(f".expect: {summary['got']} {ok}")
    if path is not None:
        con.print(f"trace: {path}")
    return 0


def _shipped() -> Path:
    from llamacpu.run_folder import shipped_run

    return shipped_run()


def _print_reference(source: Path, program: Any, ref: Any) -> None:
    from rich.table import Table

    from llamacpu.cli_trace import _console

    con = _console()
    said = f"halted after {ref.steps} steps" if ref.halted else f"stopped after {ref.steps} steps: {ref.fault}"
    con.print(f"{source}: {program.window} slots on the reference interpreter: {said} "
              f"({ref.taken_jumps} jumps taken)")
    table = Table("address", "role", "value", title="slots the program writes")
    for a, v in sorted(ref.written.items()):
        table.add_row(f"{a:04d}", program.roles.get(a, ""), str(v))
    con.print(table)
