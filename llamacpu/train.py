"""Training: losses, scheduled sampling, the curriculum, checkpoints and exact resume.

Stage k trains the task's k-th size (k-digit addition; random programs of up to
``STAGE_LENGTHS[k-1]`` instructions), replaying earlier sizes, until free-running exact-match
accuracy on held-out problems of the stage's size reaches a threshold; each stage has a step
budget. Whether a problem is held out is a hash of the problem (:func:`llamacpu.tasks.base.held_out`),
so no training batch ever holds one. Every random
choice comes from generators whose states are checkpointed, so a resumed run continues exactly
as an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from llamacpu import checkpoint as ckpt
from llamacpu.controller import Prompt
from llamacpu.cuda_graphs import cudagraphs_per_shape
from llamacpu.distributed import Shard, World, take_rows
from llamacpu.evaluate import SizeResult, draw_held_out, evaluate
from llamacpu.machine import Machine, Teacher
from llamacpu.phrasings import phrasing_set
from llamacpu.tasks import ProgramBatch, collate, get_task
from llamacpu.tasks.base import IGNORE, sized

log = logging.getLogger(__name__)

LOSS_NAMES = ("type", "pointer", "content", "pc", "oeu", "halt", "answer", "table")
SPIKE_WINDOW, SPIKE_MIN = 50, 10  # spike_skip's median: over the last 50 steps' norms, once there are 10
REPLAY_BY = ("uniform", "errors")
REPLAY_PER = ("batch", "problem")
# torch.compile's modes ("": eager), and "cudagraphs": its backend of that name (AOTAutograd's forward
# and backward graphs replayed as CUDA graphs, no kernels generated), which compiles in the time a
# trace takes where inductor's kernels take minutes (docs/experiments.md, "Session 37").
COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune", "cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "cudagraphs")  # a step's outputs live in graphs' memory (see train_step)
COMPILE_SCOPES = ("layers", "cycle")  # what compile= compiles: each decoder layer, or each execute cycle whole
REPLAY_FLOOR = 0.05  # "errors": a size the last check found perfect keeps this weight (others: floor + error)


def compile_options(mode: str) -> dict[str, Any]:
    """torch.compile's keyword for a mode of COMPILE_MODES; "cudagraphs" is torch's backend of
    that name keyed on every input's shape (llamacpu/cuda_graphs.py: torch's own replayed the
    first stage's graph for the second stage's longer prompts and failed, session 38)."""
    return {"backend": cudagraphs_per_shape} if mode == "cudagraphs" else {"mode": mode}


@dataclass
class TrainConfig:
    task: str = "add"
    max_digits: int = 4  # curriculum: stages 1..max_digits
    batch_size: int = 32
    lr: float = 1e-3  # everything trained from scratch: heads, slot encoder, embeddings, a tiny backbone
    lora_lr: float | None = None  # LoRA adapters of a pretrained backbone (None: the same group and rate as lr)
    betas: tuple[float, float] = (0.9, 0.98)  # a short second-moment memory: sizes change abruptly
    eps: float = 1e-6
    weight_decay: float = 0.0
    warmup: int = 50  # linear lr warm-up at the start of every stage
    stage_lr_decay: float = 1.0  # every rate times this per stage past the first (later stages take smaller steps)
    grad_clip: float = 1.0
    stage_steps: int = 3000  # step budget of one stage
    replay: float = 0.5  # probability that a batch is of an earlier size (each equally likely) ...
    replay_by: str = "uniform"  # ... or "errors": by each size's error at the last full check (REPLAY_BY)
    # What a replay draw decides (REPLAY_PER): "problem", every problem draws its own size, so
    # each update holds them all (the batch's window is its largest problem's; shorter programs
    # end in EMPTY slots); "batch", a whole batch is the stage's size or one earlier size (the
    # default before session 34, and what a run whose config.json lacks the key resumes with).
    # The tiny 1-4 digit curriculum passed in 650 and 725 steps per problem (seeds 0, 1), in 1175
    # one size a batch (seed 0; docs/experiments.md, "Session 34").
    replay_per: str = "problem"
    rewinds: int = 0  # forgetting guard: times a stage may go back to its start (weights, optimizer) when ...
    rewind_below: float = 0.9  # ... a full check finds a size an earlier stage passed under this accuracy;
    rewind_lr: float = 0.5  # each rewind multiplies the stage's rates by this (0: no guard; docs/experiments.md)
    tf_start: float = 0.5  # scheduled sampling: probability of using a target, annealed ...
    tf_steps: int = 400  # ... linearly to ``tf_end`` over this many steps of each stage
    tf_end: float = 0.0  # where the annealing stops (loops: a floor keeps soft runs near their targets)
    spike_skip: float = 0.0  # skip an update whose gradient norm is over this many times the recent median (0: never)
    table_rows: int = 1024  # random rows of the OEU's own table per step
    eval_every: int = 100  # full competence check (every size up to the stage, logged) every this many steps
    quick_every: int = 25  # between full checks, a quick check of the stage's own size (0: none); it stops at the
    # first failure past what the threshold allows, and a pass calls a full check at once
    eval_trials: int = 200  # held-out problems per size (1 digit: 20 of the 100 pairs)
    threshold: float = 0.99  # free-running held-out accuracy that passes a stage
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0
    weights: dict[str, float] = field(default_factory=lambda: {
        "type": 1.0, "pointer": 1.0, "content": 1.0, "pc": 1.0, "oeu": 1.0, "halt": 0.5, "answer": 1.0, "table": 1.0,
    })
    device: str = "cpu"
    optimizer: str = "adamw"  # "adamw" or "adamw8bit" (bitsandbytes; the 4-bit recipe)
    init_from: str = ""  # a run folder whose weights start a new run (every tensor of matching name and shape)
    # The stage a new run's curriculum begins at. With init_from, a run continued without its
    # optimizer state: starting again at stage 1 retrains the small sizes at the first stages'
    # full rates and, replaying only sizes up to the stage, loses the larger ones it knew
    # (docs/experiments.md "Session 31"). Earlier sizes are replayed and checked as usual.
    start_stage: int = 1
    programs_mix: float = 0.0  # fraction of batches that are random programs (keeps a task's CPU general)
    mixed_lengths: bool = True  # addition: half the problems have operands of different lengths (False: never)
    phrasings: str = "symbols"  # addition's prompts: "symbols" ("a + b") or "trained" (words too; llamacpu.phrasings)
    freeze: str = ""  # "execute": the execute phase's own modules stay as loaded; "cpu": so does all it reads (FREEZE)
    recompute: bool = False  # each cycle's control unit runs again in backward: same gradients, less memory
    compile: str = ""  # torch.compile: "" (not), or a mode of COMPILE_MODES (shapes dynamic)
    compile_scope: str = "layers"  # what it compiles (COMPILE_SCOPES): each decoder layer, or each execute cycle whole

    def __post_init__(self) -> None:  # checked before a run folder is written
        if not isinstance(self.recompute, bool):
            raise ckpt.RunError(f"recompute={self.recompute!r} is not true or false")
        if self.replay_by not in REPLAY_BY:
            raise ckpt.RunError(f"replay_by={self.replay_by!r} is not one of {', '.join(map(repr, REPLAY_BY))}")
        if self.replay_per not in REPLAY_PER:
            raise ckpt.RunError(f"replay_per={self.replay_per!r} is not one of {', '.join(map(repr, REPLAY_PER))}")
        if self.compile not in COMPILE_MODES:
            raise ckpt.RunError(f"compile={self.compile!r} is not one of {', '.join(map(repr, COMPILE_MODES))}")
        if self.compile_scope not in COMPILE_SCOPES:
            raise ckpt.RunError(f"compile_scope={self.compile_scope!r} is not one of "
                                f"{', '.join(map(repr, COMPILE_SCOPES))}")
        if self.compile and self.compile_scope == "cycle" and self.recompute:
            raise ckpt.RunError("compile_scope='cycle' does not recompute: the transformers backbone's context "
                                "variables cannot be replayed in a compiled cycle's backward (drop recompute, or use "
                                "compile_scope='layers')")
        if self.compile == "cudagraphs" and self.compile_scope != "cycle":
            raise ckpt.RunError("compile='cudagraphs' needs compile_scope='cycle': a compiled layer takes Python floats "
                                "as CPU tensors, and a graph with a CPU input is never captured as a CUDA graph")
        if not 0.0 < self.stage_lr_decay <= 1.0:
            raise ckpt.RunError(f"stage_lr_decay={self.stage_lr_decay!r} is not in (0, 1]")
        if not isinstance(self.start_stage, int) or isinstance(self.start_stage, bool) \
                or not 1 <= self.start_stage <= self.max_digits:
            raise ckpt.RunError(f"start_stage={self.start_stage!r} is not a stage of this curriculum "
                                f"(1 to --max-digits {self.max_digits})")
        if not isinstance(self.rewinds, int) or isinstance(self.rewinds, bool) or self.rewinds < 0:
            raise ckpt.RunError(f"rewinds={self.rewinds!r} is not a whole number of 0 or more")
        for name in ("rewind_below", "rewind_lr"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ckpt.RunError(f"{name}={getattr(self, name)!r} is not in (0, 1]")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        known.setdefault("replay_per", "batch")  # a run from before the key existed replays per batch
        if "betas" in known:
            known["betas"] = tuple(known["betas"])
        return cls(**known)


# What ``TrainConfig.freeze`` keeps fixed, by parameter-name prefix. "execute": the modules only
# the execute phase uses (the control unit and the OEU); "cpu": also the backbone and the address
# embeddings, everything an execute cycle reads except the prompt's place and number embeddings
# (zero for a program given as an image), so a CPU loaded with ``init_from`` runs random
# programs exactly as before while a task's compiler (the plan heads) learns on top of it.
_EXECUTE_ONLY = ("controller.slot_encoder.", "controller.exec_query", "controller.op_emb.", "controller.flag_emb.",
                 "controller.pc_head.", "oeu.")
FREEZE: dict[str, tuple[str, ...]] = {
    "": (),
    "execute": _EXECUTE_ONLY,
    "cpu": _EXECUTE_ONLY + ("controller.backbone.", "controller.page_emb.", "controller.offset_emb."),
}


def decoder_layers(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's decoder layers (``LlamaDecoderLayer`` and its kin), in order."""
    return [m for m in backbone.modules() if type(m).__name__.endswith("DecoderLayer")]


def compile_backbone(machine: Machine, mode: str) -> None:
    """``torch.compile`` the controller's backbone in place, one decoder layer at a time (regional
    compilation: the layers share their code, so one compilation serves all of them; a whole
    30-layer SmolLM2 took minutes), with dynamic shapes, since prompts, windows and batches vary.
    Parameter names, and so checkpoints, stay as they are. "" leaves it eager; a backbone without
    decoder layers is compiled whole."""
    if not mode:
        return
    backbone = machine.controller.backbone
    for layer in decoder_layers(backbone) or [backbone]:
        layer.compile(**compile_options(mode), dynamic=True)


def freeze_parameters(machine: Machine, what: str) -> list[str]:
    """Turn off gradients of the parameters ``what`` names (a key of :data:`FREEZE`); returns their names."""
    if what not in FREEZE:
        raise ckpt.RunError(f"freeze={what!r} is not one of {', '.join(repr(k) for k in FREEZE)}")
    frozen = []
    for name, param in machine.named_parameters():
        if param.requires_grad and name.startswith(FREEZE[what]):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def parameter_groups(machine: Machine, config: TrainConfig, oeu_lr_scale: float) -> list[dict[str, Any]]:
    """The optimizer's groups: modules trained from scratch at ``lr``, the OEU at ``lr`` times its
    scale, and (with ``lora_lr`` set) a pretrained backbone's LoRA adapters at ``lora_lr``."""
    trainable = [(n, p) for n, p in machine.named_parameters() if p.requires_grad]
    oeu = [p for n, p in trainable if n.startswith("oeu.")]
    lora = [p for n, p in trainable if "lora_" in n] if config.lora_lr is not None else []
    grouped = {id(p) for p in oeu + lora}
    groups = [
        {"params": [p for _, p in trainable if id(p) not in grouped], "name": "new"},
        {"params": oeu, "lr": config.lr * oeu_lr_scale, "name": "oeu"},
    ]
    if lora:
        groups.append({"params": lora, "lr": config.lora_lr, "name": "lora"})
    return groups


class HeldOut:
    """Problems kept out of training: the competence check's and `eval`'s material. Which
    problems are held out is the task's hash of each problem; this draws them per size."""

    def __init__(self, task: Any, config: TrainConfig) -> None:
        self.problems: dict[int, list[tuple[int, ...]]] = {}
        self.task, self.config = task, config

    def get(self, size: int) -> list[tuple[int, ...]]:
        if size not in self.problems:
            self.problems[size] = draw_held_out(self.task, size, self.config.eval_trials,
                                                f"heldout-{self.config.seed}-{size}")
        return self.problems[size]


def batch_losses(machine: Machine, batch: ProgramBatch, tf: float, generator: torch.Generator,
                 table_rows: int, shard: Shard | None = None, recompute: bool = False) -> dict[str, torch.Tensor]:
    """Every loss of one batch, unweighted. The whole execute phase keeps its graph (with
    ``recompute``, each cycle's control unit runs again in backward instead of keeping its
    activations). Steps past an episode's own end (padding) are masked out of every per-step loss.

    ``shard``: the rows of ``batch`` this data-parallel rank trains (default all of them). Every
    random choice is still drawn for the whole batch, and every mean divides this share's sum by
    the whole batch's count times the share's fraction: the ranks' losses (and so the gradients
    DDP averages) average to the whole batch's. The OEU's table loss is the same on every rank."""
    device = machine.keys.device
    shard = shard or Shard.whole(len(batch.programs))
    mean = _ShardMean(shard)
    part = batch if shard.is_whole else take_rows(batch, shard.rows)
    losses: dict[str, torch.Tensor] = {}
    if batch.planned:
        prompt = machine.controller.tokenizer.batch(batch.prompts)  # the whole batch's padding
        offsets = machine.controller.config.position_offsets
        if offsets:  # each episode's tags start at a random offset (evaluation: 0)
            prompt.shift = torch.randint(0, offsets + 1, (len(batch.prompts),), generator=generator)
        prompt = (prompt if shard.is_whole else take_rows(prompt, shard.rows)).to(device)
        plan = machine.plan(prompt, part.window, windows=part.windows)
        losses.update({
            "type": mean(F.cross_entropy, plan.type_logits.flatten(0, 1), part.types.flatten(),
                         count=batch.types.numel()),
            "pointer": mean(F.nll_loss, plan.pointers.clamp(min=1e-9).log().flatten(0, 2), part.pointers.flatten(),
                            count=batch.pointers != IGNORE, ignore_index=IGNORE),
            "content": mean(F.cross_entropy, plan.content_logits.flatten(0, 1), part.contents.flatten(),
                            count=batch.contents != IGNORE, ignore_index=IGNORE),
        })
        memory, prompt_kv = plan.memory, plan.prompt_kv
        if tf > 0:  # scheduled sampling: some episodes start from the target image
            use = (torch.rand(len(batch.programs), generator=generator)[shard.rows] < tf).to(device)
            memory = torch.where(use[:, None, None], part.memory, memory)
    else:  # a program given as its memory image: the execute phase alone
        prompt = Prompt.padding(len(part.prompts), machine.controller.tokenizer.pad_id, device)
        memory, prompt_kv = part.memory, None
    teacher = Teacher(part.pc, part.oeu_result, p_pc=tf, p_result=tf, generator=generator,
                      rows_of=None if shard.is_whole else (shard.start, shard.total))
    ex = machine.execute(prompt, memory, part.steps, teacher=teacher, prompt_kv=prompt_kv, lengths=part.lengths,
                         recompute=recompute)
    losses["pc"] = mean(F.nll_loss, ex.pc.clamp(min=1e-9).log().flatten(0, 1), part.pc.flatten(),
                        count=batch.pc != IGNORE, ignore_index=IGNORE)
    losses["oeu"] = mean(F.cross_entropy, ex.oeu_logits.flatten(0, 1), part.oeu_result.flatten(),
                         count=batch.oeu_result != IGNORE, ignore_index=IGNORE)
    steps = torch.arange(part.steps, device=device)
    live = steps.unsqueeze(0) < part.lengths.unsqueeze(1)  # (B, T)
    halt_target = (steps.unsqueeze(0) == part.lengths.unsqueeze(1) - 1).float()
    halt = F.binary_cross_entropy(ex.halt.clamp(1e-6, 1 - 1e-6), halt_target, reduction="none")
    losses["halt"] = (halt * live).sum() / mean.denominator(batch.lengths.sum())  # the whole batch's live steps
    answer = machine.read_answer(ex.memory, part.answer_slots)  # (B, R, C)
    if batch.answer_digits.numel():
        losses["answer"] = mean(F.nll_loss, answer.clamp(min=1e-9).log().flatten(0, 1), part.answer_digits.flatten(),
                                count=batch.answer_digits != IGNORE, ignore_index=IGNORE)
    losses["table"] = machine.oeu.table_loss(table_rows, generator)
    return {k: v for k, v in losses.items() if torch.isfinite(v)}


class _ShardMean:
    """Means over the whole batch from one shard's elements: ``loss(..., reduction="sum")`` over
    the shard divided by the whole batch's count of counted elements times the shard's fraction.
    For the whole batch it is ``loss(...)`` with its own mean: one process computes what it always did."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def __call__(self, loss: Callable[..., torch.Tensor], *args: torch.Tensor, count: torch.Tensor | int,
                 **options: Any) -> torch.Tensor:
        if self.shard.is_whole:
            return loss(*args, **options)
        return loss(*args, reduction="sum", **options) / self.denominator(count)

    def denominator(self, count: torch.Tensor | int) -> torch.Tensor | float:
        """``count``: the whole batch's number of counted elements, or a mask [B, ...] of them."""
        if isinstance(count, torch.Tensor) and count.dtype == torch.bool:
            count = count.sum()
        return count if self.shard.is_whole else count * self.shard.fraction


class StepLoss(nn.Module):
    """One batch's losses as a module's forward: what DDP wraps (it sets up its gradient
    averaging when the forward is called through the wrapper); ``machine`` is the module."""

    def __init__(self, machine: Machine) -> None:
        super().__init__()
        self.machine = machine

    def forward(self, batch: ProgramBatch, tf: float, generator: torch.Generator, table_rows: int,
                shard: Shard | None = None, recompute: bool = False) -> dict[str, torch.Tensor]:
        return batch_losses(self.machine, batch, tf, generator, table_rows, shard, recompute)


class Trainer:
    """The curriculum over one run folder; ``run()`` trains until done, out of budget or stopped.

    ``world``: this process's place among data-parallel ranks (default: alone). Every rank
    draws each whole batch and trains its share (:mod:`llamacpu.distributed`); rank 0 alone
    evaluates, and every rank takes its verdict; rank 0 alone writes metrics and checkpoints
    and calls ``on_progress``, ``on_check`` and ``on_step``."""

    def __init__(self, run_dir: Path, machine: Machine, run_config: ckpt.RunConfig, config: TrainConfig,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 on_check: Callable[["Trainer", int, list[tuple[int, int]]], None] | None = None,
                 world: World | None = None) -> None:
        self.run_dir, self.machine, self.run_config, self.config = run_dir, machine, run_config, config
        self.world = world or World()
        self.world.check_batch(config.batch_size)
        self.task = get_task(config.task)
        if not config.mixed_lengths and hasattr(self.task, "same_length"):
            self.task.same_length = 1.0
        if hasattr(self.task, "phrasings"):
            self.task.phrasings = phrasing_set(config.phrasings)
        max_ok = self.task.max_digits(machine.isa)
        if config.max_digits > max_ok:
            if config.task == "programs":
                raise ckpt.RunError(f"the programs curriculum has {max_ok} stages; --max-digits {config.max_digits} "
                                    "asks for more")
            raise ckpt.RunError(
                f"{sized(self.task, config.max_digits)} needs {self.task.slots_needed(config.max_digits)} slots; "
                f"this memory has {machine.isa.layout.n_slots} (at most {max_ok} {self.task.size_name})")
        self.heldout = HeldOut(self.task, config)
        self.programs = get_task("programs")
        self.on_progress = on_progress if on_progress is not None and self.world.is_main else (lambda record: None)
        self.on_check = on_check if self.world.is_main else None
        self.on_step: Callable[["Trainer"], None] | None = None  # e.g. the probe recorder
        freeze_parameters(machine, config.freeze)
        if config.compile and config.compile_scope == "cycle":
            if run_config.controller.load_in_4bit:  # bitsandbytes' layers break the graph that must be whole
                raise ckpt.RunError("compile_scope='cycle' needs a controller torch.compile can trace whole; "
                                    "a 4-bit one is not (use compile_scope='layers')")
            machine.compile_cycle(**compile_options(config.compile))
        else:
            compile_backbone(machine, config.compile)
        params = parameter_groups(machine, config, run_config.oeu.lr_scale)
        if config.optimizer == "adamw8bit":
            import bitsandbytes as bnb

            self.optimizer = bnb.optim.AdamW8bit(params, lr=config.lr, betas=config.betas, eps=config.eps,
                                                 weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, eps=config.eps,
                                               weight_decay=config.weight_decay)
        self.step = 0
        self.stage = config.start_stage
        self.stage_start = 0
        self.segment_start = 0  # where warm-up and teacher forcing count from: the stage's start or its last rewind
        self.stage_rewinds = 0  # rewinds taken in this stage
        self.run_started = time.perf_counter()  # run() sets it again: a stage end's wall_s counts from there
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.done = False
        self.recent_norms: list[float] = []  # the last SPIKE_WINDOW gradient norms (before clipping)
        self.skipped_updates = 0  # steps whose update spike_skip dropped
        self.stage_errors: dict[int, float] = {}  # stage -> 1 - held-out accuracy at the last full check
        self.stop_requested = False  # set from a signal handler: stop after this step, checkpoint kept
        self.history: list[dict[str, Any]] = []  # stage results
        self.data_rng = random.Random(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self._step_loss: nn.Module | None = None  # the losses' module, under DDP with several ranks (built at first use)

    def _lr_factor(self, _: int) -> float:
        warm = min(1.0, (self.step - self.segment_start + 1) / max(1, self.config.warmup))
        return warm * self._stage_factor()

    def _stage_factor(self) -> float:
        """What the current stage's rates are once warmed up, as a multiple of the base rates."""
        c = self.config
        return c.stage_lr_decay ** (self.stage - 1) * c.rewind_lr ** self.stage_rewinds

    # ---- state ----
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step, "stage": self.stage, "stage_start": self.stage_start, "done": self.done,
            "history": json.dumps(self.history),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "data_rng": _rng_to_plain(self.data_rng.getstate()), "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(), "recent_norms": list(self.recent_norms),
            "skipped_updates": self.skipped_updates, "stage_errors": json.dumps(self.stage_errors),
            "segment_start": self.segment_start, "stage_rewinds": self.stage_rewinds,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.step, self.stage, self.stage_start = int(state["step"]), int(state["stage"]), int(state["stage_start"])
        self.done = bool(state["done"])
        self.history = json.loads(state["history"])
        last = self.history[-1] if self.history else None
        if self.done and last and last["passed"] and last["stage"] == self.stage < self.config.max_digits:
            # a finished curriculum resumed with a larger --max-digits goes on to the next stage
            self.done, self.stage, self.stage_start = False, self.stage + 1, self.step
            state = {**state, "segment_start": self.step, "stage_rewinds": 0}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.data_rng.setstate(_rng_from_plain(state["data_rng"]))
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.recent_norms = [float(n) for n in state.get("recent_norms", [])]  # absent before spike_skip
        self.skipped_updates = int(state.get("skipped_updates", 0))
        self.stage_errors = {int(k): float(v) for k, v in json.loads(state.get("stage_errors", "{}")).items()}
        self.segment_start = int(state.get("segment_start", self.stage_start))  # absent before rewinds
        self.stage_rewinds = int(state.get("stage_rewinds", 0))
        if self.world.is_main:
            self._forget_metrics_after(self.step)

    def _forget_metrics_after(self, step: int) -> None:
        """A run interrupted after its last checkpoint logged steps that the resume will run
        again: drop those records so ``metrics.jsonl`` reads as one uninterrupted run."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        lines = path.read_text().splitlines()
        kept = [line for line in lines if line.strip() and _record_step(json.loads(line)) <= step]
        if len(kept) != len(lines):
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, path)

    def save(self) -> Path | None:
        """A checkpoint of this step (rank 0 writes it; other ranks hold the same state)."""
        if not self.world.is_main:
            return None
        return ckpt.save_checkpoint(self.run_dir, self.machine, self.step, self.state())

    # ---- data ----
    def sample_batch(self) -> ProgramBatch:
        """One batch: the current stage's sizes, or (replay) an earlier stage's; never a held-out
        problem. The whole batch on every rank: the data do not depend on the number of ranks."""
        task, stage = self.task, self.stage
        per_problem = False
        if self.config.programs_mix > 0 and self.data_rng.random() < self.config.programs_mix:
            task = self.programs  # random programs of the whole programs curriculum
            stage = self.data_rng.randint(1, task.max_stages())
        elif self.stage > 1 and self.config.replay_per == "problem":
            per_problem = True
        elif self.stage > 1 and self.data_rng.random() < self.config.replay:
            stage = self.replay_stage()
        problems = []
        while len(problems) < self.config.batch_size:
            if per_problem:
                stage = self.replay_stage() if self.data_rng.random() < self.config.replay else self.stage
            p = task.sample(self.data_rng, self.data_rng.choice(task.stage_sizes(stage)))
            if not task.is_held_out(p):
                problems.append(p)
        programs = [task.build(p, self.machine.isa) for p in problems]
        return collate(programs, self.machine.isa).to(self.machine.keys.device)

    def replay_stage(self) -> int:
        """An earlier stage to replay: each equally likely, or (``replay_by="errors"``) weighted by
        its error at the last full check plus :data:`REPLAY_FLOOR`, so that a size the current
        stage is making the machine forget gets the replay back (equal weights before any check)."""
        earlier = range(1, self.stage)
        if self.config.replay_by == "uniform":
            return self.data_rng.randint(1, self.stage - 1)
        weights = [REPLAY_FLOOR + self.stage_errors.get(k, 0.0) for k in earlier]
        return self.data_rng.choices(earlier, weights=weights)[0]

    @property
    def stage_size(self) -> int:
        """The size the current stage is checked at."""
        return self.task.stage_size(self.stage)

    def teacher_forcing(self) -> float:
        c = self.config
        annealed = c.tf_start * (1 - (self.step - self.segment_start) / max(1, c.tf_steps))
        return max(c.tf_end, annealed, 0.0)

    # ---- loop ----
    def train_step(self) -> dict[str, float]:
        self.machine.train()
        if self.config.compile in CUDA_GRAPH_MODES:  # a new step: the last one's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        batch = self.sample_batch()
        losses = self.losses(batch)
        total = sum(self.config.weights.get(k, 1.0) * v for k, v in losses.items())
        self.optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:  # with freeze="cpu" a batch of random programs trains nothing
            total.backward()
        norm = float(torch.nn.utils.clip_grad_norm_([p for p in self.machine.parameters() if p.requires_grad],
                                                    self.config.grad_clip))
        skipped = self.is_spike(norm)
        if skipped:
            self.skipped_updates += 1
        else:
            self.optimizer.step()
        self.recent_norms = (self.recent_norms + [norm])[-SPIKE_WINDOW:]
        self.step += 1
        self.scheduler.step()
        values = {f"loss_{k}": float(losses[k].detach()) if k in losses else math.nan for k in LOSS_NAMES}
        values["loss_total"] = float(total.detach())
        # Each rank's losses are its share's estimate of the batch's: their mean is the batch's.
        out = {k: v for k, v in self.world.mean(values).items() if not math.isnan(v)}
        out["grad_norm"] = norm  # the same on every rank: gradients are averaged before clipping
        if skipped:
            out["skipped"] = 1.0
        out["batch_digits"] = max(p.digits for p in batch.programs)
        return out

    def is_spike(self, norm: float) -> bool:
        """With ``spike_skip``: is this gradient norm (before clipping) one to skip? Non-finite, or
        over ``spike_skip`` times the median of the last steps' (once there are enough of them).
        Loop tasks meet such spikes as teacher forcing ends (docs/experiments.md, "Session 21")."""
        if self.config.spike_skip <= 0:
            return False
        if not math.isfinite(norm):
            return True
        return (len(self.recent_norms) >= SPIKE_MIN
                and norm > self.config.spike_skip * statistics.median_high(self.recent_norms))

    def losses(self, batch: ProgramBatch) -> dict[str, torch.Tensor]:
        """This rank's losses of ``batch`` (through DDP when there are several ranks)."""
        if self._step_loss is None:
            # Built here, not in __init__: weights loaded after construction (resume, init_from)
            # are in place when DDP checks that every rank starts from the same parameters.
            # A batch of random programs has no plan phase: it leaves the plan heads without a
            # gradient, which DDP must be told to expect (a search of every step's graph).
            unused = self.config.programs_mix > 0 or not getattr(self.task, "planned", True)
            self._step_loss = self.world.wrap(StepLoss(self.machine), find_unused=unused)
        shard = self.world.shard(len(batch.programs)) if self.world.distributed else None
        return self._step_loss(batch, self.teacher_forcing(), self.generator, self.config.table_rows, shard,
                               self.config.recompute)

    def check(self, known: SizeResult | None = None) -> float:
        """Free-running accuracy on the held-out problems of every size up to the current stage;
        the stage passes on the worst of them, so learning k digits may not unlearn fewer.
        ``known``: the stage's own size, evaluated already (by a passing quick check)."""
        worst = 1.0
        for digits in sorted({self.task.stage_size(k) for k in range(1, self.stage + 1)}):
            result = known if known is not None and digits == known.digits else self._evaluate_heldout(digits)
            if self.on_check is not None:
                self.on_check(self, digits, result.failures)
            record = {"event": "check", "step": self.step, "stage": self.stage, "digits": digits,
                      "accuracy": result.accuracy, "halted": result.halted, "plan_exact": result.plan_exact,
                      "trials": result.trials}
            self.log_metrics(record)
            self.on_progress(record)
            for k in range(1, self.stage + 1):
                if self.task.stage_size(k) == digits:
                    self.stage_errors[k] = 1.0 - result.accuracy
            worst = min(worst, result.accuracy)
        return worst

    def quick_check(self) -> SizeResult | None:
        """Could the stage pass now? The current size alone, in chunks, given up as soon as more
        problems failed than ``threshold`` allows: while the stage is unlearned a check costs one
        chunk, so the stage's end is found within ``quick_every`` steps, not ``eval_every``.
        Returns the whole size's result when it passes (the full check reuses it), else None."""
        size = self.stage_size
        n = len(self.heldout.get(size))
        allowed = int((1.0 - self.config.threshold) * n + 1e-9)
        result = self._evaluate_heldout(size, batch_size=50, max_failures=allowed)
        passed = result.trials == n and result.accuracy >= self.config.threshold
        self.log_metrics({"event": "quick_check", "step": self.step, "stage": self.stage, "digits": size,
                          "evaluated": result.trials, "failed": result.trials - result.correct, "passed": passed})
        return result if passed else None

    def _evaluate_heldout(self, digits: int, **options: Any) -> SizeResult:
        problems = self.heldout.get(digits)
        return evaluate(self.machine, self.task, digits, len(problems), seed=0, problems=problems,
                        diagnostics=False, keep_failures=self.on_check is not None, **options)

    def log_metrics(self, record: dict[str, Any]) -> None:
        if not self.world.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def run(self, max_steps: int | None = None) -> dict[str, Any]:
        """Train until every stage passed, a stage ran out of budget, ``max_steps`` in all, or a stop
        was requested (``stop_requested``: the step in flight finishes and is checkpointed)."""
        c = self.config
        self.run_started, n0 = time.perf_counter(), self.step  # episodes/s and a stage end's wall_s count from here
        if self.step == 0 and self.stage > 1 and ckpt.stage_start(self.run_dir, 0) is None:
            self._save_stage_start()  # a run begun past stage 1: the weights it began with
        while not self.done:
            if max_steps is not None and self.step >= max_steps:
                break
            if self.stop_requested:
                break
            stats = self.train_step()
            if self.on_step is not None and self.world.is_main:
                self.on_step(self)
            if self.step % c.log_every == 0:
                elapsed = time.perf_counter() - self.run_started
                record = {"event": "train", "step": self.step, "stage": self.stage, "tf": self.teacher_forcing(),
                          "lr": self.scheduler.get_last_lr()[0],
                          "episodes_per_s": (self.step - n0) * c.batch_size / max(elapsed, 1e-9),
                          **stats}
                if self.world.distributed:
                    record["processes"] = self.world.size
                if c.spike_skip > 0:
                    record["skipped_updates"] = self.skipped_updates
                self.log_metrics(record)
                self.on_progress(record)
            full = self.step % c.eval_every == 0
            quick = not full and c.quick_every > 0 and self.step % c.quick_every == 0
            accuracy = None
            if full or quick:  # rank 0 checks; every rank takes its verdict and the errors replay weighs by
                accuracy, self.stage_errors = self.world.from_main(lambda: (self.competence(full), self.stage_errors))
            fallen = self.fallen_sizes() if accuracy is not None else []
            rewound = bool(fallen) and self.stage_rewinds < c.rewinds and self.rewind(fallen)
            if accuracy is not None and not rewound:
                if accuracy >= c.threshold:
                    self._end_stage(passed=True, accuracy=accuracy)
                elif self.step - self.stage_start >= c.stage_steps:
                    self._end_stage(passed=False, accuracy=accuracy)
            if self.step % c.checkpoint_every == 0 or self.done:
                self.save()
        if self.step % c.checkpoint_every != 0 and not self.done:
            self.save()
        return {"step": self.step, "stage": self.stage, "done": self.done, "history": self.history}

    def competence(self, full: bool) -> float | None:
        """This step's check: a full one, or a quick one that calls a full one when it passes.
        The full check's worst accuracy, or None when only a quick check ran (and failed)."""
        passed_quick = None if full else self.quick_check()
        return self.check(known=passed_quick) if full or passed_quick is not None else None

    def fallen_sizes(self) -> list[int]:
        """Sizes that earlier stages passed and the last full check found under ``rewind_below``."""
        own = self.stage_size
        sizes = {self.task.stage_size(k) for k in range(1, self.stage)
                 if self.stage_errors.get(k, 0.0) > 1.0 - self.config.rewind_below}
        return sorted(sizes - {own})

    def rewind(self, fallen: list[int]) -> bool:
        """The forgetting guard: back to the weights and optimizer state this stage started from
        (every earlier size passed then), at ``rewind_lr`` times the rates, warm-up and teacher
        forcing from the top; the step count, the data and the stage's budget go on. False (and
        nothing done) when the run holds no snapshot of this stage's start (it began without
        ``rewinds``). Every rank reads the snapshot rank 0 wrote at the stage's start."""
        snapshot = ckpt.stage_start(self.run_dir, self.stage_start)
        if snapshot is None:
            log.warning("stage %d: sizes %s fell, but the run holds no snapshot of the stage's start to rewind to",
                        self.stage, fallen)
            return False
        ckpt.load_weights(self.machine, snapshot)
        self.optimizer.load_state_dict(ckpt.load_state(snapshot)["optimizer"])
        self.stage_rewinds += 1
        self.segment_start = self.step
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self._lr_factor(self.step)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]  # what get_last_lr logs
        record = {"event": "rewind", "step": self.step, "stage": self.stage, "fallen": fallen,
                  "rewinds": self.stage_rewinds, "to_step": self.stage_start,
                  "lr": self.scheduler.base_lrs[0] * self._stage_factor()}  # the first group's, once warmed up again
        self.log_metrics(record)
        self.on_progress(record)
        return True

    def _end_stage(self, passed: bool, accuracy: float) -> None:
        entry = {"stage": self.stage, "passed": passed, "accuracy": accuracy,
                 "steps": self.step - self.stage_start, "at_step": self.step}
        self.history.append(entry)
        # Seconds since this process's run() began, first compile included: time to a stage, as
        # issue 13's 60 s goal counts it (a resumed run counts from its resume). Logged, not kept
        # in the history, so resumed and straight runs hold the same state.
        wall = round(time.perf_counter() - self.run_started, 3)
        self.log_metrics({"event": "stage_end", **entry, "wall_s": wall})
        self.on_progress({"event": "stage_end", **entry})
        if not passed or self.stage >= self.config.max_digits:
            self.done = True
        else:
            self.stage += 1
            self.stage_start = self.segment_start = self.step
            self.stage_rewinds = 0
            self._save_stage_start()
        self.save()

    def _save_stage_start(self) -> None:
        """With the forgetting guard on, the weights and state the current stage begins with (a
        rewind goes back to them); the main rank writes them."""
        if self.config.rewinds > 0 and self.world.is_main:
            ckpt.save_stage_start(self.run_dir, self.machine, self.step, self.state())


def _record_step(record: dict[str, Any]) -> int:
    """The step a metrics record belongs to (stage ends name it ``at_step``)."""
    return int(record.get("step", record.get("at_step", 0)))


def _rng_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_plain(plain: list) -> tuple:
    version, internal, gauss = plain
    return (int(version), tuple(int(x) for x in internal), gauss)


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
