"""``llamacpu train`` and ``llamacpu eval``."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamacpu import run_folder
from llamacpu.errors import LlamaCPUError

if TYPE_CHECKING:
    from llamacpu.checkpoint import RunConfig

# What --help names; the handlers check against controller.PRESETS and COMPUTE_DTYPES and the
# tasks' table (tests/test_cli_train.py checks that the help names each), imported only when a
# command runs: they import torch, which --help and a typo should not wait for.
PRESET_NAMES = "tiny, smollm2"
COMPUTE_DTYPE_NAMES = ("auto", "bfloat16", "float32")
AUTOCAST_NAMES = ("auto", "bfloat16", "off")  # controller.AUTOCAST_MODES, without importing torch
PLAN_POSITIONS = ("sequence", "coupled")  # controller.PLAN_POSITIONS
PLAN_ATTENTION = ("causal", "prompt", "local")  # controller.PLAN_ATTENTION
TOP_SLOTS = 8  # eval's table of the slots wrong in the most problems, per size
# Learning rates of a new run (docs/experiments.md, "Pretrained controllers", has the sweep behind them).
DEFAULT_LR = 1e-3  # from scratch: every part of a tiny machine; heads, encoders and OEU beside a pretrained backbone
DEFAULT_LORA_LR = 5e-4  # a pretrained backbone's LoRA adapters
from llamacpu.phrasings import SETS as PHRASING_SETS  # noqa: E402  (torch-free)
from llamacpu.problems import TASK_NAMES  # noqa: E402  (torch-free)
TASK_HELP = ("add (\"123 + 456\"), sub (\"123 - 45\"), mul (\"345 * 7\"), copy (\"copy 31415\"), reverse "
             "(\"reverse 2718\"), search (\"find 4 in 31415\"), sort (\"sort 31415\"): problems in words, see "
             "docs/tasks.md; sort-unrolled (the same words, every pass written out: the loop's ablation, "
             "docs/length-generalization.md); or programs (random programs of the ISA: the CPU alone, no plan phase)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the machine through the curriculum (resumes an existing run)",
                       description="Train through the curriculum: stage k trains k-digit problems until free-running "
                       "held-out accuracy passes --threshold. Naming an existing run folder resumes it exactly.")
    p.add_argument("--run", type=Path, help="run folder (created if new, resumed if it holds a run; "
                   "default runs/<date-time>)")
    p.add_argument("--cpu", default=None, metavar="PRESET",
                   help=f"controller: {PRESET_NAMES}, or the folder of a Llama-family causal LM, or its model "
                   "hub id with --hub (default tiny)")
    p.add_argument("--hub", action="store_true", help="let --cpu name a model hub id and download it (without "
                   "--hub nothing is fetched from the hub)")
    p.add_argument("--load-in-4bit", action="store_true", help="4-bit NF4 base weights with LoRA and 8-bit AdamW "
                   "(path presets; needs bitsandbytes)")
    p.add_argument("--compute-dtype", choices=COMPUTE_DTYPE_NAMES, default=None,
                   help="4-bit layers' matmuls (default auto: bfloat16 where the GPU or CPU computes it natively, "
                   "else float32)")
    p.add_argument("--autocast", choices=AUTOCAST_NAMES, default=None,
                   help="a new run's backbone passes on CUDA in bf16 (default auto: pretrained backbones only)")
    p.add_argument("--task", default=None, metavar="TASK",
                   help=f"task to learn: {TASK_HELP} (default add)")
    p.add_argument("--phrasings", choices=[s for s in PHRASING_SETS if s != "held-out"], default=None,
                   help="addition's prompts: symbols only (\"123 + 456\", the default) or the trained set of "
                   "phrasings in words too (\"add 456 to 123\", ...; llamacpu/phrasings.py)")
    p.add_argument("--max-digits", type=int, default=None,
                   help="last curriculum stage (default 4; programs: 6, programs of up to 24 instructions)")
    p.add_argument("--pc-modes", default=None, metavar="MODES",
                   help="a new run's control unit addressing modes, comma separated, from next, jump, absolute, "
                   "relative (default next,jump)")
    p.add_argument("--no-status-register", action="store_true",
                   help="a new run's REG slot keeps no status flag (an ablation: jumps cannot see their condition)")
    p.add_argument("--position-offsets", type=int, default=None, metavar="N",
                   help="a new run's places and block pages are shared position tags, shifted by a random offset "
                   "of 0..N per training episode (Abacus-style; length generalization, docs/length-generalization.md)")
    p.add_argument("--no-rope", action="store_true",
                   help="a new run's backbone gets no rotary positions (order comes from tags and addresses)")
    p.add_argument("--plan-positions", choices=PLAN_POSITIONS, default=None,
                   help="a new run's rotary positions in the plan pass: sequence (token index, the default) or "
                   "coupled (a digit at its place, a plan query at its page's place)")
    p.add_argument("--plan-attention", choices=PLAN_ATTENTION, default=None,
                   help="a new run's plan queries attend to the prompt and the queries before them (causal, the "
                   "default), to the prompt and themselves only (prompt), or to that within --plan-reach "
                   "coupled positions, prompt tokens too (local; needs --plan-positions coupled)")
    p.add_argument("--plan-reach", type=int, default=None, metavar="R",
                   help="with --plan-attention local: how many places away a token sees (default 1)")
    p.add_argument("--end-marker", action="store_true",
                   help="a new run's plan queries on each problem's last page carry a learned marker")
    p.add_argument("--no-bos", action="store_true",
                   help="a new run with a pretrained controller leaves out the tokenizer's BOS token, so the "
                   "prompt's first token becomes the model's attention sink (the ablation; runs made before "
                   "the BOS token keep going without it)")
    p.add_argument("--absolute-slots", type=int, default=None, metavar="K",
                   help="a new run's absolute pointers reach the first K slots only; with --position-offsets the "
                   "run then evaluates in memory larger than it trained in")
    p.add_argument("--batch-size", type=int, default=None, help="problems per step (default 32)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate of what is trained from scratch: heads, encoders, the OEU, a tiny backbone "
                   f"(default {DEFAULT_LR:g})")
    p.add_argument("--lora-lr", type=float, default=None,
                   help=f"learning rate of a pretrained backbone's LoRA adapters (default {DEFAULT_LORA_LR:g})")
    p.add_argument("--stage-steps", type=int, default=None, help="step budget of one stage (default 3000)")
    p.add_argument("--threshold", type=float, default=None, help="held-out accuracy that passes a stage (default 0.99)")
    p.add_argument("--eval-every", type=int, default=None, help="competence check every N steps (default 100)")
    p.add_argument("--quick-every", type=int, default=None,
                   help="between full checks, a quick check of the current size every N steps (default 25; 0: none)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every M steps (default 200)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in all (resumable)")
    p.add_argument("--slots", type=int, default=None, help="memory size N (default 256)")
    p.add_argument("--isa-seed", type=int, default=None, metavar="N",
                   help="a new run's machine language: the seed its address keys are drawn from (default 0); "
                   "machines of different seeds cannot run each other's code (docs/embedding-language.md)")
    p.add_argument("--seed", type=int, default=None, help="seed of initialization and data (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, or auto (default: cuda if available)")
    p.add_argument("--traces", type=Path, default=None, help="trace store (default traces/<run folder name>)")
    p.add_argument("--probe-every", type=int, default=None,
                   help="record the probe problems every K steps (default 200; 0: never)")
    p.add_argument("--probes", default=None, help="probe problems, comma separated (default \"3 + 5,47 + 38,512 + 489\")")
    p.add_argument("--no-traces", action="store_true", help="record no traces while training")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set any training option by name, e.g. --set replay=0.5 (see TrainConfig in train.py)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="free-running accuracy by problem size",
                       description="Free-running accuracy: the model writes every slot, picks every PC, the OEU computes "
                       "every result, the answer is read from the result slots. Also reports 'plan exact' and the "
                       "accuracy of running from the target plan.")
    e.add_argument("--run", type=Path, required=True, help="run folder")
    e.add_argument("--task", default=None, choices=TASK_NAMES, help="task to evaluate (default: the run's)")
    e.add_argument("--digits", default=None, help="sizes, comma separated: digits, items of a digit string, or "
                   "instructions for programs (default 1,2,3,4; sort: 1-5; programs: 4,8,12,16,24,48,96)")
    e.add_argument("--phrasings", choices=list(PHRASING_SETS), default=None,
                   help="addition's prompts: symbols, the trained phrasings, or the held-out phrasings no run "
                   "trains on (default: the run's own)")
    e.add_argument("--trials", type=int, default=500, help="problems per size (default 500)")
    e.add_argument("--batch-size", type=int, default=None, help="problems run together (default 100, fewer past "
                   "about 100 digits so that memory stays bounded: one at a time at 1000)")
    e.add_argument("--seed", type=int, default=12345, help="seed of the evaluation problems")
    e.add_argument("--no-from-target", action="store_true",
                   help="skip the second run of each problem from the target plan (half the time; no 'from target')")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--device", default=None, help="cpu, cuda, or auto")
    e.set_defaults(func=cmd_eval)


def pick_device(name: str | None) -> str:
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LlamaCPUError(f"device {name!r} asked for, but no CUDA device is available")
    return name


def _new_run_config(args: argparse.Namespace) -> RunConfig:
    from llamacpu import checkpoint as ckpt
    from llamacpu.controller import ControllerConfig
    from llamacpu.isa import SlotLayout
    from llamacpu.train import TrainConfig, config_dict

    preset = args.cpu or "tiny"
    modes = tuple(m for m in re.split(r"[,+\s]+", args.pc_modes) if m) if args.pc_modes else ("next", "jump")
    controller = ControllerConfig(preset=preset, load_in_4bit=args.load_in_4bit, seed=args.seed or 0,
                                  compute_dtype=args.compute_dtype or "auto", pc_modes=modes,
                                  status_register=not args.no_status_register, autocast=args.autocast or "auto",
                                  position_offsets=args.position_offsets or 0, rope=not args.no_rope,
                                  absolute_slots=args.absolute_slots or 0,
                                  plan_positions=args.plan_positions or "sequence",
                                  plan_attention=args.plan_attention or "causal", end_marker=args.end_marker,
                                  bos=not args.no_bos, plan_reach=1 if args.plan_reach is None else args.plan_reach)
    layout = SlotLayout(n_slots=args.slots or SlotLayout.n_slots, key_seed=args.isa_seed or 0)
    train = TrainConfig(lr=args.lr or DEFAULT_LR, lora_lr=None if preset == "tiny" else args.lora_lr or DEFAULT_LORA_LR,
                        seed=args.seed or 0, optimizer="adamw8bit" if args.load_in_4bit else "adamw")
    return ckpt.RunConfig(layout=layout, controller=controller, train=config_dict(train))


def check_controller_name(name: str | None, hub: bool) -> None:
    """A --cpu that is neither a preset nor a folder is refused at once, unless --hub asks for
    a download (the hub client would otherwise retry for a minute before failing)."""
    from llamacpu.controller import PRESETS

    if name is None or name in PRESETS or hub:
        return
    path = Path(name)
    if path.is_dir():
        return
    what = "a file, not a model folder" if path.exists() else "neither a preset nor a model folder"
    raise LlamaCPUError(f"unknown controller {name!r}: {what} (presets: {', '.join(PRESETS)}; "
                        "a model hub id needs --hub)")


_OVERRIDES = {"task": "task", "max_digits": "max_digits", "batch_size": "batch_size", "lr": "lr",
              "lora_lr": "lora_lr", "phrasings": "phrasings", "stage_steps": "stage_steps", "threshold": "threshold", "eval_every": "eval_every",
              "quick_every": "quick_every", "checkpoint_every": "checkpoint_every"}


def cmd_train(args: argparse.Namespace) -> int:
    from llamacpu import distributed

    world = distributed.world_from_env()  # several processes under torchrun; else a world of one
    if world.distributed and args.run is None:  # each rank would name its own folder by its clock
        raise LlamaCPUError("several processes (torchrun) need --run DIR: one run folder they all train")
    run_dir = args.run or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    resuming = run_folder.is_run(run_dir)
    if run_dir.exists() and not resuming and (run_dir.is_file() or any(run_dir.iterdir())):
        raise run_folder.RunError(f"{run_dir} is not a run folder (no {run_folder.CONFIG}) and is not empty")
    check_controller_name(args.cpu, args.hub)

    import torch

    from llamacpu import checkpoint as ckpt
    from llamacpu.tasks import get_task
    from llamacpu.tasks.base import sized
    from llamacpu.train import Trainer, TrainConfig

    if resuming:
        config = ckpt.read_config(run_dir)
        for flag, given in (("--position-offsets", args.position_offsets is not None), ("--no-rope", args.no_rope),
                            ("--absolute-slots", args.absolute_slots is not None),
                            ("--plan-positions", args.plan_positions is not None),
                            ("--plan-attention", args.plan_attention is not None),
                            ("--end-marker", args.end_marker), ("--plan-reach", args.plan_reach is not None),
                            ("--no-bos", args.no_bos),
                            ("--isa-seed", args.isa_seed is not None)):
            if given:
                raise ckpt.RunError(f"{flag} shapes a new run; {run_dir} keeps the controller it was made with")
        if args.cpu and args.cpu != config.controller.preset:
            raise ckpt.RunError(f"{run_dir} was trained with --cpu {config.controller.preset}, not {args.cpu}")
    else:
        config = _new_run_config(args)
        if args.task == "programs" and args.max_digits is None:
            config.train["max_digits"] = get_task("programs").max_stages()
    if args.load_in_4bit and not config.controller.pretrained:
        raise LlamaCPUError("--load-in-4bit needs a pretrained controller (--cpu PATH_OR_HUB_ID)")
    if args.lora_lr is not None and not config.controller.pretrained:
        raise LlamaCPUError("--lora-lr applies to a pretrained controller's LoRA adapters; the tiny one has none")
    if args.compute_dtype and not (args.load_in_4bit or config.controller.load_in_4bit):
        raise LlamaCPUError("--compute-dtype applies to 4-bit layers: use it with --load-in-4bit")
    for arg, key in _OVERRIDES.items():
        if getattr(args, arg) is not None:
            config.train[key] = getattr(args, arg)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in TrainConfig.__dataclass_fields__ or not _:
            raise LlamaCPUError(f"--set takes KEY=VALUE with a training option as KEY, not {item!r}")
        try:
            config.train[key] = json.loads(value)
        except json.JSONDecodeError:
            config.train[key] = value
    device = pick_device(args.device)
    config.train["device"] = device  # the kind; each rank of several trains on its own GPU of that kind
    train_cfg = TrainConfig.from_dict(config.train)
    world.check_batch(train_cfg.batch_size)
    task = get_task(train_cfg.task)
    if train_cfg.max_digits < 1:
        raise LlamaCPUError("--max-digits must be at least 1")
    for name in ("batch_size", "eval_every", "checkpoint_every", "stage_steps"):
        if getattr(train_cfg, name) < 1:
            raise LlamaCPUError(f"--{name.replace('_', '-')} must be at least 1")
    if train_cfg.quick_every < 0:
        raise LlamaCPUError("--quick-every must be 0 (none) or more")
    needed = task.slots_needed(task.stage_size(train_cfg.max_digits))
    if train_cfg.task == "programs" and train_cfg.max_digits > task.max_stages():
        raise LlamaCPUError(f"the programs curriculum has {task.max_stages()} stages, not {train_cfg.max_digits}")
    if needed > config.layout.n_slots:
        raise LlamaCPUError(f"{sized(task, train_cfg.max_digits)} needs {needed} slots; the memory has "
                            f"{config.layout.n_slots} (at most {task.max_digits_for(config.layout.n_slots)} "
                            f"{task.size_name}; see --slots)")
    latest = ckpt.latest_checkpoint(run_dir) if resuming else None
    # Every rank has read the run folder: the process group's start waits for them all, and only
    # then does rank 0 write to it (config, metrics, checkpoints, traces).
    with distributed.process_group(world, world.rank_device(device)) as world:
        torch.manual_seed(train_cfg.seed)
        machine = ckpt.build_machine(config, world.device)
        if world.is_main:
            ckpt.write_config(run_dir, config)
        recorder = _make_recorder(args, run_dir, config, machine) if world.is_main else None
        display = _Display(quiet=args.quiet, max_digits=train_cfg.max_digits, silent=not world.is_main)
        trainer = Trainer(run_dir, machine, config, train_cfg, on_progress=display.update,
                          on_check=recorder.on_check if recorder else None, world=world)
        if latest is None and train_cfg.init_from:
            fresh = ckpt.init_from(machine, Path(train_cfg.init_from))
            display.console.log(f"started from {train_cfg.init_from} ({len(fresh)} tensors new)")
        if latest is not None:
            ckpt.load_weights(machine, latest)
            trainer.load_state(ckpt.load_state(latest))
            display.console.log(f"resumed {run_dir} at step {trainer.step}, stage {trainer.stage}")
        if world.distributed:
            display.console.log(f"{world.size} processes, {train_cfg.batch_size // world.size} problems of each "
                                f"batch of {train_cfg.batch_size} on each ({world.device.split(':')[0]})")
        if recorder is not None:
            trainer.on_step = recorder.on_step
        t0 = time.perf_counter()
        with display, _stop_on_signal(trainer, display.console, enabled=not world.distributed):
            summary = trainer.run(max_steps=args.max_steps)
        wall = time.perf_counter() - t0
    if world.is_main:  # the final table: rank 0's weights are every rank's
        display.finish(trainer, summary, wall)
    return 0


@contextlib.contextmanager
def _stop_on_signal(trainer: Any, console: Any, enabled: bool = True) -> Iterator[None]:
    """Ctrl-C or SIGTERM (``timeout``) asks the trainer to stop after the step in flight, which it
    checkpoints, so a resumed run loses nothing; a second signal stops at once. Under torchrun
    (``enabled=False``) the ranks would stop at different steps, so a signal stops them at once
    and the last periodic checkpoint is where they resume."""
    if not enabled:
        yield
        return

    def ask(signum: int, _frame: Any) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        console.log(f"{signal.Signals(signum).name}: stopping after step {trainer.step + 1} "
                    "and saving a checkpoint (again to stop at once)")

    with _on_stop_signals(ask):
        yield


@contextlib.contextmanager
def _on_stop_signals(handler: Any) -> Iterator[None]:
    """``handler`` for Ctrl-C and SIGTERM inside the block; the previous handlers after it."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _make_recorder(args: argparse.Namespace, run_dir: Path, config: RunConfig, machine: Any) -> Any:
    if args.no_traces or config.train.get("task") == "programs":  # probes are problems in words
        return None
    from llamacpu.recording import TrainingRecorder

    store = args.traces or Path("traces") / run_dir.name
    probes = args.probes.split(",") if args.probes else None
    return TrainingRecorder(store, run_dir, config, machine, probe_every=args.probe_every, probes=probes)


class _Display:
    """A rich progress bar per stage with the losses and the last competence check."""

    def __init__(self, quiet: bool, max_digits: int, silent: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True, quiet=silent)  # silent: a rank other than 0 says nothing
        self.quiet = quiet
        self.progress = Progress(TextColumn("[bold]stage {task.fields[stage]}/" + str(max_digits)),
                                 BarColumn(), TextColumn("{task.completed:>5.0f} steps"),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 console=self.console, disable=quiet or silent)
        self.tasks: dict[int, Any] = {}
        self.last_check = ""
        self.stage_budget = 3000

    def __enter__(self) -> "_Display":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def _task(self, stage: int) -> Any:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task("", total=None, stage=stage, info="")
        return self.tasks[stage]

    def update(self, record: dict[str, Any]) -> None:
        event = record["event"]
        if event == "train":
            info = (f"loss {record['loss_total']:.3f}  answer {record['loss_answer']:.3f}  "
                    f"pc {record['loss_pc']:.3f}  oeu {record['loss_oeu']:.3f}  {record['episodes_per_s']:.0f} ep/s  {self.last_check}")
            task = self._task(record["stage"])
            self.progress.update(task, completed=record["step"], info=info)
        elif event == "check":
            if record["digits"] == 1:
                self.last_check = ""
            self.last_check += f" {record['digits']}d {record['accuracy']:.0%}"
        elif event == "stage_end":
            verdict = "passed" if record["passed"] else "ran out of budget"
            self.console.log(f"stage {record['stage']} {verdict} at step {record['at_step']}: "
                             f"held-out accuracy {record['accuracy']:.1%} after {record['steps']} steps")
        elif event == "rewind":
            sizes = ", ".join(map(str, record["fallen"]))
            self.console.log(f"stage {record['stage']} rewound to step {record['to_step']} at step {record['step']} "
                             f"(size {sizes} fell; rewind {record['rewinds']}, lr warms up to {record['lr']:.2g})")

    def finish(self, trainer: Any, summary: dict[str, Any], wall: float) -> None:
        from rich.table import Table

        from llamacpu.evaluate import evaluate

        if summary["done"] and summary["history"] and not summary["history"][-1]["passed"]:
            self.console.log(f"[red]stage {summary['stage']} ran out of its step budget")
        elif not summary["done"]:
            self.console.log(f"stopped at step {summary['step']} (stage {summary['stage']}); run again to resume")
        if trainer.stop_requested:  # asked to stop: no evaluation of every size on the way out
            return
        table = Table(title=f"held-out free-running accuracy after {summary['step']} steps ({wall:.0f} s)")
        for col in ("digits", "problems", "correct", "accuracy", "halted", "plan exact"):
            table.add_column(col, justify="right")
        for digits in sorted({trainer.task.stage_size(k) for k in range(1, trainer.config.max_digits + 1)}):
            problems = trainer.heldout.get(digits)
            r = evaluate(trainer.machine, trainer.task, digits, len(problems), seed=0, problems=problems,
                         diagnostics=False)
            table.add_row(str(digits), str(r.trials), str(r.correct), f"{r.accuracy:.1%}", str(r.halted),
                          f"{r.plan_exact:.1%}")
        from rich.console import Console

        Console().print(table)


def parse_digits(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LlamaCPUError(f"--digits takes sizes like 1,2,5,10, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise LlamaCPUError("--digits takes sizes of at least 1")
    return sizes


def _note_untrained_sizes(run_dir: Path, sizes: list[int], task: Any) -> None:
    """One stderr line naming the sizes past what the run was trained on (eval's problems have
    operands of one length: the largest is what matters). Addition knows its operands' lengths
    (llamacpu.trained_range); another task's range is its last passed stage's size."""
    import sys

    from llamacpu.tasks.base import size_unit
    from llamacpu.trained_range import run_trained_range

    trained = run_trained_range(run_dir)
    if trained is not None:
        past = [d for d in sizes if not trained.contains((10 ** (d - 1), 10 ** (d - 1)))]
        described = trained.describe()
    elif task.name != "programs":
        passed = [r.get("stage") for r in run_folder.read_metrics(run_dir)
                  if r.get("event") == "stage_end" and r.get("passed") and isinstance(r.get("stage"), int)]
        largest = task.stage_size(max(passed)) if passed else 0
        past = [d for d in sizes if d > largest]
        described = (f"this run was trained on 1-{largest} {task.size_name}" if largest
                     else "this run has passed no curriculum stage yet")
    else:
        return
    if past:
        which = ", ".join(str(d) for d in past)
        print(f"llamacpu eval: note: {which}-{size_unit(task)} problems are outside the trained range: {described}",
              file=sys.stderr)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise LlamaCPUError("--trials must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise LlamaCPUError("--batch-size must be at least 1")
    run_folder.check_run(args.run)
    with _stop_eval_on_signal():
        return _eval(args)


@contextlib.contextmanager
def _stop_eval_on_signal() -> Iterator[None]:
    """Ctrl-C or SIGTERM (``timeout``) stops an evaluation at once; it reports the problems it
    finished (a 1000-digit problem can take minutes: nothing finished is lost). A second signal,
    while the results print, ends the process."""
    from llamacpu.evaluate import EvalStopped

    def stop(signum: int, _frame: Any) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        raise EvalStopped(signal.Signals(signum).name)

    with _on_stop_signals(stop):
        yield


def _eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from llamacpu import checkpoint as ckpt
    from llamacpu.evaluate import EvalStopped, bucket_order, evaluate, results_json
    from llamacpu.tasks import get_task
    from llamacpu.tasks.base import sized
    from llamacpu.train import TrainConfig

    config = ckpt.read_config(args.run)
    train_cfg = TrainConfig.from_dict(config.train)
    task = get_task(args.task or train_cfg.task)
    sizes = parse_digits(args.digits or ",".join(str(d) for d in task.eval_sizes))
    needed = max(task.slots_needed(d) for d in sizes)
    grow = needed if needed > config.layout.n_slots and config.controller.growable else None
    machine, config, latest = ckpt.load_machine(args.run, pick_device(args.device), n_slots=grow)
    if grow:
        import sys

        print(f"llamacpu eval: note: memory grown to {grow} slots for {max(sizes)}-digit {task.name} (new address "
              "keys by the run's seeded scheme)", file=sys.stderr)
    phrasings = args.phrasings or train_cfg.phrasings
    if hasattr(task, "phrasings"):
        from llamacpu.phrasings import phrasing_set

        task.phrasings = phrasing_set(phrasings)
    elif args.phrasings:
        raise LlamaCPUError(f"--phrasings applies to addition, not to {task.name}")
    too_big = [d for d in sizes if task.slots_needed(d) > config.layout.n_slots]
    if too_big:
        what = f"a {too_big[0]}-instruction program" if task.name == "programs" else sized(task, too_big[0])
        raise LlamaCPUError(f"{what} needs up to {task.slots_needed(too_big[0])} slots; this "
                            f"machine has {config.layout.n_slots}")
    _note_untrained_sizes(args.run, sizes, task)
    results, stopped = [], ""
    try:
        for d in sizes:  # held-out problems only (a hash of each problem decides), distinct, up to --trials
            r = evaluate(machine, task, d, args.trials, seed=f"eval-{args.seed}-{d}", batch_size=args.batch_size,
                         diagnostics=not args.no_from_target)
            if r.trials:
                results.append(r)
            if r.stopped:
                stopped = r.stopped
                break
    except EvalStopped as stop:  # between evaluate's batches: while drawing or building problems
        stopped = str(stop)
    if stopped:
        import sys

        done = ", ".join(f"{r.trials} at {r.digits}" for r in results) or "none"
        print(f"llamacpu eval: stopped by {stopped}; the results cover the problems that finished ({done})",
              file=sys.stderr)
    code = 128 + getattr(signal, stopped, signal.SIGTERM) if stopped else 0
    if args.json:
        out = results_json(task.name, results)
        if hasattr(task, "phrasings"):
            out["phrasings"] = phrasings
        print(json.dumps(out))
        return code
    table = Table(title=f"{args.run}: free-running accuracy ({'step ' + latest.name[5:] if latest else 'untrained'})")
    planned = getattr(task, "planned", True)  # random programs have no plan: nothing to compare it with
    for col in (task.size_name, "trials", "correct", "accuracy", "halted") + (("plan exact", "from target plan")
                                                                               if planned else ()):
        table.add_column(col, justify="right")
    for r in results:
        plan = (f"{r.plan_exact:.1%}", "-" if r.from_target is None else f"{r.from_target:.1%}") if planned else ()
        table.add_row(str(r.digits), str(r.trials), str(r.correct), f"{r.accuracy:.1%}", str(r.halted), *plan)
    Console().print(table)
    if any(r.plan_errors for r in results):  # where the wrong plans are wrong
        errs = Table(title="wrong plans: problems whose plan has the field wrong in a slot of the target type")
        for col in (task.size_name, "field", "slot type", "problems", "of trials"):
            errs.add_column(col, justify="right")
        for r in results:
            for kind, n in r.plan_errors.items():
                name, slot_type = kind.split(" ", 1)
                errs.add_row(str(r.digits), name, slot_type, str(n), f"{n / r.trials:.1%}")
        Console().print(errs)
        where = Table(title=f"wrong plans by slot ({TOP_SLOTS} most often wrong; --json: plan_error_slots)")
        for col in (task.size_name, "slot", "problems", "of trials"):
            where.add_column(col, justify="right")
        for r in results:
            top = sorted(r.plan_error_slots.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SLOTS]
            for slot, n in sorted(top):
                where.add_row(str(r.digits), str(slot), str(n), f"{n / r.trials:.1%}")
        Console().print(where)
    worded: dict[str, list[int]] = {}
    for r in results:
        for template, counts in r.by_phrasing.items():
            row = worded.setdefault(template, [0, 0, 0])
            for i, c in enumerate(counts):
                row[i] += c
    if worded:
        by = Table(title=f"the same problems by phrasing ({phrasings}; all sizes)")
        for col in ("phrasing", "trials", "correct", "accuracy", "plan exact"):
            by.add_column(col, justify="left" if col == "phrasing" else "right")
        for template, (n, ok, same) in worded.items():
            by.add_row(template, str(n), str(ok), f"{ok / n:.1%}", f"{same / n:.1%}")
        Console().print(by)
    jumps: dict[str, list[int]] = {}
    for r in results:
        for bucket, (n, ok) in r.by_taken_jumps.items():
            row = jumps.setdefault(bucket, [0, 0])
            row[0], row[1] = row[0] + n, row[1] + ok
    if jumps:
        by = Table(title="the same programs by jumps taken (all lengths)")
        for col in ("jumps taken", "trials", "correct", "accuracy"):
            by.add_column(col, justify="right")
        for bucket, (n, ok) in sorted(jumps.items(), key=lambda kv: bucket_order(kv[0])):
            by.add_row(bucket, str(n), str(ok), f"{ok / n:.1%}")
        Console().print(by)
    return code
