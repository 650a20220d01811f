"""``llamacpu isa``: a run's machine language, and running one machine's code on another.

``isa show --run DIR`` names a run's ISA (layout, key seed, a fingerprint of its address keys);
``isa cross --from A --to B`` runs A's compiled problems on B, raw and translated
(:mod:`llamacpu.cross_isa`, docs/embedding-language.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from llamacpu.errors import LlamaCPUError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("isa", help="a run's machine language; run one machine's code on another",
                              description="The ISA of a run (slot layout, value codes, address keys) and "
                              "cross-ISA execution: machine A's compiled code on machine B.")
    sub = p.add_subparsers(dest="isa_command", metavar="SUBCOMMAND", required=True)

    s = sub.add_parser("show", help="a run's slot layout, key seed and address-key fingerprint")
    s.add_argument("--run", type=Path, required=True, metavar="DIR")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_show)

    c = sub.add_parser("cross", help="run machine A's compiled problems on machine B, raw and translated",
                       description="Machine A compiles held-out problems (its plan, its address keys). The image "
                       "is run by A itself, by B as it is (A's keys), and by B after translation (A's disassembler, "
                       "then B's assembler); B also compiles and runs the problems itself. All free running.")
    c.add_argument("--from", dest="run_a", type=Path, required=True, metavar="RUN_A", help="the machine that compiles")
    to = c.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", dest="run_b", type=Path, metavar="RUN_B", help="the machine that executes")
    to.add_argument("--rekey", type=int, metavar="SEED",
                    help="instead of another run: A itself with its address keys turned by a random rotation drawn "
                    "from SEED (and its slot encoder turned with them): the same chip in another machine language")
    c.add_argument("--digits", default="1", help="problem sizes, comma separated (default 1)")
    c.add_argument("--trials", type=int, default=200, help="held-out problems per size, at most (default 200)")
    c.add_argument("--seed", type=int, default=12345, help="seed of the problems (default 12345)")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    c.set_defaults(func=cmd_cross)


def key_fingerprint(keys: Any) -> str:
    """Eight hex digits naming a key table [N, A]: equal fingerprints, (almost surely) one language."""
    return hashlib.sha256(keys.contiguous().numpy().tobytes()).hexdigest()[:8]


def cmd_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from llamacpu.checkpoint import read_config
    from llamacpu.isa import ISA

    layout = read_config(args.run).layout
    isa = ISA(layout)
    info = {"run": str(args.run), **asdict(layout), "slot_dim": layout.slot_dim,
            "keys_fingerprint": key_fingerprint(isa.keys), "value_codes": f"one-hot over 0..{layout.n_values - 1}"}
    if args.json:
        print(json.dumps(info))
        return 0
    from llamacpu.cli_trace import _console

    con = _console()
    con.print(f"{args.run}: {layout.n_slots} slots of {layout.slot_dim} numbers "
              f"(type {layout.n_types} | {layout.n_pointers} pointers x {layout.key_dim} | content {layout.n_values})")
    con.print(f"address keys: seed {layout.key_seed}, fingerprint {info['keys_fingerprint']}")
    con.print(f"value codes: {info['value_codes']} (the same in every run)")
    return 0


def cmd_cross(args: argparse.Namespace) -> int:
    from llamacpu.cli_train import parse_digits
    from llamacpu.run_folder import check_run

    if args.trials < 1:
        raise LlamaCPUError("--trials must be at least 1")
    sizes = parse_digits(args.digits)
    check_run(args.run_a)
    if args.run_b is not None:
        check_run(args.run_b)

    from llamacpu.checkpoint import latest_checkpoint, load_machine, read_config
    from llamacpu.cross_isa import cross
    from llamacpu.evaluate import draw_held_out
    from llamacpu.tasks import get_task
    from llamacpu.tasks.base import sized
    from llamacpu.train import TrainConfig

    run_b = args.run_b or args.run_a
    cfg_a, cfg_b = read_config(args.run_a), read_config(run_b)
    task = get_task(TrainConfig.from_dict(cfg_a.train).task)
    if not getattr(task, "planned", True):
        raise LlamaCPUError(f"{args.run_a} was trained on {task.name}: it compiles no problems (no plan phase); "
                            "name a run trained on a task in words as --from")
    b_task = get_task(TrainConfig.from_dict(cfg_b.train).task)
    b_reads_prompt = getattr(b_task, "planned", True)
    too_big = [d for d in sizes if task.slots_needed(d) > min(cfg_a.layout.n_slots, cfg_b.layout.n_slots)]
    if too_big:
        raise LlamaCPUError(f"{sized(task, too_big[0])} needs {task.slots_needed(too_big[0])} slots; "
                            f"the machines have {cfg_a.layout.n_slots} and {cfg_b.layout.n_slots}")
    for run in (args.run_a, run_b):
        if latest_checkpoint(run) is None:
            raise LlamaCPUError(f"{run} has no checkpoint yet: an untrained machine runs nothing")
    a, _, _ = load_machine(args.run_a)
    if args.rekey is not None:
        from llamacpu.cross_isa import rekeyed

        b = rekeyed(a, args.rekey)
    else:
        b, _, _ = load_machine(run_b)
    results = []
    for d in sizes:
        problems = draw_held_out(task, d, args.trials, seed=f"cross-{args.seed}-{d}")
        results.append(cross(a, b, task, problems, d, b_reads_prompt=b_reads_prompt))
    to = f"{args.run_a} rekeyed by {args.rekey}" if args.rekey is not None else str(run_b)
    out = {"from": str(args.run_a), "to": to, "task": task.name, "rekey": args.rekey,
           "key_seed_a": cfg_a.layout.key_seed, "key_seed_b": cfg_b.layout.key_seed,
           "keys_a": key_fingerprint(a.isa.keys), "keys_b": key_fingerprint(b.isa.keys),
           "b_reads_prompt": b_reads_prompt, "results": [r.to_json() for r in results]}
    if args.json:
        print(json.dumps(out))
        return 0
    _print_table(args, out, results)
    return 0


def _print_table(args: argparse.Namespace, out: dict[str, Any], results: list[Any]) -> None:
    from rich.table import Table

    from llamacpu.cli_trace import _console
    from llamacpu.cross_isa import CONDITIONS

    con = _console()
    same = results[0].same_language
    con.print(f"A = {args.run_a} (keys {out['keys_a']}), B = {out['to']} (keys {out['keys_b']}): "
              + ("[yellow]the same machine language[/] (A's code on B is a control)" if same
                 else "different machine languages"))
    table = Table("digits", "problems", "A on A", "A's code on B", "translated on B", "B on B",
                  title=f"free-running accuracy, held-out {out['task']} problems compiled by A (halted in brackets)")
    for r in results:
        cells = [f"{r.accuracy(n):.1%} ({r.conditions[n].halted})" if n in r.conditions else "- (B has no plan)"
                 for n in CONDITIONS]
        table.add_row(str(r.digits), str(r.trials), *cells)
    con.print(table)
    bad = sum(r.untranslatable for r in results)
    if bad:
        con.print(f"[yellow]{bad} images did not assemble in B's language (counted wrong)[/]")
