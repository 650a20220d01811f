"""The fused LoRA layers (llamacpu/lora.py) compute what PEFT's own layers compute, forward and
backward, over a full-precision and a 4-bit base; merged and disabled adapters still work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import llamacpu.lora as fused_lora
from llamacpu.controller import Controller, ControllerConfig, build_controller
from llamacpu.isa import ISA, SlotLayout

from test_presets import save_tiny_llama

ISA_40 = ISA(SlotLayout(n_slots=40))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lora") / "tiny-llama"
    save_tiny_llama(path)
    return path


def build(path: Path, load_in_4bit: bool, fused: bool, monkeypatch: pytest.MonkeyPatch) -> Controller:
    """A controller whose LoRA B matrices are random (PEFT starts them at zero: no update to compare)."""
    with monkeypatch.context() as patch:
        if not fused:
            patch.setattr(fused_lora, "custom_modules", lambda load_in_4bit: {})
        controller = build_controller(ControllerConfig(preset=str(path), load_in_4bit=load_in_4bit,
                                                       compute_dtype="float32"), ISA_40)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in controller.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return controller.train()


def lora_layers(controller: Controller) -> list[torch.nn.Module]:
    return [m for m in controller.modules() if isinstance(m, fused_lora.FusedLoraMixin)]


def plan_output(controller: Controller) -> torch.Tensor:
    prompt = controller.tokenizer.batch(["3 + 4", "what is 9 + 9?"])
    heads = controller.plan(prompt, 40)
    return torch.cat([heads.type_logits.flatten(), heads.content_logits.flatten(), heads.pointers.flatten()])


@pytest.mark.parametrize("load_in_4bit", [False, True], ids=["fp32", "nf4"])
def test_fused_lora_matches_peft_forward_and_backward(tiny_llama: Path, load_in_4bit: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reference = build(tiny_llama, load_in_4bit, fused=False, monkeypatch=monkeypatch)
    fused = build(tiny_llama, load_in_4bit, fused=True, monkeypatch=monkeypatch)
    expected = fused_lora.fused_4bit_class() if load_in_4bit else fused_lora.FusedLoraLinear
    assert not lora_layers(reference)
    assert len(lora_layers(fused)) == 2 * 7 and all(type(m) is expected for m in lora_layers(fused))
    ref_params, fused_params = dict(reference.named_parameters()), dict(fused.named_parameters())
    assert ref_params.keys() == fused_params.keys()  # same adapters, same names: same saved files
    for name, p in ref_params.items():
        assert torch.equal(p, fused_params[name]), name

    out_ref, out_fused = plan_output(reference), plan_output(fused)
    torch.testing.assert_close(out_fused, out_ref, rtol=1e-4, atol=1e-5)
    (out_ref ** 2).sum().backward()
    (out_fused ** 2).sum().backward()
    lora_names = [n for n in ref_params if "lora_" in n]
    assert lora_names
    for name in lora_names:
        g_ref, g_fused = ref_params[name].grad, fused_params[name].grad
        assert g_ref is not None and g_fused is not None and bool(g_ref.abs().sum() > 0), name
        torch.testing.assert_close(g_fused, g_ref, rtol=1e-3, atol=1e-5)


def test_disabled_and_merged_adapters_take_peft_paths(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = build(tiny_llama, False, fused=False, monkeypatch=monkeypatch).eval()
    controller = build(tiny_llama, False, fused=True, monkeypatch=monkeypatch).eval()
    peft_model = controller.peft_model
    with torch.no_grad():
        with_lora = plan_output(controller)
        with peft_model.disable_adapter():
            without = plan_output(controller)
            with base.peft_model.disable_adapter():
                torch.testing.assert_close(without, plan_output(base))
        assert not torch.allclose(with_lora, without)
        peft_model.merge_adapter()
        merged = plan_output(controller)
        peft_model.unmerge_adapter()
    torch.testing.assert_close(merged, with_lora, rtol=1e-4, atol=1e-5)
