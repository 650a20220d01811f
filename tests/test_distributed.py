"""Data-parallel training without GPUs: gloo ranks on the CPU, started through torchrun.

- the shares' losses and gradients average to the whole batch's, and the generators move alike
  (in one process: the arithmetic that makes N ranks one);
- two ranks hold identical weights and curriculum state after every step, and match one process
  with the same total batch (tests/distributed_worker.py);
- ``torchrun ... -m llamacpu.cli -- train``: rank 0 alone writes metrics, checkpoints and traces;
  a run resumes on another number of processes (2 -> 1, 1 -> 2) where it stopped;
- bad input: one clear line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llamacpu import checkpoint as ckpt
from llamacpu.distributed import Shard, World, take_rows, world_from_env
from llamacpu.errors import LlamaCPUError
from llamacpu.tasks import collate, get_task
from llamacpu.trace import TraceStore
from llamacpu.train import batch_losses

from distributed_worker import STEPS, VARIANTS, run_config, train
from machine_fixtures import (assert_one_clear_line, make_trainer, run_cli, run_cli_all, small_run_config,
                              small_train_config)

WORKER = Path(__file__).with_name("distributed_worker.py")
# Two ranks' float sums run in another order than one process's: after 8 steps the weights
# differ by at most 1.8e-7 (the small machine) and 1.9e-7 (the command's tiny preset), measured;
# 1e-5 leaves room and still catches a share trained twice or a mean over the wrong count.
ATOL = 1e-5


def torchrun(args: list[str], cwd: Path, n: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """``args`` on ``n`` gloo ranks, one thread each. ``args`` after ``--``: torchrun's own option
    parser would take ``--run`` for an abbreviation of its ``--run-path``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ---- the arithmetic, in one process ----

def test_world_from_torchrun_environment() -> None:
    assert world_from_env({}) == World()
    world = world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (world.rank, world.size, world.local_rank, world.local_size) == (3, 4, 1, 2)
    assert world.distributed and not world.is_main
    assert [world_from_env({"WORLD_SIZE": "4", "RANK": str(r)}).shard(8).rows for r in range(4)] == [
        slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    with pytest.raises(LlamaCPUError, match="--batch-size 6 does not split over 4 processes"):
        world.shard(6)
    with pytest.raises(LlamaCPUError, match="RANK 2 is not within WORLD_SIZE 2"):
        world_from_env({"WORLD_SIZE": "2", "RANK": "2"})


def test_take_rows_keeps_the_whole_batch_padding(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", small_run_config(train=small_train_config(max_digits=3)))
    trainer.stage = 3
    batch = trainer.sample_batch()
    part = take_rows(batch, slice(1, 3))
    assert part.programs == batch.programs[1:3] and part.prompts == batch.prompts[1:3]
    assert torch.equal(part.pc, batch.pc[1:3]) and part.steps == batch.steps and part.window == batch.window
    prompt = trainer.machine.controller.tokenizer.batch(batch.prompts)
    assert torch.equal(take_rows(prompt, slice(1, 3)).ids, prompt.ids[1:3])


# Problems of different sizes in one batch, so that the two halves count different numbers of
# targets (pointers, steps, answer digits): a mean over each half's own count would not average
# to the batch's mean.
SHARD_BATCHES = {"add": ("add", (1, 1, 3, 2)), "programs": ("programs", (2, 3, 12, 7))}


@pytest.mark.parametrize("kind", list(SHARD_BATCHES))
def test_shard_losses_and_gradients_average_to_the_whole_batch(kind: str, tmp_path: Path) -> None:
    """Each term's mean over the whole batch's count, and every draw for the whole batch: two
    halves' losses and gradients average to the whole batch's, and leave the generator where the
    whole batch leaves it. Scheduled sampling on (tf 0.5) and tag offsets drawn per episode."""
    name, sizes = SHARD_BATCHES[kind]
    trainer = make_trainer(tmp_path / "run", small_run_config(position_offsets=3))
    machine, generator, task = trainer.machine, trainer.generator, get_task(name)
    batch = collate([task.build(task.sample(trainer.data_rng, size), machine.isa) for size in sizes], machine.isa)
    start = generator.get_state()

    def losses_and_grads(shard: Shard | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        machine.zero_grad(set_to_none=True)
        losses = batch_losses(machine, batch, 0.5, generator, 64, shard)
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in machine.named_parameters() if p.grad is not None}
        return {k: v.detach() for k, v in losses.items()}, grads

    whole, whole_grads = losses_and_grads(None)
    after = generator.get_state()
    halves = []
    for rank in range(2):
        generator.set_state(start)
        halves.append(losses_and_grads(World(rank=rank, size=2).shard(len(batch.programs))))
        assert torch.equal(generator.get_state(), after)
    assert set(halves[0][0]) == set(halves[1][0]) == set(whole)
    for name in whole:
        assert torch.allclose((halves[0][0][name] + halves[1][0][name]) / 2, whole[name], atol=1e-6), name
    assert set(halves[0][1]) == set(halves[1][1]) == set(whole_grads)
    for name, grad in whole_grads.items():
        assert torch.allclose((halves[0][1][name] + halves[1][1][name]) / 2, grad, atol=1e-5), name


# ---- two gloo ranks of the library's Trainer ----

@pytest.fixture(scope="module", params=list(VARIANTS))
def two_ranks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp(f"ranks-{request.param}")
    result = torchrun([str(WORKER), str(out), request.param], cwd=out)
    assert result.returncode == 0, result.stderr[-3000:]
    return request.param, out


@pytest.mark.slow
def test_two_ranks_hold_identical_weights_after_every_step(two_ranks: tuple[str, Path]) -> None:
    _, out = two_ranks
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert len(ranks[0]["digests"]) == STEPS
    assert ranks[0]["digests"] == ranks[1]["digests"]  # weights, step, stage, generators: bit for bit
    assert ranks[0]["history"] and all(entry["passed"] for entry in ranks[0]["history"])  # stage ends, agreed


@pytest.mark.slow
def test_two_ranks_learn_what_one_process_learns(two_ranks: tuple[str, Path], tmp_path: Path) -> None:
    variant, out = two_ranks
    one, _ = train(tmp_path / "run", run_config(variant), World())
    two = torch.load(out / "rank0.pt", weights_only=True)
    assert (two["step"], two["stage"], two["history"]) == (one.step, one.stage, one.history)
    weights = ckpt.trainable_state(one.machine)
    assert weights.keys() == two["weights"].keys()
    for name, tensor in weights.items():
        assert torch.allclose(two["weights"][name], tensor, rtol=0, atol=ATOL), name
    # one writer: every step's record once, and rank 0's checkpoint of the last step
    steps = [json.loads(line)["step"] for line in (out / "run" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "train"]
    assert steps == list(range(1, one.step + 1))


# ---- the command: torchrun ... -m llamacpu.cli -- train ----

# Threshold 0: stages pass at steps 3 and 6; an interruption at step 4 falls inside stage 2.
CURRICULUM = ["--max-digits", "3", "--slots", "60", "--batch-size", "4", "--threshold", "0", "--eval-every", "3",
              "--quick-every", "0", "--set", "table_rows=64", "--set", "warmup=3", "--set", "log_every=1",
              "--set", "eval_trials=10", "--quiet"]
PROBES = ["--probes", "3 + 5", "--probe-every", "2"]


def train_args(run: str, steps: int, traces: bool = False) -> list[str]:
    record = ["--traces", f"{run}-traces", *PROBES] if traces else ["--no-traces"]
    return ["train", "--run", run, "--max-steps", str(steps), *CURRICULUM, *record]


def cli_on(n: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return torchrun(["-m", "llamacpu.cli", "--", *args], cwd, n=n)


def final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    latest = ckpt.latest_checkpoint(run_dir)
    return load_file(str(latest / "model.safetensors")), ckpt.load_state(latest)


def train_records(run_dir: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("episodes_per_s", "wall_s", "processes")} for r in records]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """straight: 8 steps on one process; two-one: 4 on two (recording traces), then on one to 8;
    one-two: 4 on one, then on two to 8."""
    root = tmp_path_factory.mktemp("cli")
    first = run_cli_all({"straight": train_args("straight", STEPS), "one-two": train_args("one-two", 4)}, root)
    assert all(r.returncode == 0 for r in first.values()), [r.stderr for r in first.values()]
    two = cli_on(2, train_args("two-one", 4, traces=True), root)
    assert two.returncode == 0, two.stderr[-3000:]
    shutil.copytree(root / "two-one", root / "two-at-4")  # what the two processes left, for the one-writer test
    resumed = run_cli(train_args("two-one", STEPS), root)
    assert resumed.returncode == 0, resumed.stderr
    resumed = cli_on(2, train_args("one-two", STEPS), root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return root


@pytest.mark.slow
def test_rank_zero_alone_writes_metrics_checkpoints_and_traces(runs: Path) -> None:
    run_dir = runs / "two-at-4"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3, 4]
    assert all(r["processes"] == 2 for r in records if r["event"] == "train")
    assert [r["at_step"] for r in records if r["event"] == "stage_end"] == [3]
    assert sorted(p.name for p in run_dir.iterdir()) == ["ckpt-0000003", "ckpt-0000004", "config.json", "latest",
                                                         "metrics.jsonl"]
    store = TraceStore(runs / "two-one-traces")
    probes = store.rows(probe_id="3 + 5")
    assert sorted(r.training_step for r in probes) == [1, 2, 4]  # each probe step once, not once per rank
    failures = [r for r in store.rows() if r.probe_id is None]
    assert {r.training_step for r in failures} <= {3} and len(failures) <= 4  # one check's few failures


@pytest.mark.slow
@pytest.mark.parametrize("run", ["two-one", "one-two"])
def test_a_run_resumes_on_another_number_of_processes(runs: Path, run: str) -> None:
    weights, state = final_state(runs / run)
    straight_weights, straight_state = final_state(runs / "straight")
    # the curriculum exactly where it would be: step, stage, stage ends, every generator
    for key in ("step", "stage", "stage_start", "done", "history", "data_rng"):
        assert state[key] == straight_state[key], key
    assert torch.equal(state["generator"], straight_state["generator"])
    assert json.loads(state["history"])[0]["at_step"] == 3 and state["stage"] == 3
    assert weights.keys() == straight_weights.keys()
    for name, tensor in straight_weights.items():
        assert torch.allclose(weights[name], tensor, rtol=0, atol=ATOL), name
    ours, theirs = train_records(runs / run), train_records(runs / "straight")
    assert [(r["event"], r.get("step", r.get("at_step"))) for r in ours] == \
        [(r["event"], r.get("step", r.get("at_step"))) for r in theirs]
    for a, b in zip(ours, theirs):
        for key, value in b.items():
            if key.startswith("loss_"):
                assert a[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


# ---- bad input ----

def rank_env(rank: int, size: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": str(size), "RANK": str(rank),
            "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(size)}


@pytest.mark.parametrize("args, needles", [
    (["--run", "r", "--batch-size", "3"], ("--batch-size 3", "2 processes", "multiple of 2")),
    ([], ("--run DIR",)),
])
def test_bad_input_on_several_processes_is_one_line(args: list[str], needles: tuple[str, ...],
                                                    tmp_path: Path) -> None:
    """Rank 0 of two says it (the checks come before the process group starts: no other rank needed)."""
    result = subprocess.run([sys.executable, "-m", "llamacpu.cli", "train", *args, "--quiet"], cwd=tmp_path,
                            env=rank_env(0, 2), capture_output=True, text=True, timeout=120)
    assert_one_clear_line(result, *needles)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_bad_input_under_torchrun_is_said_once(tmp_path: Path) -> None:
    result = cli_on(2, ["train", "--run", "r", "--batch-size", "3", "--quiet"], tmp_path)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("llamacpu train:")]
    assert ours == ["llamacpu train: --batch-size 3 does not split over 2 processes: it must be a multiple of 2"]
    assert not (tmp_path / "r").exists()
