"""Where a plan goes wrong, page by page: for held-out problems of each size, the share
of slots of every page and in-page offset whose type, content or pointers differ from the
compiler's image (the plan alone, no execution, so it is quick on a CPU even at 100 digits).

    python benchmarks/plan_errors.py RUN --digits 8,12,16 [--trials 20] [--all-pages] [--task T]

The task is the run's own unless ``--task`` names another.
Prints one line per page that has an error (and the last two pages, where addition's tail is).
The length-generalization figures in docs/length-generalization.md come from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn import functional as F

from llamacpu import checkpoint as ckpt
from llamacpu.evaluate import draw_held_out, plan_exact
from llamacpu.tasks import collate, get_task
from llamacpu.tasks.base import IGNORE


def page_errors(run: Path, digits: int, trials: int, seed: int = 123,
                task_name: str | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """-> wrong [pages, page_size] (share of problems), per-kind wrong [pages] and the exact-plan share."""
    task = get_task(task_name or ckpt.read_config(run).train.get("task", "add"))
    machine, _, _ = ckpt.load_machine(run, n_slots=max(256, task.slots_needed(digits)))
    machine.eval()
    programs = [task.build(p, machine.isa) for p in draw_held_out(task, digits, trials, seed)]
    batch = collate(programs, machine.isa)
    with torch.no_grad():
        plan = machine.plan(machine.controller.tokenizer.batch(batch.prompts), batch.window)
    kinds = {
        "type": plan.type_logits.argmax(-1) != batch.types,
        "content": (plan.content_logits.argmax(-1) != batch.contents) & (batch.contents != IGNORE),
        "pointer": ((plan.pointers.argmax(-1) != batch.pointers) & (batch.pointers != IGNORE)).any(-1),
    }  # each (B, W)
    size = machine.isa.layout.page_size
    pages = -(-batch.window // size)
    pad = pages * size - batch.window
    per_kind = {k: F.pad(v.float(), (0, pad)).reshape(len(programs), pages, size).mean((0, 2)) for k, v in kinds.items()}
    wrong = kinds["type"] | kinds["content"] | kinds["pointer"]
    wrong = F.pad(wrong.float(), (0, pad)).reshape(len(programs), pages, size).mean(0)  # (pages, page_size)
    return wrong, per_kind, sum(plan_exact(plan, batch)) / len(programs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--digits", default="8,16")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--all-pages", action="store_true")
    parser.add_argument("--task", default=None, help="task of the problems (default: the run's)")
    args = parser.parse_args()
    for digits in (int(d) for d in args.digits.split(",")):
        wrong, per_kind, exact = page_errors(args.run, digits, args.trials, task_name=args.task)
        print(f"{digits} digits: plans exact {exact:.0%} of {args.trials}; wrong slots per page and offset")
        pages = wrong.shape[0]
        for p in range(pages):
            if args.all_pages or wrong[p].sum() > 0 or p >= pages - 2:
                row = " ".join(f"{v:4.2f}" for v in wrong[p].tolist())
                kinds = " ".join(f"{k} {v[p]:.2f}" for k, v in per_kind.items())
                print(f"  page {p:3d}: {row}   ({kinds})")


if __name__ == "__main__":
    main()
