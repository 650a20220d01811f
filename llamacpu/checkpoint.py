"""Run folders and checkpoints.

A run folder holds ``config.json`` (every config dataclass, as JSON), ``metrics.jsonl``, and
checkpoints ``ckpt-STEP/`` named by the file ``latest``. A checkpoint directory is written under a
temporary name and renamed when complete, and ``latest`` is replaced atomically after that, so an
interrupted write never leaves a checkpoint that looks valid. Weights go through safetensors
(LoRA adapters also through PEFT's ``save_pretrained``); optimizer, scheduler and RNG states are
plain data loaded with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from llamacpu.controller import ControllerConfig, build_controller
from llamacpu.isa import ISA, SlotLayout
from llamacpu.machine import Machine
from llamacpu.oeu import OEUConfig, OperatorExecutionUnit
from llamacpu.run_folder import CONFIG, RunError, check_run, is_run, shipped_run  # noqa: F401  (ckpt.is_run, ckpt.RunError)

LATEST = "latest"
STAGE_START = "stage-start"  # the current stage's starting weights and state (TrainConfig.rewinds)


@dataclass
class RunConfig:
    layout: SlotLayout = field(default_factory=SlotLayout)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    oeu: OEUConfig = field(default_factory=OEUConfig)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig as a dict (train.py owns it)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        raw = json.loads(text)
        return cls(SlotLayout(**raw["layout"]), ControllerConfig.from_dict(raw["controller"]), OEUConfig(**raw["oeu"]),
                   raw.get("train", {}))


def read_config(run_dir: Path) -> RunConfig:
    path = check_run(run_dir)
    try:
        return RunConfig.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{path} is not a valid run config: {err}") from None


def write_config(run_dir: Path, config: RunConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(run_dir / CONFIG, config.to_json())


def build_machine(config: RunConfig, device: str = "cpu") -> Machine:
    isa = ISA(config.layout)
    controller = build_controller(config.controller, isa)
    oeu = OperatorExecutionUnit(config.layout.n_values, config.oeu)
    return Machine(isa, controller, oeu).to(device)


def trainable_state(machine: Machine) -> dict[str, torch.Tensor]:
    """Everything a run owns: all of a tiny machine; heads, encoders, OEU and LoRA weights of a
    pretrained one (its frozen base comes from the preset). Parameters that ``freeze`` keeps
    fixed are the run's too: they came from ``init_from`` and are saved with the rest."""
    pretrained = machine.controller.config.pretrained
    names = {n for n, _ in machine.named_parameters()
             if not pretrained or not n.startswith("controller.backbone.") or "lora_" in n}
    return {n: t.detach().contiguous().cpu() for n, t in machine.state_dict().items() if n in names}


def _latest_name(run_dir: Path) -> str | None:
    pointer = run_dir / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def latest_checkpoint(run_dir: Path) -> Path | None:
    name = _latest_name(run_dir)
    if name is None:
        return None
    ckpt = run_dir / name
    if not (ckpt / "model.safetensors").is_file():
        raise RunError(f"{run_dir / LATEST} names {ckpt.name}, which is missing or incomplete")
    return ckpt


def _write_checkpoint(tmp: Path, machine: Machine, step: int, state: dict[str, Any]) -> None:
    """A checkpoint's files in a fresh folder ``tmp``: the run's weights, adapters, trainer state."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = trainable_state(machine)
    tensors["isa.keys"] = machine.isa.keys.contiguous()
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "llamacpu/1", "step": str(step)})
    peft_model = getattr(machine.controller, "peft_model", None)
    if peft_model is not None:
        peft_model.save_pretrained(str(tmp / "adapter"))
    torch.save(state, tmp / "state.pt")
    _fsync_dir(tmp)


def save_stage_start(run_dir: Path, machine: Machine, step: int, state: dict[str, Any]) -> Path:
    """The weights and state a stage started from (every size before it passed), in
    :data:`STAGE_START`: what a rewind goes back to. Replaced whole at each stage's start."""
    final = run_dir / STAGE_START
    tmp, old = run_dir / f".tmp-{STAGE_START}-{os.getpid()}", run_dir / f".old-{STAGE_START}-{os.getpid()}"
    _write_checkpoint(tmp, machine, step, state)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def stage_start(run_dir: Path, step: int) -> Path | None:
    """The stage-start snapshot if it is the one written at ``step`` (the current stage's start), else None."""
    path = run_dir / STAGE_START / "model.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        written = (f.metadata() or {}).get("step")
    return path.parent if written == str(step) else None


def save_checkpoint(run_dir: Path, machine: Machine, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ckpt-STEP atomically, then point ``latest`` at it; keep the newest ``keep``."""
    final = run_dir / f"ckpt-{step:07d}"
    tmp = run_dir / f".tmp-ckpt-{step:07d}-{os.getpid()}"
    _write_checkpoint(tmp, machine, step, state)
    backup = None
    if final.exists() and _latest_name(run_dir) == final.name:
        # The newest step written again (a stage end on a checkpoint step): `latest` names a
        # complete checkpoint at every moment, here a hard-linked copy of the one replaced.
        backup = run_dir / f".old-ckpt-{step:07d}-{os.getpid()}"
        shutil.rmtree(backup, ignore_errors=True)
        shutil.copytree(final, backup, copy_function=_link_or_copy)
        _atomic_write_text(run_dir / LATEST, backup.name)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(run_dir / LATEST, final.name)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    old = sorted(p for p in run_dir.glob("ckpt-*") if p.is_dir() and p != final)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def load_weights(machine: Machine, ckpt: Path) -> None:
    """Load a checkpoint's weights into a machine built from the same run config."""
    path = ckpt / "model.safetensors"
    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise RunError(f"corrupt checkpoint {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    keys = tensors.pop("isa.keys", None)
    own_keys = machine.isa.keys
    if keys is not None and machine.controller.config.growable and len(keys) < len(own_keys):
        own_keys = own_keys[: len(keys)]  # a larger memory: the same keys, then new ones by the same scheme
    if keys is None or tuple(keys.shape) != tuple(own_keys.shape) or not torch.equal(keys, own_keys):
        raise RunError(f"checkpoint {path} was made for another slot layout or address keys than this run's")
    own = trainable_state(machine)
    missing = sorted(set(own) - set(tensors))
    if missing or any(tensors[n].shape != own[n].shape for n in own):
        raise RunError(f"checkpoint {path} does not fit this machine (incompatible layout or controller)")
    machine.load_state_dict(tensors, strict=False)


def init_from(machine: Machine, run_dir: Path) -> list[str]:
    """Start a new run from another run's latest weights: every trainable tensor whose name and
    shape match (e.g. addition on top of the general CPU). Returns the names left as initialized."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise RunError(f"--set init_from={run_dir}: that run has no checkpoint yet")
    try:
        tensors = load_file(str(ckpt / "model.safetensors"))
    except Exception as err:
        raise RunError(f"corrupt checkpoint {ckpt}: {type(err).__name__}") from None
    keys = tensors.pop("isa.keys", None)
    if keys is None or not torch.equal(keys, machine.isa.keys):
        raise RunError(f"{run_dir} speaks another machine language (slot layout or address keys) than this run")
    own = trainable_state(machine)
    fits = {n: t for n, t in tensors.items() if n in own and own[n].shape == t.shape}
    machine.load_state_dict(fits, strict=False)
    return sorted(set(own) - set(fits))


def load_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / "state.pt"
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise RunError(f"corrupt checkpoint {path}: {type(err).__name__}") from None


def load_machine(run_dir: Path, device: str = "cpu", n_slots: int | None = None) -> tuple[Machine, RunConfig, Path | None]:
    """The machine of a run at its latest checkpoint (untrained if it has none yet); ``n_slots``:
    a larger memory than the run trained in, for a run whose weights do not depend on it
    (:attr:`ControllerConfig.growable`): the new addresses get keys by the same seeded scheme."""
    config = read_config(run_dir)
    if n_slots is not None and n_slots > config.layout.n_slots:
        if not config.controller.growable:
            raise RunError(f"{run_dir} trained in {config.layout.n_slots} slots and cannot run in {n_slots}: its "
                           "weights depend on the memory size (train with --position-offsets and --absolute-slots)")
        config = replace(config, layout=replace(config.layout, n_slots=n_slots))
    machine = build_machine(config, device)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        load_weights(machine, ckpt)
    return machine, config, ckpt


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _fsync_dir(path: Path) -> None:
    for child in path.rglob("*"):
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
