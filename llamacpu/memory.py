"""HybridSWM: the differentiable slot memory.

Reads go through pointers (content-free attention over address keys); writes are soft: erase then
add, scaled by a write weighting over addresses and a gate. All functions are pure and batched.
"""

from __future__ import annotations

import torch


def read(memory: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted read.

    memory: [B, N, D]; weights: [B, ..., N] attention over addresses -> [B, ..., D].
    """
    flat = weights.reshape(weights.shape[0], -1, weights.shape[-1])  # (B, R, N)
    out = flat @ memory  # (B, R, D)
    return out.reshape(*weights.shape[:-1], memory.shape[-1])


def write(memory: torch.Tensor, weights: torch.Tensor, gate: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """Soft write of one slot: ``M <- M * (1 - g w) + g w slot``.

    memory: [B, N, D]; weights: [B, N]; gate: [B]; slot: [B, D] -> [B, N, D].
    """
    w = (gate.unsqueeze(-1) * weights).unsqueeze(-1)  # (B, N, 1)
    return memory * (1.0 - w) + w * slot.unsqueeze(1)


def entropy(probs: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Entropy in nats over the last dimension: [..., N] -> [...]."""
    return -(probs * (probs + eps).log()).sum(-1)


def shift_distribution(base: torch.Tensor, offsets: torch.Tensor, max_offset: int) -> torch.Tensor:
    """Relative addressing: move a distribution over addresses by a distribution over offsets.

    base: [B, N] (where we are); offsets: [B, 2R+1] over -R..R -> [B, N], the distribution of
    ``base + offset``. Mass pushed past either end of memory is dropped.
    """
    n = base.shape[-1]
    padded = torch.nn.functional.pad(base, (max_offset, max_offset))  # (B, N + 2R)
    # shifted[b, k, j] = base[b, j - (k - R)]
    windows = padded.unfold(-1, n, 1).flip(1)  # (B, 2R+1, N): window k starts at 2R - k
    return (offsets.unsqueeze(-1) * windows).sum(1)
