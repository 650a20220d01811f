"""LoRA adapters whose update is one fused GEMM: ``y = base(x) + scaling * (x A^T) B^T``.

PEFT's LoRA layers compute ``result = base(x)`` (the 4-bit one then clones it), then
``lora_B(lora_A(x))``, then multiply by ``scaling`` and add: three extra passes over a
``[tokens, out]`` tensor forward and two more backward, for an update of rank 16. On a CPU
these passes are memory-bound and cost as much as the rank-16 products themselves (SmolLM2 in
4-bit on two cores: about a tenth of a training step). Here ``torch.addmm`` adds the scaled
update straight onto the base output, and its backward folds the scaling into the products.

The layers are PEFT's own (same parameters, same ``save_pretrained`` files), registered through
PEFT's custom-module dispatch (``LoraConfig._register_custom_module``) so that only ``forward``
differs. Anything but plain LoRA with one active adapter, no dropout and matching dtypes (merged
weights, disabled adapters, per-example adapters, DoRA and other variants, a bf16 base under
float32 adapters) takes PEFT's own forward unchanged.

bitsandbytes is imported only for 4-bit models (:func:`fused_4bit_class`): a full-precision
preset such as ``smollm2`` runs where it is not installed.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from peft.tuners.lora import layer as lora_layer
from torch import nn
from torch.nn import functional as F


class FusedLoraMixin:
    """PEFT LoRA layer mixin: plain LoRA as the base output plus one ``addmm``."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        adapter = self._fusable_adapter(x, args, kwargs)
        if adapter is None:
            return super().forward(x, *args, **kwargs)
        a = self.lora_A[adapter].weight  # (r, in)
        b = self.lora_B[adapter].weight  # (out, r)
        scaling = self.scaling[adapter]
        result = self.base_layer(x)  # (..., out)
        h = F.linear(x, a)  # (..., r)
        if result.dtype != a.dtype:  # a base that returns another dtype: PEFT's own sum
            return result + (F.linear(h, b) * scaling).to(result.dtype)
        out = torch.addmm(result.reshape(-1, b.shape[0]), h.reshape(-1, a.shape[0]), b.t(), alpha=scaling)
        return out.view(result.shape)

    def _fusable_adapter(self, x: torch.Tensor, args: tuple, kwargs: dict[str, Any]) -> str | None:
        """The one adapter to fuse, or None when PEFT's general forward must run."""
        if args or kwargs or self.disable_adapters or self.merged:
            return None
        active = [name for name in self.active_adapters if name in self.lora_A]
        if len(active) != 1 or active[0] in self.lora_variant:
            return None
        name = active[0]
        if not isinstance(self.lora_dropout[name], nn.Identity) or x.dtype != self.lora_A[name].weight.dtype:
            return None
        return name


class FusedLoraLinear(FusedLoraMixin, lora_layer.Linear):
    """LoRA over a full-precision ``nn.Linear``."""


@functools.cache
def fused_4bit_class() -> type[nn.Module]:
    """``FusedLoraLinear4bit``: LoRA over a bitsandbytes NF4 layer (PEFT's own forward also
    clones the base output). Built on first use, so that bitsandbytes is imported only then."""
    from peft.tuners.lora import bnb as lora_bnb

    return type("FusedLoraLinear4bit", (FusedLoraMixin, lora_bnb.Linear4bit),
                {"__doc__": "LoRA over a bitsandbytes NF4 layer, fused.", "__module__": __name__})


def custom_modules(load_in_4bit: bool) -> dict[type[nn.Module], type[nn.Module]]:
    """The mapping for ``LoraConfig._register_custom_module``: base layer type -> fused layer.
    One entry: a 4-bit layer is also an ``nn.Linear``, so the other kind is left to PEFT."""
    if not load_in_4bit:
        return {nn.Linear: FusedLoraLinear}
    import bitsandbytes as bnb

    return {bnb.nn.Linear4bit: fused_4bit_class()}
