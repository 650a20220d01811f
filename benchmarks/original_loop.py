"""The original training loop's shape beside ours: same device, same controller, one command.

    python benchmarks/original_loop.py --cpu smollm2-4bit --device cuda \\
        --json benchmarks/results/original_loop_h200.json

The design LlamaCPU started from trained one episode at a time: batch 1; the plan phase called
the controller once per memory slot (the prompt and that slot's query, the whole sequence every
time); the execute phase called it once per cycle; the optimizer stepped after every episode.
With the original recipe's controller (a Llama in 4-bit NF4, LoRA, 8-bit AdamW) that is the
``original`` row here: :func:`slotwise_plan` replaces the controller's plan pass, the batch size
is 1, and everything else is our own training step (the same losses, execute phase and
optimizer), so the comparison isolates the loop's shape. The ``ours`` row is
``Trainer.train_step()`` as ``llamacpu train`` runs it: a batch of episodes, one plan pass for
all slots, one pass per cycle for the whole batch.

Both rows time the same machine on the same problem size; episodes/s = episodes / seconds (the
median step after the warm-up). ``ratio`` = ours / original. Controllers: ``smollm2-4bit`` (the
GGUF saved once as a plain folder, then loaded in 4-bit: the stand-in for Meta-Llama-3-8B),
``smollm2`` (bf16 autocast on CUDA), ``tiny``, or the path of a Llama folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import bench_configs, git_commit, save_smollm2_folder  # noqa: E402  (a sibling benchmark)

TARGET_RATIO = 50.0


def slotwise_plan(controller: Any, prompt: Any, window: int, attentions: bool = False) -> Any:
    """The plan as the original loop computed it: one controller call per slot, each over the
    whole prompt and that slot's query. Same heads as ``Controller.plan``: [B, W, ...]."""
    from llamacpu.controller import PlanHeads

    b, l = prompt.ids.shape
    device = prompt.ids.device
    embeds = controller.prompt_embedding(prompt)  # (B, L, d)
    addresses = controller.address_embedding(window, device)  # (W, d)
    own = torch.eye(window, device=device)  # (W, W)
    mask = torch.cat([prompt.mask, torch.ones(b, 1, dtype=prompt.mask.dtype, device=device)], dim=1)
    types, pointers, contents = [], [], []
    for a in range(window):
        query = (controller.plan_query + addresses[a]).expand(b, 1, -1)  # (B, 1, d)
        h = controller._run(torch.cat([embeds, query], dim=1), mask).last_hidden_state[:, l:].float()  # (B, 1, d)
        origin = own[a].expand(b, 1, -1)  # (B, 1, W)
        pointers.append(torch.stack([head(h, origin) for head in controller.pointer_heads], dim=2))  # (B, 1, P, W)
        types.append(controller.type_head(h))
        contents.append(controller.content_head(h))
    prompt_kv = controller.encode_prompt(prompt)  # the execute phase's prompt keys and values
    return PlanHeads(torch.cat(types, 1), torch.cat(pointers, 1), torch.cat(contents, 1), None, prompt_kv)


def build_trainer(controller: str, folder: Path, batch: int, digits: int, device: str, run_dir: Path) -> Any:
    from llamacpu import checkpoint as ckpt
    from llamacpu.train import Trainer, config_dict

    cc, train = bench_configs(controller, str(folder))
    train.batch_size, train.max_digits, train.replay, train.device = batch, digits, 0.0, device
    config = ckpt.RunConfig(controller=cc, train=config_dict(train))
    torch.manual_seed(train.seed)
    machine = ckpt.build_machine(config, device)
    trainer = Trainer(run_dir, machine, config, train)
    trainer.stage = digits  # every batch of this size, as the stage starts
    return trainer


def time_steps(trainer: Any, warmup: int, steps: int) -> list[float]:
    times = []
    for i in range(warmup + steps):
        if trainer.config.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_step()  # ends with float(loss): the device has finished
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", default="smollm2-4bit", help="smollm2-4bit, smollm2, tiny, or a Llama folder path "
                    "(loaded in 4-bit)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--digits", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32, help="our step's batch (default 32, llamacpu train's)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps of ours (default 5)")
    ap.add_argument("--episodes", type=int, default=5, help="timed episodes of the original loop (default 5)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="SmolLM2 saved as a plain folder (reused if present)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from rich.console import Console

    console = Console(width=120)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device is available")
    with tempfile.TemporaryDirectory(prefix="llamacpu-original-") as tmp:
        folder = args.cache or Path(tmp) / "smollm2"
        controller = args.cpu
        if controller == "smollm2-4bit" and not (folder / "config.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            save_smollm2_folder(folder)
        elif controller not in ("smollm2-4bit", "smollm2", "tiny"):
            folder, controller = Path(controller), "smollm2-4bit"
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        trainer = build_trainer(controller, folder, args.batch_size, args.digits, args.device, run_dir)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        ours = time_steps(trainer, args.warmup, args.steps)
        ours_mem = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None

        # The original loop's shape on the same machine: batch 1, a controller call per plan slot.
        machine = trainer.machine
        machine.controller.plan = lambda prompt, window, attentions=False: slotwise_plan(
            machine.controller, prompt, window, attentions)
        trainer.config.batch_size = 1
        window = trainer.sample_batch().window
        original = time_steps(trainer, 1, args.episodes)

    ours_eps = args.batch_size / statistics.median(ours)
    original_eps = 1 / statistics.median(original)
    result = {
        "benchmark": "original_loop", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "preset": {"smollm2-4bit": "smollm2 (4-bit NF4 folder)"}.get(controller, controller),
        "date": time.strftime("%Y-%m-%d"), "commit": git_commit(), "digits": args.digits, "window": window,
        "ours": {"batch_size": args.batch_size, "s_per_step": statistics.median(ours), "episodes_per_s": ours_eps,
                 "cuda_peak_mib": ours_mem, "steps_timed": args.steps},
        "original": {"batch_size": 1, "controller_calls_per_episode": f"{window} plan + one per execute cycle",
                     "s_per_episode": statistics.median(original), "episodes_per_s": original_eps,
                     "episodes_timed": args.episodes},
        "ratio": ours_eps / original_eps, "target_ratio": TARGET_RATIO,
    }
    console.print(f"{result['preset']} on {result['device_name']}, {args.digits}-digit episodes (window {window}): "
                  f"ours {ours_eps:.1f} episodes/s (batch {args.batch_size}), original loop {original_eps:.3f} "
                  f"episodes/s: ratio [bold]{result['ratio']:.1f}x[/] (target {TARGET_RATIO:.0f}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
