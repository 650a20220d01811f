"""Data-parallel scaling: episodes/s and learning on 1 and N processes with the same total batch.

    # two GPUs (issue 16's measurement: >= 1.8x episodes/s, the same accuracy):
    python benchmarks/data_parallel.py --device cuda --processes 1,2 --batch-size 512 --digits 4 \\
        --learn-steps 3000 --json benchmarks/results/data_parallel_h200x2.json
    # two gloo ranks on a 2-core CPU, one thread each (a check of the machinery, not a GPU figure):
    python benchmarks/data_parallel.py --device cpu --processes 1,2 --batch-size 32 --digits 1 \\
        --learn-steps 0 --json /tmp/data_parallel_cpu.json

Two parts, each run once per process count N through ``torchrun --standalone --nproc-per-node N``:

- **throughput**: this script as the worker on every rank: ``--warmup`` then ``--steps`` timed
  ``Trainer.train_step()`` calls (the whole batch sampled, each rank's share through DDP, the
  gradients' all-reduce, the optimizer), every batch of ``--digits`` digits at the start of its
  stage. A step ends in the all-reduce of its losses, so rank 0's median step time is the
  world's. ``episodes/s = batch / s_per_step``; ``scaling[N]`` = episodes/s on N over on 1.
- **learning** (``--learn-steps`` > 0): ``llamacpu train`` on N processes through the curriculum
  up to ``--digits`` for at most that many steps (checks and checkpoints included, on rank 0),
  then ``llamacpu eval --json``: held-out accuracy by size, the stage ends, the wall time and
  the run's own end-to-end episodes/s. The same seed and total batch: one process and N learn
  the same thing up to the order of float sums (llamacpu/distributed.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import _cpu_model, bench_configs, git_commit, load_average  # noqa: E402

TARGET_SCALING = 2 * 0.9  # issue 16: two GPUs at least 1.8 times the episodes/s of one


def torchrun(n: int, args: list[str], threads: int, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``args`` on ``n`` ranks (one, too, through torchrun: the same start-up on every row)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n), *args]
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-4000:]}")
    return result


def worker(out: Path, controller: str, batch: int, digits: int, steps: int, warmup: int, device: str) -> None:
    """One rank of the throughput part; rank 0 writes the row to ``out``."""
    import torch

    from llamacpu import checkpoint as ckpt
    from llamacpu import distributed
    from llamacpu.train import Trainer, config_dict

    world = distributed.world_from_env()
    with distributed.process_group(world, world.rank_device(device)) as world:
        cc, train = bench_configs(controller, None)
        train.batch_size, train.max_digits, train.replay, train.device = batch, digits, 0.0, device
        config = ckpt.RunConfig(controller=cc, train=config_dict(train))
        torch.manual_seed(train.seed)
        machine = ckpt.build_machine(config, world.device)
        with tempfile.TemporaryDirectory(prefix="llamacpu-dp-") as run_dir:
            trainer = Trainer(Path(run_dir), machine, config, train, world=world)
            trainer.stage = digits  # step 0 of its stage: scheduled sampling and lr warm-up as a stage starts
            times, losses = [], []
            for i in range(warmup + steps):
                start = time.perf_counter()
                stats = trainer.train_step()  # ends with the losses' all-reduce: every rank has finished
                if i >= warmup:
                    times.append(time.perf_counter() - start)
                    losses.append(stats["loss_total"])
        if world.is_main:
            s_step = statistics.median(times)
            cuda = device.startswith("cuda")
            out.write_text(json.dumps({
                "processes": world.size, "batch_size": batch, "per_process": batch // world.size,
                "s_per_step": s_step, "s_per_step_min": min(times), "s_per_step_max": max(times),
                "episodes_per_s": batch / s_step, "loss_first": losses[0], "loss_last": losses[-1],
                "threads": torch.get_num_threads(),
                "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                "device_name": torch.cuda.get_device_name() if cuda else _cpu_model(),
            }))


def learning(n: int, args: argparse.Namespace, threads: int, root: Path) -> dict[str, Any]:
    """The curriculum on ``n`` processes for at most ``--learn-steps`` steps, then its evaluation."""
    run = root / f"learn-{n}"
    t0 = time.perf_counter()
    torchrun(n, ["-m", "llamacpu.cli", "--", "train", "--run", str(run), "--cpu", args.controller,
                 "--batch-size", str(args.batch_size), "--max-digits", str(args.digits), "--seed", str(args.seed),
                 "--max-steps", str(args.learn_steps), "--device", args.device, "--no-traces", "--quiet"], threads)
    wall = time.perf_counter() - t0
    sizes = ",".join(str(d) for d in range(1, args.digits + 1))
    evaluated = subprocess.run([sys.executable, "-m", "llamacpu.cli", "eval", "--run", str(run), "--digits", sizes,
                                "--trials", str(args.eval_trials), "--device", args.device, "--json"],
                               capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if evaluated.returncode != 0:
        raise SystemExit(f"llamacpu eval failed:\n{evaluated.stderr[-2000:]}")
    metrics = run / "metrics.jsonl"  # none yet when the run stopped before its first log step
    records = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    trains = [r for r in records if r["event"] == "train"]
    return {
        "processes": n, "wall_s": wall, "steps": trains[-1]["step"] if trains else 0,
        "episodes_per_s_end_to_end": trains[-1]["episodes_per_s"] if trains else None,
        "stage_ends": [r for r in records if r["event"] == "stage_end"],
        "accuracy": {str(r["digits"]): r["accuracy"] for r in json.loads(evaluated.stdout)["results"]},
        "loss_total_last": trains[-1]["loss_total"] if trains else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="1,2", help="process counts, comma separated; the first is the base")
    ap.add_argument("--device", default="cuda", help="cuda (one GPU per process) or cpu (gloo)")
    ap.add_argument("--controller", default="tiny", choices=("tiny", "smollm2"))
    ap.add_argument("--batch-size", type=int, default=512, help="total problems per step, split over the processes")
    ap.add_argument("--digits", type=int, default=4, help="throughput: the batch's size; learning: the last stage")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--learn-steps", type=int, default=0, help="learning part: steps at most (0: skip it)")
    ap.add_argument("--eval-trials", type=int, default=500, help="learning part: held-out problems per size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="threads per process on the CPU (GPU: ignored)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)  # a rank of the throughput part
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.worker, args.controller, args.batch_size, args.digits, args.steps, args.warmup, args.device)
        return

    counts = [int(n) for n in args.processes.split(",") if n.strip()]
    if any(args.batch_size % n for n in counts):
        raise SystemExit(f"--batch-size {args.batch_size} must split evenly over each of {counts} processes")
    started, load_before = time.time(), load_average()
    throughput, learned = {}, {}
    with tempfile.TemporaryDirectory(prefix="llamacpu-dp-bench-") as tmp:
        for n in counts:
            row = Path(tmp) / f"throughput-{n}.json"
            torchrun(n, [__file__, "--", "--worker", str(row), "--controller", args.controller, "--batch-size",
                         str(args.batch_size), "--digits", str(args.digits), "--steps", str(args.steps),
                         "--warmup", str(args.warmup), "--device", args.device], args.threads)
            throughput[str(n)] = json.loads(row.read_text())
            print(f"{n} process(es): {throughput[str(n)]['s_per_step']:.4f} s/step, "
                  f"{throughput[str(n)]['episodes_per_s']:.1f} episodes/s", flush=True)
        if args.learn_steps > 0:
            for n in counts:
                learned[str(n)] = learning(n, args, args.threads, Path(tmp))
                print(f"{n} process(es) learned: {learned[str(n)]['accuracy']} in {learned[str(n)]['wall_s']:.0f} s",
                      flush=True)
    base = throughput[str(counts[0])]["episodes_per_s"]
    scaling = {str(n): throughput[str(n)]["episodes_per_s"] / base for n in counts[1:]}
    print("scaling:", {n: round(s, 3) for n, s in scaling.items()}, f"(target for 2: >= {TARGET_SCALING})")
    if args.json:
        import torch

        result = {
            "benchmark": "data_parallel", "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": time.strftime("%Y-%m-%d"), "commit": git_commit(), "device": args.device,
            "device_name": throughput[str(counts[0])]["device_name"], "torch": torch.__version__,
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "threads_per_process": args.threads,
            "controller": args.controller, "batch_size": args.batch_size, "digits": args.digits,
            "load_average_before": load_before, "load_average_after": load_average(),
            "wall_s": time.time() - started, "target_scaling_2": TARGET_SCALING,
            "scaling": scaling, "throughput": throughput, "learning": learned or None,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
