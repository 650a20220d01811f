"""The side-by-side benchmark's re-implementation of the original loop's plan phase."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from llamacpu.controller import ControllerConfig, build_controller
from llamacpu.isa import ISA, SlotLayout

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from original_loop import slotwise_plan  # noqa: E402


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
