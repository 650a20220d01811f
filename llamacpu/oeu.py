"""The operator execution unit: a neural ALU.

It takes distributions (an opcode, two value codes) rather than numbers, so a soft fetch or a
soft read passes through it with gradients. Trained on the steps of traces *and* on random rows of
its own operator table drawn from the ISA: trained on traces alone it memorizes the digit pairs
it has seen and fails every held-out problem (DESIGN.md, "What a first prototype measured").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from llamacpu.isa import OPCODES, op_table


@dataclass(frozen=True)
class OEUConfig:
    hidden: int = 512  # width of the MLP; the table has 13 x 20 x 20 rows to hold
    layers: int = 2
    lr_scale: float = 3.0  # its own learning rate, relative to the run's: it learns a fixed table


class OperatorExecutionUnit(nn.Module):
    def __init__(self, n_values: int, config: OEUConfig = OEUConfig()) -> None:
        super().__init__()
        self.n_values = n_values
        n_ops = len(OPCODES)
        dims = [n_ops + 2 * n_values] + [config.hidden] * config.layers
        blocks: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(d_in, d_out), nn.GELU()]
        self.mlp = nn.Sequential(*blocks, nn.Linear(config.hidden, n_values))
        self.gate_logit = nn.Parameter(torch.zeros(n_ops))  # write gate per opcode, learned
        results, writes = op_table(n_values)
        self.register_buffer("table_results", results, persistent=False)  # [OPS, C, C]
        self.register_buffer("table_writes", writes, persistent=False)  # [OPS]

    def forward(self, op: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """op: [..., OPS], a: [..., C], b: [..., C] (probabilities)
        -> result logits [..., C], write gate [...] in (0, 1)."""
        logits = self.mlp(torch.cat([op, a, b], dim=-1))
        gate = torch.sigmoid(op @ self.gate_logit)
        return logits, gate

    def table_loss(self, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Cross-entropy of result and gate on ``rows`` random rows of the operator table."""
        device = self.gate_logit.device
        n_ops, c = len(OPCODES), self.n_values
        op = torch.randint(n_ops, (rows,), generator=generator).to(device)
        a = torch.randint(c, (rows,), generator=generator).to(device)
        b = torch.randint(c, (rows,), generator=generator).to(device)
        f = nn.functional
        logits, gate = self(f.one_hot(op, n_ops).float(), f.one_hot(a, c).float(), f.one_hot(b, c).float())
        loss = f.cross_entropy(logits, self.table_results[op, a, b])
        return loss + f.binary_cross_entropy(gate, self.table_writes[op])

    @torch.no_grad()
    def table_accuracy(self) -> float:
        """Fraction of the whole operator table the OEU gets right (argmax)."""
        n_ops, c = len(OPCODES), self.n_values
        eye_o, eye_v = torch.eye(n_ops), torch.eye(c)
        op = eye_o.repeat_interleave(c * c, 0)
        a = eye_v.repeat_interleave(c, 0).repeat(n_ops, 1)
        b = eye_v.repeat(n_ops * c, 1)
        device = self.gate_logit.device
        logits, _ = self(op.to(device), a.to(device), b.to(device))
        return float((logits.argmax(-1) == self.table_results.flatten()).float().mean())
