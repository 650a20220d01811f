"""GPU memory of a Llama-3-8B-shaped controller, measured on a few layers and extrapolated.

    python benchmarks/llama_memory.py --device cuda --layers 1,2 --modes 4bit,bf16 \\
        --json benchmarks/results/llama8b_memory_h200.json

Meta-Llama-3-8B-Instruct's weights cannot be fetched here, but its memory does not depend on
their values: this builds Llama folders of its exact shape (hidden 4096, MLP 14336, 32 query and
8 key/value heads, vocabulary 128256) with random weights and 1 and 2 decoder layers, loads each
the way ``llamacpu train --cpu FOLDER`` does (``--load-in-4bit``: NF4 base weights, bf16
compute, LoRA, 8-bit AdamW; ``bf16``: bf16 weights, bf16 autocast, LoRA, AdamW), and runs
training steps on 1-digit problems. Every figure is ``torch.cuda.max_memory_allocated`` of its
own process. One layer costs ``peak(2) - peak(1)``; the whole model is then
``peak(1) + (target - 1) * per_layer`` (the embeddings, the LM head, the OEU, the heads, the
optimizer state of what is trained from scratch and the activations outside the layers are all
in ``peak(1)``). The JSON keeps both measurements and the arithmetic.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import git_commit, run_isolated  # noqa: E402  (a sibling benchmark)

MODES = ("4bit", "bf16")


@dataclass
class LlamaShape:
    """The decoder's dimensions (defaults: Meta-Llama-3-8B)."""

    hidden: int = 4096
    intermediate: int = 14336
    heads: int = 32
    kv_heads: int = 8
    vocab: int = 128256
    rope_theta: float = 500000.0
    tied: bool = False  # the LM head shares the embedding table (SmolLM2's does; Llama 3's does not)


def save_llama(folder: Path, shape: LlamaShape, layers: int, dtype: str = "bfloat16") -> None:
    """A random Llama of ``shape`` in ``dtype`` with ``layers`` decoder layers and a character-level
    fast tokenizer (the prompts' characters; the embedding table keeps the full vocabulary)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from llamacpu.controller import char_tokenizer

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=char_tokenizer(), pad_token="<pad>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                         num_hidden_layers=layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.kv_heads, rope_theta=shape.rope_theta, pad_token_id=0,
                         tie_word_embeddings=shape.tied)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def measure(folder: str, mode: str, batch: int, digits: int, steps: int, warmup: int, device: str) -> dict[str, Any]:
    """One training configuration in this (fresh) process: memory after loading, peak memory of
    the timed steps, seconds per step."""
    import torch

    from llamacpu import checkpoint as ckpt
    from llamacpu.cli_train import DEFAULT_LORA_LR, DEFAULT_LR
    from llamacpu.controller import ControllerConfig
    from llamacpu.train import Trainer, TrainConfig, config_dict

    four = mode == "4bit"
    cc = ControllerConfig(preset=folder, load_in_4bit=four, compute_dtype="bfloat16", autocast="bfloat16")
    train = TrainConfig(lr=DEFAULT_LR, lora_lr=DEFAULT_LORA_LR, optimizer="adamw8bit" if four else "adamw",
                        batch_size=batch, max_digits=digits, replay=0.0, device=device)
    config = ckpt.RunConfig(controller=cc, train=config_dict(train))
    cuda = device.startswith("cuda")
    torch.manual_seed(train.seed)
    t0 = time.perf_counter()
    machine = ckpt.build_machine(config, device)
    load_s = time.perf_counter() - t0
    loaded = torch.cuda.memory_allocated() if cuda else 0
    backbone = machine.controller.backbone
    frozen = sum(p.numel() for p in backbone.parameters() if not p.requires_grad)
    trainable = sum(p.numel() for p in machine.parameters() if p.requires_grad)
    times, losses = [], []
    with tempfile.TemporaryDirectory(prefix="llamacpu-mem-") as run_dir:
        trainer = Trainer(Path(run_dir), machine, config, train)
        trainer.stage = digits
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for i in range(warmup + steps):
            start = time.perf_counter()
            stats = trainer.train_step()
            if i >= warmup:
                times.append(time.perf_counter() - start)
                losses.append(stats["loss_total"])
    return {
        "mode": mode, "batch_size": batch, "digits": digits, "steps_timed": steps, "warmup": warmup,
        "load_s": load_s, "frozen_backbone_params": frozen, "trainable_params": trainable,
        "cuda_after_load_mib": loaded / 2**20 if cuda else None,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "s_per_step": statistics.median(times), "episodes_per_s": batch / statistics.median(times),
        "loss_first": losses[0], "loss_last": losses[-1],
        "device_name": torch.cuda.get_device_name() if cuda else "cpu",
    }


def extrapolate(rows: dict[int, dict[str, Any]], target: int, key: str) -> dict[str, Any] | None:
    """``key`` at ``target`` layers from two measured layer counts, linearly."""
    if len(rows) < 2 or any(r.get(key) is None for r in rows.values()):
        return None
    (l1, r1), (l2, r2) = sorted(rows.items())[:2]
    per_layer = (r2[key] - r1[key]) / (l2 - l1)
    total = r1[key] + (target - l1) * per_layer
    return {"per_layer_mib": per_layer, "target_layers": target, "total_mib": total, "total_gib": total / 1024,
            "arithmetic": f"{r1[key]:.0f} + ({target} - {l1}) * ({r2[key]:.0f} - {r1[key]:.0f}) / ({l2} - {l1})"
                          f" = {total:.0f} MiB"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default="1,2", help="decoder layer counts to measure (default 1,2)")
    ap.add_argument("--target-layers", type=int, default=32, help="layers to extrapolate to (default 32)")
    ap.add_argument("--modes", default="4bit,bf16", help=f"comma separated, from {', '.join(MODES)}")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--digits", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shape", default="", help="override dimensions, e.g. hidden=64,intermediate=128,heads=4,"
                                                "kv_heads=2,vocab=256 (a check on a small machine)")
    ap.add_argument("--cache", type=Path, default=None, help="keep the built folders here")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if bad := [m for m in modes if m not in MODES]:
        sys.exit(f"llama_memory: unknown mode {bad[0]!r} (known: {', '.join(MODES)})")
    shape = LlamaShape(**{k: type(getattr(LlamaShape, k))(v) for k, v in
                          (kv.split("=") for kv in args.shape.split(",") if kv)})
    layer_counts = sorted(int(x) for x in args.layers.split(","))
    root = args.cache or Path(tempfile.mkdtemp(prefix="llamacpu-llama-"))
    results: dict[str, Any] = {"benchmark": "llama_memory", "shape": asdict(shape), "date": datetime.date.today().isoformat(),
                               "commit": git_commit(), "command": " ".join(["python", *sys.argv]), "modes": {}}
    for layers in layer_counts:
        folder = root / f"llama-{layers}"
        if not (folder / "config.json").exists():
            save_llama(folder, shape, layers)
        for mode in modes:
            row = run_isolated(measure, str(folder), mode, args.batch_size, args.digits, args.steps, args.warmup,
                               args.device)
            results["modes"].setdefault(mode, {"rows": {}})["rows"][str(layers)] = row
            results["device_name"] = row["device_name"]
            print(f"{mode} {layers} layer(s): after load {row['cuda_after_load_mib']} MiB, peak {row['cuda_peak_mib']} "
                  f"MiB, {row['s_per_step']:.3f} s/step", flush=True)
    for mode, entry in results["modes"].items():
        rows = {int(k): v for k, v in entry["rows"].items()}
        entry["peak"] = extrapolate(rows, args.target_layers, "cuda_peak_mib")
        entry["after_load"] = extrapolate(rows, args.target_layers, "cuda_after_load_mib")
        if entry["peak"]:
            print(f"{mode}: {entry['peak']['arithmetic']} ({entry['peak']['total_gib']:.1f} GiB at "
                  f"{args.target_layers} layers)")
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
