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


UNFOLD_LIMIT = 2**26  # elements of shift_distribution's all-offsets-at-once tensor (256 MB in float32)


def shift_distribution(base: torch.Tensor, offsets: torch.Tensor, max_offset: int) -> torch.Tensor:
    """Relative addressing: move a distribution over addresses by a distribution over offsets.

    base: [B, N] (where we are); offsets: [B, 2R+1] over -R..R -> [B, N], the distribution of
    ``base + offset``. Mass pushed past either end of memory is dropped.
    """
    n = base.shape[-1]
    padded = torch.nn.functional.pad(base, (max_offset, max_offset))  # (B, N + 2R)
    if base.numel() * offsets.shape[-1] <= UNFOLD_LIMIT:
        # shifted[b, k, j] = base[b, j - (k - R)]
        windows = padded.unfold(-1, n, 1).flip(1)  # (B, 2R+1, N): window k starts at 2R - k
        return (offsets.unsqueeze(-1) * windows).sum(1)
    # A large memory (a plan over thousands of slots): one shift at a time, O(B * N) extra memory.
    out = torch.zeros_like(base)
    for k in range(offsets.shape[-1]):  # offset k - R: out[j] += offsets[k] * base[j - (k - R)]
        start = 2 * max_offset - k
        out = out + offsets[:, k : k + 1] * padded[:, start : start + n]
    return out


def next_marked(origin: torch.Tensor, marks: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """Content-based relative move: from where we are to the next marked slot after it.

    origin: [B, N] (where we are); marks: [B, N] in [0, 1] (e.g. the probability that a slot is
    an INST) -> [B, N], the distribution of "the first marked slot past the origin":
    ``out[j] = marks[j] * sum_{i<j} origin[i] * prod_{i<k<j} (1 - marks[k])``. With hard marks it
    is exact; mass that finds no marked slot past its origin is dropped. The running product is
    a cumulative sum of logs, so the cost is one [N, N] matrix per row, not a scan.
    """
    log_q = (1.0 - marks).clamp(min=floor).log()  # (B, N)
    cum = log_q.cumsum(-1)  # cum[k] = sum_{m<=k} log q[m]
    # between[i, j] = prod_{i<k<j} q[k] = exp(cum[j-1] - cum[i]) for j > i
    before_j = torch.nn.functional.pad(cum, (1, 0))[..., :-1]  # (B, N): cum[j-1], 0 for j = 0
    diff = before_j.unsqueeze(-2) - cum.unsqueeze(-1)  # (B, N_i, N_j)
    n = origin.shape[-1]
    later = torch.ones(n, n, dtype=torch.bool, device=origin.device).triu(1)  # j > i
    between = torch.where(later, diff.clamp(max=0.0).exp(), torch.zeros((), dtype=diff.dtype, device=diff.device))
    return marks * (origin.unsqueeze(-2) @ between).squeeze(-2)
