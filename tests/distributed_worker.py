"""One rank of a data-parallel training that tests/test_distributed.py starts through torchrun:

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_worker.py OUT VARIANT

Each rank trains the small machine of ``machine_fixtures`` for ``STEPS`` steps, one step per
``Trainer.run`` call (checks, stage ends and checkpoints included), and after every step takes a
digest of its weights and curriculum state; it saves the digests and its final weights to
``OUT/rank<R>.pt``. The run folder is ``OUT/run``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))

from machine_fixtures import small_run_config, small_train_config  # noqa: E402

from llamacpu import checkpoint as ckpt  # noqa: E402
from llamacpu import distributed  # noqa: E402
from llamacpu.train import Trainer, TrainConfig  # noqa: E402

STEPS = 8
# Threshold 0: stage 1 passes at step 3 and stage 2 at step 6, so the ranks must agree on two
# stage ends; from stage 2 on, batches replay 1-digit problems.
VARIANTS: dict[str, tuple[TrainConfig, dict[str, Any]]] = {
    "add": (small_train_config(max_digits=3, eval_every=3, threshold=0.0), {}),
    # Random programs in the mix leave the plan heads without gradients on some steps, and
    # position offsets draw a random shift per episode: both must stay alike on every rank.
    "mixed": (small_train_config(max_digits=2, eval_every=3, threshold=0.0, programs_mix=0.5),
              {"position_offsets": 3}),
}


def run_config(variant: str) -> ckpt.RunConfig:
    train, controller = VARIANTS[variant]
    return small_run_config(train=train, **controller)


def digest(trainer: Trainer) -> str:
    """Every trainable weight's bytes, the step, the stage and the data generators' states."""
    h = hashlib.sha256()
    for name, tensor in sorted(ckpt.trainable_state(trainer.machine).items()):
        h.update(name.encode())
        h.update(tensor.numpy().tobytes())
    h.update(repr((trainer.step, trainer.stage, trainer.stage_start, trainer.history)).encode())
    h.update(repr(trainer.data_rng.getstate()).encode())
    h.update(trainer.generator.get_state().numpy().tobytes())
    return h.hexdigest()


def train(run_dir: Path, config: ckpt.RunConfig, world: distributed.World) -> tuple[Trainer, list[str]]:
    """``STEPS`` steps of a new run, one ``run`` call each; the digest after every step."""
    train_cfg = TrainConfig.from_dict(config.train)
    torch.manual_seed(train_cfg.seed)
    machine = ckpt.build_machine(config, "cpu")
    if world.is_main:
        ckpt.write_config(run_dir, config)
    trainer = Trainer(run_dir, machine, config, train_cfg, world=world)
    digests = []
    for step in range(1, STEPS + 1):
        trainer.run(max_steps=step)
        digests.append(digest(trainer))
    return trainer, digests


def main(out: Path, variant: str) -> None:
    world = distributed.world_from_env()
    with distributed.process_group(world, "cpu") as world:
        trainer, digests = train(out / "run", run_config(variant), world)
        torch.save({"digests": digests, "weights": ckpt.trainable_state(trainer.machine), "step": trainer.step,
                    "stage": trainer.stage, "history": trainer.history}, out / f"rank{world.rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
