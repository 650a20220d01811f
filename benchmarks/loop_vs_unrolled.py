"""Loop against unrolled: the same bubble sort as a loop (``sort``: one pass written once per
pair, a backward ``JNZ`` over the passes) and unrolled (``UnrolledSortTask``: every pass written
out, forward jumps only), run from the compilers' images by a trained CPU, free running.

    python benchmarks/loop_vs_unrolled.py [--run llamacpu/runs/general-cpu] [--sizes 2,3,4,5,8,12,16] \
        [--trials 50] [--json benchmarks/results/loop_vs_unrolled_cpu.json]

Per form and size: the slots the image needs, the steps the interpreter runs (mean over the
problems), and the share of held-out problems (the same problems for both forms) that the CPU
runs to the interpreter's HALT at the interpreter's step with the sorted string in the result
slots, and which problems failed (`failed`, as typed). The image is the whole input (no prompt,
no plan phase), as the general CPU was trained: this measures the execute phase and the memory,
not what a plan phase could learn to write.
A size whose image does not fit the run's memory is reported as such, not run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from llamacpu import checkpoint as ckpt
from llamacpu.evaluate import draw_held_out, free_run
from llamacpu.tasks import get_task
from llamacpu.tasks.sort import UnrolledSortTask

log = logging.getLogger("loop_vs_unrolled")


def measure(machine: Any, task: Any, size: int, trials: int, seed: int) -> dict[str, Any]:
    """One form at one size: slots, steps and the CPU's accuracy from the image."""
    slots = task.slots_needed(size)
    row: dict[str, Any] = {"form": "unrolled" if isinstance(task, UnrolledSortTask) else "loop", "items": size,
                           "slots": slots}
    if slots > machine.isa.layout.n_slots:
        return {**row, "fits": False}
    problems = draw_held_out(get_task("sort"), size, trials, seed)  # the loop's split: the same problems
    programs = [replace(task.build(p, machine.isa), prompt="") for p in problems]
    start = time.perf_counter()
    run = free_run(machine, programs)
    seconds = time.perf_counter() - start
    return {**row, "fits": True, "trials": len(programs), "correct": sum(run.correct),
            "accuracy": sum(run.correct) / len(programs), "halted": int(run.execution.halted.sum()),
            "steps_mean": sum(p.steps for p in programs) / len(programs),
            "steps_max": max(p.steps for p in programs), "seconds": round(seconds, 2),
            "failed": ["".join(map(str, problem)) for problem, ok in zip(problems, run.correct) if not ok]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=Path("llamacpu/runs/general-cpu"))
    p.add_argument("--sizes", default="2,3,4,5,8,12,16")
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    machine, config, latest = ckpt.load_machine(args.run)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for task in (get_task("sort"), UnrolledSortTask()):
            row = measure(machine, task, size, args.trials, seed=args.seed)
            rows.append(row)
            if row["fits"]:
                log.info("%-8s %2d items: %4d slots, %6.1f steps (max %4d), %3d/%d right, %d halted, %.1f s",
                         row["form"], size, row["slots"], row["steps_mean"], row["steps_max"], row["correct"],
                         row["trials"], row["halted"], row["seconds"])
            else:
                log.info("%-8s %2d items: %4d slots: does not fit the run's %d", row["form"], size, row["slots"],
                         config.layout.n_slots)
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        record = {"benchmark": "loop_vs_unrolled", "device_name": "cpu", "threads": torch.get_num_threads(),
                  "date": datetime.date.today().isoformat(), "commit": commit, "run": str(args.run),
                  "checkpoint": latest.name if latest else None, "n_slots": config.layout.n_slots,
                  "command": f"python benchmarks/loop_vs_unrolled.py --run {args.run} --sizes {args.sizes} "
                             f"--trials {args.trials} --seed {args.seed} --json {args.json}",
                  "rows": rows}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
