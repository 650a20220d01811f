"""Teacher forcing annealed to 0 against a floor: stage 1 of a task, held-out accuracy every 50 steps.

    OMP_NUM_THREADS=1 python benchmarks/tf_floor.py mul 500 0.0 runs/tf0
    OMP_NUM_THREADS=1 python benchmarks/tf_floor.py mul 500 0.25 runs/tf25

A new MID controller (tests/test_tasks.py's: width 64, 2 layers) beside the shipped general CPU's
OEU, seed 0, batch 32, on one thread; arguments: TASK STEPS TF_END RUN_FOLDER. Prints one JSON
line per 50 steps. docs/experiments.md "Session 21" has the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from machine_fixtures import make_trainer  # noqa: E402  (what llamacpu train does, in one call)

from llamacpu import checkpoint as ckpt  # noqa: E402
from llamacpu.controller import ControllerConfig  # noqa: E402
from llamacpu.evaluate import evaluate  # noqa: E402
from llamacpu.train import TrainConfig, config_dict  # noqa: E402

MID = {"hidden": 64, "layers": 2, "heads": 4, "intermediate": 192}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task")
    ap.add_argument("steps", type=int)
    ap.add_argument("tf_end", type=float)
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train = TrainConfig(task=args.task, max_digits=1, seed=0, device="cpu", batch_size=32, eval_every=10**6,
                        quick_every=0, checkpoint_every=10**6, tf_end=args.tf_end)
    trainer = make_trainer(args.run, ckpt.RunConfig(controller=ControllerConfig(**MID), train=config_dict(train)))
    ckpt.init_from(trainer.machine, ckpt.shipped_run())  # the OEU (the controller's shapes differ)
    t0 = time.time()
    for target in range(50, args.steps + 1, 50):
        trainer.run(max_steps=target)
        right = total = 0
        for size in trainer.task.stage_sizes(1):
            pool = trainer.heldout.get(size)  # never in a training batch
            r = evaluate(trainer.machine, trainer.task, size, len(pool), seed=0, problems=pool, diagnostics=False)
            right, total = right + r.correct, total + r.trials
        print(json.dumps({"task": args.task, "tf_end": args.tf_end, "step": trainer.step,
                          "tf": round(trainer.teacher_forcing(), 3), "held_out": f"{right}/{total}",
                          "s": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
