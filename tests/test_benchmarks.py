"""The side-by-side benchmark's re-implementation of the original loop's plan phase."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch

from llamacpu.controller import ControllerConfig, build_controller
from llamacpu.isa import ISA, SlotLayout

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from original_loop import slotwise_plan  # noqa: E402
from train_throughput import _reporting  # noqa: E402


def test_slotwise_plan_is_one_call_per_slot_with_the_plan_heads_shapes() -> None:
    isa = ISA(SlotLayout(n_slots=40))
    controller = build_controller(ControllerConfig(hidden=32, layers=1, heads=2, intermediate=64), isa)
    prompt = controller.tokenizer.batch(["3 + 4", "12 + 9"])
    calls = []
    run = controller._run
    controller._run = lambda *a, **k: calls.append(a[0].shape) or run(*a, **k)
    with torch.no_grad():
        ours = controller.plan(prompt, 38)
        n_plan = len(calls)
        slotwise = slotwise_plan(controller, prompt, 38)
    assert n_plan == 1 and len(calls) - n_plan == 38 + 1  # one call per slot, then the prompt for execute
    assert all(shape[1] == prompt.ids.shape[1] + 1 for shape in calls[1:-1])  # prompt + one query each
    for a, b in [(ours.type_logits, slotwise.type_logits), (ours.pointers, slotwise.pointers),
                 (ours.content_logits, slotwise.content_logits)]:
        assert a.shape == b.shape
    # Slot 0's query sees only the prompt in both shapes, so its heads agree; later slots' do not
    # (in one pass each query also sees the queries before it).
    assert torch.allclose(ours.type_logits[:, 0], slotwise.type_logits[:, 0], atol=1e-5)
    assert torch.allclose(ours.pointers[:, 0], slotwise.pointers[:, 0], atol=1e-5)
    for (k1, v1), (k2, v2) in zip(ours.prompt_kv, slotwise.prompt_kv):
        assert torch.allclose(k1, k2, atol=1e-5) and torch.allclose(v1, v2, atol=1e-5)


def test_llama_memory_builds_the_shape_it_names_and_extrapolates_per_layer(tmp_path: Path) -> None:
    """The 8B memory benchmark's folder has the asked shape and loads as a controller; its
    extrapolation is peak(1) + (target - 1) * (peak(2) - peak(1))."""
    from llama_memory import LlamaShape, extrapolate, save_llama
    from transformers import AutoConfig

    from llamacpu.controller import PromptTokenizer, load_pretrained

    shape = LlamaShape(hidden=32, intermediate=64, heads=4, kv_heads=2, vocab=300)
    save_llama(tmp_path / "llama", shape, layers=2)
    config = AutoConfig.from_pretrained(tmp_path / "llama")
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (32, 64, 2)
    assert (config.num_key_value_heads, config.vocab_size, config.tie_word_embeddings) == (2, 300, False)
    model, tokenizer = load_pretrained(ControllerConfig(preset=str(tmp_path / "llama")))
    ids, _ = PromptTokenizer(tokenizer).pieces("12 + 345")
    assert len(ids) == 8 and model.get_input_embeddings().weight.shape == (300, 32)
    rows = {1: {"peak": 5000.0}, 2: {"peak": 5600.0}}
    out = extrapolate(rows, 32, "peak")
    assert out["per_layer_mib"] == 600.0 and out["total_mib"] == 5000.0 + 31 * 600.0
    assert extrapolate({1: rows[1]}, 32, "peak") is None


def test_run_records_reads_stage_ends_last_checks_and_how_a_run_ended(tmp_path: Path) -> None:
    import json

    from run_records import record

    run = tmp_path / "sort-tf"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"controller": {"preset": "tiny"},
                                                 "train": {"task": "sort", "max_digits": 5, "batch_size": 64}}))
    events = [{"event": "train", "step": s, "episodes_per_s": 50.0 + s} for s in (10, 20)]
    events += [{"event": "check", "step": 20, "digits": 1, "accuracy": 1.0, "trials": 2, "plan_exact": 1.0},
               {"event": "stage_end", "stage": 1, "at_step": 20, "passed": True, "accuracy": 1.0, "steps": 20},
               {"event": "rewind", "step": 30, "stage": 2, "fallen": [1], "rewinds": 1, "to_step": 20, "lr": 1e-4},
               {"event": "check", "step": 40, "digits": 1, "accuracy": 0.5, "trials": 2, "plan_exact": 0.0},
               {"event": "check", "step": 40, "digits": 2, "accuracy": 0.25, "trials": 20},
               {"event": "stage_end", "stage": 2, "at_step": 40, "passed": False, "accuracy": 0.25, "steps": 20,
                "wall_s": 12.5}]  # runs before session 39 logged no wall_s
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "sort-tf.log").write_text("...\ntorch.OutOfMemoryError: CUDA out of memory.\n")
    out = record(run)
    assert (out["task"], out["max_digits"], out["batch_size"], out["steps"]) == ("sort", 5, 64, 20)
    assert out["episodes_per_s_last10"] == 65.0 and out["status"] == "CUDA out of memory"
    assert out["stage_ends"] == [{"stage": 1, "at_step": 20, "passed": True, "accuracy": 1.0},
                                 {"stage": 2, "at_step": 40, "passed": False, "accuracy": 0.25, "wall_s": 12.5}]
    assert out["rewinds"] == [{"step": 30, "stage": 2, "fallen": [1], "to_step": 20, "lr": 1e-4}]
    assert out["last_check_per_size"] == [{"digits": 1, "step": 40, "accuracy": 0.5, "trials": 2, "plan_exact": 0.0},
                                          {"digits": 2, "step": 40, "accuracy": 0.25, "trials": 20}]


def test_step_profile_counts_backbone_passes_and_operator_calls() -> None:
    """One tiny step on the CPU: a plan pass and one control-unit pass per execute cycle (the
    prompt's keys and values come from the plan pass), operator calls counted, no kernel launches."""
    from step_profile import measure

    row = measure("tiny", 2, 1, 1, 0, "cpu", False)
    cycles = row["backbone_passes_per_step"] - 1
    assert 3 <= cycles <= 12  # a 1-digit addition runs a handful of cycles, padded to the batch's longest
    assert row["aten_calls_per_step"] > 1000 and row["kernel_launches_per_step"] == 0
    assert row["gpu_busy"] is None and row["top_self_cpu"][0]["calls_per_step"] > 0
    assert row["episodes_per_s"] == 2 / row["s_per_step"]


def test_a_benchmark_worker_s_failure_comes_back_named_and_picklable() -> None:
    """torch.compile's errors hold modules and frames: raised in the spawned worker as they are, the
    pool reports only "cannot pickle 'module' object" (session 36 on the H100)."""
    class Unpicklable(Exception):
        def __init__(self) -> None:
            super().__init__("Bad import result")
            self.module = sys

    def fails() -> None:
        raise Unpicklable()

    with pytest.raises(RuntimeError, match="^Unpicklable: Bad import result$") as info:
        _reporting(fails)
    assert isinstance(pickle.loads(pickle.dumps(info.value)), RuntimeError)
    assert _reporting(lambda x: x + 1, 2) == 3


def test_the_step_benchmark_refuses_what_a_run_refuses_in_one_line() -> None:
    """A compile mode and scope that ``TrainConfig`` refuses end the benchmark before any worker
    starts: one line, a non-zero exit, no traceback."""
    import subprocess

    script = Path(__file__).parents[1] / "benchmarks" / "train_throughput.py"
    proc = subprocess.run([sys.executable, str(script), "--controllers", "tiny", "--device", "cpu", "--no-flops",
                           "--compile", "cudagraphs"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip() == ("compile='cudagraphs' needs compile_scope='cycle': a compiled layer takes Python "
                                   "floats as CPU tensors, and a graph with a CPU input is never captured as a CUDA graph")


def test_the_step_benchmark_names_a_wrong_inductor_setting_in_one_line() -> None:
    """``--inductor`` takes existing torch._inductor.config entries with literal values; anything
    else ends the benchmark before any worker starts, naming the entry."""
    import subprocess

    script = Path(__file__).parents[1] / "benchmarks" / "train_throughput.py"
    for setting, message in [("triton.no_such_entry=1", "torch._inductor.config has no triton.no_such_entry"),
                             ("triton.slow_path_cudagraph_asserts", "expected NAME=VALUE"),
                             ("triton.slow_path_cudagraph_asserts=maybe", "'maybe' is not a Python literal")]:
        proc = subprocess.run([sys.executable, str(script), "--controllers", "tiny", "--no-flops", "--inductor", setting],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert proc.stderr.strip() == f"--inductor {setting!r}: {message}"


def test_the_step_benchmark_profiles_its_warm_up_steps_under_inductor_settings(tmp_path) -> None:
    """One tiny step on the CPU with an inductor setting and ``--profile``: each warm-up step's
    cProfile statistics and one more step's after the timed ones (the train step among their
    calls), and the setting in the JSON row."""
    import pstats
    import subprocess

    script = Path(__file__).parents[1] / "benchmarks" / "train_throughput.py"
    out = tmp_path / "row.json"
    proc = subprocess.run([sys.executable, str(script), "--controllers", "tiny", "--batch-sizes", "4", "--steps", "1",
                           "--warmup", "1", "--threads", "1", "--no-flops", "--profile", str(tmp_path / "prof"),
                           "--inductor", "triton.slow_path_cudagraph_asserts=False", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())["results"][0]
    assert row["inductor"] == {"triton.slow_path_cudagraph_asserts": False}
    assert row["no_empty_cache"] is None and len(row["warmup_s"]) == 1
    stats = pstats.Stats(str(tmp_path / "prof" / "tiny-d1-warmup0.prof"))
    assert any(name == "train_step" for (_, _, name) in stats.stats)  # type: ignore[attr-defined]
    assert "train_step" in (tmp_path / "prof" / "tiny-d1-warmup0.txt").read_text()
    assert "train_step" in (tmp_path / "prof" / "tiny-d1-steady.txt").read_text()  # one step past the timed ones
